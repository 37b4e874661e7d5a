"""Job manager: trains queued run folders as separate processes of the CLI, a few at a time.

The queue is on disk, not in memory: it is the set of run folders under `runs_root` whose
status.json says "queued", oldest first. Every poll takes a file lock on `runs_root/.queue.lock`,
so several browser sessions, and even several app processes, share one queue and one limit.

A run is `python -m tssd_viz train --config RUN/config.json --run-dir RUN --no-progress`, started
in its own session (`start_new_session=True`): closing a browser tab, a Streamlit rerun or Ctrl-C in
the app's terminal never reaches it. Its stdout and stderr go to RUN/log.txt. Cancelling sends one
SIGTERM, on which the CLI finishes the current step, saves last.pt and marks the run cancelled.

    jobs = JobManager("runs")              # at most one run at a time on a CPU, one per GPU
    run = jobs.submit(cfg)                 # a queued run folder; started at once if a slot is free
    jobs.start()                           # a background thread that polls every 0.5 s
    jobs.cancel(run)

The manager keeps two cooperating parts: the queue on disk (jobs/disk_queue.py: which runs wait and which
train, under the shared file lock) and the processes it started (jobs/supervisor.py: launch, stop, reap).
Where the process runs is the executor's business (jobs/executors.py: TSSD_EXECUTOR=local, the default, or ray):
a Ray job is started, watched, cancelled and re-attached after an app restart through the same calls.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..atomic import StorageError, storage_error
from ..config import ConfigError, TSSDConfig
from ..runs.folders import RunFolder
from ..validation import validate
from . import disk_queue
from .disk_queue import ACTIVE
from .executors import Local, RayJobs
from .executors import from_env as executor_from_env
from .supervisor import Supervisor

MAX_BACKOFF_S = 30.0  # a poll that keeps failing (e.g. a full disk) is retried at most this often


def default_max_running() -> int:
    """One run per GPU, or one on a machine without a GPU (a CPU run already uses every core)."""
    import torch

    return torch.cuda.device_count() or 1


class JobManager:
    """Queue, start, watch and cancel training runs under `runs_root`."""

    def __init__(
        self,
        runs_root: str | os.PathLike,
        max_running: int | None = None,
        *,
        python: str | None = None,
        executor: Local | RayJobs | None = None,
    ):
        self.executor = executor if executor is not None else executor_from_env()  # TSSD_EXECUTOR
        self.remote = self.executor.name != "local"  # runs train on a cluster: watched through it, not by pid
        self.root = Path(runs_root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        if max_running is None:
            max_running = self.executor.capacity() if self.remote else default_max_running()
        self.max_running = max_running
        if self.max_running < 1:
            raise ValueError(f"max_running must be >= 1, got {self.max_running}")
        self.python = python or sys.executable
        self.host = platform.node()
        self._processes = Supervisor(self.executor, self.python, self.host, self.max_running)
        self._mutex = threading.RLock()  # the file lock serialises processes; this one, threads
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- the shared queue
    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return disk_queue.locked(self.root, self._mutex)

    def queue(self) -> list[RunFolder]:
        """Queued runs in the order they will start: oldest submission first (a folder whose status.json cannot
        be read is none of them; see `disk_queue.queued_runs`)."""
        return disk_queue.queued_runs(self.root)

    def running(self) -> list[RunFolder]:
        """Runs training on this machine now (a run whose process died counts as failed, not running); with a
        cluster executor, the runs it holds (wherever they train)."""
        return disk_queue.running_runs(self.root, self.host, self.executor.name if self.remote else None)

    # -- submitting and cancelling
    def submit(self, cfg: TSSDConfig, name: str | None = None) -> RunFolder:
        """Validate `cfg` and add a queued run folder for it; it starts as soon as a slot is free.

        Raises `ConfigError` (one line naming the field) for a bad config or an unusable name.
        """
        validate(cfg)
        with self._locked():
            try:
                path = disk_queue.new_run_folder(self.root, cfg, name)
            except OSError as e:
                raise storage_error(self.root / (name or "new run"), e) from None
            run = RunFolder(path)
            try:
                run.prepare(cfg)
                run.set_status("queued", "waiting for a free slot", host=self.host)
            except StorageError:
                shutil.rmtree(path, ignore_errors=True)  # no half-made run: a queued folder that never starts
                raise
        with contextlib.suppress(StorageError):  # queued all the same: the poller starts it when it can
            self.poll()
        return run

    def cancel(self, run: RunFolder | str | os.PathLike) -> str:
        """Cancel a queued run, or ask a running one to stop after its current step. Returns what happened.

        `run` is a run folder directly inside the runs folder: a RunFolder, a path, or a name relative to
        the runs folder; anything else (`../elsewhere`, a symlink out) is a `ConfigError`.
        """
        run = disk_queue.own_run(self.root, run)
        with self._locked():
            st = run.status()
            state = st.get("state")
            if state == "queued":
                run.set_status("cancelled", "cancelled while queued; it never started", host=self.host)
                return "cancelled while queued"
            if state != "running":
                return f"nothing to cancel: the run is {state}"
            return self._processes.stop(run, st)

    # -- starting and reaping
    def poll(self) -> list[RunFolder]:
        """Reap finished children, then start queued runs while fewer than `max_running` run. Returns those started.

        A queued folder that cannot be started (its config.json unreadable, invalid or of another version) is
        marked failed with the reason and skipped: one bad folder never stops the queue for everyone else."""
        started = []
        if not self.root.is_dir():  # the runs folder was removed: nothing to start, nothing to reap into
            return started
        with self._locked():
            self._processes.reap(self.root)
            free = self.max_running - len(self.running())
            for run in self.queue():
                if len(started) >= free:
                    break
                try:
                    self._processes.launch(run)
                except ConfigError as e:
                    with contextlib.suppress(StorageError):  # unwritable too: skipped at every poll instead
                        run.set_status("failed", f"not started: {e}"[:500], host=self.host)
                    continue
                started.append(run)
        return started

    # -- the background poller
    def start(self, interval: float = 0.5) -> None:
        """Poll every `interval` seconds in a daemon thread (idempotent)."""
        with self._mutex:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, args=(interval,), name="tssd-jobs", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the background thread; runs that are training keep training."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self, interval: float) -> None:
        wait, last_error = interval, None
        while not self._stop.wait(wait):
            try:
                self.poll()
            except Exception as exc:  # a bad folder or a full disk must not stop the queue for everyone
                error = f"{type(exc).__name__}: {exc}"
                if error != last_error:  # reported once, not every poll
                    print(f"tssd-viz job manager: {error} (retrying less often until it clears)", file=sys.stderr)
                wait, last_error = min(wait * 2, MAX_BACKOFF_S), error
            else:
                if last_error is not None:
                    print("tssd-viz job manager: polling again normally", file=sys.stderr)
                wait, last_error = interval, None

    def wait(self, run: RunFolder, timeout: float = 300.0, interval: float = 0.2) -> dict[str, Any]:
        """Poll until `run` is neither queued nor running and its process (or cluster job) has been reaped;
        return its status (for scripts and tests)."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            st = run.status()
            if st.get("state") not in ACTIVE and not self._processes.holds(run):
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"{run.name} is still {st.get('state')} after {timeout:.0f} s")
            time.sleep(interval)
