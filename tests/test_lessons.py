"""The lessons' helpers (tssd_viz/lessons.py, lesson_measures.py): which data and recipe a lesson runs, where
its run folders live, training a run folder once, and the measurements lesson 2 prints, pinned against plain torch."""

import json
import os
from pathlib import Path

import pytest
import torch

import tssd_viz as tv
from tssd_viz import lessons
from tssd_viz import stats as tv_stats
from tssd_viz.runs.processes import process_start


@pytest.fixture(autouse=True)
def no_data_on_disk(tmp_path, monkeypatch):
    """No CIFAR-10 anywhere and no fast mode, unless a test says otherwise."""
    monkeypatch.setenv("TSSD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TSSD_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("TSSD_FAST", raising=False)
    monkeypatch.delenv("TSSD_CIFAR10_ROOT", raising=False)  # names a CIFAR-10 image tree too (data.sources)
    monkeypatch.delenv("TSSD_RUNS_DIR", raising=False)


def settings(cfg):
    d = cfg.distill
    return d.mode, d.t_student, d.t_teacher, cfg.train.seed


def test_fast_mode_runs_one_epoch_of_the_quick_recipe_on_the_digits(monkeypatch, capsys):
    monkeypatch.setenv("TSSD_FAST", "1")
    cfg = tv.lesson_config("tsd", t_student=1, t_teacher=3, seed=5)
    assert tv.fast_mode() and "Fast mode" in capsys.readouterr().out
    quick = tv.preset("quick").replace(**{"train.epochs": 1})
    assert settings(cfg) == ("tsd", 1, 3, 5)
    assert (cfg.data, cfg.model, cfg.train.epochs, cfg.train.lr) == (quick.data, quick.model, 1, quick.train.lr)


def test_cifar10_on_disk_gets_the_classroom_recipe_on_a_subset_never_downloaded(tmp_path, capsys):
    for split in ("train", "test"):
        (tmp_path / "data" / "cifar10" / split / "cat").mkdir(parents=True)  # an image-folder tree
    cfg = tv.lesson_config("ssd")
    assert "CIFAR-10 from disk" in capsys.readouterr().out
    assert (cfg.data.dataset, cfg.data.download, cfg.data.limit_train, cfg.data.limit_test) == (
        "cifar10",
        False,
        10_000,
        5_000,
    )
    assert cfg.model == tv.preset("classroom").model and settings(cfg) == ("ssd", 2, 4, 0)
    assert tv.lesson_config("ssd", fast=True).data.dataset == "digits"  # fast mode: whatever is on disk


def test_without_cifar10_the_digits_recipe_and_the_reason(tmp_path, capsys):
    cfg = tv.lesson_config("baseline")
    said = capsys.readouterr().out
    assert cfg.data == tv.preset("digits").data and cfg.train.epochs == tv.preset("digits").train.epochs
    assert said.startswith("Note: no CIFAR-10 on this machine.") and str(tmp_path / "data" / "cifar10") in said


def test_runs_dir_is_temporary_in_fast_mode_and_under_the_runs_folder_otherwise(tmp_path, monkeypatch):
    assert tv.lesson_runs_dir("lesson03") == Path("../runs/lesson03")
    monkeypatch.setenv("TSSD_RUNS_DIR", str(tmp_path / "runs"))
    assert tv.lesson_runs_dir("lesson03") == tmp_path / "runs" / "lesson03"
    monkeypatch.setenv("TSSD_FAST", "1")
    a, b = tv.lesson_runs_dir("lesson03"), tv.lesson_runs_dir("lesson03", temporary=True)
    assert a != b and a.is_dir() and not list(a.iterdir()) and a.name.startswith("tssd-lesson03-")
    assert not tv.lesson_runs_dir("lesson03", temporary=False).exists()  # named only, not made


def tiny(mode="tssd", **over):
    cfg = tv.preset("quick").replace(
        **{
            "distill.mode": mode,
            "data.limit_train": 64,
            "data.limit_test": 32,
            "train.epochs": 1,
            "model.width": 0.25,
            "train.device": "cpu",
            "train.probe_every": 0,
        }
    )
    return cfg.replace(**over)


def test_train_or_read_trains_once_then_reads(tmp_path, capsys):
    cfg = tiny()
    run = tv.train_or_read(cfg, tmp_path)
    assert capsys.readouterr().out.startswith(f"tssd: training in {run.path}")
    assert run.path.parent == tmp_path and run.name.startswith("tssd-") and run.status()["state"] == "done"
    assert run.config().to_dict() == cfg.to_dict() and set(run.final_eval()) == {1, 2, 3, 4}
    lines = run.metrics_path.read_text()
    again = tv.train_or_read(cfg, tmp_path)
    assert again.path == run.path and run.metrics_path.read_text() == lines  # read, not retrained
    assert "already trained" in capsys.readouterr().out
    other = tv.train_or_read(cfg.replace(**{"train.seed": 1}), tmp_path)  # changed settings: a folder of their own
    assert other.path != run.path and run.status()["state"] == "done"


def test_a_stopped_run_continues_from_its_checkpoint(tmp_path, capsys):
    cfg = tiny("baseline", **{"train.epochs": 2})
    folder = lessons._run_folder(cfg, tmp_path)
    tv.fit(cfg, run_dir=folder.path, should_stop=lambda: True)  # cancelled after its first step; last.pt kept
    assert folder.status()["state"] == "cancelled"
    run = tv.train_or_read(cfg, tmp_path)
    assert run.path == folder.path and "continuing the stopped run" in capsys.readouterr().out
    steps = [r["step"] for r in run.metrics("step")]
    assert run.status()["state"] == "done" and steps == sorted(set(steps)) and steps[-1] == 2 * (64 // 32)


def test_a_run_stopped_before_its_first_checkpoint_starts_over(tmp_path):
    cfg = tiny("baseline")
    folder = lessons._run_folder(cfg, tmp_path)
    folder.prepare(cfg)
    folder.append_metric({"kind": "step", "step": 1, "epoch": 1, "wall_s": 0.1})  # a line of the lost attempt
    folder.set_status("failed", "killed")
    run = tv.train_or_read(cfg, tmp_path)
    assert run.status()["state"] == "done" and [r["step"] for r in run.metrics("step")][0] == 2  # log_every 2


def test_a_run_in_training_elsewhere_is_refused(tmp_path):
    cfg = tiny("baseline")
    folder = lessons._run_folder(cfg, tmp_path)
    folder.prepare(cfg)
    # this process, with its start time: what a run in training records about itself (tssd_viz.runs.processes)
    alive = {"state": "running", "pid": os.getpid(), "proc_start": process_start(os.getpid())}
    folder.status_path.write_text(json.dumps(alive))
    with pytest.raises(RuntimeError, match="is being trained by process"):
        tv.train_or_read(cfg, tmp_path)


def net(arch, aux_stage, weak_head=True):
    cfg = tv.preset("quick").replace(**{"model.arch": arch, "model.aux_stage": aux_stage, "model.width": 0.25}).model
    torch.manual_seed(0)
    return tv.build_model(cfg, 3, 10, weak_head=weak_head).eval()


@pytest.mark.parametrize(
    "arch, aux_stage, tap",
    [("vgg_small", 2, "stages.1.blocks.0.lif"), ("vgg11", 3, "stages.2.blocks.1.lif"), ("vgg_fast", 1, "stem_lif")],
)  # vgg_fast's stage 1 is the stem
def test_weak_head_tap_is_the_layer_whose_spikes_the_weak_head_reads(arch, aux_stage, tap):
    model, x = net(arch, aux_stage), torch.randn(4, 3, 32, 32)
    assert tv.weak_head_tap(model) == tap
    with torch.no_grad(), tv.record(model, layers=[tap]) as rec:
        out = model(x, 2)
        by_hand = model.weak_head(rec.spikes[tap].float().mean(dim=(-2, -1)))  # (T, B, C) -> (T, B, K)
    torch.testing.assert_close(by_hand, out.weak_logits)


def test_split_windows_are_one_big_pass_cut_into_batches():
    model, x = net("vgg_small", 2), torch.randn(10, 3, 8, 8)
    loader = [(x[i : i + 4], None) for i in range(0, 10, 4)]  # batches of 4, 4 and 2
    got = tv.split_windows(model.train(), loader, 2, 4)
    with torch.no_grad():
        whole = tv.windows(model.eval()(x, 4), 2)
    for name in ("student", "teacher", "weak"):
        torch.testing.assert_close(getattr(got, name), getattr(whole, name))
    assert got.student.shape == (10, 10) and model.training is False
    short = tv.split_windows(net("vgg_small", 2, weak_head=False), loader, 2)
    assert short.teacher is None and short.weak is None and short.student.shape == (10, 10)


def test_split_windows_restores_train_mode():
    model = net("vgg_small", 2).train()
    tv.split_windows(model, [(torch.randn(2, 3, 8, 8), None)], 1)
    assert model.training


def test_accuracy_counts_rows_whose_largest_logit_is_the_label():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.5, 0.4]])
    assert tv.accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.5


def test_gradient_norms_by_part_add_up_to_the_whole_network():
    model, x = net("vgg_fast", 2).train(), torch.randn(8, 3, 16, 16)  # train mode: batch statistics, busy neurons
    model(x, 2).weak_logits.square().mean().backward()  # a loss of the weak head alone
    norms = tv.gradient_norms(model)
    assert "stage 1" not in norms  # vgg_fast's stage 1 is the stem alone: no parameters of its own
    assert list(norms) == ["stem", "stage 2", "stage 3", "stage 4", "final classifier", "weak head"]
    assert norms["stage 3"] == norms["stage 4"] == norms["final classifier"] == 0.0  # after the tap: nothing
    assert min(norms["stem"], norms["stage 2"], norms["weak head"]) > 0
    total = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).norm()
    assert sum(n**2 for n in norms.values()) == pytest.approx(total.item() ** 2, rel=1e-5)


def summary_row(mode, t_student, accs, margin=None, gap=None):
    """A row of a sweep summary's main table, as summary.json holds it: [mean, std] over the seeds' values."""
    mean = sum(accs) / len(accs)
    std = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5 if len(accs) > 1 else None
    return {
        "mode": mode,
        "t_student": t_student,
        "n": len(accs),
        "acc": [mean, std],
        "acc_by_seed": {str(seed): a for seed, a in enumerate(accs)},  # JSON's keys are strings
        "teacher_margin": margin,
        "gap": gap,
    }


def test_race_rows_flatten_the_summary_and_measure_each_row_against_its_own_baseline():
    summary = {
        "main": {
            "epochs": [
                {**summary_row("baseline", 2, [0.60, 0.62, 0.64], gap=[0.01, 0.002]), "epoch_s": 30.5},  # std 0.02
                summary_row("s2w", 2, [0.57, 0.58, 0.59], margin=[0.05, 0.01], gap=[-0.01, 0.003]),  # std 0.01
                summary_row("w2s", 4, [0.7]),  # no baseline at T_s = 4 in this table
            ],
            "time": [summary_row("baseline", 2, [0.5]), summary_row("s2w", 2, [0.55])],
        }
    }
    rows = tv.race_rows(summary)
    assert [(r["budget"], r["mode"], r["t_student"]) for r in rows] == [
        ("epochs", "baseline", 2),
        ("epochs", "s2w", 2),
        ("epochs", "w2s", 4),
        ("time", "baseline", 2),
        ("time", "s2w", 2),
    ]
    base, s2w, w2s, _, timed = rows
    assert base["vs_baseline"] is None and base["noise"] is None and base["teacher_margin"] is None
    assert (base["gap"], base["acc"], base["acc_std"], base["seeds"]) == pytest.approx((0.01, 0.62, 0.02, 3))
    assert base["epoch_s"] == 30.5 and s2w["epoch_s"] is None
    assert s2w["vs_baseline"] == pytest.approx(-0.04) and s2w["teacher_margin"] == 0.05 and s2w["gap"] == -0.01
    # paired by seed: differences -0.03, -0.04, -0.05 -> sd 0.01, 2 SE = 0.02 / sqrt(3)
    assert s2w["noise"] == pytest.approx(0.02 / 3**0.5)
    assert w2s["vs_baseline"] is None and w2s["acc_std"] is None
    assert timed["vs_baseline"] == pytest.approx(0.05) and timed["noise"] is None  # one seed: no spread
    assert tv.race_rows({}) == [] and tv.race_rows({"main": {"epochs": []}}) == []


def test_runs_summary_puts_a_lessons_own_runs_in_the_shape_race_rows_reads(tmp_path):
    runs = {mode: tv.train_or_read(tiny(mode), tmp_path) for mode in ("baseline", "s2w")}
    summary = tv.runs_summary(runs)
    assert summary["main"]["time"] == [] and [r["mode"] for r in summary["main"]["epochs"]] == ["baseline", "s2w"]
    base, s2w = tv.race_rows(summary)
    for row, run in ((base, runs["baseline"]), (s2w, runs["s2w"])):
        test, train = run.final_eval()[2], run.final_eval("train")[2]
        assert (row["budget"], row["t_student"], row["seeds"], row["acc_std"]) == ("epochs", 2, 1, None)
        assert row["acc"] == test and row["gap"] == pytest.approx(train - test)
        assert row["epoch_s"] == run.metrics("epoch")[-1]["wall_s"]  # one epoch
    assert base["teacher_margin"] is None  # the baseline has no teacher
    assert s2w["teacher_margin"] == runs["s2w"].metrics("analysis")[-1]["teacher_margin"] is not None
    assert s2w["vs_baseline"] == pytest.approx(s2w["acc"] - base["acc"]) and s2w["noise"] is None


# -- lesson 5's recipe, fast mode with CIFAR-10 on disk, timing ------------------------------------------------


def test_lesson_5_fast_mode_takes_fewer_larger_steps_over_every_recording(capsys):
    fast, full = tv.events_config(fast=True), tv.events_config(fast=False)
    assert "Fast mode" in capsys.readouterr().out
    events = tv.preset("events")
    assert (fast.train.epochs, fast.train.lr) == (2, 0.2) and fast.data == events.data and fast.model == events.model
    assert (fast.train.eval_every, fast.train.probe_every) == (0, 0)  # the lesson reads the final evaluation only
    assert full == tv.validate(events)


def test_fast_mode_with_cifar10_on_disk_says_it_found_it_and_uses_the_digits(tmp_path, monkeypatch, capsys):
    for split in ("train", "test"):
        (tmp_path / "data" / "cifar10" / split / "cat").mkdir(parents=True)
    monkeypatch.setenv("TSSD_FAST", "1")
    assert tv.lesson_config("tsd").data.dataset == "digits"
    said = capsys.readouterr().out
    assert "CIFAR-10 is on this machine, but fast mode uses the digits for speed" in said


def test_step_milliseconds_times_every_config_the_same_number_of_warm_steps():
    cfgs = {mode: tiny(mode) for mode in ("baseline", "tsd")}
    ds = tv.load_dataset(cfgs["baseline"].data)
    ms = tv.step_milliseconds(cfgs, ds, rounds=3, warmup=1)
    assert list(ms) == ["baseline", "tsd"] and all(s.n == 3 and s.mean > 0 and s.sd is not None for s in ms.values())


def test_race_rows_carry_the_paired_verdict_against_their_baseline():
    summary = {"main": {"epochs": [summary_row("baseline", 2, [0.60, 0.62]), summary_row("s2w", 2, [0.57, 0.58])]}}
    base, s2w = tv.race_rows(summary)
    assert base["verdict"] is None
    assert s2w["verdict"] == tv_stats.paired({0: 0.57, 1: 0.58}, {0: 0.60, 1: 0.62}).verdict()
    assert "fewer than 5 seeds, not a claim" in s2w["verdict"]


# -- the sentences a lesson prints (tssd_viz/lesson_results.py) ------------------------------------------------


def test_one_seed_is_said_to_be_one_seed_and_set_beside_the_spread_of_seeds():
    seeds = tv_stats.paired({0: 0.95, 1: 0.96, 2: 0.93}, {0: 0.94, 1: 0.94, 2: 0.94})  # +1, +2, -1 points
    said = tv.one_seed("tsd − baseline", 0.95, 0.94, 0, seeds, "a table")
    assert said.startswith("tsd − baseline: +1.0 points on one seed (seed 0): no spread to judge it by, not a claim.")
    assert "over 3 seeds of a table the same difference was +0.7 (±1.8) points" in said
    assert "varying by ± 1.5 (sd)" in said  # sd of 1, 2, -1 points
    alone = tv.one_seed("t = 1", 0.9, 0.92, 3, None, "no table keeps it")
    assert "-2.0 points on one seed (seed 3)" in alone and "(No committed table of seeds to set it beside" in alone


def test_window_sentence_reads_the_peak_and_the_longest_window_off_the_numbers():
    said = tv.window_sentence("baseline", {1: 0.90, 2: 0.92, 3: 0.875, 4: 0.797}, 2)
    assert said == (
        "baseline: n = 1..4: 90.0, 92.0, 87.5, 79.7 %; it peaks at n = 2 (its T_s), and the longest window "
        "loses 12.3 points against n = T_s = 2"
    )
    later = tv.window_sentence("x", {1: 0.5, 2: 0.6, 3: 0.8, 4: 0.7}, 2)
    assert "peaks at n = 3, and the longest window gains 10.0" in later
    assert tv.window_sentence("x", {1: 0.5, 2: 0.6, 3: 0.6}, 2).endswith("the longest window is level with n = T_s = 2")


def test_check_learned_fails_a_fast_lesson_whose_network_did_not_learn():
    assert tv.check_learned({"a": 0.9, "b": 0.86}, fast=True).endswith("b, 86.0% (fast mode checks ≥ 85%)")
    with pytest.raises(AssertionError, match="below it: {'b': 0.1}"):
        tv.check_learned({"a": 0.9, "b": 0.1}, fast=True)
    assert "b, 10.0%" in tv.check_learned({"a": 0.9, "b": 0.1}, fast=False)  # full mode on CIFAR-10: no floor


def control_row(regime, arm, accs):
    return {"regime": regime, "arm": arm, "n": len(accs), "acc_by_seed": dict(enumerate(accs))}


def test_controls_lines_pair_an_arm_with_the_baseline_its_twin_and_equal_time():
    rows = [
        control_row("ref", "baseline", [0.90, 0.91, 0.92, 0.93, 0.94]),
        control_row("ref", "tsd", [0.92, 0.92, 0.93, 0.95, 0.95]),
        control_row("ref", "tsd·noKL", [0.92, 0.91, 0.93, 0.94, 0.95]),
        control_row("ref", "baseline·equal-time", [0.93, 0.92, 0.93, 0.95, 0.96]),
        control_row("ts1", "baseline", [0.8]),  # a regime without the arm says nothing
    ]
    code = f"tssd-viz {tv.__version__} (commit 0123456789ab)"
    summary = {"rows": rows, "scale": {"dataset": "event_digits", "code": [code]}, "totals": {"runs": 21}}
    lines = tv.controls_lines(summary, "tsd")
    assert lines[0] == f"results/controls-event-digits: event_digits, 21 finished runs ({code})"
    assert lines[1] == "reference: tsd 93.4 ± 1.5 % over 5 seeds"
    acc = {r["arm"]: r["acc_by_seed"] for r in rows[:4]}
    assert lines[2] == "  tsd − baseline: " + tv_stats.paired(acc["tsd"], acc["baseline"]).verdict()
    assert lines[3].startswith("  tsd − tsd·noKL (the KL term alone): +0.4 points")
    assert lines[4].startswith("  tsd − baseline·equal-time (the same training seconds): -0.4 points")
    assert len(lines) == 5
    assert tv.committed_paired(summary, "tsd", "tsd·noKL").diffs == pytest.approx((0.0, 0.01, 0.0, 0.01, 0.0))
    assert tv.committed_paired(None, "tsd", "baseline") is None
    assert tv.committed_conclusion(summary).startswith("In none of the 2 regimes does a KL term pay")


def test_events_lines_and_pairs_compare_each_mode_with_its_windowings_baseline():
    def row(windowing, mode, accs, curve):
        return {
            "windowing": windowing,
            "mode": mode,
            "t_student": 2,
            "n": len(accs),
            "acc_by_seed": dict(enumerate(accs)),
            "acc_by_window": {n: (a, None) for n, a in curve.items()},
        }

    rows = [
        row("fixed_window", "baseline", [0.90, 0.92], {1: 0.8, 2: 0.91}),
        row("fixed_window", "tsd", [0.93, 0.94], {1: 0.85, 2: 0.935}),
    ]
    summary = {"rows": rows, "scale": {"dataset": "event_digits", "t_student": 2}, "totals": {"runs": 4}}
    lines = tv.events_lines(summary)
    assert lines[0].startswith("results/event-digits: event_digits, 4 finished runs")
    assert lines[1].startswith("fixed_window     baseline  91.0 ± 1.4 % at T_s over 2 seeds · mean window curve")
    assert lines[3].strip() == "tsd − baseline: " + tv.events_paired(summary, "fixed_window").verdict()
    assert tv.events_paired(summary, "whole_recording") is None and len(lines) == 4


def test_a_committed_table_made_by_other_code_says_so():
    older = {"scale": {"dataset": "event_digits", "code": ["tssd-viz 0.1.0 (commit 0123456789ab)"]}, "totals": {}}
    said = tv.source_line(older, "event-digits")
    assert said.endswith(
        f"; all its runs were made by another version than this tssd-viz {tv.__version__}, and measure that version)"
    )
    mixed = {**older, "scale": {"code": [*older["scale"]["code"], f"tssd-viz {tv.__version__} (commit 0123456789ab)"]}}
    assert "; some of its runs were made by another version than this tssd-viz" in tv.source_line(mixed, "event-digits")
    assert tv.source_line(None, "event-digits") == "results/event-digits: not on this machine"


def test_race_paired_pairs_a_mode_with_the_baseline_of_its_budget_and_t_student():
    race = {"main": {"epochs": [summary_row("baseline", 2, [0.6, 0.62]), summary_row("ssd", 2, [0.58, 0.59])]}}
    assert tv.race_paired(race, "ssd").diffs == pytest.approx((-0.02, -0.03))
    assert tv.race_paired(race, "ssd", budget="time") is None and tv.race_paired(None, "ssd") is None


def test_the_committed_results_are_found_next_to_the_package_and_nowhere_else(tmp_path):
    assert tv.results_dir("no-such-sweep") is None and tv.committed_controls(tmp_path) is None
    assert tv.committed_race(tmp_path) is None and tv.committed_events(tmp_path) is None
    (tmp_path / "x" / "runs" / "a-run").mkdir(parents=True)
    assert tv.results_dir("x", tmp_path) == tmp_path / "x"
    project = Path(tv.__file__).resolve().parents[1] / "results"
    for name in ("controls-event-digits", "cifar10-race", "event-digits"):  # committed with the project
        assert tv.results_dir(name) == project / name


def test_the_committed_tables_read_from_their_run_folders():
    controls, race, events = tv.committed_controls(), tv.committed_race(), tv.committed_events()
    assert {r["arm"] for r in controls["rows"]} >= {"baseline", "tsd", "tsd·noKL", "baseline·equal-time"}
    assert {r["mode"] for r in race["main"]["epochs"]} >= {"baseline", "tsd", "ssd", "tssd", "s2w", "w2s"}
    cells = {(r["windowing"], r["mode"]) for r in events["rows"]}
    assert cells >= {("fixed_window", "tsd"), ("whole_recording", "tsd")}
    assert tv.race_paired(race, "ssd").n >= 3 and tv.events_paired(events, "fixed_window").n >= 3


def test_a_lessons_one_seed_lines_stand_beside_the_controls_measured_on_its_data(tmp_path):
    on_cifar, where = tv.controls_for("cifar10")
    assert "CIFAR-10" in where and {r["regime"] for r in on_cifar["rows"]} == {"ref"}
    assert tv.committed_paired(on_cifar, "tsd", "tsd·noKL").n == 3  # the race's controls: 3 seeds
    elsewhere, where = tv.controls_for("digits")
    assert "event_digits" in where and elsewhere == tv.committed_controls()
    assert tv.committed_paired(elsewhere, "tsd", "tsd·noKL").n == 5
    assert tv.controls_for("cifar10", tmp_path)[0] is None and tv.controls_for("digits", tmp_path)[0] is None
