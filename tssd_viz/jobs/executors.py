"""Where the job manager's and the sweep's training processes run (SPEC §11): this machine, or a Ray cluster.

    TSSD_EXECUTOR=local   (the default) a child process of the app or the sweep: today's file queue
    TSSD_EXECUTOR=ray     a Ray job on the cluster at RAY_ADDRESS, through the Ray Jobs API

Either way the queue stays the set of run folders that say "queued" (jobs/queue.py), and a run is the same
command, `python -m tssd_viz train --config RUN/config.json --run-dir RUN --no-progress`, that writes its
own run folder; with Ray the folders must live on a filesystem every node sees (TSSD_RUNS_DIR).
`launch()` starts that command and returns a handle with the few methods of `subprocess.Popen` the job
manager and the sweep use (`poll`, `wait`, `send_signal`, `pid`), so both treat a Ray job as a process:

    job = executor.launch(run, cmd, env, log)   # submit_job: the command is the job's entrypoint
    job.poll()                                  # None while pending or running, then an exit code
    job.send_signal(signal.SIGTERM)             # stop_job: Ray sends SIGTERM; the run saves last.pt

Ray is an optional extra (`pip install "tssd-viz[cluster]"`); nothing here imports it unless asked for.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..config import ConfigError, TSSDConfig
from ..runs.folders import RunFolder
from ..runs.unreadable import first_line

EXECUTORS = ("local", "ray")
INSTALL = 'pip install "tssd-viz[cluster]"'
# What a Ray job inherits from the process that submits it (the rest of its environment is the cluster's).
FORWARDED = ("PYTHONPATH", "TSSD_CACHE", "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "PYTHONUNBUFFERED")
STOP_WAIT_S = 120  # Ray's grace between SIGTERM and SIGKILL (its default, 3 s, is shorter than a step and a save)
POLL_S = 0.5  # how often a blocking wait asks the cluster for the job's state


def executor_name(env: dict[str, str] | None = None) -> str:
    """TSSD_EXECUTOR, checked: "local" (the default) or "ray"."""
    name = (os.environ if env is None else env).get("TSSD_EXECUTOR", "").strip().lower() or "local"
    if name not in EXECUTORS:
        raise ConfigError("TSSD_EXECUTOR", f"{name!r} is not one of {', '.join(EXECUTORS)}")
    return name


def from_env(env: dict[str, str] | None = None) -> Local | RayJobs:
    """The executor TSSD_EXECUTOR names; ray needs RAY_ADDRESS and the extra. A `ConfigError`, one line, if not."""
    env = os.environ if env is None else env
    if executor_name(env) == "local":
        return Local()
    address = env.get("RAY_ADDRESS", "").strip()
    if not address:
        raise ConfigError("RAY_ADDRESS", "TSSD_EXECUTOR=ray needs the cluster's address, e.g. http://HEAD:8265")
    return RayJobs(address)


@dataclass(frozen=True)
class Local:
    """Child processes of this one, in sessions of their own (a Ctrl-C in the app's terminal never reaches them)."""

    name = "local"

    @property
    def label(self) -> str:
        import platform

        return f"local processes on {platform.node()}"

    def launch(self, run: RunFolder, cmd: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen:
        del run  # the command names the run folder already
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )

    def attach(self, run: RunFolder) -> None:
        return None  # a local child that outlived its app is watched through its pid (runs/folders.py), not re-attached


class RayJobs:
    """Runs as jobs of a Ray cluster through the Ray Jobs API (its HTTP job server on the head)."""

    name = "ray"

    def __init__(self, address: str):
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError:
            raise ConfigError(
                "TSSD_EXECUTOR", f"ray needs Ray's job client, which is not installed: {INSTALL}"
            ) from None
        self.address = address
        try:
            self.client = JobSubmissionClient(address)
        except (OSError, RuntimeError, ValueError) as e:  # requests' errors are OSErrors too
            raise ConfigError("RAY_ADDRESS", f"no Ray job server answers at {address}: {first_line(e)[:200]}") from None

    @property
    def label(self) -> str:
        return f"Ray cluster at {self.address}"

    def capacity(self) -> int:
        """**[choice]** How many runs the job manager keeps on the cluster at once (TSSD_MAX_RUNNING overrides it):
        one per GPU of the alive nodes, else one per CPU, from the dashboard's node list; 1 if it cannot be read
        (or lists no node yet: a head that has just started).
        Further runs wait in the file queue, in order, rather than in Ray's scheduler (whose pending jobs fail
        after RAY_JOB_START_TIMEOUT_SECONDS)."""
        import json
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.address.rstrip('/')}/api/v0/nodes?limit=10000", timeout=10) as r:
                nodes = json.load(r)["data"]["result"]["result"]
            alive = [n.get("resources_total", {}) for n in nodes if n.get("state") == "ALIVE"]
            gpus, cpus = sum(a.get("GPU", 0) for a in alive), sum(a.get("CPU", 0) for a in alive)
            return max(1, int(gpus or cpus))
        except (OSError, ValueError, KeyError, TypeError):
            return 1

    def launch(self, run: RunFolder, cmd: list[str], env: dict[str, str], log: IO[bytes]) -> RayJob:
        """Submit `cmd` as the entrypoint of a new job with the run's CPU and GPU needs; job.json records it."""
        cfg = run.config()
        cpus, gpus = needs(cfg)
        env_vars = {k: env[k] for k in FORWARDED if k in env}
        env_vars["RAY_JOB_STOP_WAIT_TIME_S"] = str(STOP_WAIT_S)  # read by the job's supervisor, which stops it
        if cfg.train.device == "cpu":
            env_vars.setdefault("OMP_NUM_THREADS", str(int(cpus)))  # no more threads than the cores reserved for it
        job_id = f"tssd-{run.name}-{time.time_ns() // 1_000_000}"  # a resubmitted run gets a new job
        entrypoint = shlex.join(["python", *cmd[1:]])  # the cluster's python, not this process's path to one
        self.client.submit_job(
            entrypoint=entrypoint,
            submission_id=job_id,
            runtime_env={"env_vars": env_vars},
            entrypoint_num_cpus=cpus,
            entrypoint_num_gpus=gpus,
            metadata={"tssd_run": str(run.path)},
        )
        run.write_job({"executor": "ray", "address": self.address, "job_id": job_id})
        return RayJob(self.client, job_id, Path(log.name))

    def attach(self, run: RunFolder) -> RayJob | None:
        """The Ray job of a run submitted earlier (by this app before a restart, or by another one), if any."""
        job = run.read_job()
        if job.get("executor") != "ray" or not job.get("job_id"):
            return None
        return RayJob(self.client, job["job_id"], run.log_path)


def needs(cfg: TSSDConfig) -> tuple[float, float]:
    """**[choice]** What a run reserves on the cluster: `train.threads` CPUs (1 when 0), and one GPU when
    `train.device` is cuda (auto and cpu reserve none: Ray then hides the GPUs, and the run trains on CPU)."""
    return float(max(cfg.train.threads, 1)), 1.0 if cfg.train.device == "cuda" else 0.0


class RayJob:
    """A submitted Ray job seen as a process: `poll()` maps its terminal state to an exit code (SUCCEEDED 0,
    STOPPED -SIGTERM, FAILED its driver's code or 1), and the job's log is copied to `log_path` when it ends."""

    pid = None  # the process runs on some node of the cluster: it is watched through Ray, not a pid

    def __init__(self, client: Any, job_id: str, log_path: Path):
        self.client, self.job_id, self.log_path = client, job_id, log_path
        self.returncode: int | None = None
        self.message = ""

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        info = self.client.get_job_info(self.job_id)
        if not info.status.is_terminal():
            return None
        state = str(info.status)
        self.message = info.message or ""
        self.save_log()
        code = getattr(info, "driver_exit_code", None)
        self.returncode = {"SUCCEEDED": 0, "STOPPED": -signal.SIGTERM}.get(state, code if code else 1)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.job_id, timeout)
            time.sleep(POLL_S)
        return code

    def send_signal(self, sig: int) -> None:
        """Any stop signal is Ray's stop_job: SIGTERM to the entrypoint, which saves last.pt and says cancelled."""
        del sig
        self.client.stop_job(self.job_id)

    terminate = kill = lambda self: self.send_signal(signal.SIGTERM)

    def save_log(self) -> None:
        """Append the job's whole log to the run's log file once, when it has ended: the folder keeps it (two app
        processes watching the same job append it once between them, as far as their timing allows)."""
        header = f"--- the log of Ray job {self.job_id} ---\n"
        try:
            if header in self.log_path.read_text(errors="replace"):
                return
        except FileNotFoundError:
            pass
        try:
            text = self.client.get_job_logs(self.job_id)
        except RuntimeError:
            return  # the cluster lost it; the run's own files still tell what happened
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(header + text)
