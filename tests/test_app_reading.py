"""The dashboard's reading of run folders and its starting points, without a browser session or a run:
what the progress line says at each moment, library messages in the form's words, and what a start costs."""

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tssd_viz import DataUnavailable, preset

APP = Path(__file__).resolve().parents[1] / "app"
sys.path.insert(0, str(APP))
from dashboard import reading, starts  # noqa: E402  (the app's own modules)


def step(n: int, epoch: int = 1, wall: float = 10.0) -> dict:
    return {"kind": "step", "step": n, "epoch": epoch, "wall_s": wall}


def test_progress_says_when_the_test_set_is_being_evaluated():
    cfg = preset("classroom")
    running = {"state": "running", "total_steps": 1560}
    last = [step(1550, 4, 600.0)]
    assert "left" in reading.progress(running, last, cfg).text
    evaluating = {**running, "evaluating_at": 1560}
    assert reading.progress(evaluating, last, cfg).text == "step 1,550 of 1,560 · evaluating on the test set…"
    # once a record of that step (the epoch line, the final evaluation) or a later step arrives, it is over
    for after in ({"kind": "epoch", "step": 1560, "epoch": 4}, step(1570, 5)):
        assert "evaluating" not in reading.progress(evaluating, last + [after], cfg).text


def test_a_cancel_says_where_in_its_epoch_it_stopped():
    cfg = preset("classroom")  # 4 epochs of 390 steps
    status = {"state": "cancelled", "steps": 80}  # a finished status keeps no total: the config gives it
    text = reading.progress(status, [step(80, 1, 30.0)], cfg).text
    assert text == "cancelled during epoch 1, at step 80 of 390, 30 s of training"
    assert reading.snapshot_when(1, 80, 390) == "during epoch 1, at step 80 of 390"
    assert reading.snapshot_when(1, 390, 390) == "after epoch 1" and reading.snapshot_when(0, 0, 390) == (
        "before training"
    )


def test_the_first_event_run_says_the_recordings_are_being_made(monkeypatch, tmp_path):
    monkeypatch.setenv("TSSD_CACHE", str(tmp_path))  # no event recordings made yet
    status = {"state": "running", "message": "starting: loading the data and building the network", "time": 0}
    text = reading.progress(status, [], preset("events")).text
    assert "making the event recordings from the digits (once" in text
    assert "making" not in reading.progress(status, [], preset("digits")).text


def test_library_messages_speak_the_forms_words():
    message = str(DataUnavailable("cifar10", [Path("/data/my_cifar/cifar10")], "nothing there"))
    shown = reading.in_form_words(message)
    assert "--data" not in shown and "**Data root**" in shown and "**Dataset**" in shown
    assert "`train/<class>/*`" in shown and "`/data/my_cifar/cifar10`" in shown  # no Markdown emphasis


def test_start_labels_fit_the_sidebar_and_the_classroom_starts_fit_a_lesson():
    assert all(len(label) <= 40 for label, _ in starts.STARTS.values())  # 44 characters were cut
    assert starts.STARTS["classroom"][1]() == preset("classroom-quick")  # the lesson-sized one
    assert starts.STARTS["classroom-full"][1]() == preset("classroom")  # the committed tables' recipe, labelled long
    quick = preset("classroom-quick")
    assert starts.steps_of(quick) == 4 * (10_000 // 128) and quick.train.time_budget_s == 0  # all its steps when busy
    assert starts.steps_of(preset("classroom")) == 4 * (50_000 // 128)


def test_a_gpu_recipe_on_a_cpu_is_warned_about_before_train(tmp_path):
    paper = preset("paper-resnet19").replace(**{"train.device": "cpu"})
    kind, text = starts.cost_note(paper, tmp_path)
    assert kind == "warning" and "hours to days" in text and "156,200 steps" in text
    kind, text = starts.cost_note(preset("classroom").replace(**{"train.device": "cpu"}), tmp_path)
    # 1,560 steps of 128 images x 4 timesteps at the classroom network's measured cost per image and timestep
    assert kind == "info" and "1,560 steps: about 8 min 16 s of training here" in text
    kind, text = starts.cost_note(preset("classroom-quick").replace(**{"train.device": "cpu"}), tmp_path)
    assert kind == "info" and "312 steps: about 1 min 40 s of training here" in text


@pytest.mark.parametrize("start", ["paper"])
def test_the_sidebar_shows_the_cost_of_a_start(start, tmp_path, monkeypatch):
    monkeypatch.setenv("TSSD_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(APP / "main.py"), default_timeout=60).run()
    at.selectbox(key="cfg_start").set_value(start).run()
    at.selectbox(key="cfg_device").set_value("cpu").run()
    assert any("hours to days, a GPU recipe" in w.value for w in at.sidebar.warning), [
        w.value for w in at.sidebar.warning
    ]
