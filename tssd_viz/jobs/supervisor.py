"""The training processes one job manager started: launched, signalled, reaped and settled.

A run is `python -m tssd_viz train --config RUN/config.json --run-dir RUN --no-progress`, launched through
the executor (a local process in its own session, or a job of a Ray cluster) with its output in RUN/log.txt
and its status "running" from the first moment. A stop is one SIGTERM, on which the CLI finishes the current
step, saves last.pt and marks the run cancelled. Reaping collects the children that exited (no zombies) and
settles the status of one that died before the CLI could write its own. The queue on disk that says which
run to start is jobs/disk_queue.py; the caller holds its lock around every call here.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from pathlib import Path

from ..atomic import StorageError, storage_error
from ..config import ConfigError
from ..runs.folders import RunFolder
from ..runs.listing import run_folders
from ..runs.processes import is_training_process
from ..training import allocator
from .disk_queue import ACTIVE
from .executors import Local, RayJobs

# Errors of one run folder, not of the disk: a log.txt that is a folder, a path through a file, a symlink loop.
_FOLDER_FAULTS = (errno.EISDIR, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG)
STOPPING = "stopping after the current step; its last checkpoint is kept"


class Supervisor:
    """The processes (or cluster jobs) of the runs this manager started, until they are reaped."""

    def __init__(self, executor: Local | RayJobs, python: str, host: str, max_running: int):
        self.executor, self.python, self.host, self.max_running = executor, python, host, max_running
        self.remote = executor.name != "local"  # runs train on a cluster: watched through it, not by pid
        self.children: dict[Path, subprocess.Popen] = {}  # runs this manager started, until reaped
        self.gpus: dict[Path, int] = {}  # the GPU each of those runs was given (several GPUs only)
        self.cancelling: set[Path] = set()  # SIGTERM sent by this manager

    def holds(self, run: RunFolder) -> bool:
        """Whether `run`'s process (or cluster job) is still to be reaped."""
        return run.path.absolute() in self.children

    def launch(self, run: RunFolder) -> None:
        """Start `run` training and mark it running. A `ConfigError` for this folder's own fault (its config
        unreadable, its log unwritable): the caller marks it failed. A `StorageError`: the run stays queued."""
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
        self.children[path] = proc
        if gpu is not None:
            self.gpus[path] = gpu

    def _free_gpu(self) -> int | None:
        """With several GPUs, the lowest one that none of this manager's live runs uses."""
        if self.max_running < 2:
            return None
        import torch

        count = torch.cuda.device_count()
        if count < 2:
            return None
        used = set(self.gpus.values())
        return next((i for i in range(count) if i not in used), None)

    def stop(self, run: RunFolder, st: dict) -> str:
        """Ask the running `run` (its status `st`) to stop after its current step; returns what happened."""
        if self.remote:
            return self._stop_remote(run)
        if st.get("host", self.host) != self.host:
            return f"the run trains on {st['host']}; cancel it there"
        if not is_training_process(st, run.path.absolute()):  # never signal a pid the system reused
            return "its process has already ended"
        try:
            os.kill(st["pid"], signal.SIGTERM)  # once: a second SIGTERM would abort without saving
        except PermissionError:
            return "its process belongs to another user: not ours to stop"
        self.cancelling.add(run.path.absolute())
        return STOPPING

    def _stop_remote(self, run: RunFolder) -> str:
        path = run.path.absolute()
        job = self.children.get(path) or self.executor.attach(run)
        if job is None:
            return "it was not submitted to the cluster: nothing to stop there"
        job.send_signal(signal.SIGTERM)  # the cluster's stop: one SIGTERM, then the run saves last.pt
        self.children.setdefault(path, job)
        self.cancelling.add(path)
        return STOPPING

    def reap(self, root: Path) -> None:
        """Collect children that exited (no zombies: a zombie's pid still looks alive) and settle their status."""
        if self.remote:
            self._attach(root)
        for path, proc in list(self.children.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.children[path]
            self.gpus.pop(path, None)
            cancelling = path in self.cancelling
            self.cancelling.discard(path)
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

    def _attach(self, root: Path) -> None:
        """Watch the cluster jobs of running runs that this manager did not start (another app process, or this
        one before a restart): nothing submitted is lost when the app goes away."""
        for run in run_folders(root):
            path = run.path.absolute()
            if path not in self.children and run.read_status().get("state") in ACTIVE:
                job = self.executor.attach(run)
                if job is not None:
                    self.children[path] = job
