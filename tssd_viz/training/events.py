"""What `fit()` tells its observers before the first step and after the last (STYLE 6).

The types live here, beside the observers and below the trainer, so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import TSSDConfig

if TYPE_CHECKING:
    from ..data import Dataset
    from ..snn.models import SpikingNet
    from .allocator import InUse


@dataclass(frozen=True)
class FitInfo:
    """What observers learn before the first step (`Observer.before_fit`).

    Attributes:
        cfg: the run's configuration.
        dataset: the dataset's name.
        classes: class names; index = label.
        arch: the backbone.
        device: where it trains.
        num_parameters: of the network.
        layers: the LIF layers, in forward order.
        steps_per_epoch: optimiser steps per epoch.
        total_steps: of the whole run.
        start_step: 0, or where a resumed run continues.
        run_dir: the run folder, or None.
        allocator: the malloc of the training process.
    """

    cfg: TSSDConfig
    dataset: str
    classes: tuple[str, ...]
    arch: str
    device: str
    num_parameters: int
    layers: tuple[str, ...]
    steps_per_epoch: int
    total_steps: int
    start_step: int
    run_dir: Path | None
    allocator: InUse | None = None  # the malloc of the training process


@dataclass(frozen=True)
class FitResult:
    """What `fit` returns.

    Attributes:
        cfg: the run's configuration.
        model: the trained network.
        dataset: the dataset it trained on.
        test_acc: window n -> test accuracy, n = 1..T_t.
        stopped: "done", "time_budget" or "cancelled".
        steps: optimiser steps taken.
        train_seconds: time spent training.
        run_dir: the run folder, or None.
    """

    cfg: TSSDConfig
    model: SpikingNet
    dataset: Dataset
    test_acc: dict[int, float]  # window n -> test accuracy, n = 1..T_t
    stopped: str  # "done", "time_budget" or "cancelled"
    steps: int
    train_seconds: float
    run_dir: Path | None
