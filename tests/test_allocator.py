"""The training process's malloc: found, preloaded through the environment or a re-exec, recorded."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tssd_viz import ConsoleProgress, RunFolder, TSSDConfig, fit, preset
from tssd_viz.config import ConfigError
from tssd_viz.training import allocator as al
from tssd_viz.validation import validate

ROOT = Path(__file__).resolve().parent.parent
JE, TC = al.Library("jemalloc", "/opt/je/libjemalloc.so.2"), al.Library("tcmalloc", "libtcmalloc_minimal.so.4")
# What train.allocator = auto runs on this machine: the first fast allocator installed, else glibc.
FOUND = al.wanted("auto")
EXPECTED = FOUND.name if FOUND else "glibc"
TINY = ["--preset", "quick", "--train.epochs", "1", "--data.limit-train", "64", "--data.limit-test", "32"]
TINY += ["--model.width", "0.25", "--train.device", "cpu", "--train.probe-every", "0", "--train.log-every", "1"]
TINY += ["--no-progress"]


def installed(monkeypatch, *libs):
    """Pretend that exactly `libs` are installed (on Linux)."""
    monkeypatch.setattr(al, "find", lambda name: next((lib for lib in libs if lib.name == name), None))
    monkeypatch.setattr(sys, "platform", "linux")


def train(tmp_path, *args, env=None, name="run"):
    """`python -m tssd_viz train` as a user starts it; returns (process, the allocator env.json records)."""
    run_dir = tmp_path / name
    p = subprocess.run(
        [sys.executable, "-m", "tssd_viz", "train", *TINY, "--run-dir", str(run_dir), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "OMP_NUM_THREADS": "1"},
        cwd=ROOT,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p, json.loads((run_dir / "env.json").read_text())["allocator"]


def test_auto_prefers_jemalloc_then_tcmalloc_then_glibc(monkeypatch):
    installed(monkeypatch, TC, JE)
    assert al.wanted("auto") == JE and al.wanted("tcmalloc") == TC and al.wanted("glibc") is None
    installed(monkeypatch, TC)
    assert al.wanted("auto") == TC and al.wanted("jemalloc") is None  # asked for, absent: glibc
    installed(monkeypatch)
    assert al.wanted("auto") is None
    installed(monkeypatch, JE)
    monkeypatch.setattr(sys, "platform", "darwin")  # nothing is preloaded off Linux
    assert al.wanted("auto") is None


def test_launch_env_puts_the_allocator_first_and_keeps_other_preloads_and_user_settings(monkeypatch):
    installed(monkeypatch, JE, TC)
    base = {"PATH": "/bin", "LD_PRELOAD": "/x/libfoo.so /y/libtcmalloc.so.4:/z/libbar.so"}
    env = al.launch_env("auto", base)
    assert env["LD_PRELOAD"] == "/opt/je/libjemalloc.so.2:/x/libfoo.so:/z/libbar.so"  # tcmalloc dropped
    assert env["MALLOC_CONF"] == "dirty_decay_ms:-1,muzzy_decay_ms:-1" and env["PATH"] == "/bin"
    assert al.launch_env("auto", {"MALLOC_CONF": "narenas:1"})["MALLOC_CONF"] == "narenas:1"  # the user's wins
    env = al.launch_env("tcmalloc", base)
    assert env["LD_PRELOAD"].split(":")[0] == "libtcmalloc_minimal.so.4" and env["TCMALLOC_RELEASE_RATE"] == "0"
    assert al.launch_env("glibc", base)["LD_PRELOAD"] == "/x/libfoo.so:/z/libbar.so"
    assert "LD_PRELOAD" not in al.launch_env("glibc", {"LD_PRELOAD": "/opt/je/libjemalloc.so.2"})
    assert base["LD_PRELOAD"].startswith("/x/")  # the caller's mapping is left as it was


def test_the_console_line_says_what_runs_and_how_to_get_the_faster_one(monkeypatch):
    monkeypatch.setattr(al, "running", lambda: "glibc")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    installed(monkeypatch)
    line = al.settle("auto", tune=False).line()
    assert line.startswith("allocator: glibc;") and "apt-get install libjemalloc2" in line and "\n" not in line
    installed(monkeypatch, JE)
    assert "jemalloc is installed but this process started without it" in al.settle("auto", False).line()
    assert "train.allocator = glibc" in al.settle("glibc", False).line()
    monkeypatch.setenv("LD_PRELOAD", JE.path)  # asked for, yet malloc is glibc's: the preload failed
    assert f"{JE.path} could not be preloaded" in al.settle("auto", False).line()
    monkeypatch.setattr(al, "running", lambda: "jemalloc")
    assert al.settle("auto", False).line() == f"allocator: jemalloc ({al.malloc_library()})"


def test_a_child_started_with_launch_env_runs_the_allocator_asked_for():
    code = "from tssd_viz.training import allocator; print(allocator.running(), allocator.malloc_library())"
    for choice, expected in (("auto", EXPECTED), ("glibc", "glibc")):
        env = al.launch_env(choice)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        name, library = out.stdout.split()
        assert name == expected, (choice, env.get("LD_PRELOAD"))
        assert expected == "glibc" or Path(library).name == Path(FOUND.path).name


def test_cli_train_runs_auto_by_itself_and_glibc_when_asked(tmp_path):
    # Started without any preload: the CLI re-executes itself under the allocator found.
    p, ran = train(tmp_path, env={"LD_PRELOAD": ""})
    assert ran["name"] == EXPECTED and ran["asked"] == "auto" and ran["tuned"] == (EXPECTED == "glibc")
    assert f"allocator: {EXPECTED}" in p.stderr
    # Started under jemalloc's environment, asked for glibc: the re-exec drops it again.
    p, ran = train(tmp_path, "--train.allocator", "glibc", env=al.launch_env("auto"), name="glibc")
    assert ran["name"] == "glibc" and ran["tuned"] and ran["library"].endswith(".so.6")
    assert "allocator: glibc + tune_allocator; train.allocator = glibc" in p.stderr
    # The malloc changes the speed, not the numbers.
    losses = [[r["loss"] for r in RunFolder(tmp_path / name).metrics("step")] for name in ("run", "glibc")]
    assert losses[0] == losses[1] and len(losses[0]) > 1
    assert RunFolder(tmp_path / "run").final_eval() == RunFolder(tmp_path / "glibc").final_eval()


def test_a_library_that_cannot_be_preloaded_falls_back_to_glibc_once(tmp_path):
    # A broken "jemalloc" in the conda prefix is found first; the dynamic linker refuses it, the run trains
    # under glibc + tune_allocator, says so, and does not re-execute again and again.
    fake = tmp_path / "conda" / "lib" / "libjemalloc.so.2"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not an ELF file")
    p, ran = train(tmp_path, env={"CONDA_PREFIX": str(fake.parent.parent), "LD_PRELOAD": ""})
    assert ran["name"] == "glibc" and ran["tuned"]
    assert f"{fake} could not be preloaded" in p.stderr


def test_in_process_fit_records_and_says_its_allocator(tmp_path):
    # A notebook trains in its kernel, whose malloc was chosen when the kernel started (make lab).
    cfg = preset("quick").replace(
        **{"train.epochs": 1, "data.limit_train": 64, "data.limit_test": 32, "model.width": 0.25}
    )
    out = io.StringIO()
    fit(cfg, [ConsoleProgress(file=out, bar=False)], run_dir=tmp_path / "run")
    ran = json.loads((tmp_path / "run" / "env.json").read_text())["allocator"]
    here = al.running()
    assert ran == {**ran, "name": here, "asked": "auto", "tuned": here == "glibc"}
    said = [line for line in out.getvalue().splitlines() if line.startswith("allocator: ")]
    assert len(said) == 1 and said[0].startswith(f"allocator: {here}")


def test_train_allocator_is_a_checked_choice(tmp_path):
    assert TSSDConfig().train.allocator == "auto"
    with pytest.raises(ConfigError, match="train.allocator"):
        validate(TSSDConfig().replace(**{"train.allocator": "mimalloc"}))
    p = subprocess.run(
        [sys.executable, "-m", "tssd_viz", "train", "--run-dir", str(tmp_path / "r"), "--train.allocator", "ptmalloc"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "train.allocator" in p.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "found, uid, says",
    [(False, 0, "apt-get update -qq|apt-get install -y -qq libjemalloc2"), (False, 1000, ""), (True, 0, "")],
)
def test_make_setup_installs_jemalloc_when_root_and_missing_and_says_how_otherwise(tmp_path, found, uid, says):
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "apt.log"
    scripts = {
        "apt-get": f'echo "apt-get $*" >> {log}',
        "id": f"echo {uid}",
        "python": f"exit {0 if found else 1}",  # the Makefile asks tssd_viz.training.allocator.find('jemalloc')
    }
    for name, body in scripts.items():
        (fake / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake / name).chmod(0o755)
    stamp = tmp_path / "installed"
    stamp.touch()  # setup's venv is there already: only the allocator step runs
    p = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "allocator", f"STAMP={stamp}", f"PY={fake / 'python'}"],
        env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr  # never a failed setup: training runs under glibc without it
    assert (log.read_text().strip().replace("\n", "|") if log.exists() else "") == says
    hint = "sudo apt-get install libjemalloc2" in p.stderr
    assert hint == (not found and uid != 0)


def test_the_conda_environment_lists_jemalloc():
    assert re.search(r"^  - jemalloc\b", (ROOT / "environment.yml").read_text(), re.MULTILINE)


def test_make_lab_starts_jupyter_under_the_allocator_so_its_kernels_run_it():
    # The Makefile's lab line, with a command that reports its malloc in place of JupyterLab.
    lab = next(line.strip() for line in (ROOT / "Makefile").read_text().splitlines() if "jupyter lab" in line)
    starter = lab.split('"')[1]
    report = "from tssd_viz.training import allocator; print(allocator.running())"
    p = subprocess.run(
        [sys.executable, "-c", starter, sys.executable, "-c", report], capture_output=True, text=True, check=True
    )
    assert p.stdout.strip() == EXPECTED and p.stderr.startswith("allocator for python")
