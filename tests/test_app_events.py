"""The dashboard on event data (AppTest): the Event camera starting point, the windowing switch and its
refusal, and a run on event_digits whose probe panel shows each timestep's input frame."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from waiting import wait_for  # tests/waiting.py

from tssd_viz import RunFolder

APP = Path(__file__).resolve().parents[1] / "app" / "main.py"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("app-events") / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TSSD_RUNS_DIR", str(root))
        mp.setenv("TSSD_MAX_RUNNING", "1")
        yield root


def runs_in(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def session() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_event_start_offers_the_windowing_switch_and_refuses_a_shared_pass(runs_dir):
    at = session()
    at.selectbox(key="cfg_start").set_value("events").run()
    assert at.selectbox(key="cfg_dataset").value == "event_digits"
    assert at.selectbox(key="cfg_windowing").value == "fixed_window"
    at.selectbox(key="cfg_windowing").set_value("whole_recording").run()
    errors = [e.value for e in at.error]
    assert any(e.startswith("data.windowing: 'whole_recording'") and "separate" in e for e in errors), errors
    at.selectbox(key="cfg_tsd_pass").set_value("separate").run()
    assert not at.error and not at.exception
    at.selectbox(key="cfg_dataset").set_value("digits").run()  # images: the switch goes away, and back to fixed
    assert not at.error and "cfg_windowing" not in [s.key for s in at.selectbox]


def test_an_event_run_shows_its_input_frames_beside_the_raster(runs_dir):
    at = session()
    at.selectbox(key="cfg_start").set_value("events").run()
    at.number_input(key="cfg_epochs").set_value(1).run()
    at.number_input(key="cfg_limit_train").set_value(64).run()
    before = set(runs_in(runs_dir))
    at.button(key="train_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (name,) = set(runs_in(runs_dir)) - before
    run = RunFolder(runs_dir / name)
    wait_for(lambda: run.status()["state"] not in ("queued", "running"), what="the event run to finish", timeout=300)
    assert run.status()["state"] == "done", run.status()
    assert run.config().data.dataset == "event_digits"
    at.run()
    frames = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("live_probe_frames"))
    traces = json.loads(frames.proto.spec)["data"]
    assert [t["type"] for t in traces] == ["heatmap"] * run.config().distill.t_teacher  # one frame per timestep
    assert any(c.proto.id.endswith("live_raster") for c in at.get("plotly_chart"))
