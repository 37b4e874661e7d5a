"""Checkpoints: written atomically, read with `weights_only=True`, refused clearly when foreign.

A training checkpoint holds everything needed to continue a run exactly; an exported student holds
the student network alone (weak head dropped) and its config. Both are plain dicts of tensors and
primitives, so they load without unpickling arbitrary objects.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write_bytes

FORMAT_TRAIN = "tssd-viz/checkpoint/1"
FORMAT_STUDENT = "tssd-viz/student/1"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, or not one of ours."""


def first_sentences(text: str, limit: int = 200) -> str:
    """The whole sentences of `text`'s first line that fit in `limit` characters (at least the first one,
    however long): a reason is shortened between sentences, never inside one."""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    sentences = re.split(r"(?<=[.!?])\s+", line)
    kept = sentences[0]
    for sentence in sentences[1:]:
        if len(kept) + 1 + len(sentence) > limit:
            break
        kept += " " + sentence
    return kept


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())  # a crash mid-write leaves the old file intact


def load_checkpoint(
    path: str | os.PathLike,
    expect: tuple[str, ...] = (FORMAT_TRAIN, FORMAT_STUDENT),
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(
            f"{path} is not a readable tssd-viz checkpoint (corrupt, truncated, or saved by other code): "
            f"{first_sentences(str(e)) or type(e).__name__}"
        ) from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt not in expect:
        raise CheckpointError(
            f"{path} is not a tssd-viz checkpoint of the expected kind ({' or '.join(expect)}); found format {fmt!r}"
        )
    return payload
