"""Where training is and how it comes back: the `Position` that last.pt saves, the checkpoints a run writes
(`Checkpoints.save`: last.pt after every epoch, best.pt when the test accuracy at T_s improved) and the
resume that reads last.pt back (`Checkpoints.restore`), a cut epoch's partial means included (SPEC §8).

The file format is runs/checkpoints.py's; this module decides what goes into it and what comes out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import TSSDConfig
from ..data import Dataset
from ..runs.checkpoints import FORMAT_TRAIN, CheckpointError, load_checkpoint, save_checkpoint
from ..runs.folders import RunFolder
from ..runs.unreadable import first_line
from ..snn.models import SpikingNet
from .step import EpochMeans


@dataclass
class Position:
    """Where training is: what last.pt saves and a resume restores."""

    step: int = 0  # optimizer steps taken
    elapsed: float = 0.0  # seconds spent in training steps: the wall_s clock of the records
    best: float = -1.0  # best test accuracy at T_s so far (best.pt holds those weights)
    records: int = 0  # metrics records emitted: metrics.jsonl's line count, kept on resume


class Checkpoints:
    """last.pt and best.pt of one run folder, written by the rank that writes (`writes`) and read by every rank."""

    def __init__(
        self,
        cfg: TSSDConfig,
        ds: Dataset,
        model: SpikingNet,
        optimizer: torch.optim.Optimizer,
        folder: RunFolder,
        writes: bool,
        emit: Callable[..., None],
    ):
        self.cfg, self.ds, self.model, self.optimizer = cfg, ds, model, optimizer
        self.folder, self.writes, self._emit = folder, writes, emit

    def save(self, name: str, at: Position, partial: EpochMeans | None) -> None:
        """checkpoints/{name}.pt: the weights, the optimizer, `at` and a cut epoch's means (`partial`)."""
        if not self.writes:
            return
        path, ds = self.folder.checkpoints_dir / f"{name}.pt", self.ds
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
                "epoch_means": means_state(partial),
                "rng": torch.get_rng_state(),
                "num_classes": ds.num_classes,
                "in_channels": ds.in_channels,
                "classes": list(ds.classes),
            },
        )
        self._emit("on_checkpoint", path)

    def restore(self, device: torch.device) -> tuple[Position, EpochMeans | None] | None:
        """Weights and optimizer come back from last.pt, with the position in the data, the clock and a cut
        epoch's means (returned); None without last.pt (then training starts clean, from step 0)."""
        path = self.folder.checkpoint_path("last")
        if not path.exists():
            if self.writes:
                self.folder.truncate_metrics(0)  # killed before the first checkpoint: start clean, from step 0
            return None
        ck = load_checkpoint(path, (FORMAT_TRAIN,), map_location=device)
        try:
            self.model.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimizer"])
            at = Position(ck["step"], ck["elapsed_s"], ck["best_acc"], ck["metrics_lines"])
            partial = means_from(ck.get("epoch_means"))
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise CheckpointError(
                f"{path} does not fit the network of {self.folder.config_path} (was either file changed?): "
                f"{first_line(e)}"
            ) from None
        if self.writes:
            self.folder.truncate_metrics(ck["metrics_lines"])  # records after last.pt are redone
        torch.set_rng_state(ck["rng"])
        return at, partial


def means_state(means: EpochMeans | None) -> dict[str, Any] | None:
    """A cut epoch's partial sums as plain floats and lists (last.pt loads with weights_only=True)."""
    if means is None:
        return None
    sums = {
        k: ({n: float(x) for n, x in v.items()} if isinstance(v, dict) else v.tolist()) for k, v in means.sums.items()
    }
    return {"start_elapsed": means.start_elapsed, "sums": sums, "counts": dict(means.counts), "count": means.count}


def means_from(state: dict[str, Any] | None) -> EpochMeans | None:
    """The `EpochMeans` that `means_state` saved (None for None)."""
    if state is None:
        return None
    means = EpochMeans(start_elapsed=state["start_elapsed"])
    means.sums = {
        k: ({n: np.float64(x) for n, x in v.items()} if isinstance(v, dict) else np.asarray(v, dtype=np.float64))
        for k, v in state["sums"].items()
    }
    means.counts, means.count = dict(state["counts"]), state["count"]
    return means
