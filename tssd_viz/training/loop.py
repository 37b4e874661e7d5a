"""The loop of one `fit()`: `Training` owns the model, its optimizer and the training loader, and runs the
epochs and their steps; it emits every metrics record to the observers (SPEC §8) and never reads what they
wrote. Its evaluations are an `Evaluator`'s (evaluator.py), its checkpoints and resume `Checkpoints`'
(checkpointing.py).

Evaluation at the end covers every window n = 1..T_t with a single T_t pass: an SNN is causal, so in eval
mode the first n steps of a T_t run are exactly an n-step run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import torch

from ..config import TSSDConfig
from ..data import Dataset, Loader
from ..runs.folders import RunFolder
from ..snn.models import build_model, count_parameters
from ..snn.record import lif_layers
from . import allocator
from .checkpointing import Checkpoints, Position
from .distributed import Ranks, sync_batchnorm
from .evaluation import Outputs, analysis
from .evaluator import Evaluator
from .events import FitInfo, FitResult
from .speed import compile_neurons
from .step import EpochMeans, lr_factor, make_optimizer, train_step


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
        self.evaluator = Evaluator(cfg, ds, self.model, device, ranks.shard if ranks is not None else None)
        self.checkpoints = (
            Checkpoints(cfg, ds, self.model, self.optimizer, run, self.writes, emit) if run is not None else None
        )
        self.steps_per_epoch = len(self.train_loader)  # >= 1: check_sizes()
        self.total_steps = tc.epochs * self.steps_per_epoch
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.bf16)
        self.at = Position()
        self.partial: EpochMeans | None = None  # the means of an epoch a cancel cut short (saved in last.pt)
        self.stop_after_epoch = False
        self.trained = self.model  # what the steps run: the network, or DDP around it (set in run())

    # -- the loop
    def run(self, resume: bool, malloc: allocator.InUse | None = None) -> FitResult:
        if resume and self.checkpoints is not None:
            self.at, self.partial = self.checkpoints.restore(self.device) or (self.at, self.partial)
        if self.ranks is not None:  # after the resume: DDP starts every rank from rank 0's weights
            self.trained = self.ranks.wrap(self.model, self.cfg.train.sync_bn)
        tc, at = self.cfg.train, self.at
        self._emit("before_fit", self.fit_info(malloc))
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
                outputs = self.evaluator.test_outputs(at.step)
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
            outputs = self.evaluator.test_outputs(at.step)
            final = dict(enumerate(outputs.acc_by_window(), start=1))
        if outputs is not None:
            self.record_final(epoch, outputs)
        folder = self.folder.path if self.folder else None
        result = FitResult(self.cfg, self.model, self.ds, final, stopped, at.step, at.elapsed, folder)
        self._emit("after_fit", result)
        return result

    def fit_info(self, malloc: allocator.InUse | None) -> FitInfo:
        """What observers learn before the first step."""
        cfg = self.cfg
        return FitInfo(
            cfg,
            self.ds.name,
            self.ds.classes,
            cfg.model.arch,
            str(self.device),
            count_parameters(self.model),
            tuple(lif_layers(self.model)),
            self.steps_per_epoch,
            self.total_steps,
            self.at.step,
            self.folder.path if self.folder else None,
            malloc,
        )

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

    # -- what an epoch leaves: records, snapshots and checkpoints
    def record_final(self, epoch: int, outputs: Outputs) -> None:
        """The end of a run (SPEC §8, §10): the analysis record, train accuracy at T_s, then test accuracy of every
        window (eval lines last: a run whose records end with them is done)."""
        at, t_s = self.at, self.cfg.distill.t_student
        where = {"step": at.step, "epoch": epoch, "wall_s": round(at.elapsed, 3)}
        self.record("after_eval", {"kind": "analysis", **where, "t": t_s, **analysis(outputs, self.cfg)})
        train_acc, n = self.evaluator.train_accuracy(at.step)
        self.record("after_eval", {"kind": "eval", **where, "split": "train", "t": t_s, "acc": train_acc, "images": n})
        for n, acc in enumerate(outputs.acc_by_window(), start=1):
            self.record("after_eval", {"kind": "eval", **where, "split": "test", "t": n, "acc": acc})

    def probe(self, epoch: int) -> None:
        self._emit("on_probe", f"epoch-{epoch:04d}", self.evaluator.probe(self.at.step, epoch))

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
        if self.checkpoints is None:
            return
        # A checkpoint's batch-norm statistics describe the weights saved with them. Every rank recomputes
        # them, the ranks that do not write too: with sync_bn, recomputing is a collective.
        self.evaluator.fresh_bn_stats(self.at.step)
        self.checkpoints.save(name, self.at, self.partial)

    def record(self, event: str, line: dict) -> None:
        """Emit one metrics record (SPEC §8), read-only, and count it."""
        self.at.records += 1
        self._emit(event, MappingProxyType(line))
