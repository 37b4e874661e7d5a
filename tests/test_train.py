"""fit(): events, run folder contract, checkpoints, resume, time budget, determinism, cancel."""

import errno
import itertools
import json
import math
import os

import numpy as np
import pytest
import torch

from tssd_viz import History, RunFolder, TSSDConfig, fit, load_checkpoint, preset
from tssd_viz.atomic import StorageError
from tssd_viz.config import ConfigError
from tssd_viz.data import DataUnavailable
from tssd_viz.runs.checkpoints import CheckpointError, save_checkpoint
from tssd_viz.training.step import lr_factor

STEP_KEYS = {
    "kind",
    "step",
    "epoch",
    "wall_s",
    "loss",
    "loss_task",
    "loss_tsd",
    "loss_ssd",
    "acc_student",
    "acc_teacher",
    "acc_weak",
    "agreement",
    "acc_by_window",
    "firing_rate",
}


def tiny(mode="tssd", **over):
    cfg = preset("digits").replace(
        **{
            "distill.mode": mode,
            "data.limit_train": 256,
            "data.limit_test": 128,
            "data.batch_size": 64,
            "train.epochs": 2,
            "train.log_every": 1,
            "train.probe_images": 4,
            "model.width": 0.25,
            "train.device": "cpu",
        }
    )
    return cfg.replace(**over) if over else cfg


def test_run_folder_contract(tmp_path):
    hist = History()
    result = fit(tiny(), [hist], run_dir=tmp_path / "run")
    run = RunFolder(tmp_path / "run")
    assert run.config() == tiny()
    assert run.status()["state"] == "done"
    env = json.loads(run.env_path.read_text())
    assert env["device"] == "cpu" and env["seed"] == 0 and "torch" in env["versions"]
    steps = run.metrics("step")
    assert len(steps) == 2 * 4  # 256 / 64 = 4 steps per epoch, logged every step
    for rec in steps:
        assert STEP_KEYS <= set(rec)
        assert all(rec[k] is not None for k in ("loss_tsd", "loss_ssd", "acc_teacher", "acc_weak"))
        assert len(rec["acc_by_window"]) == 4  # T_t windows
        assert set(rec["firing_rate"]) == set(hist.steps[0]["firing_rate"])
        assert all(0 <= r <= 1 for r in rec["firing_rate"].values())
        assert math.isclose(rec["loss"], rec["loss_task"] + rec["loss_tsd"] + rec["loss_ssd"], rel_tol=1e-5)
    epochs = run.metrics("epoch")
    assert [e["epoch"] for e in epochs] == [1, 2] and "test_acc" in epochs[-1]
    evals = run.metrics("eval")
    assert [(e["split"], e["t"]) for e in evals] == [("train", 2), ("test", 1), ("test", 2), ("test", 3), ("test", 4)]
    assert evals[0]["images"] == 256 and 0 <= evals[0]["acc"] <= 1  # the train-test gap's train side
    (final,) = run.metrics("analysis")  # SPEC §10: per-timestep accuracy, margins, early exit
    assert len(final["acc_by_timestep"]) == 4 and final["acc_by_timestep"][0] == evals[1]["acc"]
    assert final["teacher_margin"] == pytest.approx(evals[4]["acc"] - evals[2]["acc"])
    assert [p["threshold"] for p in final["early_exit"]] == [0.5, 0.8, 0.9, 0.95]
    assert all(1 <= p["mean_timesteps"] <= 2 for p in final["early_exit"])
    assert run.final_eval() == result.test_acc
    assert (run.checkpoints_dir / "last.pt").exists() and (run.checkpoints_dir / "best.pt").exists()
    assert [p.name for p in run.probes()] == ["epoch-0000.npz", "epoch-0001.npz", "epoch-0002.npz"]
    probe = run.load_probe()
    assert probe["logits"].shape == (4, 4, 10) and probe["weak_logits"].shape == (4, 4, 10)
    assert probe["images"].shape == (4, 1, 8, 8) and probe["images"].dtype == np.uint8
    assert probe["spikes:stem_lif"].shape[:2] == (4, 4)
    # the history observer saw the same records the folder holds
    assert hist.steps == steps and hist.final_eval() == result.test_acc


@pytest.mark.parametrize("mode", ["baseline", "tsd", "ssd"])
def test_modes_record_only_their_terms(tmp_path, mode):
    hist = History()
    fit(tiny(mode, **{"train.epochs": 1}), [hist])
    rec = hist.steps[-1]
    assert (rec["loss_tsd"] is not None) == (mode == "tsd")
    assert (rec["loss_ssd"] is not None) == (mode == "ssd")
    assert (rec["acc_weak"] is not None) == (mode == "ssd")
    assert len(rec["acc_by_window"]) == (4 if mode == "tsd" else 2)
    # every run ends evaluated at n = 1..T_t (after its analysis record and train accuracy)
    assert [e["t"] for e in hist.evals if e.get("split") == "test" and e["kind"] == "eval"] == [1, 2, 3, 4]


def test_same_seed_same_metrics(tmp_path):
    def strip(records):
        return [{k: v for k, v in r.items() if k not in ("wall_s", "epoch_s")} for r in records]

    a, b = History(), History()
    fit(tiny(**{"train.epochs": 1}), [a])
    fit(tiny(**{"train.epochs": 1}), [b])
    assert strip(a.records) == strip(b.records)


def test_learns_digits(tmp_path):
    cfg = preset("digits").replace(**{"train.epochs": 4, "model.width": 0.5, "train.device": "cpu"})
    result = fit(cfg)
    assert result.test_acc[2] > 0.8  # chance is 0.1


def test_time_budget_stops_and_still_evaluates(tmp_path):
    cfg = tiny(**{"train.epochs": 50, "train.time_budget_s": 0.5})
    hist = History()
    result = fit(cfg, [hist], run_dir=tmp_path / "r")
    assert result.stopped == "time_budget" and result.steps < 50 * 4
    assert sorted(result.test_acc) == [1, 2, 3, 4]
    assert hist.epochs[-1]["complete"] is False
    assert RunFolder(tmp_path / "r").status()["message"].startswith("time budget reached")


def test_cancel_keeps_the_checkpoint_and_resume_finishes_identically(tmp_path):
    cfg = tiny(**{"train.epochs": 2})
    full = History()
    fit(cfg, [full])

    calls = {"n": 0}

    def stop_after_5():
        calls["n"] += 1
        return calls["n"] >= 5

    first = fit(cfg, run_dir=tmp_path / "r", should_stop=stop_after_5)
    run = RunFolder(tmp_path / "r")
    assert first.stopped == "cancelled" and run.status()["state"] == "cancelled"
    assert load_checkpoint(run.checkpoints_dir / "last.pt")["step"] == 5
    with pytest.raises(ConfigError, match="--resume"):
        fit(cfg, run_dir=tmp_path / "r")  # a folder with results is never overwritten
    resumed = fit(cfg, run_dir=tmp_path / "r", resume=True)
    assert resumed.stopped == "done" and run.status()["state"] == "done"
    steps = [r["step"] for r in run.metrics("step")]
    assert steps == list(range(1, 9))  # no step lost, none repeated
    ref = {r["step"]: r["loss"] for r in full.steps}
    for r in run.metrics("step"):
        assert r["loss"] == pytest.approx(ref[r["step"]], rel=1e-4, abs=1e-5)
    assert resumed.test_acc == pytest.approx(full.final_eval(), abs=1e-6)


def test_a_different_run_in_the_folder_is_refused(tmp_path):
    fit(tiny(**{"train.epochs": 1}), run_dir=tmp_path / "r")
    before = (tmp_path / "r" / "metrics.jsonl").read_bytes()
    with pytest.raises(ConfigError, match="different run"):
        fit(tiny(**{"train.epochs": 1, "distill.alpha": 0.5}), run_dir=tmp_path / "r")
    assert (tmp_path / "r" / "metrics.jsonl").read_bytes() == before


def test_corrupt_and_foreign_checkpoints_are_refused_clearly(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable tssd-viz checkpoint"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="expected kind"):
        load_checkpoint(foreign)
    truncated = tmp_path / "trunc.pt"
    save_checkpoint(truncated, {"format": "tssd-viz/checkpoint/1", "w": torch.zeros(1000)})
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(CheckpointError):
        load_checkpoint(truncated)


def test_killed_run_is_reported_as_failed(tmp_path):
    run = RunFolder(tmp_path / "r")
    run.prepare(TSSDConfig())
    run.set_status("running", "training", host=__import__("platform").node())
    status = json.loads(run.status_path.read_text())
    status["pid"] = 2**22 + 12345  # no such process
    run.status_path.write_text(json.dumps(status))
    st = run.status()
    assert st["state"] == "failed" and "--resume" in st["message"]


@pytest.mark.parametrize("tsd_pass", ["separate", "continue"])
def test_other_teacher_passes_train(tsd_pass):
    over = {"distill.tsd_pass": tsd_pass, "train.epochs": 1}
    if tsd_pass == "continue":
        over["distill.teacher_ce"] = False
    hist = History()
    fit(tiny(**over), [hist])
    assert all(r["loss_tsd"] is not None and np.isfinite(r["loss"]) for r in hist.steps)


def test_lr_schedule_shapes():
    assert lr_factor(0.0, "onecycle", 0.2) == 0.0
    assert lr_factor(0.1, "onecycle", 0.2) == pytest.approx(0.5)
    assert lr_factor(0.2, "onecycle", 0.2) == pytest.approx(1.0)
    assert lr_factor(0.6, "onecycle", 0.2) == pytest.approx(0.5)
    assert lr_factor(1.0, "onecycle", 0.2) == 0.0
    assert lr_factor(0.5, "cosine", 0.0) == pytest.approx(0.5)
    assert lr_factor(0.7, "constant", 0.1) == 1.0


def test_bf16_on_cpu_is_refused():
    with pytest.raises(ConfigError, match="train.bf16"):
        fit(tiny(**{"train.bf16": True}))


def test_epoch_records_carry_the_epoch_means_of_the_step_signals():
    hist = History()
    fit(tiny(**{"train.epochs": 2}), [hist])  # logged every step: the epoch mean is checkable
    for e in hist.epochs:
        steps = [r for r in hist.steps if r["epoch"] == e["epoch"]]
        assert STEP_KEYS <= set(e)
        assert e["acc_by_window"] == pytest.approx(np.mean([r["acc_by_window"] for r in steps], axis=0).tolist())
        assert set(e["firing_rate"]) == set(steps[0]["firing_rate"])
        for layer, rate in e["firing_rate"].items():
            assert rate == pytest.approx(np.mean([r["firing_rate"][layer] for r in steps]))
        assert e["loss"] == pytest.approx(np.mean([r["loss"] for r in steps]))


def test_epoch_time_is_the_epochs_share_of_the_training_clock():
    hist = History()
    fit(tiny(**{"train.epochs": 3, "train.log_every": 2}), [hist])
    walls = [0.0] + [e["wall_s"] for e in hist.epochs]
    for e, before, after in zip(hist.epochs, walls, walls[1:]):
        assert e["epoch_s"] == pytest.approx(after - before, abs=2e-3) and e["epoch_s"] > 0
    # an epoch whose steps are not all logged still has every signal
    assert all("firing_rate" in e and len(e["acc_by_window"]) == 4 for e in hist.epochs)


def test_recompute_bn_stats_is_the_exact_average_over_the_batches():
    from torch import nn

    from tssd_viz.training.evaluation import recompute_bn_stats

    class Net(nn.Module):  # the model's call signature: (x, T)
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(3)
            self.w = nn.Linear(3, 3)

        def forward(self, x, T):
            return self.w(self.bn(x))

    net = Net().eval()
    net.bn.running_mean.fill_(7.0)  # stale statistics, as after a few fast steps
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "tracked" not in k}
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(5, 3, generator=gen) * (i + 1) + i, None) for i in range(4)]
    assert recompute_bn_stats(net, batches, T=1) == 4
    xs = [x for x, _ in batches]
    torch.testing.assert_close(net.bn.running_mean, torch.stack([x.mean(0) for x in xs]).mean(0))
    torch.testing.assert_close(net.bn.running_var, torch.stack([x.var(0, unbiased=True) for x in xs]).mean(0))
    assert not net.training and net.bn.momentum == 0.1  # mode and momentum restored
    for k, v in weights.items():
        torch.testing.assert_close(net.state_dict()[k], v)


def test_bn_stats_switch_keeps_running_averages():
    a, b = History(), History()
    fit(tiny(**{"train.epochs": 1, "train.bn_stats": "running"}), [a])
    fit(tiny(**{"train.epochs": 1}), [b])
    assert [r["loss"] for r in a.steps] == [r["loss"] for r in b.steps]  # training is the same
    assert a.final_eval() != b.final_eval()  # only the statistics used for evaluation differ


@pytest.mark.parametrize("bn_stats", ["recompute", "running"])
def test_eleven_steps_evaluate_like_the_training_batches_say(bn_stats):
    """The short run of the CLI example (one epoch of 128-image batches, 11 steps): with statistics
    recomputed for the current weights, test accuracy sits within 10 points of the last training
    batch; PyTorch's running averages still describe the first weights and give chance."""
    cfg = preset("digits").replace(
        **{
            "train.epochs": 1,
            "data.batch_size": 128,
            "train.log_every": 1,
            "train.probe_every": 0,
            "train.bn_stats": bn_stats,
        }
    )
    hist = History()
    result = fit(cfg, [hist])
    test, last_batch = result.test_acc[cfg.distill.t_student], hist.steps[-1]["acc_student"]
    assert len(hist.steps) == 11 and last_batch > 0.5
    if bn_stats == "recompute":
        assert abs(test - last_batch) < 0.10
    else:
        assert test < last_batch - 0.3


def test_a_run_folder_from_before_the_bn_switch_reads_as_running_averages(tmp_path):
    run = RunFolder(tmp_path / "old")
    run.prepare(tiny())
    saved = json.loads(run.config_path.read_text())
    for k in ("bn_stats", "bn_batches", "bn_window", "bn_augment"):
        del saved["train"][k]
    run.config_path.write_text(json.dumps(saved))
    assert run.config().train.bn_stats == "running"  # what that code did, not today's default
    assert tiny().train.bn_stats == "recompute"
    # a folder from before train.bn_augment recomputed its statistics on unaugmented images
    saved["train"]["bn_stats"] = "recompute"
    run.config_path.write_text(json.dumps(saved))
    assert run.config().train.bn_stats == "recompute" and run.config().train.bn_augment is False
    assert tiny().train.bn_augment is True


@pytest.mark.parametrize("augment,bn_augment", [(False, True), (True, True), (True, False)])
def test_a_cancelled_runs_checkpoint_holds_statistics_of_its_weights(tmp_path, augment, bn_augment):
    """The statistics are the exact average over bn_batches training batches, augmented as in training
    when both data.augment and train.bn_augment are on (SPEC §9)."""
    over = {"data.augment": augment, "train.bn_augment": bn_augment}
    calls = {"n": 0}

    def stop_after_3():
        calls["n"] += 1
        return calls["n"] >= 3

    fit(tiny(**over), run_dir=tmp_path / "r", should_stop=stop_after_3)
    ck = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")
    from tssd_viz import build_model, load_dataset
    from tssd_viz.data import Loader
    from tssd_viz.training.evaluation import recompute_bn_stats

    cfg = tiny(**over)
    ds = load_dataset(cfg.data)

    def stats(augmented: bool) -> dict:
        model = build_model(cfg.model, 1, 10, weak_head=True)
        model.load_state_dict(ck["model"])
        loader = Loader(ds.train, ds, cfg.data.batch_size, train=True, augment=augmented, seed=cfg.train.seed + 1)
        loader.set_epoch(3)
        recompute_bn_stats(model, itertools.islice(loader, cfg.train.bn_batches), cfg.train_timesteps)
        return {k: v for k, v in model.state_dict().items() if "running" in k}

    for k, v in stats(augment and bn_augment).items():
        torch.testing.assert_close(v, ck["model"][k])
    if augment and bn_augment:  # augmented batches give other statistics than plain ones
        plain = stats(False)
        assert any(not torch.allclose(v, ck["model"][k]) for k, v in plain.items())


@pytest.mark.parametrize(
    "over,error,needle",
    [
        ({"data.batch_size": 100_000}, ConfigError, "data.batch_size: must be <= 65536"),
        (
            {"data.batch_size": 2000, "data.limit_train": 0},
            ConfigError,
            r"data.batch_size: 2000 is larger than the training set \(1437 images\)",
        ),
        (
            {"data.limit_train": 1},
            ConfigError,
            r"data.limit_train: 1 training images are fewer than one batch \(data.batch_size 64\)",
        ),
        ({"data.dataset": "folder", "data.root": "/nonexistent/tssd-tree"}, DataUnavailable, "does not exist"),
    ],
)
def test_a_run_refused_at_the_start_writes_no_run_folder(tmp_path, over, error, needle):
    """Issue 11: these were refused only after the run folder held config.json and a failed status."""
    with pytest.raises(error, match=needle):
        fit(tiny(**over), run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def poison_loss_part(monkeypatch, part: str, at_call: int, value: float = float("nan")) -> None:
    """Make `part` of the loss `value` from the `at_call`-th training step on (as a diverging run would)."""
    import dataclasses

    import tssd_viz.training.step as train_module

    real, calls = train_module.tssd_loss, {"n": 0}

    def poisoned(*args, **kwargs):
        parts = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] < at_call:
            return parts
        bad = getattr(parts, part) + value
        return dataclasses.replace(parts, **{part: bad, "loss": parts.loss + bad})

    monkeypatch.setattr(train_module, "tssd_loss", poisoned)


def test_a_loss_that_becomes_nan_stops_the_run_as_failed_naming_the_step_and_part(tmp_path, monkeypatch):
    """Issue 11: --distill.alpha nan trained to the end with NaN losses and status done."""
    from tssd_viz.training.step import TrainingDiverged

    poison_loss_part(monkeypatch, "loss_tsd", at_call=6)  # 4 steps per epoch: in epoch 2
    with pytest.raises(TrainingDiverged, match="the loss_tsd became nan at step 6"):
        fit(tiny(), run_dir=tmp_path / "r")
    run = RunFolder(tmp_path / "r")
    st = run.status()
    assert st["state"] == "failed" and "the loss_tsd became nan at step 6" in st["message"]
    assert load_checkpoint(run.checkpoints_dir / "last.pt")["step"] == 4  # the epoch-1 checkpoint is kept
    steps = run.metrics("step")
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5]  # the NaN step is not recorded
    assert all(math.isfinite(r["loss"]) for r in steps)


def test_an_infinite_weak_head_loss_is_named_too(monkeypatch):
    from tssd_viz.training.step import TrainingDiverged

    poison_loss_part(monkeypatch, "loss_ssd", at_call=1, value=float("inf"))
    with pytest.raises(TrainingDiverged, match="the loss_ssd became inf at step 1"):
        fit(tiny(**{"train.epochs": 1}))


# -- resume: one record per step and per epoch, as in an uncut run
def stop_at(step: int):
    """A should_stop that asks to stop at training step `step` (it is asked once a step)."""
    calls = iter(range(1, 10**9))
    return lambda: next(calls) >= step


def same_records(got: list[dict], want: list[dict]) -> None:
    """Record for record, ignoring the clock (wall_s, epoch_s)."""
    assert [(r["kind"], r["step"], r["epoch"]) for r in got] == [(r["kind"], r["step"], r["epoch"]) for r in want]
    for g, w in zip(got, want, strict=True):
        g = {k: v for k, v in g.items() if k not in ("wall_s", "epoch_s")}
        w = {k: v for k, v in w.items() if k not in ("wall_s", "epoch_s")}
        assert g.keys() == w.keys()
        for k in g:
            assert_close(g[k], w[k], (g["kind"], g["step"], k))


def assert_close(got, want, where) -> None:
    """Equal strings, booleans and Nones; numbers within float tolerance; lists and dicts element by element."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            assert_close(got[k], want[k], (*where, k))
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, (*where, i))
    elif isinstance(want, (str, bool)) or want is None:
        assert got == want, where
    else:
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5), where


def test_resume_without_a_checkpoint_starts_clean(tmp_path):
    """A kill before the first checkpoint left step records and no last.pt: the resume starts at step 0
    and keeps none of them (no step recorded twice)."""
    cfg = tiny(**{"train.epochs": 1})
    full = History()
    fit(cfg, [full])
    run = RunFolder(tmp_path / "r")
    run.prepare(cfg)
    for r in full.steps[:3]:
        run.append_metric({**r, "loss": 123.0})  # what the killed process wrote
    fit(cfg, run_dir=run.path, resume=True)
    same_records(run.metrics(), full.records)


def test_a_cancel_mid_epoch_then_resume_leaves_one_record_per_epoch_as_uncut(tmp_path):
    cfg = tiny(**{"train.epochs": 2})
    full = History()
    fit(cfg, [full])
    fit(cfg, run_dir=tmp_path / "r", should_stop=stop_at(6))
    run = RunFolder(tmp_path / "r")
    assert [r["epoch"] for r in run.metrics("epoch")] == [1]  # the cut epoch 2 has no record yet
    fit(cfg, run_dir=tmp_path / "r", resume=True)
    epochs = run.metrics("epoch")
    assert [r["epoch"] for r in epochs] == [1, 2] and all(r["complete"] for r in epochs)
    assert epochs[1]["epoch_s"] > 0
    same_records(run.metrics(), full.records)


def test_a_cancel_at_an_epochs_last_step_records_the_whole_epoch(tmp_path):
    cfg = tiny(**{"train.epochs": 2})
    full = History()
    fit(cfg, [full])
    first = fit(cfg, run_dir=tmp_path / "r", should_stop=stop_at(4))
    assert first.stopped == "cancelled" and first.steps == 4
    fit(cfg, run_dir=tmp_path / "r", resume=True)
    same_records(RunFolder(tmp_path / "r").metrics(), full.records)


def test_a_failed_resume_of_a_finished_run_keeps_it_done(tmp_path):
    fit(tiny(**{"train.epochs": 1}), run_dir=tmp_path / "r")
    run = RunFolder(tmp_path / "r")
    message = run.status()["message"]
    run.checkpoint_path("last").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        fit(tiny(**{"train.epochs": 1}), run_dir=run.path, resume=True)
    st = run.status()
    assert st["state"] == "done" and st["message"] == message
    assert "CheckpointError" in st["resume_error"]


def test_a_checkpoint_of_another_network_size_is_refused_naming_both_files(tmp_path):
    fit(tiny(**{"train.epochs": 1}), run_dir=tmp_path / "r")
    run = RunFolder(tmp_path / "r")
    saved = json.loads(run.config_path.read_text())
    saved["model"]["width"] = 0.5
    run.config_path.write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match=r"last\.pt does not fit the network of .*config\.json"):
        fit(run.config(), run_dir=run.path, resume=True)


def test_a_long_checkpoint_error_is_shortened_between_sentences(tmp_path, monkeypatch):
    words = "This file was written by something else entirely and cannot be read as a checkpoint"
    reason = f"{words}. " * 4 + "The end."

    def refuse(*args, **kwargs):
        raise RuntimeError(reason + "\nsecond line")

    monkeypatch.setattr(torch, "load", refuse)
    path = tmp_path / "x.pt"
    path.write_bytes(b"x")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    said = str(err.value).split("saved by other code): ", 1)[1]
    assert said == f"{words}. {words}."  # whole sentences only, within 200 characters
    long = "word " * 60 + "end."
    monkeypatch.setattr(torch, "load", lambda *a, **k: (_ for _ in ()).throw(RuntimeError(long)))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value).endswith(long.strip())  # one sentence longer than the limit is kept whole


# -- a full disk: one line, nothing saved lost
def fill_disk(monkeypatch, root) -> None:
    """Every write under `root` from now on fails with ENOSPC, as on a full disk (os.write and os.fsync,
    which the atomic writer and metrics.jsonl's appends go through)."""
    real_write, real_fsync = os.write, os.fsync

    def under_root(fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(str(root))
        except OSError:
            return False

    def full(real):
        def call(fd, *args):
            if under_root(fd):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd, *args)

        return call

    monkeypatch.setattr(os, "write", full(real_write))
    monkeypatch.setattr(os, "fsync", full(real_fsync))


def test_a_full_disk_stops_a_resume_with_one_line_and_keeps_what_was_saved(tmp_path, monkeypatch):
    cfg = tiny(**{"train.epochs": 2})
    fit(cfg, run_dir=tmp_path / "r", should_stop=stop_at(6))
    run = RunFolder(tmp_path / "r")
    before = {
        p.name: p.read_bytes() for p in (run.metrics_path, run.checkpoint_path("best"), run.checkpoint_path("last"))
    }
    fill_disk(monkeypatch, tmp_path)
    with pytest.raises(StorageError, match=r"^no space left in .*r: \w+\.\w+ was not written"):
        fit(cfg, run_dir=run.path, resume=True)
    after = {
        p.name: p.read_bytes() for p in (run.metrics_path, run.checkpoint_path("best"), run.checkpoint_path("last"))
    }
    assert after == before
    assert not [p for p in run.path.rglob(".*.tmp")]  # no temporary file left behind
    monkeypatch.undo()  # space again: the resume finishes
    assert fit(cfg, run_dir=run.path, resume=True).stopped == "done"


def test_a_metrics_line_the_disk_refuses_is_not_kept_torn(tmp_path, monkeypatch):
    run = RunFolder(tmp_path)
    run.append_metric({"kind": "step", "step": 1})
    before = run.metrics_path.read_bytes()
    real_write, calls = os.write, []

    def five_bytes_then_full(fd, data):  # a disk that fills in the middle of the line
        calls.append(fd)
        if len(calls) == 1:
            return real_write(fd, data[:5])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", five_bytes_then_full)
    with pytest.raises(StorageError, match="^no space left in"):
        run.append_metric({"kind": "step", "step": 2})
    monkeypatch.undo()
    assert run.metrics_path.read_bytes() == before


def test_every_evaluation_is_announced_before_it_starts(tmp_path):
    """before_eval(step, epoch) comes before each test pass, and status.json says from which step an
    evaluation runs (the dashboard's "evaluating on the test set…"); records are unchanged by it."""
    from tssd_viz.training.observers import Observer

    seen: list[tuple] = []

    class Log(Observer):
        def before_eval(self, step, epoch):
            seen.append(("before_eval", step, epoch, RunFolder(tmp_path / "run").read_status().get("evaluating_at")))

        def after_epoch(self, record):
            seen.append(("after_epoch", record["step"], record["epoch"]))

    cfg = tiny(**{"train.eval_every": 1, "train.epochs": 2, "train.probe_every": 0})
    fit(cfg, [Log()], run_dir=tmp_path / "run")
    per_epoch = 256 // 64
    # The run writer listens after this observer: the status is written once everyone has heard the event.
    assert [s[:3] for s in seen] == [
        ("before_eval", per_epoch, 1),
        ("after_epoch", per_epoch, 1),
        ("before_eval", 2 * per_epoch, 2),
        ("after_epoch", 2 * per_epoch, 2),
    ]
    status = RunFolder(tmp_path / "run").status()
    assert status["state"] == "done" and "evaluating_at" not in status  # the final status replaces it
