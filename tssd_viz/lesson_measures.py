"""What a lesson measures on a trained network beyond a run's own records: where the weak head taps it,
its windows' logits over a whole split, plain accuracy, the gradient norm of each part, and the cost of
one training step of several configs timed fairly on a shared machine."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from .config import TSSDConfig
from .data import Dataset, Loader
from .snn.losses import Windows, windows
from .snn.models import SpikingNet, build_model
from .snn.record import lif_layers
from .stats import Spread, spread
from .training.step import make_optimizer, train_step


def weak_head_tap(net: SpikingNet) -> str:
    """The LIF layer whose spikes the weak head reads: the last one of stage `aux_stage`.

    A stage made of the stem alone (the first stage of vgg_fast) has no LIF of its own: it ends with the stem's.

    Args:
        net: a network built with its weak head.

    Returns:
        The layer's module name, as `tv.record(net, layers=[...])` takes it.
    """
    stage = f"stages.{net.aux_stage - 1}."
    inside = [name for name in lif_layers(net) if name.startswith(stage)]
    return inside[-1] if inside else "stem_lif"


@torch.no_grad()
def split_windows(net: SpikingNet, loader: Iterable, t_student: int, t_teacher: int | None = None) -> Windows:
    """The windows of every image `loader` yields, in its order, in eval mode.

    Args:
        net: the network; its train/eval mode is restored afterwards.
        loader: batches (x, y) of one split.
        t_student: T_s, the student window.
        t_teacher: T_t; None runs T_s steps only (no teacher window).

    Returns:
        `Windows`: student z_S (N, K), teacher z_T (N, K) when `t_teacher` is given, the weak head's w (N, K)
        when the network has one, and the student window's per-timestep logits z(t), (T_s, N, K).
    """
    was_training = net.training
    net.eval()
    parts: list[Windows] = []
    for x, _ in loader:
        parts.append(windows(net(x, t_teacher or t_student), t_student))
    net.train(was_training)

    def cat(name: str) -> Tensor | None:
        got = [getattr(w, name) for w in parts]
        return None if got[0] is None else torch.cat(got)

    return Windows(cat("student"), cat("teacher"), cat("weak"), torch.cat([w.steps for w in parts], dim=1))


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of rows whose largest logit is the label.

    Args:
        logits: (N, K).
        labels: (N,) class indices.

    Returns:
        The accuracy in [0, 1].
    """
    return (logits.argmax(-1) == labels).float().mean().item()


def gradient_norms(net: SpikingNet) -> dict[str, float]:
    """The L2 norm of the gradients held by each part of the network, after a `backward()`.

    Args:
        net: the network, its gradients filled.

    Returns:
        Part name ("stem", "stage 1", ..., "final classifier", "weak head") -> norm. A part with no
        parameters of its own (a stage made of the stem alone) is left out; one whose parameters got no
        gradient reads 0.
    """
    parts = [
        ("stem", net.stem),
        *((f"stage {i}", s) for i, s in enumerate(net.stages, start=1)),
        ("final classifier", net.head),
        ("weak head", net.weak_head),
    ]
    norms = {}
    for name, module in parts:
        params = list(module.parameters()) if module is not None else []
        if params:
            squares = [p.grad.norm() ** 2 for p in params if p.grad is not None]
            norms[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms


def step_milliseconds(
    cfgs: Mapping[str, TSSDConfig], dataset: Dataset, *, rounds: int = 20, warmup: int = 3
) -> dict[str, Spread]:
    """Milliseconds per training step of each config: its model, optimizer and losses, on one batch.

    Each config is warmed up with `warmup` steps first (a first step's allocations never count), then all are
    timed round-robin, A B C A B C ..., so that a slow moment of a shared machine falls on every config alike.

    Args:
        cfgs: name -> config.
        dataset: the data the batch comes from.
        rounds: timed steps per config.
        warmup: untimed steps per config before the timing.

    Returns:
        Name -> mean ± sd over its timed steps, in milliseconds.
    """
    steppers = {}
    for name, cfg in cfgs.items():
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model, dataset.in_channels, dataset.num_classes, weak_head=cfg.uses_weak_head)
        x, y = next(iter(Loader(dataset.train, dataset, cfg.data.batch_size, train=True, seed=cfg.train.seed)))
        optimizer, autocast = make_optimizer(model, cfg), torch.autocast("cpu", enabled=False)
        steppers[name] = functools.partial(train_step, model, optimizer, x, y, cfg, autocast, False, 0)
    for step in steppers.values():
        for _ in range(warmup):
            step()
    seconds: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(rounds):
        for name, step in steppers.items():
            start = time.perf_counter()
            step()
            seconds[name].append(time.perf_counter() - start)
    return {name: spread(1000 * s for s in values) for name, values in seconds.items()}
