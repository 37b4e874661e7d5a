"""An experiment's driver: the sweep runner, with every run waiting its turn in the dashboard's job queue.

`run_sweep` prepares each cell's run folder and hands it to an executor. `QueueSlots` does not start a process:
it marks the folder queued, and the `JobManager` of the runs folder starts it when fewer runs than its limit
train (from this process, or from any app process that shares the folder: the queue is on disk), exactly as it
starts a run that the Train page submitted. So an experiment, the Train page and other experiments share one
limit, and a run of an experiment is listed, watched and cancelled like any other.

`main([SWEEP_DIR])` is the driver that `experiment.launch` starts: SIGTERM (the page's Cancel) cancels every
queued and running cell of the experiment; the table is rebuilt after each run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import IO

from ..jobs.disk_queue import ACTIVE
from ..jobs.queue import JobManager
from ..runs.folders import RunFolder
from .experiment import EXIT_CANCELLED, load
from .experiment_table import write_experiment_summary
from .runner import Log, run_sweep

POLL_S = 0.5  # how often a waiting cell asks the queue, in seconds (the dashboard's queue polls as often)


class QueuedRun:
    """A cell in the job queue, with the calls the runner makes on a training process."""

    def __init__(self, jobs: JobManager, run: RunFolder, stopping: threading.Event):
        self.jobs, self.stopping = jobs, stopping
        self.run = RunFolder(jobs.root / run.name)  # the path the queue knows it by
        self.cancelled = False

    def poll(self) -> int | None:
        """None while queued or training; then 0 for done, 1 for anything else (cancelled, failed)."""
        state = self.run.status().get("state")
        return None if state in ACTIVE else 0 if state == "done" else 1

    def wait(self, timeout: float | None = None) -> int:
        del timeout  # a cell waits as long as the queue makes it
        while self.poll() is None:
            if self.stopping.is_set() and not self.cancelled:  # cancelled between its launch and the runner's signal
                self.send_signal(signal.SIGINT)
            self.jobs.poll()  # starts it when a slot is free; reaps it when it exits
            time.sleep(POLL_S)
        self.jobs.wait(self.run, timeout=60)  # reaped, when this process started it
        return self.poll() or 0

    def send_signal(self, sig: int) -> None:
        del sig  # the queue's own stop: a queued run is dropped, a running one stops after its current step
        self.cancelled = True
        self.jobs.cancel(self.run)


class QueueSlots:
    """An executor for `run_sweep` whose runs go through `jobs`, the job queue of the runs folder."""

    name = "queue"

    def __init__(self, jobs: JobManager):
        self.jobs = jobs
        self.stopping = threading.Event()

    @property
    def label(self) -> str:
        return f"the job queue of {self.jobs.root} ({self.jobs.max_running} at a time)"

    def launch(self, run: RunFolder, cmd: list[str], env: dict[str, str], log: IO[str]) -> QueuedRun:
        del cmd, env  # the queue starts it with its own command and environment
        if self.stopping.is_set():
            run.set_status("cancelled", "the experiment was cancelled before this run started")
        else:
            log.write("queued in the job queue of the runs folder; its output goes to log.txt\n")
            run.set_status("queued", "waiting for a free slot (an experiment's run)", host=self.jobs.host)
            self.jobs.poll()
        return QueuedRun(self.jobs, run, self.stopping)


def main(argv: list[str]) -> int:
    """Train the experiment in `argv[0]` through the job queue; 0 when every cell is done, 1 when some are not,
    130 when cancelled."""
    sweep_dir = Path(argv[0]).absolute()
    exp = load(sweep_dir)
    limit = os.environ.get("TSSD_MAX_RUNNING")  # the app's limit, which this process inherits
    jobs = JobManager((sweep_dir / "runs").resolve(), max_running=int(limit) if limit else None)
    slots = QueueSlots(jobs)
    log = Log(sweep_dir / "sweep.log")

    def stop(signum: int, frame: object) -> None:
        slots.stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"experiment {exp.id}: {exp.question} {len(exp.arms)} arms x {len(exp.seeds)} seeds through {slots.label}")
    try:
        states = run_sweep(
            exp.cells(),
            sweep_dir,
            log,
            jobs=jobs.max_running,
            after_run=lambda: write_experiment_summary(sweep_dir),
            executor=slots,  # type: ignore[arg-type]
        )
    except KeyboardInterrupt:
        write_experiment_summary(sweep_dir)
        log("cancelled: the queued runs were dropped, the running ones stopped after their current step")
        return EXIT_CANCELLED
    write_experiment_summary(sweep_dir)
    missing = [name for name, state in states.items() if state != "done"]
    log("finished" + (f"; not done: {', '.join(missing)}" if missing else ""))
    return 1 if missing else 0
