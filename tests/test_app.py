"""The dashboard, page by page, with Streamlit's AppTest: real runs launched from the Train button.

Every AppTest here is a browser session of one app process: they share its job manager (one run at
a time) and the runs folder of this module.
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from waiting import wait_for  # tests/waiting.py

from tssd_viz import RunFolder

APP = Path(__file__).resolve().parents[1] / "app" / "main.py"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("app") / "runs"
    saved = {k: os.environ.get(k) for k in ("TSSD_RUNS_DIR", "TSSD_MAX_RUNNING")}
    os.environ.update(TSSD_RUNS_DIR=str(root), TSSD_MAX_RUNNING="1")
    yield root
    for name in runs_in(root):  # never leave a training process behind
        st = RunFolder(root / name).status()
        if st.get("state") == "running" and isinstance(st.get("pid"), int):
            try:
                os.kill(st["pid"], 15)
            except ProcessLookupError:
                pass
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def session(page=None) -> AppTest:
    """A new browser session (first load imports torch: a generous timeout)."""
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    if page:
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def runs_in(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def press_train(at: AppTest, **fields) -> str:
    """Start from "Quick look", set `fields` (cfg_<name> keys), press Train; return the new run's name."""
    root = Path(os.environ["TSSD_RUNS_DIR"])
    before = set(runs_in(root))
    at.selectbox(key="cfg_start").set_value("quick").run()
    for key, value in fields.items():
        at.number_input(key=key).set_value(value).run()
    at.button(key="train_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    new = sorted(set(runs_in(root)) - before)
    assert len(new) == 1, (new, [e.value for e in at.error])
    assert any("Submitted" in s.value for s in at.success)
    return new[0]


def caption_texts(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def table(at: AppTest, column: str):
    """The first table on the page that has `column`."""
    for d in at.dataframe:
        if column in d.value.columns:
            return d.value
    raise AssertionError(f"no table with a column {column!r}")


def chart(at: AppTest, key: str) -> dict:
    for c in at.get("plotly_chart"):
        if c.proto.id.endswith(key):
            return json.loads(c.proto.spec)
    raise AssertionError(f"no chart {key!r}; charts: {[c.proto.id[-24:] for c in at.get('plotly_chart')]}")


@pytest.fixture(scope="module")
def finished_run(runs_dir):
    """A tiny run launched from the Train button, trained to the end."""
    at = session()
    name = press_train(at, cfg_epochs=1)
    run = RunFolder(runs_dir / name)
    wait_for(lambda: run.status()["state"] not in ("queued", "running"), what="the tiny run to finish")
    assert run.status()["state"] == "done", run.status()
    return at, name


def test_a_tiny_run_launched_from_the_page_completes_and_its_metrics_appear(finished_run, runs_dir):
    at, name = finished_run
    at.run()
    assert not at.exception
    assert at.selectbox(key="run").value == name  # the session watches the run it started
    run = RunFolder(runs_dir / name)
    steps = run.metrics("step")  # a record every train.log_every steps
    assert f"Final · updated at step {steps[-1]['step']} · {len(steps)} step records" in " ".join(caption_texts(at))
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["student accuracy"].endswith("%") and tiles["test accuracy at T_s"].endswith("%")
    loss = chart(at, "live_loss")
    assert {d["name"] for d in loss["data"]} >= {"total loss", "TSD loss (teacher → student)"}
    for key in (
        "live_accuracy",
        "live_kl",
        "live_windows",
        "live_rates",
        "live_raster",
        "live_traces",
        "live_probe_logits",
        "live_final",
        "live_confidence",  # T_s = 2: the student window's timesteps as sub-models
        "live_strong_weak",
        "live_final_steps",
        "live_final_exit",
    ):
        chart(at, key)
    strip = chart(at, "live_strong_weak")["data"][0]
    assert strip["type"] == "heatmap" and strip["y"] == ["t=1", "t=2"]
    exits = chart(at, "live_final_exit")["data"][0]
    assert len(exits["x"]) == 4 and all(1 <= x <= 2 for x in exits["x"])  # four thresholds, 1..T_s timesteps
    assert any("its teacher knew" in c and "train − test" in c for c in caption_texts(at)), caption_texts(at)
    traces = chart(at, "live_traces")  # membrane traces: H(t) before the reset and V(t) after, explained below
    assert "soft reset" in traces["layout"]["title"]["subtitle"]["text"]
    assert any("**soft reset** subtracts θ" in c for c in caption_texts(at))
    assert table(at, "window n").shape[0] == run.config().distill.t_teacher


def test_a_second_session_reattaches_to_the_runs(finished_run):
    _, name = finished_run
    other = session()
    assert name in other.selectbox(key="run").options or any(name in o for o in other.selectbox(key="run").options)
    assert any("updated at step" in c for c in caption_texts(other))


@pytest.mark.parametrize("asked", ["../../etc", "/etc/passwd", "no-such-run", "ok\n"])
def test_the_address_selects_only_a_listed_run(finished_run, runs_dir, asked):
    """?run= re-attaches to a run of the runs folder; anything else falls back to a listed run."""
    _, name = finished_run
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = asked
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state.run in runs_in(runs_dir) and at.session_state.run != asked
    good = AppTest.from_file(str(APP), default_timeout=60)
    good.query_params["run"] = name
    good.run()
    assert good.session_state.run == name


@pytest.fixture(scope="module")
def cancelled_run(finished_run, runs_dir):
    """A long run launched from the Train button, cancelled from the page after its first steps."""
    at = session()
    name = press_train(at, cfg_epochs=200)
    run = RunFolder(runs_dir / name)
    wait_for(lambda: run.metrics("step"), what="the first step record")
    at.run()
    training = {
        "progress": [p.proto.text for p in at.get("progress")],
        "cancel": [b.key for b in at.button if b.label == "Cancel"],
    }
    at.button(key="cancel_watched").click().run()
    wait_for(lambda: run.status()["state"] == "cancelled", timeout=60, what="the run to stop")
    return at, name, training


def test_a_training_run_shows_one_progress_bar_and_one_cancel_button(cancelled_run):
    # The runs panel leaves the watched run to its own panel: two bars refreshed at different times disagreed.
    _, _, training = cancelled_run
    assert len(training["progress"]) == 1 and training["progress"][0].startswith("step "), training
    assert training["cancel"] == ["cancel_watched"], training


def test_cancel_from_the_page_stops_the_run_and_keeps_its_checkpoint(cancelled_run, runs_dir):
    at, name, _ = cancelled_run
    run = RunFolder(runs_dir / name)
    assert (run.checkpoints_dir / "last.pt").exists()
    assert len(run.metrics("step")) < 200 * 8
    at.run()
    assert not at.exception
    assert any(c.startswith("cancelled") for c in caption_texts(at)), caption_texts(at)
    assert not any(b.key == "cancel_watched" for b in at.button)
    # where it stopped, as it is: during an epoch, at a step of that epoch (not "after epoch 1")
    per_epoch = 1437 // 32  # the digits' training images in batches of 32
    (bar,) = [p.proto.text for p in at.get("progress")]
    assert re.match(rf"cancelled during epoch \d+, at step \d+ of {per_epoch}, ", bar), bar
    tile = next(m for m in at.metric if m.label == "test accuracy at T_s")
    tested = [e for e in run.metrics("epoch") if e.get("test_acc") is not None]
    assert tile.value == ("–" if not tested else f"{tested[-1]['test_acc']:.1%}")
    if tested:  # an evaluation during training says which epoch it was, in the tile and in All runs
        assert f"after epoch {tested[-1]['epoch']}" in tile.proto.help
        cell = table(at, "test accuracy at T_s").set_index("run").loc[name, "test accuracy at T_s"]
        assert cell == f"{tested[-1]['test_acc']:.1%} (after epoch {tested[-1]['epoch']})"


def test_a_bad_config_is_refused_with_its_message(runs_dir):
    at = session()
    before = runs_in(runs_dir)
    at.selectbox(key="cfg_dataset").set_value("folder").run()
    message = "data.root: dataset 'folder' needs data.root"
    assert any(message in e.value for e in at.sidebar.error), [e.value for e in at.error]
    assert at.button(key="train_button").disabled
    # what only submitting can tell (here: a run name that is not a plain folder name) is refused on Train
    at.selectbox(key="cfg_dataset").select_index(0).run()
    at.text_input(key="run_name").input("../outside").run()
    assert not at.button(key="train_button").disabled
    at.button(key="train_button").click().run()
    assert any(e.value.startswith("Not started: run name: '../outside'") for e in at.error), [e.value for e in at.error]
    assert runs_in(runs_dir) == before


def test_impossible_window_sizes_are_prevented(runs_dir):
    at = session()
    at.number_input(key="cfg_t_student").set_value(6).run()
    assert at.number_input(key="cfg_t_teacher").value == 7  # the teacher must see more timesteps
    at.segmented_control(key="cfg_mode").set_value("baseline").run()
    assert at.number_input(key="cfg_alpha").disabled and at.number_input(key="cfg_beta").disabled
    assert at.number_input(key="cfg_aux_stage").disabled
    at.selectbox(key="cfg_arch").set_value("vgg_fast").run()
    assert at.number_input(key="cfg_aux_stage").proto.max == 3  # stage 4 is the last: nothing after it


def test_the_strong_weak_modes_need_two_timesteps_and_have_their_own_weight(runs_dir):
    at = session()
    at.number_input(key="cfg_t_student").set_value(1).run()
    at.segmented_control(key="cfg_mode").set_value("s2w").run()
    assert at.number_input(key="cfg_t_student").value == 2  # a timestep teaches another: two at least
    assert at.number_input(key="cfg_t_student").proto.min == 2
    assert not at.number_input(key="cfg_sw_weight").disabled and not at.number_input(key="cfg_kd_temperature").disabled
    assert at.number_input(key="cfg_alpha").disabled and at.number_input(key="cfg_beta").disabled
    assert any("most confident timestep teaches the least confident" in c for c in caption_texts(at))
    at.segmented_control(key="cfg_mode").set_value("tsd").run()
    assert at.number_input(key="cfg_sw_weight").disabled


def test_compare_page_overlays_runs_and_tables_their_windows(finished_run, cancelled_run):
    names = sorted([finished_run[1], cancelled_run[1]])
    at = session("views/compare.py")
    # first visit: the finished runs first (a failed or cancelled one has no evaluation to compare), then the newest
    assert at.multiselect(key="compare_runs").value[0] == finished_run[1]
    assert sorted(at.multiselect(key="compare_runs").value) == names
    accs = table(at, "at T_s")
    assert sorted(accs["run"]) == names and "at T_s" in accs.columns
    assert accs.set_index("run").loc[finished_run[1], "at T_s"].endswith("%")  # the finished one has its evaluation
    assert accs.set_index("run").loc[cancelled_run[1], "at T_s"] == "–"  # the cancelled one has none: "–"
    assert "None" not in accs.to_string() and "nan" not in accs.to_string()
    assert "train.epochs" in list(table(at, "setting")["setting"])  # the settings that differ
    assert len(chart(at, "compare_windows")["data"]) == 1  # only the finished run was evaluated
    assert len(chart(at, "compare_loss")["data"]) >= 8  # four loss parts for each of two runs
    row = accs.set_index("run").loc[finished_run[1]]
    for column in ("teacher margin", "train − test"):  # in points
        assert row[column].endswith(" points") and -100 <= float(row[column].split()[0]) <= 100
    assert len(chart(at, "compare_confidence")["data"]) >= 2  # a line per timestep of each run with records
    assert len(chart(at, "compare_exit")["data"]) == 1  # only the finished run has an early-exit table
    at.multiselect(key="compare_runs").set_value([]).run()  # removing both chips leaves none chosen
    assert at.multiselect(key="compare_runs").value == [] and any("at least two" in i.value for i in at.info)


def test_inspect_page_runs_the_trained_network_on_a_test_image(finished_run, runs_dir):
    _, name = finished_run
    at = session("views/inspect.py")
    at.selectbox(key="inspect_run").set_value(name).run()
    assert not at.exception, [e.value for e in at.exception]
    raster = chart(at, "inspect_raster")
    assert raster["data"][0]["type"] == "scatter"
    layers = at.selectbox(key="inspect_layer").options
    at.selectbox(key="inspect_layer").set_value(layers[-1]).run()
    at.number_input(key="inspect_image").set_value(3).run()
    at.slider(key="inspect_T").set_value(8).run()
    assert not at.exception, [e.value for e in at.exception]
    heads = [a["text"] for a in chart(at, "inspect_image_fig")["layout"]["annotations"]]
    assert heads[0].startswith("#3: "), heads  # named by its place in the test split, not "#0" of a batch of one
    assert any(
        c.startswith("Each timestep alone is this sure") and "Early exit: at 0.5" in c for c in caption_texts(at)
    )
    # any folder, by its path, opens the same way
    at.radio(key="inspect_source").set_value("any folder").run()
    at.text_input(key="inspect_path").input(str(runs_dir / name)).run()
    assert not at.exception and chart(at, "inspect_traces")
    at.text_input(key="inspect_path").input(str(runs_dir / "no-such-run")).run()
    assert any("is not a run folder" in e.value for e in at.error)


def test_neuron_playground_draws_the_neuron_and_snntorch_beside_it():
    at = session("views/playground.py")
    one = chart(at, "pg_figure")
    at.slider(key="pg_amplitude").set_value(2.5).run()
    at.toggle(key="pg_compare").set_value(True).run()
    assert not at.exception
    three = chart(at, "pg_figure")
    names = {d.get("name") for d in three["data"]}
    assert any("snntorch" in (n or "") for n in names) and len(three["data"]) > len(one["data"])
    assert {m.label for m in at.metric} == {"Spikes", "Firing rate", "First spike at"}


def test_a_run_that_fails_shows_why(runs_dir, tmp_path):
    at = session()
    at.selectbox(key="cfg_start").set_value("quick").run()
    at.selectbox(key="cfg_dataset").select_index(3).run()  # folder
    at.text_input(key="cfg_root").input(str(tmp_path / "no-images-here")).run()
    at.button(key="train_button").click().run()
    name = at.session_state.run
    run = RunFolder(runs_dir / name)
    wait_for(lambda: run.status()["state"] not in ("queued", "running"), timeout=90, what="the run to fail")
    assert run.status()["state"] == "failed"
    at.run()
    errors = [e.value for e in at.error]
    assert any("not available" in e and "no-images-here" in e for e in errors), errors  # the CLI's one line
    assert any("no-images-here" in c.value for c in at.code)  # the end of its log, for the details


# The figures the dashboard adds (tssd_viz/figures/dashboard.py): pure functions, pinned here.
def test_busiest_neurons_and_the_probe_batch_guess():
    import numpy as np

    from tssd_viz.figures.dashboard import busiest_neurons, probe_batch_figure

    spikes = np.array([[0, 1, 1, 0], [0, 1, 0, 1], [1, 1, 0, 1]], dtype=np.uint8)  # (T=3, N=4)
    assert busiest_neurons(spikes, 3) == [1, 3, 0]  # 3 spikes, then 2 (ties: lower index first)
    logits = np.zeros((4, 2, 3))  # (T, P, K): the student (first 2 steps) says 2 then 0; the teacher would differ
    logits[:2, 0, 2] = 1.0
    logits[2:, 0, 1] = 5.0
    logits[:2, 1, 0] = 1.0
    fig = probe_batch_figure(np.zeros((2, 1, 4, 4), np.uint8), [2, 1], ["a", "b", "c"], logits, t_student=2)
    titles = [a.text for a in fig.layout.annotations]
    assert "#0: c" in titles[0] and "→ c" in titles[0]  # right: the T_s window guesses class 2
    assert "#1: b" in titles[1] and "→ a" in titles[1]  # wrong: the T_s window guesses class 0
    with pytest.raises(ValueError, match="t_student"):
        probe_batch_figure(np.zeros((2, 1, 4, 4), np.uint8), [0, 0], ["a", "b", "c"], logits, t_student=5)


def test_firing_rate_history_has_a_line_per_layer_and_run():
    from tssd_viz.figures.dashboard import firing_rate_history_figure

    recs = [{"kind": "step", "step": s, "firing_rate": {"stem": 0.1 * s, "head": 0.2}} for s in (1, 2, 3)]
    recs.append({"kind": "epoch", "step": 3, "firing_rate": {"stem": 9.0}})  # epoch means are not drawn
    fig = firing_rate_history_figure(recs)
    assert [d.name for d in fig.data] == ["stem", "head"]
    assert list(fig.data[0].y) == pytest.approx([0.1, 0.2, 0.3])
    both = firing_rate_history_figure({"tssd": recs, "baseline": recs[:2]})
    assert [d.name for d in both.data] == ["stem · tssd", "head · tssd", "stem · baseline", "head · baseline"]
    assert firing_rate_history_figure([]).layout.annotations[0].text == "no firing rates recorded yet"


def test_progress_of_a_short_run_names_its_training_time():
    """A Quick look trains for about three seconds: the finished line must not say "0 s of training"."""
    import sys

    sys.path.insert(0, str(APP.parent))
    from dashboard.reading import duration, progress

    assert [duration(s) for s in (0.04, 0.3, 3.26, 9.96, 59.4, 61, 3725)] == [
        "0.0 s",
        "0.3 s",
        "3.3 s",
        "10 s",
        "59 s",
        "1 min 01 s",
        "1 h 02 min",
    ]
    done = progress({"state": "done", "total_steps": 24}, [{"kind": "step", "step": 24, "wall_s": 0.31}], None)
    assert done.text == "done after 24 steps and 0.3 s of training" and done.fraction == 1.0


def test_classroom_mode_opens_run_folders_inside_the_runs_folder_only(finished_run, runs_dir, tmp_path, monkeypatch):
    _, name = finished_run
    outside = tmp_path / "outside"
    shutil.copytree(runs_dir / name, outside)
    monkeypatch.setenv("TSSD_SERVE", "classroom")  # what `make serve` sets
    at = session("views/inspect.py")
    at.radio(key="inspect_source").set_value("any folder").run()
    for path in (outside, runs_dir / ".." / ".." / outside.parent.name / "outside", "/etc"):
        at.text_input(key="inspect_path").input(str(path)).run()
        assert not at.exception, [e.value for e in at.exception]
        assert [e.value for e in at.error] == [
            f"{path} is outside the runs folder {runs_dir.resolve()}: this classroom server opens run folders "
            "there only."
        ]
        assert not at.get("plotly_chart")
    at.text_input(key="inspect_path").input(str(runs_dir / name)).run()
    assert not at.exception and not at.error and chart(at, "inspect_traces")
    monkeypatch.delenv("TSSD_SERVE")  # a dashboard on this machine only opens any folder
    at.text_input(key="inspect_path").input(str(outside)).run()
    assert not at.error and chart(at, "inspect_traces")


def test_a_probe_file_holding_an_object_array_is_one_line_on_the_page(finished_run, runs_dir, tmp_path):
    import numpy as np

    _, name = finished_run
    bad = tmp_path / "bad-probes"
    shutil.copytree(runs_dir / name, bad)
    for path in RunFolder(bad).probes():
        np.savez(path.with_suffix(""), images=np.array([{"payload": 1}], dtype=object))  # .npz added back
    at = session("views/inspect.py")
    at.radio(key="inspect_source").set_value("any folder").run()
    at.text_input(key="inspect_path").input(str(bad)).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [e.value for e in at.error] + [w.value for w in at.warning]
    assert shown and all("refused: it holds pickled data" in s and "\n" not in s for s in shown), shown


def test_a_finished_s2w_run_says_which_signals_it_records(finished_run, runs_dir, tmp_path):
    """s2w has no teacher window: its page says what it records instead of "no signals recorded yet"."""
    _, name = finished_run
    s2w = runs_dir / "as-s2w"
    shutil.copytree(runs_dir / name, s2w)
    cfg = json.loads((s2w / "config.json").read_text())
    cfg["distill"]["mode"] = "s2w"
    (s2w / "config.json").write_text(json.dumps(cfg))
    lines = [json.loads(line) for line in (s2w / "metrics.jsonl").read_text().splitlines()]
    kept = [{**r, "kl": None, "agreement": None} for r in lines]  # what an s2w run writes: neither
    (s2w / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = "as-s2w"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("strong/weak loss" in i.value and "no teacher window" in i.value for i in at.info)
    assert not any(c.proto.id.endswith("live_kl") for c in at.get("plotly_chart"))
    shutil.rmtree(s2w)


def test_inspect_shows_the_picked_runs_own_snapshots(finished_run, cancelled_run):
    """The snapshot slider belongs to the run: picking another run shows that run's latest snapshot."""
    root = Path(os.environ["TSSD_RUNS_DIR"])
    at = session("views/inspect.py")
    at.selectbox(key="inspect_run").set_value(finished_run[1]).run()
    at.number_input(key="inspect_image").set_value(1).run()
    at.select_slider(key=f"inspect_snapshot_{root / finished_run[1]}").set_value("epoch-0000").run()
    at.selectbox(key="inspect_run").set_value(cancelled_run[1]).run()
    assert not at.exception, [e.value for e in at.exception]
    latest = RunFolder(root / cancelled_run[1]).probes()[-1].stem
    assert at.select_slider(key=f"inspect_snapshot_{root / cancelled_run[1]}").value == latest
