"""Trained networks out of checkpoints: load one to evaluate or inspect, export the student.

The CLI (`evaluate`, `export`), the dashboard's Inspect page and the lessons all load through here.
Checkpoints are read with `weights_only=True` (tssd_viz.checkpoints): a file never runs code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoints import FORMAT_STUDENT, FORMAT_TRAIN, CheckpointError, load_checkpoint, save_checkpoint
from .config import TSSDConfig
from .models import SpikingNet, build_model, count_parameters


@dataclass(frozen=True)
class Trained:
    """A network as it was saved: its config, the model in eval mode, and what the checkpoint says of it."""

    cfg: TSSDConfig
    model: SpikingNet
    classes: tuple[str, ...]
    is_student: bool  # an exported student (no weak head), not a training checkpoint
    payload: dict[str, Any]  # the checkpoint's other entries (step, best_acc, ...)
    path: Path  # where it was read from

    @property
    def t_eval(self) -> int:
        """The largest window worth evaluating: T_s for a student, T_t for a training checkpoint."""
        return self.cfg.distill.t_student if self.is_student else self.cfg.distill.t_teacher


def load_trained(path: str | os.PathLike, cfg: TSSDConfig | None = None) -> Trained:
    """The network in checkpoint `path` (a training checkpoint or an exported student), in eval mode.

    `cfg` replaces the saved config (e.g. to read the test images from another data root); its
    model section must describe the saved network.
    """
    path = Path(path)
    payload = load_checkpoint(path, (FORMAT_TRAIN, FORMAT_STUDENT))
    cfg = cfg or TSSDConfig.from_dict(payload["config"])
    student = payload["format"] == FORMAT_STUDENT
    model = build_model(
        cfg.model, payload["in_channels"], payload["num_classes"], weak_head=cfg.uses_weak_head and not student
    )
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        raise CheckpointError(
            f"{path} does not fit the network its config describes: {str(e).splitlines()[0]}"
        ) from None
    return Trained(cfg, model.eval(), tuple(payload.get("classes") or ()), student, payload, path)


def export_student(trained: Trained, out: str | os.PathLike) -> tuple[int, int]:
    """Save the student of a training checkpoint to `out`: the backbone and final classifier, the
    weak head dropped (it exists only for training). Returns (parameters trained, parameters kept)."""
    if trained.is_student:
        raise CheckpointError(f"{trained.path} is already an exported student")
    cfg, payload = trained.cfg, trained.payload
    state = {k: v for k, v in payload["model"].items() if not k.startswith("weak_head.")}
    student = build_model(cfg.model, payload["in_channels"], payload["num_classes"], weak_head=False)
    student.load_state_dict(state)
    save_checkpoint(
        Path(out),
        {
            "format": FORMAT_STUDENT,
            "config": cfg.to_dict(),
            "model": state,
            "in_channels": payload["in_channels"],
            "num_classes": payload["num_classes"],
            "classes": list(trained.classes),
        },
    )
    return count_parameters(trained.model), count_parameters(student)
