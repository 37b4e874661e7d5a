"""One optimisation step of SPEC §4-7 and what it reports: the forward pass over the windows, the
TSSD loss, backward and update, then the step's distillation signals as plain numbers.

`fit()` (training/fit.py) runs these in a loop; the benchmark times `forward_windows` on its own.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..config import TSSDConfig
from ..snn.losses import (
    LossParts,
    Windows,
    accuracy_by_window,
    agreement,
    kd_kl,
    rank_by_confidence,
    timestep_confidence,
    tssd_loss,
    windows,
)
from ..snn.models import ModelOutput, SpikingNet
from ..snn.record import Recording, record


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run stopped before that step changed the weights."""


def lr_factor(progress: float, schedule: str, warmup: float) -> float:
    """Learning-rate multiplier at `progress` in [0, 1] of training.

    Hand-written rather than a torch scheduler because progress here is the larger of the step
    fraction and the time-budget fraction: a 120-second run anneals to zero at 120 seconds.
    """
    p = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if warmup > 0 and p < warmup:
        return p / warmup
    q = (p - warmup) / (1 - warmup) if warmup < 1 else 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * q))
    return 1.0 - q  # onecycle: linear warm-up, then linear decay to zero


def make_optimizer(model: nn.Module, cfg: TSSDConfig) -> torch.optim.Optimizer:
    t = cfg.train
    # No weight decay on batch-norm and bias parameters: decaying them only fights the normalisation.
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=t.lr)
    return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.momentum > 0)


def forward_windows(model: SpikingNet, x: Tensor, cfg: TSSDConfig) -> tuple[ModelOutput, ModelOutput | None]:
    """The training forward pass(es) of SPEC §4: (student-pass output, separate teacher output or None)."""
    d = cfg.distill
    T = cfg.train_timesteps
    if T == d.t_student or d.tsd_pass == "shared":
        return model(x, T), None
    if d.tsd_pass == "separate":
        return model(x, d.t_student), model(x, T)
    # "continue": the extra teacher steps carry on from the student's membrane states without a
    # graph; valid only when nothing needs their gradient (validate() checks the switches).
    out = model(x, d.t_student, keep_state=True)
    with torch.no_grad():
        rest = model(x, T - d.t_student, state=out.state)
    return ModelOutput(out.logits, out.weak_logits), ModelOutput(torch.cat([out.logits.detach(), rest.logits]), None)


@dataclass(frozen=True)
class StepResult:
    """What one training step computed, for its signals (nothing here keeps a graph)."""

    parts: LossParts  # every loss term, by name
    windows: Windows  # student / teacher / weak-head logits of the step
    longest: Tensor  # (T, B, K) per-timestep logits of the longest window, detached, float32
    rates: Recording | None  # each LIF layer's firing rate during the step, when asked for

    def signals(self, y: Tensor, lr: float) -> dict[str, Any]:
        """The step's record fields of SPEC §7-8: cheap reductions of tensors already computed."""
        win = self.windows
        out = {
            **{k: v for k, v in self.parts.as_floats().items() if k != "ce_student"},
            "acc_student": _acc(win.student, y),
            "acc_teacher": _acc(win.teacher, y),
            "acc_weak": _acc(win.weak, y),
            "agreement": agreement(win.teacher, win.student) if win.teacher is not None else None,
            "kl": _kl(win.teacher, win.student),
            "lr": lr,
            "acc_by_window": accuracy_by_window(self.longest, y),
        }
        if win.steps is not None and win.steps.shape[0] >= 2:
            out.update(timestep_signals(win.steps))
        if self.rates is not None:
            out["firing_rate"] = dict(self.rates.firing_rate)
        return out


def timestep_signals(steps: Tensor) -> dict[str, list[float]]:
    """The student window's timesteps as sub-models (SPEC §10), in every mode: each one's confidence, and
    which one was the strongest and the weakest (one-hot, so an epoch's mean is each timestep's share)."""
    confidence = timestep_confidence(steps)  # one softmax: the ranking reads the same numbers
    return {"confidence_by_timestep": confidence.tolist(), **extremes(rank_by_confidence(confidence))}


def extremes(order: list[int]) -> dict[str, list[float]]:
    """The strongest and the weakest timestep of a ranking (most confident first), one-hot over the timesteps."""
    T = len(order)
    return {
        "strongest_by_timestep": [float(t == order[0]) for t in range(T)],
        "weakest_by_timestep": [float(t == order[-1]) for t in range(T)],
    }


def train_step(
    model: SpikingNet | nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    cfg: TSSDConfig,
    autocast: torch.autocast,
    with_rates: bool,
    step: int,
) -> StepResult:
    """Training step number `step`: forward every window and the TSSD loss (under `autocast`), backward, SGD.
    With `with_rates`, the result also holds each LIF layer's firing rate over the step.
    Raises `TrainingDiverged`, before the weights change, when the loss is not finite."""
    d = cfg.distill
    # Under DDP the network is `model.module`: its layers are recorded under their own names.
    rate_probe = record(getattr(model, "module", model), spikes=False, membrane=False) if with_rates else nullcontext()
    with autocast, rate_probe as rates:
        out, teacher_out = forward_windows(model, x, cfg)
        win = windows(out, d.t_student, teacher_out)
        parts = tssd_loss(win, y, d, cfg.train.label_smoothing)
    _check_finite(parts, step)
    optimizer.zero_grad(set_to_none=True)
    parts.loss.backward()
    optimizer.step()
    return StepResult(parts, win, (teacher_out or out).logits.detach().float(), rates)


def _check_finite(parts: LossParts, step: int) -> None:
    """Stop at the first non-finite loss, naming the most specific part that is not finite.

    One device sync per step; the records read every part as a float right after anyway.
    """
    if torch.isfinite(parts.loss.detach()).item():
        return
    values = parts.as_floats()
    name = next(
        (
            k
            for k in ("loss_tsd", "loss_ssd", "loss_sw", "ce_teacher", "ce_weak", "loss_task")
            if values[k] is not None and not math.isfinite(values[k])
        ),
        "loss",
    )
    raise TrainingDiverged(
        f"the {name} became {values[name]} at step {step}; training stopped before this step "
        "changed the weights (a lower train.lr or smaller loss weights may help)"
    )


def _acc(logits: Tensor | None, y: Tensor) -> float | None:
    return None if logits is None else (logits.detach().argmax(-1) == y).float().mean().item()


def _kl(teacher: Tensor | None, student: Tensor | None) -> float | None:
    """KL(teacher || student) at temperature 1, batch mean: how far the student is from its teacher."""
    if teacher is None or student is None:
        return None
    return kd_kl(teacher.detach().float(), student.detach().float(), temperature=1.0).item()


class EpochMeans:
    """Means over one epoch of the step signals: numbers, lists (elementwise) and dicts (per key).

    Each key is averaged over the steps that carried it (a None is skipped): the loss parts over
    every step, firing rates over the steps that recorded them.
    """

    def __init__(self, start_elapsed: float = 0.0) -> None:
        self.start_elapsed = start_elapsed  # the training clock when the epoch started
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.count = 0  # steps added

    def add(self, rec: dict[str, Any]) -> None:
        self.count += 1
        for k, v in rec.items():
            if v is None:
                continue
            if isinstance(v, dict):
                v = {name: np.float64(x) for name, x in v.items()}
                old = self.sums.get(k, {})
                self.sums[k] = {name: old.get(name, 0.0) + x for name, x in v.items()}
            else:
                self.sums[k] = self.sums.get(k, 0.0) + np.asarray(v, dtype=np.float64)
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, total in self.sums.items():
            n = self.counts[k]
            if isinstance(total, dict):
                out[k] = {name: float(x / n) for name, x in total.items()}
            else:
                mean = total / n
                out[k] = mean.tolist() if mean.ndim else float(mean)
        return out
