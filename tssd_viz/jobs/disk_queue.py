"""The job queue as it lies on disk: the run folders under a runs folder, read and claimed under one file lock.

A run folder is queued when its status.json says "queued", and the queue is those folders oldest submission
first; a run is running here when its status says "running" on this host (or, with a cluster executor,
when the cluster holds its job). `locked` takes the file lock `runs_root/.queue.lock` that every poll and
submission holds, so several browser sessions and several app processes share one queue and one limit.
A new run's folder is claimed with an atomic mkdir; a folder named by a user must lie directly inside the
runs folder. Processes are not this module's business (jobs/supervisor.py).
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import ConfigError, TSSDConfig
from ..runs.folders import RunFolder
from ..runs.listing import run_folders

LOCK_NAME = ".queue.lock"
ACTIVE = ("queued", "running")
_NAME_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # the whole name: used with fullmatch


@contextmanager
def locked(root: Path, mutex: threading.RLock) -> Iterator[None]:
    """Hold the queue: `mutex` serialises this process's threads, the file lock the processes."""
    with mutex, open(root / LOCK_NAME, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def queued_runs(root: Path) -> list[RunFolder]:
    """Queued runs in the order they will start: oldest submission first. A folder whose status.json cannot
    be read is none of them: it cannot say whether it waited, trained or finished, so starting it could train
    it twice and rewriting its status could overwrite a run; it stays listed "unreadable", saying so."""
    queued = []
    for run in run_folders(root):
        st = run.status()  # its fields of the types they should have ("time" a number, or left out)
        # Only an explicit "queued": a folder without status.json may be a CLI run still loading data.
        if st.get("state") == "queued":
            queued.append((st.get("time", 0.0), run.name, run))
    return [run for *_, run in sorted(queued, key=lambda q: (q[0], q[1]))]


def running_runs(root: Path, host: str, cluster: str | None = None) -> list[RunFolder]:
    """Runs training on `host` now (a run whose process died counts as failed, not running); with a cluster
    executor (`cluster`: its name), the runs it holds, wherever they train."""
    out = []
    for run in run_folders(root):
        st = run.status()
        if cluster is not None:
            if st.get("state") == "running" and run.read_job().get("executor") == cluster:
                out.append(run)
        elif st.get("state") == "running" and st.get("host", host) == host:
            out.append(run)
    return out


def new_run_folder(root: Path, cfg: TSSDConfig, name: str | None) -> Path:
    """Claim a new, empty run folder: `name` as given (a `ConfigError` if unusable or taken), or one named by
    the time, mode, dataset and seed."""
    if name is not None:
        if not _NAME_OK.fullmatch(name):  # match() with `$` let "ok\n" through
            raise ConfigError("run name", f"{name!r}: use letters, digits, '.', '_' or '-' (at most 100)")
        path = root / name
        try:
            path.mkdir()
        except FileExistsError:
            raise ConfigError("run name", f"{name!r} already exists in {root}; choose another") from None
        return path
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.distill.mode}-{cfg.data.dataset}-s{cfg.train.seed}"
    for i in range(1, 1000):
        path = root / (stem if i == 1 else f"{stem}-{i}")
        try:
            path.mkdir()  # atomic: two sessions submitting in the same second get different folders
            return path
        except FileExistsError:
            continue
    raise ConfigError("run name", f"too many runs named {stem}-* in {root}")


def own_run(root: Path, run: RunFolder | str | os.PathLike) -> RunFolder:
    """`run` as a run folder directly inside the runs folder (symlinks resolved), or a `ConfigError`."""
    if isinstance(run, RunFolder):
        path = run.path
    else:
        path = Path(run) if Path(run).is_absolute() else root / run
    if path.resolve().parent != root.resolve():
        raise ConfigError("run name", f"{str(path)!r} is not a run folder directly inside {root}")
    return RunFolder(path)
