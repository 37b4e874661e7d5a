"""Trained networks out of checkpoints: load one to evaluate or inspect, export the student.

The CLI (`evaluate`, `export`), the dashboard's Inspect page and the lessons all load through here.
Checkpoints are read with `weights_only=True` (tssd_viz.runs.checkpoints): a file never runs code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, TSSDConfig
from ..snn.models import SpikingNet, build_model, count_parameters
from ..validation import validate
from .checkpoints import FORMAT_STUDENT, FORMAT_TRAIN, CheckpointError, load_checkpoint, save_checkpoint


@dataclass(frozen=True)
class Trained:
    """A network as it was saved: its config, the model in eval mode, and what the checkpoint says of it.

    Attributes:
        cfg: the run's configuration.
        model: the network, in eval mode.
        classes: class names; index = label.
        is_student: an exported student (no weak head), not a training checkpoint.
        payload: the checkpoint's other entries (step, best_acc, ...).
        path: where it was read from.
    """

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

    Args:
        path: the checkpoint file.
        cfg: replaces the saved config (e.g. to read the test images from another data root); its
            model section must describe the saved network.

    Returns:
        The network and what the checkpoint says of it.

    Raises:
        CheckpointError: the file or its config is not a readable tssd-viz checkpoint.
    """
    path = Path(path)
    payload = load_checkpoint(path, (FORMAT_TRAIN, FORMAT_STUDENT))
    saved = _checked(payload, path)
    cfg = cfg or saved
    student = payload["format"] == FORMAT_STUDENT
    model = build_model(
        cfg.model, payload["in_channels"], payload["num_classes"], weak_head=cfg.uses_weak_head and not student
    )
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, TypeError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{path} does not fit the network its config describes: {(str(e) or type(e).__name__).splitlines()[0]}"
        ) from None
    return Trained(cfg, model.eval(), tuple(payload.get("classes") or ()), student, payload, path)


MAX_CLASSES = 1_000_000  # far beyond any dataset here: a larger head is a damaged field, not a network


def _checked(payload: dict[str, Any], path: Path) -> TSSDConfig:
    """The checkpoint's config, validated as a run's is, and its other fields of the types a network is built
    from; anything else is a `CheckpointError` of one line naming the file and the field."""
    try:
        cfg = validate(TSSDConfig.from_dict(payload.get("config")))
    except ConfigError as e:
        raise CheckpointError(f"{path}: its config is not a valid tssd-viz config: {e}") from None
    for key, hi in (("in_channels", 1024), ("num_classes", MAX_CLASSES)):
        value = payload.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise CheckpointError(f"{path}: {key} must be a whole number from 1 to {hi}, got {str(value)[:40]!r}")
    state = payload.get("model")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: model must map parameter names to tensors")
    classes = payload.get("classes")
    if classes is not None and not (isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes)):
        raise CheckpointError(f"{path}: classes must be a list of class names")
    return cfg


def export_student(trained: Trained, out: str | os.PathLike) -> tuple[int, int]:
    """Save the student of a training checkpoint to `out`: the backbone and final classifier.

    The weak head is dropped: it exists only for training.

    Args:
        trained: a training checkpoint, from `load_trained`.
        out: the file to write.

    Returns:
        (parameters trained, parameters kept).

    Raises:
        CheckpointError: `trained` is already an exported student.
    """
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
