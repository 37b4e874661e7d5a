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

Where the process runs is the executor's business (jobs/executors.py: TSSD_EXECUTOR=local, the default, or ray):
a Ray job is started, watched, cancelled and re-attached after an app restart through the same calls.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..atomic import StorageError, storage_error
from ..config import ConfigError, TSSDConfig
from ..runs.folders import RunFolder
from ..runs.listing import run_folders
from ..runs.processes import is_training_process
from ..training import allocator
from ..validation import validate
from .executors import Local, RayJobs
from .executors import from_env as executor_from_env

LOCK_NAME = ".queue.lock"
MAX_BACKOFF_S = 30.0  # a poll that keeps failing (e.g. a full disk) is retried at most this often
ACTIVE = ("queued", "running")
# Errors of one run folder, not of the disk: a log.txt that is a folder, a path through a file, a symlink loop.
_FOLDER_FAULTS = (errno.EISDIR, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG)
_NAME_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # the whole name: used with fullmatch


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
        self._children: dict[Path, subprocess.Popen] = {}  # runs this manager started, until reaped
        self._gpus: dict[Path, int] = {}  # the GPU each of those runs was given (several GPUs only)
        self._cancelling: set[Path] = set()  # SIGTERM sent by this manager
        self._mutex = threading.RLock()  # the file lock serialises processes; this one, threads
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- the shared queue
    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex, open(self.root / LOCK_NAME, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def queue(self) -> list[RunFolder]:
        """Queued runs in the order they will start: oldest submission first. A folder whose status.json cannot
        be read is none of them: it cannot say whether it waited, trained or finished, so starting it could train
        it twice and rewriting its status could overwrite a run; it stays listed "unreadable", saying so."""
        queued = []
        for run in run_folders(self.root):
            st = run.status()  # its fields of the types they should have ("time" a number, or left out)
            # Only an explicit "queued": a folder without status.json may be a CLI run still loading data.
            if st.get("state") == "queued":
                queued.append((st.get("time", 0.0), run.name, run))
        return [run for *_, run in sorted(queued, key=lambda q: (q[0], q[1]))]

    def running(self) -> list[RunFolder]:
        """Runs training on this machine now (a run whose process died counts as failed, not running); with a
        cluster executor, the runs it holds (wherever they train)."""
        out = []
        for run in run_folders(self.root):
            st = run.status()
            if self.remote:
                if st.get("state") == "running" and run.read_job().get("executor") == self.executor.name:
                    out.append(run)
            elif st.get("state") == "running" and st.get("host", self.host) == self.host:
                out.append(run)
        return out

    # -- submitting and cancelling
    def submit(self, cfg: TSSDConfig, name: str | None = None) -> RunFolder:
        """Validate `cfg` and add a queued run folder for it; it starts as soon as a slot is free.

        Raises `ConfigError` (one line naming the field) for a bad config or an unusable name.
        """
        validate(cfg)
        with self._locked():
            try:
                path = self._new_folder(cfg, name)
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

    def _new_folder(self, cfg: TSSDConfig, name: str | None) -> Path:
        if name is not None:
            if not _NAME_OK.fullmatch(name):  # match() with `$` let "ok\n" through
                raise ConfigError("run name", f"{name!r}: use letters, digits, '.', '_' or '-' (at most 100)")
            path = self.root / name
            try:
                path.mkdir()
            except FileExistsError:
                raise ConfigError("run name", f"{name!r} already exists in {self.root}; choose another") from None
            return path
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.distill.mode}-{cfg.data.dataset}-s{cfg.train.seed}"
        for i in range(1, 1000):
            path = self.root / (stem if i == 1 else f"{stem}-{i}")
            try:
                path.mkdir()  # atomic: two sessions submitting in the same second get different folders
                return path
            except FileExistsError:
                continue
        raise ConfigError("run name", f"too many runs named {stem}-* in {self.root}")

    def cancel(self, run: RunFolder | str | os.PathLike) -> str:
        """Cancel a queued run, or ask a running one to stop after its current step. Returns what happened.

        `run` is a run folder directly inside the runs folder: a RunFolder, a path, or a name relative to
        the runs folder; anything else (`../elsewhere`, a symlink out) is a `ConfigError`.
        """
        run = self._own_run(run)
        with self._locked():
            st = run.status()
            state = st.get("state")
            if state == "queued":
                run.set_status("cancelled", "cancelled while queued; it never started", host=self.host)
                return "cancelled while queued"
            if state != "running":
                return f"nothing to cancel: the run is {state}"
            if self.remote:
                return self._cancel_remote(run)
            if st.get("host", self.host) != self.host:
                return f"the run trains on {st['host']}; cancel it there"
            if not is_training_process(st, run.path.absolute()):  # never signal a pid the system reused
                return "its process has already ended"
            try:
                os.kill(st["pid"], signal.SIGTERM)  # once: a second SIGTERM would abort without saving
            except PermissionError:
                return "its process belongs to another user: not ours to stop"
            self._cancelling.add(run.path.absolute())
            return "stopping after the current step; its last checkpoint is kept"

    def _cancel_remote(self, run: RunFolder) -> str:
        path = run.path.absolute()
        job = self._children.get(path) or self.executor.attach(run)
        if job is None:
            return "it was not submitted to the cluster: nothing to stop there"
        job.send_signal(signal.SIGTERM)  # the cluster's stop: one SIGTERM, then the run saves last.pt
        self._children.setdefault(path, job)
        self._cancelling.add(path)
        return "stopping after the current step; its last checkpoint is kept"

    def _own_run(self, run: RunFolder | str | os.PathLike) -> RunFolder:
        """`run` as a run folder directly inside the runs folder (symlinks resolved), or a `ConfigError`."""
        if isinstance(run, RunFolder):
            path = run.path
        else:
            path = Path(run) if Path(run).is_absolute() else self.root / run
        if path.resolve().parent != self.root.resolve():
            raise ConfigError("run name", f"{str(path)!r} is not a run folder directly inside {self.root}")
        return RunFolder(path)

    # -- starting and reaping
    def poll(self) -> list[RunFolder]:
        """Reap finished children, then start queued runs while fewer than `max_running` run. Returns those started.

        A queued folder that cannot be started (its config.json unreadable, invalid or of another version) is
        marked failed with the reason and skipped: one bad folder never stops the queue for everyone else."""
        started = []
        if not self.root.is_dir():  # the runs folder was removed: nothing to start, nothing to reap into
            return started
        with self._locked():
            self._reap()
            free = self.max_running - len(self.running())
            for run in self.queue():
                if len(started) >= free:
                    break
                try:
                    self._start(run)
                except ConfigError as e:
                    with contextlib.suppress(StorageError):  # unwritable too: skipped at every poll instead
                        run.set_status("failed", f"not started: {e}"[:500], host=self.host)
                    continue
                started.append(run)
        return started

    def _start(self, run: RunFolder) -> None:
        cfg = run.config()
        # Started under the run's allocator (jemalloc when installed), so that the CLI need not re-execute.
        env = allocator.launch_env(cfg.train.allocator, {**os.environ, "PYTHONUNBUFFERED": "1"})
        # A dashboard run shares the CPU with the server and the browser. OpenMP threads that spin
        # while they wait then burn the cores the others need: measured on 2 cores next to a busy
        # dashboard, the Quick look took 80 s with spinning threads and 8 s with sleeping ones.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        gpu = self._free_gpu() if cfg.train.device != "cpu" and not self.remote else None  # a cluster places its own
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        cmd = [
            self.python,
            "-m",
            "tssd_viz",
            "train",
            "--config",
            str(run.config_path),
            "--run-dir",
            str(run.path),
            "--no-progress",
        ]
        try:
            with open(run.log_path, "ab") as log:
                log.write(f"$ {' '.join(cmd)}\n".encode())
                log.flush()
                proc = self.executor.launch(run, cmd, env, log)
        except OSError as e:
            if e.errno in _FOLDER_FAULTS:  # this folder's own fault: refused like a bad config, the queue goes on
                raise ConfigError(str(run.log_path), f"cannot hold the run's output ({e.strerror.lower()})") from None
            raise storage_error(run.log_path, e) from None  # the disk refuses: the run stays queued, nothing started
        try:
            self._mark_started(run, proc, gpu)
        except StorageError:
            proc.kill()  # its status could not say "running": a later poll would start it a second time
            proc.wait()
            raise

    def _mark_started(self, run: RunFolder, proc: subprocess.Popen, gpu: int | None) -> None:
        # "running" with the child's pid from the first moment: if it dies while importing, status() says failed.
        run.set_status(
            "running",
            "starting: loading the data and building the network",
            pid=proc.pid,
            host=self.host,
            started=time.time(),
            **({"gpu": gpu} if gpu is not None else {}),
        )
        path = run.path.absolute()
        self._children[path] = proc
        if gpu is not None:
            self._gpus[path] = gpu

    def _free_gpu(self) -> int | None:
        """With several GPUs, the lowest one that none of this manager's live runs uses."""
        if self.max_running < 2:
            return None
        import torch

        count = torch.cuda.device_count()
        if count < 2:
            return None
        used = set(self._gpus.values())
        return next((i for i in range(count) if i not in used), None)

    def _reap(self) -> None:
        """Collect children that exited (no zombies: a zombie's pid still looks alive) and settle their status."""
        if self.remote:
            self._attach()
        for path, proc in list(self._children.items()):
            code = proc.poll()
            if code is None:
                continue
            del self._children[path]
            self._gpus.pop(path, None)
            cancelling = path in self._cancelling
            self._cancelling.discard(path)
            run = RunFolder(path)
            if run.read_status().get("state") not in ACTIVE:
                continue  # the CLI wrote its own final status (done, failed or cancelled)
            # Killed by a SIGTERM before the CLI's handler was installed: a cancel, from this manager or
            # from another app process that shares the queue.
            if cancelling or code in (-signal.SIGTERM, -signal.SIGINT, 130):
                run.set_status(
                    "cancelled", "cancelled before training started", pid=proc.pid, host=self.host, exit_code=code
                )
            else:
                last = run.log_tail() or getattr(proc, "message", "") or "no output"
                run.set_status(
                    "failed",
                    f"the training process exited with status {code}: {last}"[:500],
                    pid=proc.pid,
                    host=self.host,
                    exit_code=code,
                )

    def _attach(self) -> None:
        """Watch the cluster jobs of running runs that this manager did not start (another app process, or this
        one before a restart): nothing submitted is lost when the app goes away."""
        for run in run_folders(self.root):
            path = run.path.absolute()
            if path not in self._children and run.read_status().get("state") in ACTIVE:
                job = self.executor.attach(run)
                if job is not None:
                    self._children[path] = job

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
            if st.get("state") not in ACTIVE and run.path.absolute() not in self._children:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"{run.name} is still {st.get('state')} after {timeout:.0f} s")
            time.sleep(interval)
