"""Observers of `fit()`: they listen to its events and never change the trainer (STYLE 6).

Events, in order: before_fit(info) · after_step(record)* · before_eval(step, epoch) · after_epoch(record)
· after_eval(record)* · on_probe(name, arrays) · on_checkpoint(path) · after_fit(result) — or on_error(exc)
when training raises. Records are read-only mappings in the metrics.jsonl format of SPEC §8; a probe is a
`ProbeSnapshot` or its arrays under their .npz keys (both defined in runs/folders.py).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import StorageError
from ..runs.folders import RunFolder
from ..runs.metrics import final_accuracy
from ..snn.probes import ProbeSnapshot
from .events import FitInfo, FitResult


class Observer:
    """Base class of training listeners: every event is a no-op; override the ones you need.

    `fit` calls `before_fit(info: FitInfo)`, `after_step(record)`, `before_eval(step, epoch)`,
    `after_epoch(record)`, `after_eval(record)`, `on_probe(name, snapshot)`, `on_checkpoint(path)`,
    `after_fit(result: FitResult)` and `on_error(exc)`; records are read-only mappings.
    """

    def before_fit(self, info: FitInfo) -> None: ...
    def after_step(self, record: Mapping[str, Any]) -> None: ...
    def before_eval(self, step: int, epoch: int) -> None: ...
    def after_epoch(self, record: Mapping[str, Any]) -> None: ...
    def after_eval(self, record: Mapping[str, Any]) -> None: ...
    def on_probe(self, name: str, arrays: ProbeSnapshot | Mapping[str, np.ndarray]) -> None: ...
    def on_checkpoint(self, path: Path) -> None: ...
    def after_fit(self, result: FitResult) -> None: ...
    def on_error(self, exc: BaseException) -> None: ...


@dataclass
class History(Observer):
    """Everything in memory, for notebooks: lists of records and the probe snapshots by name.

    Attributes:
        steps: the step records.
        epochs: the epoch records.
        evals: the eval records.
        probes: name -> probe snapshot.
    """

    steps: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    probes: dict[str, ProbeSnapshot] = field(default_factory=dict)

    def after_step(self, record):
        self.steps.append(dict(record))

    def after_epoch(self, record):
        self.epochs.append(dict(record))

    def after_eval(self, record):
        self.evals.append(dict(record))

    def on_probe(self, name, arrays):
        self.probes[name] = ProbeSnapshot.of(arrays)

    @property
    def records(self) -> list[dict]:
        """All records in the order metrics.jsonl would hold them (for the figure builders)."""
        return sorted(self.steps + self.epochs + self.evals, key=lambda r: (r["step"], r["kind"] != "step"))

    def final_eval(self) -> dict[int, float]:
        return final_accuracy(self.evals)


class RunWriter(Observer):
    """Writes the run folder of SPEC §8 as training goes."""

    def __init__(self, run: RunFolder):
        self.run = run
        self.prior = run.read_status()  # a finished run stays finished, whatever a later resume does

    def before_fit(self, info):
        malloc = info.allocator.to_dict() if info.allocator is not None else None
        self.run.write_env(info.device, info.cfg.train.seed, malloc)
        self.run.set_status(
            "running", f"training {info.cfg.distill.mode} on {info.dataset}", host=_host(), total_steps=info.total_steps
        )

    def after_step(self, record):
        self.run.append_metric(dict(record))

    def before_eval(self, step, epoch):
        # status.json says an evaluation began at `step` (a reader sees it end when a record of that step, or a
        # later one, arrives); the rest of the status is kept as it was.
        now = self.run.read_status()
        kept = {k: v for k, v in now.items() if k not in ("state", "message", "pid", "time", "proc_start")}
        self.run.set_status("running", now.get("message", ""), **{**kept, "evaluating_at": step})

    after_epoch = after_eval = after_step

    def on_probe(self, name, arrays):
        self.run.write_probe(name, arrays)

    def after_fit(self, result):
        acc = result.test_acc.get(result.cfg.distill.t_student)
        acc_s = f"; test accuracy at T_s={result.cfg.distill.t_student}: {acc:.2%}" if acc is not None else ""
        state = "cancelled" if result.stopped == "cancelled" else "done"
        message = {"done": "finished", "time_budget": "time budget reached", "cancelled": "cancelled"}[result.stopped]
        self.run.set_status(state, message + acc_s, host=_host(), steps=result.steps)

    def on_error(self, exc):
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        text = f"{type(exc).__name__}: {text}"
        try:
            if self.prior.get("state") == "done":  # a failed resume of a finished run: it is still finished
                kept = {k: v for k, v in self.prior.items() if k not in ("state", "message", "pid", "time")}
                self.run.set_status("done", self.prior.get("message", ""), **{**kept, "resume_error": text})
            else:
                self.run.set_status("failed", text, host=_host())
        except StorageError:
            pass  # the disk refuses even the status: the error itself is what the caller reports


def _host() -> str:
    import platform

    return platform.node()


class ConsoleProgress(Observer):
    """A progress bar over all steps and one fixed-width results row per epoch (airbench style)."""

    COLUMNS = ("epoch", "loss", "tsd", "ssd", "sw", "acc_S", "acc_T", "acc_W", "agree", "test@Ts", "epoch_s")

    def __init__(self, file=None, bar: bool = True):
        self.file = file or sys.stderr
        self.use_bar = bar
        self.bar = None

    def before_fit(self, info):
        if self.use_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=info.total_steps,
                initial=info.start_step,
                unit="step",
                file=self.file,
                dynamic_ncols=True,
                leave=False,
            )
        d = info.cfg.distill
        # s2w/w2s train at T_s only: T_t is just how far the windows are evaluated
        windows = (
            f"T_s={d.t_student}, windows to {d.t_teacher}"
            if d.uses_timestep_teacher
            else (f"T_s={d.t_student} T_t={d.t_teacher}")
        )
        self._write(
            f"{d.mode} · {info.arch} · {info.dataset} · {info.device} · {windows} · {info.num_parameters:,} parameters"
        )
        if info.allocator is not None:
            self._write(info.allocator.line())
        self._write("  ".join(f"{c:>8}" for c in self.COLUMNS))

    def after_step(self, record):
        if self.bar is not None:
            self.bar.n = record["step"]
            self.bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['acc_student']:.2f}", refresh=False)
            self.bar.refresh()

    def after_epoch(self, record):
        cells = [
            record["epoch"],
            record.get("loss"),
            record.get("loss_tsd"),
            record.get("loss_ssd"),
            record.get("loss_sw"),
            record.get("acc_student"),
            record.get("acc_teacher"),
            record.get("acc_weak"),
            record.get("agreement"),
            record.get("test_acc"),
            record.get("epoch_s"),
        ]
        self._write("  ".join(_cell(c) for c in cells))

    def after_fit(self, result):
        if self.bar is not None:
            self.bar.close()
        accs = "  ".join(f"n={t}: {a:.2%}" for t, a in sorted(result.test_acc.items()))
        self._write(f"test accuracy by window ({result.stopped}): {accs}")

    def on_error(self, exc):
        if self.bar is not None:
            self.bar.close()

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.file)
        else:
            print(text, file=self.file, flush=True)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return f"{'-':>8}"
    if isinstance(v, int):
        return f"{v:>8d}"
    return f"{v:>8.4f}"
