"""Fault injection: a real training process killed with SIGKILL at random steps, and resumed each time,
ends with the records of a run that was never interrupted (SPEC §8: what survives a kill)."""

import os
import random
import signal
import subprocess
import sys
import time

from test_train import same_records  # record for record, ignoring the clock

from tssd_viz import RunFolder

# The quick digits recipe, shortened: 3 epochs of 16 steps, one thread (the same arithmetic in every process).
ARGS = ["--preset", "quick", "--data.limit-train", "512", "--data.limit-test", "256", "--train.log-every", "1"]
ARGS += ["--train.threads", "1", "--train.device", "cpu", "--no-progress"]
TOTAL_STEPS = 3 * 16


def train(*args) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tssd_viz", "train", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def inode(path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def kill_at(proc: subprocess.Popen, run: RunFolder, step: int, old_inode: int | None) -> bool:
    """SIGKILL `proc` once it has recorded training step `step`; False if it ended first.

    Records count only once this process has made metrics.jsonl its own (a resume replaces the file,
    trimmed to its checkpoint; a first start creates it): the old file may hold later steps.
    """
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        current = inode(run.metrics_path)
        if current is not None and current != old_inode:
            steps = [r["step"] for r in run.metrics("step")]
            if steps and steps[-1] >= step:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
        time.sleep(0.002)
    return False


def test_kills_at_random_steps_then_resumes_reproduce_the_uninterrupted_run(tmp_path):
    uncut = train(*ARGS, "--run-dir", tmp_path / "uncut")
    assert uncut.wait(timeout=300) == 0, uncut.stderr.read()
    want = RunFolder(tmp_path / "uncut").metrics()

    run, kills = RunFolder(tmp_path / "killed"), 0
    for step in sorted(random.Random(11).sample(range(2, TOTAL_STEPS - 1), 6)):
        old = inode(run.metrics_path)
        started = run.exists()
        proc = train("--resume", run.path, "--no-progress") if started else train(*ARGS, "--run-dir", run.path)
        kills += kill_at(proc, run, step, old)
        assert run.status()["state"] == ("done" if proc.returncode == 0 else "failed")  # a dead pid is no "running"
    assert kills >= 5
    last = train("--resume", run.path, "--no-progress")
    assert last.wait(timeout=300) == 0, last.stderr.read()
    assert run.status()["state"] == "done"
    same_records(run.metrics(), want)
