"""The job manager with real training processes: the queue limit, cancelling, crashes, a shared queue.

The tests that take an `executor` run twice: with local child processes and with jobs of a real Ray head
(tests/ray_head.py), through the same calls."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from waiting import wait_for  # tests/waiting.py

from tssd_viz import ConfigError, RunFolder, preset
from tssd_viz.atomic import StorageError
from tssd_viz.jobs.executors import Local, RayJobs
from tssd_viz.jobs.queue import JobManager
from tssd_viz.training import allocator


@pytest.fixture(params=["local", "ray"])
def executor(request):
    """Where the runs of a test train: child processes of this one, or jobs of the Ray head."""
    return Local() if request.param == "local" else RayJobs(request.getfixturevalue("ray_address"))


def tiny(epochs=1, seed=0):
    """A run of a few seconds of training on the offline digits (most of its time is Python starting)."""
    return preset("digits").replace(
        **{
            "model.width": 0.25,
            "data.limit_train": 256,
            "data.limit_test": 128,
            "train.epochs": epochs,
            "train.log_every": 1,
            "train.device": "cpu",
            "train.seed": seed,
        }
    )


def states(jobs, *runs):
    jobs.poll()
    return [r.status()["state"] for r in runs]


def test_two_submissions_with_one_slot_run_one_after_the_other(tmp_path, executor):
    jobs = JobManager(tmp_path, max_running=1, executor=executor)
    a = jobs.submit(tiny(seed=0))
    b = jobs.submit(tiny(seed=1, epochs=200))
    assert states(jobs, a, b) == ["running", "queued"]
    assert [r.name for r in jobs.queue()] == [b.name]
    while True:
        now = states(jobs, a, b)
        assert now.count("running") <= 1, now  # the limit holds at every poll
        assert "failed" not in now, (a.status(), b.status())
        if now[1] != "queued":
            break
        time.sleep(0.05)
    assert now == ["done", "running"]  # b started only once a had finished, at the next poll
    assert a.final_eval() and a.config().train.seed == 0 and b.config().train.seed == 1
    assert "python" in (a.path / "log.txt").read_text()  # the child's output is kept next to its run
    found = allocator.wanted("auto")  # a dashboard run trains under the fast malloc when one is installed
    assert json.loads(a.env_path.read_text())["allocator"]["name"] == (found.name if found else "glibc")
    jobs.cancel(b)
    assert jobs.wait(b, timeout=60)["state"] == "cancelled"


def test_cancel_a_queued_run_and_a_running_one(tmp_path, executor):
    jobs = JobManager(tmp_path, max_running=1, executor=executor)
    running = jobs.submit(tiny(epochs=200))
    queued = jobs.submit(tiny())
    assert jobs.cancel(queued) == "cancelled while queued"
    assert queued.status()["state"] == "cancelled"
    wait_for(lambda: running.metrics("step"), timeout=120, what="the first step record")
    assert "stopping" in jobs.cancel(running)
    st = jobs.wait(running, timeout=120)
    assert st["state"] == "cancelled", st
    assert (running.checkpoints_dir / "last.pt").exists()  # the last checkpoint is kept for --resume
    steps = running.metrics("step")[-1]["step"]
    assert steps < 200 * 4, "it stopped early"
    # the queued run never started: no process, no records, no log
    assert not queued.metrics() and not (queued.path / "log.txt").exists()
    jobs.poll()
    assert queued.status()["state"] == "cancelled"


def test_cancel_while_the_process_is_still_starting(tmp_path, executor):
    jobs = JobManager(tmp_path, max_running=1, executor=executor)
    run = jobs.submit(tiny())
    assert run.status()["message"].startswith("starting")
    jobs.cancel(run)
    st = jobs.wait(run, timeout=60)
    assert st["state"] == "cancelled", st


def test_a_crashed_child_shows_failed(tmp_path):
    jobs = JobManager(tmp_path, max_running=1)
    run = jobs.submit(tiny())
    os.kill(run.status()["pid"], signal.SIGKILL)  # no chance to write a final status
    st = jobs.wait(run, timeout=30)
    assert st["state"] == "failed" and "status -9" in st["message"], st
    assert RunFolder(run.path).status()["state"] == "failed"  # as every other reader sees it


def test_managers_of_two_app_processes_share_the_queue_and_its_limit(tmp_path):
    first, second = JobManager(tmp_path, max_running=1), JobManager(tmp_path, max_running=1)
    a = first.submit(tiny(epochs=200))
    b = second.submit(tiny(epochs=200))
    for _ in range(5):
        assert states(second, a, b) == ["running", "queued"]
        assert states(first, a, b) == ["running", "queued"]

    def both_poll():
        first.poll()
        second.poll()
        now = [r.status()["state"] for r in (a, b)]
        assert now.count("running") <= 1, now
        return now

    second.cancel(a)  # a run started by the other app can be cancelled from this one
    wait_for(lambda: both_poll()[0] == "cancelled", timeout=60, what="a to be cancelled")
    wait_for(lambda: both_poll()[1] == "running", timeout=10, what="b to start")
    first.cancel(b)
    wait_for(lambda: both_poll()[1] == "cancelled", timeout=60, what="b to be cancelled")


def test_bad_configs_and_names_are_refused_before_anything_is_written(tmp_path):
    jobs = JobManager(tmp_path, max_running=1)
    with pytest.raises(ConfigError, match="distill.t_teacher"):
        jobs.submit(tiny().replace(**{"distill.t_teacher": 1}))
    with pytest.raises(ConfigError, match="run name"):
        jobs.submit(tiny(), name="../escape")
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


def test_background_thread_starts_queued_runs(tmp_path, executor):
    jobs = JobManager(tmp_path, max_running=1, executor=executor)
    a = jobs.submit(tiny(epochs=200))
    b = jobs.submit(tiny())
    jobs.start(interval=0.1)
    try:
        jobs.cancel(a)
        wait_for(lambda: b.status()["state"] != "queued", timeout=60, what="the thread to start the next run")
        jobs.cancel(b)
        wait_for(lambda: b.status()["state"] == "cancelled", timeout=60, what="the cancel")
    finally:
        jobs.stop()


def test_training_processes_let_their_threads_sleep_while_waiting(tmp_path):
    """Runs share the CPU with the dashboard: OpenMP threads must not spin (read from the child's
    own environment, as the kernel reports it)."""
    jobs = JobManager(tmp_path, max_running=1)
    run = jobs.submit(tiny(epochs=200))
    try:
        pid = run.status()["pid"]
        env = dict(kv.split("=", 1) for kv in open(f"/proc/{pid}/environ").read().split("\0") if "=" in kv)
        assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    finally:
        jobs.cancel(run)
        wait_for(lambda: states(jobs, run) != ["running"], 60)


@pytest.mark.parametrize("name", ["ok\n", "ok\n\n", "a/b", "..", ""])
def test_a_run_name_must_be_a_plain_name_all_through(tmp_path, name):
    """Issue 11: "ok\n" was accepted (the pattern's `$` matches before a trailing newline)."""
    jobs = JobManager(tmp_path, max_running=1)
    with pytest.raises(ConfigError, match="run name"):
        jobs.submit(tiny(), name=name)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


def test_cancel_acts_only_on_runs_directly_inside_the_runs_folder(tmp_path):
    """Issue 11: cancel("../outside") marked a run outside the runs folder cancelled."""
    root, outside = tmp_path / "runs", RunFolder(tmp_path / "outside")
    outside.prepare(tiny())
    outside.set_status("queued", "waiting")
    jobs = JobManager(root, max_running=1)
    (root / "link").symlink_to(outside.path)
    for target in ["../outside", str(outside.path), outside, "link", "x/../../outside", ".", ""]:
        with pytest.raises(ConfigError, match="run name"):
            jobs.cancel(target)
    assert outside.status()["state"] == "queued"
    inside = RunFolder(root / "inside")
    inside.prepare(tiny())
    inside.set_status("queued", "waiting")
    assert jobs.cancel("inside") == "cancelled while queued"  # a name, as before
    inside.set_status("queued", "waiting")
    assert jobs.cancel(inside.path) == "cancelled while queued"  # an absolute path inside, as the app passes


# -- a full disk: one line, no half-made run, no retry storm
def test_a_submit_the_disk_refuses_leaves_no_run_and_says_why_in_one_line(tmp_path, monkeypatch):
    from test_train import fill_disk  # ENOSPC on every write under a folder

    jobs = JobManager(tmp_path, max_running=1)
    fill_disk(monkeypatch, tmp_path)
    for name in (None, "named"):
        with pytest.raises(StorageError, match=f"^no space left in {tmp_path}") as err:
            jobs.submit(tiny(), name)
        assert "\n" not in str(err.value)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [".queue.lock"] and jobs.queue() == []


def test_a_start_whose_status_cannot_be_written_stops_the_child_and_stays_queued(tmp_path, monkeypatch):
    jobs = JobManager(tmp_path, max_running=1)
    started = []
    real_popen = subprocess.Popen

    def popen(cmd, *a, **k):  # keeps the training processes (the allocator's lookup runs ldconfig too)
        proc = real_popen(cmd, *a, **k)
        started.extend([proc] if "tssd_viz" in cmd else [])
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen)
    real_set_status = RunFolder.set_status

    def refuse_running(self, state, *args, **kwargs):
        if state == "running":
            raise StorageError(f"no space left in {self.path}: status.json was not written")
        return real_set_status(self, state, *args, **kwargs)

    monkeypatch.setattr(RunFolder, "set_status", refuse_running)
    run = jobs.submit(tiny())  # queued; the start that follows fails
    assert run.status()["state"] == "queued"
    with pytest.raises(StorageError):
        jobs.poll()
    assert len(started) == 2 and all(p.poll() is not None for p in started)  # each child stopped at once
    monkeypatch.undo()
    assert jobs.wait(run)["state"] == "done"  # space again: it starts once and finishes


def test_a_poll_that_keeps_failing_is_reported_once_and_retried_less_often(tmp_path, monkeypatch, capsys):
    jobs = JobManager(tmp_path, max_running=1)
    calls = []

    def full(*args):
        calls.append(time.monotonic())
        raise StorageError(f"no space left in {tmp_path}: status.json was not written")

    monkeypatch.setattr(jobs, "poll", full)
    jobs.start(interval=0.01)
    time.sleep(1.0)
    jobs.stop()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left in" in err[0], err
    assert 3 <= len(calls) <= 8  # backing off 0.01, 0.02, 0.04 ... s, not 100 polls in a second


SUBMITTER = """
import sys, time
from tssd_viz import preset
from tssd_viz.jobs.queue import JobManager
root, who = sys.argv[1], sys.argv[2]
jobs = JobManager(root, max_running=1)
cfg = preset("quick").replace(**{"data.limit_train": 64, "data.limit_test": 64, "train.epochs": 1,
                                 "train.probe_every": 0})
keep = jobs.submit(cfg, f"{who}-keep")
drop = jobs.submit(cfg.replace(**{"train.seed": 1}), f"{who}-drop")
print(jobs.cancel(drop), flush=True)
"""


def test_eight_submissions_from_four_processes_with_cancels_end_right_in_order(tmp_path):
    """Four app processes submit two runs each at once and cancel one of them: every run ends in the
    state it should (kept: done, cancelled: cancelled), none is lost or started twice, one trains at a
    time, and the runs that trained started in the order they were submitted."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, str(tmp_path), f"p{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(4)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    jobs = JobManager(tmp_path, max_running=1)
    runs = {r.name: r for r in (RunFolder(p) for p in tmp_path.iterdir() if p.is_dir())}
    assert sorted(runs) == sorted(f"p{i}-{k}" for i in range(4) for k in ("keep", "drop"))

    def settled():
        jobs.poll()
        assert sum(r.status()["state"] == "running" for r in runs.values()) <= 1  # one at a time, always
        return all(r.status()["state"] in ("done", "cancelled", "failed") for r in runs.values())

    wait_for(settled, 240, "every run to finish")
    states = {n: r.status()["state"] for n, r in runs.items()}
    assert states == {n: "done" if n.endswith("keep") else "cancelled" for n in runs}, states
    for name, run in runs.items():
        starts = run.log_path.read_text().count("$ ") if run.log_path.exists() else 0
        assert starts == 1 if name.endswith("keep") else starts <= 1, (name, starts)  # started once, never twice
        if states[name] == "done":
            assert [r["t"] for r in run.metrics("eval") if r["split"] == "test"] == [1, 2, 3, 4]  # evaluated once
    trained = [r for r in runs.values() if (r.path / "env.json").exists()]
    by_submission = sorted(trained, key=lambda r: r.config_path.stat().st_mtime_ns)
    by_start = sorted(trained, key=lambda r: (r.path / "env.json").stat().st_mtime_ns)
    assert [r.name for r in by_start] == [r.name for r in by_submission]  # FIFO


@pytest.mark.parametrize("name", ["../outside", "..", "a/../../b", "/etc/x", ".hidden", "ok\n", "a" * 101])
def test_a_run_name_from_the_browser_cannot_leave_the_runs_folder(tmp_path, name):
    jobs = JobManager(tmp_path / "runs", max_running=1)
    with pytest.raises(ConfigError, match="run name"):
        jobs.submit(tiny(), name)
    assert not (tmp_path / "outside").exists() and [p for p in (tmp_path / "runs").iterdir() if p.is_dir()] == []
