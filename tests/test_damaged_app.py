"""The dashboard over a runs folder where each file of a finished run has been replaced by junk: every page
draws, the damaged folders listed as unreadable in one line, the good run as before (AppTest)."""

import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tssd_viz import RunFolder, fit, preset

APP = Path(__file__).resolve().parents[1] / "app" / "main.py"
JUNK = {
    "binary": b"\xff\xfe\x00\x80junk",
    "list": b"[]",
    "string": b'"x"',
    "null": b"null",
}
FILES = {"status": "status.json", "metrics": "metrics.jsonl", "config": "config.json", "probe": "probes/epoch-0001.npz"}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """A runs folder with one good finished run and, beside it, a copy per (file, junk) with that file replaced
    (metrics.jsonl gains the junk as a line instead, as an append would)."""
    root = tmp_path_factory.mktemp("damaged-app") / "runs"
    cfg = preset("digits").replace(
        **{"model.width": 0.25, "data.limit_train": 128, "data.limit_test": 64, "train.epochs": 1}
    )
    cfg = cfg.replace(**{"train.device": "cpu", "train.log_every": 1})
    good = RunFolder(root / "good")
    fit(cfg, [], run_dir=good.path)
    for fname, rel in FILES.items():
        for jname, junk in JUNK.items():
            copy = root / f"{fname}-{jname}"
            shutil.copytree(good.path, copy)
            with open(copy / rel, "ab" if fname == "metrics" else "wb") as f:
                f.write(junk + b"\n" if fname == "metrics" else junk)
    saved = {k: os.environ.get(k) for k in ("TSSD_RUNS_DIR", "TSSD_MAX_RUNNING")}
    os.environ.update(TSSD_RUNS_DIR=str(root), TSSD_MAX_RUNNING="1")
    yield root
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def page(path=None, run=None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    if run:
        at.query_params["run"] = run
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if path:
        at.switch_page(path).run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def test_train_page_lists_the_damaged_folders_and_watches_each_without_a_traceback(runs_dir):
    for name in sorted(p.name for p in runs_dir.iterdir()):
        at = page(run=name)
        shown = [e.value for e in at.error] + [w.value for w in at.warning]
        assert all("\n" not in s.strip() for s in shown), (name, shown)
    table = next(d.value for d in at.dataframe if "state" in d.value.columns)
    states = dict(zip(table["run"], table["state"]))
    assert states["good"] == "done"
    for jname in JUNK:
        assert states[f"status-{jname}"] == "unreadable" and states[f"config-{jname}"] == "unreadable"
    messages = dict(zip(table["run"], table["message"]))
    assert "status.json" in messages["status-binary"] and "config.json" in messages["config-list"]


def test_compare_page_draws_with_damaged_runs_beside_the_good_one(runs_dir):
    at = page("views/compare.py")
    at.multiselect(key="compare_runs").set_value(["good", "metrics-list", "status-null", "probe-binary"]).run()
    assert not at.exception, [e.value for e in at.exception]


def test_inspect_page_opens_every_damaged_run_in_one_line_or_not_at_all(runs_dir):
    at = page("views/inspect.py")
    names = at.selectbox(key="inspect_run").options
    assert any("good" in n for n in names)
    for option in list(at.selectbox(key="inspect_run").options):
        at.selectbox(key="inspect_run").set_value(option.split(" ")[0]).run()
        assert not at.exception, (option, [e.value for e in at.exception])
        shown = [e.value for e in at.error] + [w.value for w in at.warning]
        assert all("\n" not in s.strip() for s in shown), (option, shown)


@pytest.mark.parametrize("classroom", [True, False])
def test_inspect_refuses_a_path_it_cannot_even_look_at_in_one_line(runs_dir, monkeypatch, classroom):
    if classroom:
        monkeypatch.setenv("TSSD_SERVE", "classroom")
    at = page("views/inspect.py")
    at.radio(key="inspect_source").set_value("any folder").run()
    for text in ("~nouser-of-this-machine/x", "runs/a\x00b", "x" * 5000):
        at.text_input(key="inspect_path").input(text).run()
        assert not at.exception, (text[:40], [e.value for e in at.exception])
        assert len(at.error) == 1 and "\n" not in at.error[0].value.strip(), [e.value for e in at.error]
