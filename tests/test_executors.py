"""Executors (SPEC §11): TSSD_EXECUTOR chooses local processes or a Ray cluster; the queue on a real Ray head
(three runs submitted from two threads, a cancel while queued and one while running, an app restart in the
middle), a sweep cell as a Ray job, and what happens without Ray."""

import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_jobs import tiny
from waiting import wait_for

from tssd_viz import ConfigError, RunFolder, cli
from tssd_viz.jobs.executors import INSTALL, Local, RayJobs, executor_name, from_env
from tssd_viz.jobs.queue import JobManager
from tssd_viz.sweep import Cell, run_cell


def test_the_executor_is_local_unless_ray_is_asked_for():
    assert isinstance(from_env({}), Local) and executor_name({"TSSD_EXECUTOR": " LOCAL "}) == "local"
    with pytest.raises(ConfigError, match=r"^TSSD_EXECUTOR: 'slurm' is not one of local, ray$"):
        from_env({"TSSD_EXECUTOR": "slurm"})
    with pytest.raises(ConfigError, match="^RAY_ADDRESS: TSSD_EXECUTOR=ray needs the cluster's address"):
        from_env({"TSSD_EXECUTOR": "ray"})


def test_without_ray_installed_the_ray_executor_says_what_to_install_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray.job_submission", None)  # import fails as if Ray were absent
    with pytest.raises(ConfigError) as err:
        from_env({"TSSD_EXECUTOR": "ray", "RAY_ADDRESS": "http://127.0.0.1:1"})
    assert INSTALL in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv("TSSD_EXECUTOR", "ray")
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:1")
    with pytest.raises(SystemExit) as code:
        cli.main(["sweep", "--sweep-dir", str(tmp_path / "s"), "--grid", "main", "--preset", "quick", "--seeds", "1"])
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert code.value.code == 2 and len(err_lines) == 1 and 'pip install "tssd-viz[cluster]"' in err_lines[0]
    assert not (tmp_path / "s").exists()  # refused before anything was written


def test_no_job_server_at_the_address_is_one_line():
    with pytest.raises(ConfigError, match="^RAY_ADDRESS: no Ray job server answers at http://127.0.0.1:9"):
        RayJobs("http://127.0.0.1:9")


def test_three_runs_from_two_threads_on_ray_end_right_across_an_app_restart(tmp_path, ray_address):
    """The issue's classroom in small: a long run trains, two more are submitted at once from two threads;
    one is cancelled while queued, the long one while running; the app then restarts (a new manager) and
    the third run, already a Ray job, is watched to the end by the new manager."""
    # The limit comes from the cluster: the head's 2 CPUs (no GPU), once its dashboard lists the node.
    wait_for(lambda: JobManager(tmp_path, executor=RayJobs(ray_address)).max_running == 2, 60, "the node list")
    first = JobManager(tmp_path, max_running=1, executor=RayJobs(ray_address))
    assert first.executor.label == f"Ray cluster at {ray_address}"
    long = first.submit(tiny(epochs=200), "long")
    with ThreadPoolExecutor(2) as pool:
        keep, drop = pool.map(lambda args: first.submit(*args), [(tiny(seed=1), "keep"), (tiny(seed=2), "drop")])
    assert [long.status()["state"], keep.status()["state"], drop.status()["state"]] == ["running", "queued", "queued"]
    assert first.cancel(drop) == "cancelled while queued"
    wait_for(lambda: long.metrics("step"), 120, "the long run's first step")
    assert "stopping" in first.cancel(long)

    def kept_started() -> bool:
        first.poll()  # reaps the stopped job, then submits the next queued run
        return keep.status()["state"] == "running"

    wait_for(kept_started, 120, "the kept run to start on Ray")
    job = keep.read_job()
    assert job["executor"] == "ray" and job["job_id"].startswith("tssd-keep-")

    second = JobManager(tmp_path, max_running=1, executor=RayJobs(ray_address))  # the app restarted
    assert second.wait(keep, timeout=120)["state"] == "done"
    states = {r.name: r.status()["state"] for r in (long, keep, drop)}
    assert states == {"long": "cancelled", "keep": "done", "drop": "cancelled"}, states
    assert long.checkpoint_path("last").exists() and long.metrics("step")[-1]["step"] < 200 * 4  # cut short
    assert keep.final_eval() and keep.probes() and keep.checkpoint_path("best").exists() and keep.env_path.exists()
    assert "--- the log of Ray job tssd-keep-" in keep.log_path.read_text()  # the job's output, kept in the folder
    assert not drop.metrics() and not drop.log_path.exists() and not drop.job_path.exists()  # never submitted


def test_a_sweep_cell_trains_as_a_ray_job_and_stops_like_a_process(tmp_path, ray_address):
    """A stopping sweep signals what it launched: the Ray job is stopped, the run saves last.pt and says
    cancelled, and the job's log lands in the cell's train.log (a cell that finishes: the tests above)."""
    executor = RayJobs(ray_address)
    procs: set = set()
    slow = Cell("slow-cell", tiny(epochs=200, seed=1), "epochs", None)
    result = {}

    def train_slow():
        result["state"] = run_cell(slow, tmp_path, print, procs=procs, executor=executor)

    worker = threading.Thread(target=train_slow)
    worker.start()
    run = RunFolder(tmp_path / "slow-cell")
    wait_for(lambda: procs and len(run.metrics("step")) > 2, 120, "the slow cell to train")
    for proc in list(procs):
        proc.send_signal(signal.SIGINT)  # what run_sweep sends on Ctrl-C
    worker.join(timeout=120)
    assert result["state"] == "cancelled" and run.checkpoint_path("last").exists()
    assert "--- the log of Ray job tssd-slow-cell-" in (run.path / "train.log").read_text()
