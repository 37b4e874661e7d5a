"""Training: one `fit()` that reads top to bottom and emits events to observers (SPEC §8).

The trainer owns the model, the optimizer and the loop; observers (in-memory history, console,
run-folder writer, dashboard) only listen. Evaluation at the end covers every window n = 1..T_t
with a single T_t pass: an SNN is causal, so in eval mode the first n steps of a T_t run are
exactly an n-step run.
"""

from __future__ import annotations

import itertools
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from ..config import ConfigError, TSSDConfig
from ..data import Dataset, Loader, load_dataset
from ..data.events import frame_windows
from ..runs.checkpoints import FORMAT_TRAIN, CheckpointError, load_checkpoint, save_checkpoint
from ..runs.folders import RunFolder
from ..snn.models import build_model, count_parameters
from ..snn.probes import snapshot
from ..snn.record import lif_layers
from ..validation import validate
from . import allocator
from .distributed import Ranks, sync_batchnorm
from .evaluation import (
    TRAIN_EVAL_IMAGES,
    Outputs,
    analysis,
    bn_state,
    collect_outputs,
    evaluate,
    load_bn_state,
    recompute_bn_stats,
    window_bn_stats,
)
from .events import FitInfo, FitResult
from .observers import Observer, RunWriter
from .speed import compile_neurons
from .step import EpochMeans, TrainingDiverged, lr_factor, make_optimizer, train_step

__all__ = [
    "Training",
    "check_sizes",
    "evaluate",
    "fit",
    "lr_factor",
    "recompute_bn_stats",
    "resolve_device",
    "TrainingDiverged",
]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device", "cuda was asked for but no CUDA device is available; use auto or cpu")
    return torch.device(name)


def fit(
    cfg: TSSDConfig,
    observers: Iterable[Observer] = (),
    *,
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    dataset: Dataset | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FitResult:
    """Train `cfg`; write the run folder `run_dir` if given (resume continues it from last.pt).

    Under torchrun (WORLD_SIZE > 1 in the environment) this is one rank of a data-parallel run (SPEC §11):
    every rank trains, rank 0 alone writes the run folder and hears `observers`."""
    validate(cfg)
    tc = cfg.train
    device = resolve_device(tc.device)
    ranks = Ranks.from_env()
    if ranks is not None:
        ranks, device = ranks.start(cfg, device)  # joins the group: every rank gets here or the run ends
        observers = observers if ranks.writes else ()
    if tc.bf16 and device.type != "cuda":
        raise ConfigError("train.bf16", f"bf16 autocast needs a CUDA device; this run uses {device.type}")
    if tc.threads:
        torch.set_num_threads(tc.threads)
    # speed: activations are reused instead of page-faulted in every step (jemalloc, or glibc tuned)
    malloc = allocator.settle(tc.allocator, tune=tc.tune_allocator and device.type == "cpu")
    # Everything that can refuse the run comes before its folder is written: a refusal writes nothing.
    ds = dataset if dataset is not None else load_dataset(cfg.data, cfg.distill)
    check_sizes(cfg, ds)
    run = RunFolder(run_dir) if run_dir is not None else None
    writes = run is not None and (ranks is None or ranks.writes)  # the other ranks only read last.pt to resume
    if writes:
        run.prepare(cfg, resume=resume)
    observers = list(observers) + ([RunWriter(run)] if writes else [])
    if writes and not resume:  # a folder without status.json reads as never started (runs/folders.py)
        run.set_status("running", "starting: building the network", host=platform.node())

    def emit(event: str, *args) -> None:
        for o in observers:
            getattr(o, event)(*args)

    try:
        result = Training(cfg, device, ds, run, emit, should_stop, ranks).run(resume, malloc)
    except BaseException as exc:
        said = ranks.explain(exc) if ranks is not None else exc  # a lost rank, in one line
        emit("on_error", said)
        if said is exc:
            raise
        raise said from exc
    if ranks is not None:
        ranks.finish()  # only after a clean end: tearing down a group whose peer is gone can itself hang
    return result


def check_sizes(cfg: TSSDConfig, ds: Dataset) -> None:
    """Refuse a training set smaller than one batch: no step could run (the loader drops partial batches)."""
    if ds.is_events and (ds.train.windows, ds.test.windows) != frame_windows(cfg.data, cfg.distill):
        raise ConfigError(
            "data.windowing", "the dataset was binned for other windows: load_dataset(cfg.data, cfg.distill) bins it"
        )
    frames = ds.test.images.shape[1]
    if ds.is_events and not ds.test.windows and frames < cfg.distill.t_teacher:
        raise ConfigError("distill.t_teacher", f"the recordings were binned into {frames} frames, fewer than T_t")
    n, batch = len(ds.train.labels), cfg.data.batch_size
    if n >= batch:
        return
    if cfg.data.limit_train and cfg.data.limit_train < batch:
        raise ConfigError("data.limit_train", f"{n} training images are fewer than one batch (data.batch_size {batch})")
    raise ConfigError("data.batch_size", f"{batch} is larger than the training set ({n} images)")


@dataclass
class Position:
    """Where training is: what last.pt saves and a resume restores."""

    step: int = 0  # optimizer steps taken
    elapsed: float = 0.0  # seconds spent in training steps: the wall_s clock of the records
    best: float = -1.0  # best test accuracy at T_s so far (best.pt holds those weights)
    records: int = 0  # metrics records emitted: metrics.jsonl's line count, kept on resume


class Training:
    """One run of `fit()`: the model, its optimizer and loaders, and the loop over epochs and steps.

    Reads top to bottom: `run` (resume, probe 0, epochs, final evaluation) -> `epoch` -> `step`.
    Observers hear every record through `emit`; the trainer never reads what they wrote.
    """

    def __init__(
        self,
        cfg: TSSDConfig,
        device: torch.device,
        ds: Dataset,
        run: RunFolder | None,
        emit: Callable[..., None],
        should_stop: Callable[[], bool] | None,
        ranks: Ranks | None = None,
    ):
        tc = cfg.train  # "tc", not "t": t is a timestep in this code
        self.cfg, self.device, self.ds, self.folder, self._emit = cfg, device, ds, run, emit
        self.ranks, self.writes = ranks, ranks is None or ranks.writes
        self.asked_to_stop = should_stop or (lambda: False)
        self.agreed_stop = False  # distributed: whether any rank was asked to stop, as of the last step
        self.should_stop = self.asked_to_stop if ranks is None else (lambda: self.agreed_stop)
        torch.manual_seed(tc.seed)  # every rank builds the same initial weights
        model = build_model(cfg.model, ds.in_channels, ds.num_classes, weak_head=cfg.uses_weak_head).to(device)
        if ranks is not None and tc.sync_bn:
            model = sync_batchnorm(model, device)
        self.model = model.to(memory_format=torch.channels_last if tc.channels_last else torch.contiguous_format)
        if tc.compile:
            compile_neurons(self.model)  # torch.compile the LIF time loops (the rest of the step stays eager)
        self.optimizer = make_optimizer(self.model, cfg)
        on = dict(device=device, channels_last=tc.channels_last)
        shard = ranks.shard if ranks is not None else (0, 1)  # this rank's slice of every global batch
        self.train_loader = Loader(
            ds.train, ds, cfg.data.batch_size, train=True, augment=cfg.data.augment, seed=tc.seed, shard=shard, **on
        )
        self.test_loader = Loader(ds.test, ds, 256, train=False, **on)
        # Batch-norm statistics for evaluation come from training images, augmented as in training (bn_augment),
        # never from the test split. Synced batch norm averages over the ranks' shards; unsynced, each rank sees
        # whole batches: either way the statistics are those of a single process.
        bn_augment = cfg.data.augment and tc.bn_augment
        bn_shard = shard if ranks is not None and tc.sync_bn else (0, 1)
        self.bn_loader = Loader(
            ds.train, ds, cfg.data.batch_size, train=True, augment=bn_augment, seed=tc.seed + 1, shard=bn_shard, **on
        )
        self.bn_T = cfg.train_timesteps if tc.bn_window == "train" else cfg.distill.t_student
        self.bn_fresh_at = -1  # the step whose weights the stored statistics describe
        self.window_bn_at: tuple[int, dict | None] = (-1, None)  # whole_recording: (step, per-window statistics)
        idx = torch.arange(min(tc.probe_images, len(ds.test.labels)))
        # What the snapshots show: (P, C, H, W) uint8 images, or the (P, T_t, 2, H, W) frames of the T_t pass
        self.probe_images = ds.test.view(cfg.distill.t_teacher)[idx]
        probe_split = type(ds.test)(self.probe_images, ds.test.labels[idx])
        self.probe_x, self.probe_y = next(iter(Loader(probe_split, ds, len(idx), train=False, **on)))
        self.steps_per_epoch = len(self.train_loader)  # >= 1: check_sizes()
        self.total_steps = tc.epochs * self.steps_per_epoch
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.bf16)
        self.at = Position()
        self.partial: EpochMeans | None = None  # the means of an epoch a cancel cut short (saved in last.pt)
        self.stop_after_epoch = False
        self.trained = self.model  # what the steps run: the network, or DDP around it (set in run())

    # -- the loop
    def run(self, resume: bool, malloc: allocator.InUse | None = None) -> FitResult:
        if resume:
            self.resume()  # replaces self.at: read it after
        if self.ranks is not None:  # after the resume: DDP starts every rank from rank 0's weights
            self.trained = self.ranks.wrap(self.model, self.cfg.train.sync_bn)
        cfg, tc, at = self.cfg, self.cfg.train, self.at
        self._emit(
            "before_fit",
            FitInfo(
                cfg,
                self.ds.name,
                self.ds.classes,
                cfg.model.arch,
                str(self.device),
                count_parameters(self.model),
                tuple(lif_layers(self.model)),
                self.steps_per_epoch,
                self.total_steps,
                at.step,
                self.folder.path if self.folder else None,
                malloc,
            ),
        )
        if at.step == 0 and tc.probe_every:
            self.probe(0)
        self.model.train()
        stopped, final, outputs = "done", {}, None
        epoch = start = at.step // self.steps_per_epoch  # epochs already complete (a resume starts after them)
        for epoch in range(start + 1, tc.epochs + 1):
            stopped, means = self.epoch(epoch)
            is_last = stopped != "done" or epoch == tc.epochs
            test_acc = None
            if stopped != "cancelled" and (is_last or (tc.eval_every and epoch % tc.eval_every == 0)):
                self._emit("before_eval", at.step, epoch)  # a CIFAR test pass takes a while: say it started
                outputs = self.test_outputs()
                test_acc = final = dict(enumerate(outputs.acc_by_window(), start=1))
            # A cancel cuts an epoch short: its record waits for the resume that finishes the epoch
            # (last.pt carries the partial means), so every epoch has one record, as in an uncut run.
            self.partial = means if stopped == "cancelled" else None
            if means.count and stopped != "cancelled":
                self.record("after_epoch", self.epoch_record(epoch, means, stopped, test_acc))
            self.save_epoch(epoch, test_acc, is_last)
            if stopped == "done" and self.stop_after_epoch and epoch < tc.epochs:
                stopped = "cancelled"  # asked to stop at an epoch's last step: the epoch is whole
            if stopped != "done":
                break
        if stopped == "cancelled":
            final, outputs = {}, None
        elif not final:  # resumed a run whose training had already finished
            outputs = self.test_outputs()
            final = dict(enumerate(outputs.acc_by_window(), start=1))
        if outputs is not None:
            self.record_final(epoch, outputs)
        result = FitResult(
            cfg, self.model, self.ds, final, stopped, at.step, at.elapsed, self.folder.path if self.folder else None
        )
        self._emit("after_fit", result)
        return result

    def epoch(self, epoch: int) -> tuple[str, EpochMeans]:
        """Train one epoch (the rest of it, when resuming mid-epoch); return why it ended and its means."""
        tc, at = self.cfg.train, self.at
        self.train_loader.set_epoch(epoch)
        means = self.partial or EpochMeans(start_elapsed=at.elapsed)  # a resumed epoch continues its sums
        self.partial = None
        done_before = at.step - (epoch - 1) * self.steps_per_epoch  # batches a resumed epoch already trained
        for i, (x, y) in enumerate(self.train_loader):
            if i < done_before:
                continue
            log_now = (at.step + 1) % tc.log_every == 0
            # Firing rates cost a reduction per layer: taken on logged steps and on each epoch's last.
            signals = self.step(x, y, with_rates=log_now or i == self.steps_per_epoch - 1)
            means.add(signals)
            if log_now:
                self.record(
                    "after_step",
                    {"kind": "step", "step": at.step, "epoch": epoch, "wall_s": round(at.elapsed, 3), **signals},
                )
            if self.should_stop():
                if i < self.steps_per_epoch - 1:
                    return "cancelled", means
                self.stop_after_epoch = True  # the epoch is complete: record and save it whole, then stop
            if tc.time_budget_s and at.elapsed >= tc.time_budget_s:
                return "time_budget", means
        return "done", means

    def step(self, x, y, with_rates: bool) -> dict[str, Any]:
        """One optimizer step at the scheduled learning rate; returns its signals (a step record's fields)."""
        tc, at = self.cfg.train, self.at
        t0 = time.perf_counter()
        progress = max(at.step / self.total_steps, at.elapsed / tc.time_budget_s if tc.time_budget_s else 0.0)
        lr = tc.lr * lr_factor(progress, tc.schedule, tc.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        result = train_step(self.trained, self.optimizer, x, y, self.cfg, self.autocast, with_rates, at.step + 1)
        signals, seconds = result.signals(y, lr), time.perf_counter() - t0
        if self.ranks is not None:  # the global batch's signals, one clock and one decision to stop for every rank
            signals, seconds, self.agreed_stop = self.ranks.agree(signals, seconds, self.asked_to_stop())
        at.step += 1
        at.elapsed += seconds
        return signals

    def epoch_record(self, epoch: int, means: EpochMeans, stopped: str, test_acc: dict[int, float] | None) -> dict:
        at, t_s = self.at, self.cfg.distill.t_student
        line = {
            "kind": "epoch",
            "step": at.step,
            "epoch": epoch,
            "wall_s": round(at.elapsed, 3),
            "ce_teacher": None,
            "ce_weak": None,
            "loss_tsd": None,
            "loss_ssd": None,
            "loss_sw": None,
            "acc_teacher": None,
            "acc_weak": None,
            "agreement": None,
            "kl": None,
            **means.means(),
            # epoch_s: this epoch's share of wall_s, the training steps' clock
            "epoch_s": round(at.elapsed - means.start_elapsed, 3),
            "complete": stopped == "done",
        }
        if test_acc is not None:
            line.update(test_acc=test_acc[t_s], test_acc_by_window=list(test_acc.values()))
        return line

    # -- evaluation, snapshots and checkpoints
    def fresh_bn_stats(self) -> None:
        """Make the stored batch-norm statistics describe the current weights (train.bn_stats)."""
        tc = self.cfg.train
        if tc.bn_stats == "recompute" and self.bn_fresh_at != self.at.step:
            self.bn_loader.set_epoch(self.at.step)
            recompute_bn_stats(self.model, itertools.islice(self.bn_loader, tc.bn_batches), self.bn_T)
            self.bn_fresh_at = self.at.step

    def test_outputs(self) -> Outputs:
        """Every output of one T_t pass over the test split (its first n steps are window n: an SNN is causal).
        Whole-recording windows each get a pass on their own binning, with batch-norm statistics of their own."""
        self.fresh_bn_stats()
        bn, kept = self.window_bn(), bn_state(self.model)
        outputs = collect_outputs(self.model, self.test_loader, self.cfg.distill.t_teacher, bn=bn)
        load_bn_state(self.model, kept)  # checkpoints and probes keep the statistics of bn_T
        return outputs

    def window_bn(self) -> dict[int, dict] | None:
        """Whole-recording event windows with recomputed statistics (SPEC §12): each window n = 1..T_t's own,
        from the same training batches as `fresh_bn_stats`, each binned into n frames; the model keeps the
        statistics it had (those of bn_T, which checkpoints and probes use). None otherwise."""
        tc, t_t = self.cfg.train, self.cfg.distill.t_teacher
        if tc.bn_stats != "recompute" or self.cfg.data.windowing != "whole_recording":
            return None
        if self.window_bn_at[0] == self.at.step:  # the test windows and the train accuracy share one estimate
            return self.window_bn_at[1]
        kept = bn_state(self.model)
        self.bn_loader.set_epoch(self.at.step)
        batches = list(itertools.islice(self.bn_loader, tc.bn_batches))
        stats = window_bn_stats(self.model, batches, range(1, t_t + 1))
        load_bn_state(self.model, kept)
        self.window_bn_at = (self.at.step, stats)
        return stats

    def train_accuracy(self) -> tuple[float, int]:
        """Accuracy at T_s on the first TRAIN_EVAL_IMAGES training images, unaugmented, and how many there were:
        with the test accuracy, the train-test gap (how much the run over-fits)."""
        n = min(TRAIN_EVAL_IMAGES, len(self.ds.train.labels))
        split = self.ds.train.subset(slice(0, n))  # event frames keep their binnings
        loader = Loader(
            split, self.ds, 256, train=False, device=self.device, channels_last=self.cfg.train.channels_last
        )
        t_s = self.cfg.distill.t_student
        bn, kept = self.window_bn(), bn_state(self.model)
        acc = evaluate(self.model, loader, t_s, windows=(t_s,), bn=bn)[0]
        load_bn_state(self.model, kept)
        return acc, n

    def record_final(self, epoch: int, outputs: Outputs) -> None:
        """The end of a run (SPEC §8, §10): the analysis record, train accuracy at T_s, then test accuracy of every
        window (eval lines last: a run whose records end with them is done)."""
        at = self.at
        where = {"step": at.step, "epoch": epoch, "wall_s": round(at.elapsed, 3)}
        self.record(
            "after_eval", {"kind": "analysis", **where, "t": self.cfg.distill.t_student, **analysis(outputs, self.cfg)}
        )
        train_acc, n = self.train_accuracy()
        t_s = self.cfg.distill.t_student
        self.record("after_eval", {"kind": "eval", **where, "split": "train", "t": t_s, "acc": train_acc, "images": n})
        for n, acc in enumerate(outputs.acc_by_window(), start=1):
            self.record("after_eval", {"kind": "eval", **where, "split": "test", "t": n, "acc": acc})

    def probe(self, epoch: int) -> None:
        self.fresh_bn_stats()
        snap = snapshot(
            self.model,
            self.probe_x,
            self.cfg.distill.t_teacher,
            labels=self.probe_y,
            images=self.probe_images,
            classes=self.ds.classes,
            step=self.at.step,
            epoch=epoch,
        )
        self._emit("on_probe", f"epoch-{epoch:04d}", snap)

    def save_epoch(self, epoch: int, test_acc: dict[int, float] | None, is_last: bool) -> None:
        """After an epoch: best.pt when the test accuracy at T_s improved, a probe snapshot, last.pt."""
        tc, t_s = self.cfg.train, self.cfg.distill.t_student
        if test_acc is not None and test_acc[t_s] > self.at.best:
            self.at.best = test_acc[t_s]
            self.checkpoint("best")
        if tc.probe_every and (epoch % tc.probe_every == 0 or is_last):
            self.probe(epoch)
        self.checkpoint("last")

    def checkpoint(self, name: str) -> None:
        if self.folder is None:
            return
        self.fresh_bn_stats()  # a checkpoint's batch-norm statistics describe the weights saved with them
        if not self.writes:
            return  # after the statistics: recomputing them is a collective with sync_bn
        path, at, ds = self.folder.checkpoints_dir / f"{name}.pt", self.at, self.ds
        save_checkpoint(
            path,
            {
                "format": FORMAT_TRAIN,
                "config": self.cfg.to_dict(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "step": at.step,
                "elapsed_s": at.elapsed,
                "best_acc": at.best,
                "metrics_lines": at.records,
                "epoch_means": _means_state(self.partial),
                "rng": torch.get_rng_state(),
                "num_classes": ds.num_classes,
                "in_channels": ds.in_channels,
                "classes": list(ds.classes),
            },
        )
        self._emit("on_checkpoint", path)

    def resume(self) -> None:
        """Weights, optimizer, position in the data and clock come back from last.pt (if there is one)."""
        if self.folder is None:
            return
        path = self.folder.checkpoint_path("last")
        if not path.exists():
            if self.writes:
                self.folder.truncate_metrics(0)  # killed before the first checkpoint: start clean, from step 0
            return
        ck = load_checkpoint(path, (FORMAT_TRAIN,), map_location=self.device)
        try:
            self.model.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimizer"])
            self.at = Position(ck["step"], ck["elapsed_s"], ck["best_acc"], ck["metrics_lines"])
            self.partial = _means_from(ck.get("epoch_means"))
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise CheckpointError(
                f"{path} does not fit the network of {self.folder.config_path} (was either file changed?): "
                f"{_first_line(e)}"
            ) from None
        if self.writes:
            self.folder.truncate_metrics(ck["metrics_lines"])  # records after last.pt are redone
        torch.set_rng_state(ck["rng"])

    def record(self, event: str, line: dict) -> None:
        """Emit one metrics record (SPEC §8), read-only, and count it."""
        self.at.records += 1
        self._emit(event, MappingProxyType(line))


def _means_state(means: EpochMeans | None) -> dict[str, Any] | None:
    """A cut epoch's partial sums as plain floats and lists (last.pt loads with weights_only=True)."""
    if means is None:
        return None
    sums = {
        k: ({n: float(x) for n, x in v.items()} if isinstance(v, dict) else v.tolist()) for k, v in means.sums.items()
    }
    return {"start_elapsed": means.start_elapsed, "sums": sums, "counts": dict(means.counts), "count": means.count}


def _means_from(state: dict[str, Any] | None) -> EpochMeans | None:
    if state is None:
        return None
    means = EpochMeans(start_elapsed=state["start_elapsed"])
    means.sums = {
        k: ({n: np.float64(x) for n, x in v.items()} if isinstance(v, dict) else np.asarray(v, dtype=np.float64))
        for k, v in state["sums"].items()
    }
    means.counts, means.count = dict(state["counts"]), state["count"]
    return means


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
