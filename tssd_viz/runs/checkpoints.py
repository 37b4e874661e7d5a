"""Checkpoints: written atomically, read with `weights_only=True`, refused clearly when foreign.

A training checkpoint holds everything needed to continue a run exactly; an exported student holds
the student network alone (weak head dropped) and its config. Both are plain dicts of tensors and
primitives, so they load without unpickling arbitrary objects.

Each carries "sha256", a checksum of everything else in it (every tensor's bytes, dtype and shape, every
number and string, by key): a flipped bit in a weight is refused on loading, where the file format
alone would load it silently. A checkpoint saved before checksums has none and loads as it did.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_bytes

FORMAT_TRAIN = "tssd-viz/checkpoint/1"
FORMAT_STUDENT = "tssd-viz/student/1"
CHECKSUM = "sha256"  # the payload key of the checksum over all the others


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


def checksum(payload: Mapping[str, Any]) -> str:
    """sha256 over every entry of `payload` but the checksum itself, walked in sorted key order."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in payload.items() if k != CHECKSUM}, "")
    return digest.hexdigest()


def _feed(digest: Any, value: Any, where: str) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        digest.update(f"{where}:tensor:{t.dtype}:{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())  # the raw bytes, whatever the dtype
    elif isinstance(value, Mapping):
        for key in sorted(value, key=repr):
            _feed(digest, value[key], f"{where}/{key!r}")
        digest.update(f"{where}:map:{len(value)}\n".encode())
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _feed(digest, item, f"{where}[{i}]")
        digest.update(f"{where}:seq:{len(value)}\n".encode())
    else:  # None, bool, int, float, str: what weights_only loads besides tensors
        digest.update(f"{where}:{type(value).__name__}:{value!r}\n".encode())


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """`payload` with its checksum, written atomically."""
    buf = io.BytesIO()
    torch.save({**payload, CHECKSUM: checksum(payload)}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())  # a crash mid-write leaves the old file intact


def load_checkpoint(
    path: str | os.PathLike,
    expect: tuple[str, ...] = (FORMAT_TRAIN, FORMAT_STUDENT),
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Read a checkpoint file, checked: its format and, when it has one, its checksum.

    Args:
        path: the .pt file.
        expect: the formats accepted (training checkpoint, exported student).
        map_location: where tensors are loaded to.

    Returns:
        The payload (model state, config, and the entries of its format).

    Raises:
        CheckpointError: one line: the file is missing, corrupt, of another kind, or fails its checksum.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # UnpicklingError, BadZipFile, EOFError, OSError; on foreign bytes IndexError, KeyError...
        raise CheckpointError(
            f"{path} is not a readable tssd-viz checkpoint (corrupt, truncated, or saved by other code): "
            f"{first_sentences(str(e)) or type(e).__name__}"
        ) from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt not in expect:
        raise CheckpointError(
            f"{path} is not a tssd-viz checkpoint of the expected kind ({' or '.join(expect)}); "
            f"found format {str(fmt)[:60]!r}"
        )
    saved = payload.get(CHECKSUM)
    if saved is not None and saved != checksum(payload):  # None: saved before checksums, loaded as then
        raise CheckpointError(f"{path} does not match the checksum saved with it: the file was changed or damaged")
    return payload
