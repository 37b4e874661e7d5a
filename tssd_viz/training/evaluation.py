"""What a trained network does, measured without training it: accuracy of every window, of every
timestep alone, early exit, the margins its teachers had over their students, and batch-norm
statistics that match the weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..config import TSSDConfig
from ..snn.frames import WindowFrames
from ..snn.losses import rank_by_confidence, rank_timesteps, timestep_confidence
from ..snn.models import SpikingNet

EXIT_THRESHOLDS = (0.5, 0.8, 0.9, 0.95)  # the early-exit table of every finished run (SPEC §10)
TRAIN_EVAL_IMAGES = 10_000  # training images (unaugmented) whose accuracy gives a run's train-test gap


def _window_means(
    model: SpikingNet, x: WindowFrames, windows: Iterable[int], bn: Mapping[int, dict[str, Tensor]] | None = None
) -> list[Tensor]:
    """Each whole-recording window's mean logits (B, K), one pass per window on its own binning (and with its own
    batch-norm statistics when `bn` has them)."""
    means = []
    for n in windows:
        if bn is not None:
            load_bn_state(model, bn[n])
        means.append(model(x, n).logits.float().mean(0))
    return means


def bn_state(model: nn.Module) -> dict[str, Tensor]:
    """A copy of every batch-norm buffer (running mean, variance, batches tracked), by buffer name."""
    norms = {n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    return {k: v.clone() for k, v in model.named_buffers() if k.rpartition(".")[0] in norms}


def load_bn_state(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Put batch-norm buffers saved by `bn_state` back (in place)."""
    for k, v in model.named_buffers():
        if k in state:
            v.copy_(state[k])


@torch.no_grad()
def window_bn_stats(
    model: SpikingNet, batches: Sequence, windows: Iterable[int], device: torch.device | None = None
) -> dict[int, dict[str, Tensor]]:
    """Whole-recording windows (SPEC §12): per window n, the batch-norm statistics re-estimated on the training
    `batches` (x, y) binned into n frames, at n steps. A window's frames and spike rates differ from another's,
    so each is judged with statistics of its own. Leaves the model holding the last window's statistics."""
    stats = {}
    for n in windows:
        recompute_bn_stats(model, [(x[n], y) for x, y in batches], n, device)
        stats[n] = bn_state(model)
    return stats


@torch.no_grad()
def evaluate(
    model: SpikingNet,
    loader: Iterable,
    T: int,
    device: torch.device | None = None,
    windows: Sequence[int] | None = None,
    bn: Mapping[int, dict[str, Tensor]] | None = None,
) -> list[float]:
    """Test accuracy of every window n = 1..T (or of `windows` only), from one T-step pass per batch (eval mode).

    Args:
        loader: yields (x, y); whole-recording event windows (`WindowFrames`): one pass per n on its own binning,
            with its own batch-norm statistics when `bn` (n -> `bn_state`, from `window_bn_stats`) is given.

    Returns:
        Accuracies as fractions, one per window.
    """
    windows = list(range(1, T + 1)) if windows is None else list(windows)
    was_training = model.training
    model.eval()
    correct, total = torch.zeros(len(windows)), 0
    for x, y in loader:
        if device is not None:
            x, y = x.to(device), y.to(device)
        if isinstance(x, WindowFrames):
            running = torch.stack(_window_means(model, x, windows, bn)).argmax(-1)  # (len(windows), B)
        else:
            logits = model(x, T).logits.float()  # (T, B, K)
            running = logits.cumsum(0)[[n - 1 for n in windows]].argmax(-1)  # argmax of a cumulative sum = of the mean
        correct += (running == y).sum(1).cpu().float()
        total += y.shape[0]
    model.train(was_training)
    return (correct / max(total, 1)).tolist()


def whole_recording_bn(
    model: SpikingNet, ds: Any, cfg: TSSDConfig, step: int, device: torch.device | None = None
) -> dict[int, dict[str, Tensor]] | None:
    """For a network evaluated outside its training (`python -m tssd_viz evaluate`): the per-window statistics
    of a whole-recording run (`window_bn_stats`, windows 1..T_t) from the batches its training used at `step`
    (the same loader settings as training's: seed + 1, augmented as `train.bn_augment` says, one process).
    The model keeps the statistics it had. None for other runs (one set of statistics serves every window)."""
    from ..data.loader import Loader

    tc = cfg.train
    if tc.bn_stats != "recompute" or cfg.data.windowing != "whole_recording":
        return None
    augment = cfg.data.augment and tc.bn_augment
    loader = Loader(
        ds.train, ds, cfg.data.batch_size, train=True, augment=augment, seed=tc.seed + 1, device=device or "cpu"
    )
    loader.set_epoch(step)
    kept = bn_state(model)
    stats = window_bn_stats(model, list(itertools.islice(loader, tc.bn_batches)), range(1, cfg.distill.t_teacher + 1))
    load_bn_state(model, kept)
    return stats


@torch.no_grad()
def recompute_bn_stats(model: SpikingNet, batches: Iterable, T: int, device: torch.device | None = None) -> int:
    """Replace every batch-norm layer's running mean and variance by their exact average over `batches`.

    Why: eval-mode batch norm normalises with running averages (momentum 0.1), which describe the
    weights of the last ~10-20 steps. Early in training the weights move faster than that average
    follows, so a short run evaluated with them can sit at chance while its training batches are
    mostly right. Re-estimating the statistics with the current weights ("precise BN") makes the
    evaluation describe the network that is being evaluated. Runs the train-mode forward at `T`
    timesteps without gradients; weights and optimizer are untouched. Returns the batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    was_training, momenta = model.training, [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over every batch seen since the reset
    model.train()
    used = 0
    try:
        for x, _ in batches:
            if device is not None:
                x = x.to(device)
            model(x, T)
            used += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return used


@dataclass(frozen=True)
class Outputs:
    """Every output of a T-step eval pass over a loader: logits (T, N, K), weak head (T, N, K) or None, labels (N,)."""

    logits: Tensor
    weak: Tensor | None
    labels: Tensor
    # (T, N, K) the prediction of window n = 1..T from its own binning of each recording (whole-recording
    # event windows, SPEC §12); None: window n is the first n steps of `logits`
    windows: Tensor | None = None

    def acc_by_window(self) -> list[float]:
        """Accuracy of the window of the first n steps, n = 1..T (of window n's own pass, with `windows`)."""
        if self.windows is not None:
            return (self.windows.argmax(-1) == self.labels).float().mean(1).tolist()
        return (self.logits.cumsum(0).argmax(-1) == self.labels).float().mean(1).tolist()

    def acc_weak(self, t_student: int) -> float | None:
        """Accuracy of the weak head over the student window (None without a weak head)."""
        if self.weak is None:
            return None
        return (self.weak[:t_student].mean(0).argmax(-1) == self.labels).float().mean().item()

    def acc_by_timestep(self) -> list[float]:
        """Accuracy of each timestep's output z(t) alone, t = 1..T."""
        return (self.logits.argmax(-1) == self.labels).float().mean(1).tolist()


@torch.no_grad()
def collect_outputs(
    model: SpikingNet,
    loader: Iterable,
    T: int,
    device: torch.device | None = None,
    bn: Mapping[int, dict[str, Tensor]] | None = None,
) -> Outputs:
    """One T-step pass per batch in eval mode, every output kept (float32, on the CPU).

    Args:
        loader: yields (x, y); `WindowFrames` also get a pass per window n on its own binning (`bn`: see `evaluate`).

    Returns:
        Logits (T, N, K), weak head, labels (N,) and, for such windows, `Outputs.windows`.
    """
    was_training = model.training
    model.eval()
    logits, weak, labels, windows = [], [], [], []
    try:
        for x, y in loader:
            if device is not None:
                x = x.to(device)
            shorter = _window_means(model, x, range(1, T), bn) if isinstance(x, WindowFrames) else []
            if bn is not None and isinstance(x, WindowFrames):
                load_bn_state(model, bn[T])
            out = model(x, T)
            logits.append(out.logits.float().cpu())
            if out.weak_logits is not None:
                weak.append(out.weak_logits.float().cpu())
            if isinstance(x, WindowFrames):
                # The last window is the T-step pass just run: only the shorter ones need passes of their own.
                windows.append(torch.stack(shorter + [out.logits.float().mean(0)]).cpu())
            labels.append(y.cpu())
    finally:
        model.train(was_training)
    if not labels:
        raise ValueError("the loader yielded no images")
    weak_all, windows_all = (torch.cat(w, 1) if w else None for w in (weak, windows))
    return Outputs(torch.cat(logits, 1), weak_all, torch.cat(labels), windows_all)


@dataclass(frozen=True)
class ExitPoint:
    """Early exit at one confidence threshold: accuracy, and the timesteps an image used on average."""

    threshold: float
    acc: float
    mean_timesteps: float

    def as_dict(self) -> dict[str, float]:
        return {"threshold": self.threshold, "acc": self.acc, "mean_timesteps": self.mean_timesteps}


def exit_points(logits: Tensor, labels: Tensor, thresholds: Sequence[float]) -> list[ExitPoint]:
    """Early exit read off a full pass: what stopping would give, as in eval mode an SNN is causal (images independent).

    Args:
        logits: (T, N, K); labels: (N,).
        thresholds: an image stops at the first t whose running prediction (mean of z(1..t)) has a largest softmax
            probability >= the threshold, else at T, and answers with that running prediction.

    Returns:
        One `ExitPoint` per threshold.
    """
    T = logits.shape[0]
    running = logits.cumsum(0) / torch.arange(1, T + 1).view(T, 1, 1)
    confidence = torch.softmax(running, -1).amax(-1)  # (T, N)
    correct = running.argmax(-1) == labels  # (T, N)
    points = []
    for th in thresholds:
        reached = confidence >= th
        reached[-1] = True  # an image that never reaches the threshold answers at T
        t_exit = reached.float().argmax(0)  # the first timestep (0-based) that reached it
        acc = correct.gather(0, t_exit.unsqueeze(0)).float().mean().item()
        points.append(ExitPoint(float(th), acc, (t_exit + 1).float().mean().item()))
    return points


def early_exit(
    model: SpikingNet, loader: Iterable, T: int, threshold: float, device: torch.device | None = None
) -> ExitPoint:
    """Accuracy and mean timesteps used when each image stops at its first confident timestep (see `exit_points`).

    Args:
        threshold: the running prediction's largest softmax probability that stops an image (at most `T` steps).

    Returns:
        The exit point.
    """
    out = collect_outputs(model, loader, T, device)
    return exit_points(out.logits, out.labels, [threshold])[0]


def teacher_margins(out: Outputs, cfg: TSSDConfig) -> dict[str, Any]:
    """What each possible teacher knows more than its student at the end of training, in accuracy (SPEC §10).

    Args:
        out: a T_t-step pass's outputs; cfg: the run's config.

    Returns:
        temporal: window T_t minus window T_s; spatial: the final output that teaches the weak head minus the weak
        head; timestep: the T_s window's most confident timestep (over the split) minus its least confident;
        `teacher_margin`: the mode's own (w2s: the weakest teaches, so minus `timestep`; baseline: None).
    """
    d = cfg.distill
    windows = out.acc_by_window()
    margins: dict[str, Any] = {"temporal": windows[d.t_teacher - 1] - windows[d.t_student - 1]}
    weak_acc = out.acc_weak(d.t_student)
    if weak_acc is not None:
        teacher_n = d.t_teacher if d.ssd_teacher == "teacher" else d.t_student
        margins["spatial"] = windows[teacher_n - 1] - weak_acc
    if d.t_student >= 2:
        order = rank_timesteps(out.logits[: d.t_student])
        single = out.acc_by_timestep()
        margins["timestep"] = single[order[0]] - single[order[-1]]
    mode = {"tsd": "temporal", "tssd": "temporal", "ssd": "spatial", "s2w": "timestep", "w2s": "timestep"}.get(d.mode)
    own = margins.get(mode) if mode else None
    return {"margins": margins, "teacher_margin": (-own if d.mode == "w2s" else own) if own is not None else None}


def analysis(out: Outputs, cfg: TSSDConfig, thresholds: Sequence[float] = EXIT_THRESHOLDS) -> dict[str, Any]:
    """The end-of-training analysis record's fields (SPEC §10).

    Args:
        out: a full pass's outputs; cfg: the run's config; thresholds: of the early-exit table.

    Returns:
        Per-timestep accuracy and confidence, the T_s window's strongest and weakest timestep (1-based), the weak
        head's accuracy, teacher margins and the early-exit table at T_s.
    """
    d = cfg.distill
    confidence = timestep_confidence(out.logits)
    fields: dict[str, Any] = {
        "split": "test",
        "images": int(out.labels.shape[0]),
        "acc_by_timestep": out.acc_by_timestep(),
        "confidence_by_timestep": confidence.tolist(),
        "acc_weak": out.acc_weak(d.t_student),
        **teacher_margins(out, cfg),
        "early_exit": [p.as_dict() for p in exit_points(out.logits[: d.t_student], out.labels, thresholds)],
    }
    if d.t_student >= 2:
        order = rank_by_confidence(confidence[: d.t_student])
        fields.update(strongest=order[0] + 1, weakest=order[-1] + 1)
    return fields
