"""Atomic file writes: a reader of the path sees the old file or the new one, never half of either.

Every file a reader may open while it is being written (run-folder files, checkpoints, probe
snapshots, the dataset cache) is written to a temporary file beside it, flushed to disk and renamed.
A write that the disk refuses (full, read-only, not ours) leaves the old file as it was and raises
`StorageError`, whose message is one line naming the folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any


class StorageError(RuntimeError):
    """The disk refused a write (no space left, read-only, no permission): one line naming the folder."""


def storage_error(path: Path, exc: OSError) -> StorageError:
    """`exc`, raised while writing `path`, said in one line that names the folder."""
    folder, name = Path(path).parent, Path(path).name
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"no space left in {folder}: {name} was not written (free some space, then resume)")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(f"cannot write in {folder}: {name} was not written ({os.strerror(exc.errno).lower()})")
    return StorageError(f"cannot write {name} in {folder}: {exc.strerror or exc}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; these files are as shareable as any other
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise storage_error(path, exc) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def append_line(path: Path, line: str) -> None:
    """Append one whole line, or nothing: a write the disk refuses is cut back off (no torn line kept)."""
    data = (line + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise storage_error(Path(path), exc) from None
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        written = 0
        while written < len(data):  # O_APPEND: each write lands at the end
            written += os.write(fd, data[written:])
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise storage_error(Path(path), exc) from None
    finally:
        os.close(fd)
