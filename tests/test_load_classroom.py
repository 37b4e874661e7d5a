"""A small class on the dashboard: 4 students open the Train page, each submits a Quick look and watches it
(Streamlit's AppTest sessions sharing one job manager and runs folder; bench/classroom_load.py is the
20-student version with the latency figures). Every run ends done, none is lost, none runs twice."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.classroom_load import classroom  # noqa: E402


def test_four_students_each_get_their_quick_look_done_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TSSD_RUNS_DIR", "")  # set by classroom(); monkeypatch restores both afterwards
    monkeypatch.setenv("TSSD_MAX_RUNNING", "")
    figures = classroom(tmp_path / "runs", students=4, epochs=1, max_running=1, timeout_s=600)
    assert figures["done"] == 4 and figures["lost"] == 0 and figures["twice"] == 0, figures
    assert figures["strangers"] == 0, figures  # no folder that nobody submitted
    assert figures["records_shown"] >= 4  # every page showed its run's records as they came


@pytest.mark.parametrize("args", [["--students", "0"], ["--students", "100000000"], ["--timeout-s", "nan"]])
def test_the_load_bench_refuses_nonsense_before_any_session(args):
    command = [sys.executable, str(REPO / "bench" / "classroom_load.py"), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == "" and "error: --" in done.stderr.splitlines()[-1], done.stderr
