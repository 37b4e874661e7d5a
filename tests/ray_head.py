"""A real Ray head on this machine for the tests of the Ray executor: `ray start --head --block`, every port
local and chosen free, two CPUs, a small object store; stopped with everything it started afterwards.

Imported by the test modules that use the `ray_address` fixture (the fixture is session-wide: one head)."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest
from waiting import free_port, wait_for

REPO = Path(__file__).resolve().parents[1]
PORT_FLAGS = (
    "--port",
    "--node-manager-port",
    "--object-manager-port",
    "--ray-client-server-port",
    "--dashboard-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
)


def _ours(pid: int, marks: tuple[bytes, ...]) -> bool:
    """Whether process `pid` mentions one of `marks` in its command line or environment (this head's temp
    folder or its address): the Ray processes and the job entrypoints this head started, nobody else's."""
    try:
        text = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return any(m in text for m in marks)


@pytest.fixture(scope="session")
def ray_address():
    """The head's Jobs API address, http://127.0.0.1:PORT (what RAY_ADDRESS holds for TSSD_EXECUTOR=ray)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.fail('the Ray tests need the cluster extra: pip install -e ".[cluster]" (make test installs it)')
    ray_cli = Path(sys.executable).with_name("ray")
    ports = {flag: free_port() for flag in PORT_FLAGS}
    worker_low = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    address = f"http://127.0.0.1:{ports['--dashboard-port']}"
    env = {
        **os.environ,
        "PATH": f"{ray_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}",  # the jobs' `python` is this one
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    cmd = [str(ray_cli), "start", "--head", "--block", "--node-ip-address", "127.0.0.1"]
    cmd += ["--dashboard-host", "127.0.0.1", "--include-dashboard", "true", "--disable-usage-stats"]
    cmd += ["--num-cpus", "2", "--num-gpus", "0", "--object-store-memory", str(80 * 2**20), "--temp-dir", str(temp)]
    cmd += ["--min-worker-port", str(worker_low), "--max-worker-port", str(worker_low + 200)]
    for flag, port in ports.items():
        cmd += [flag, str(port)]
    log = temp / "head.log"
    with open(log, "w") as out:
        head = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def up() -> bool:
        assert head.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{address}/api/version", timeout=2) as r:
                return "ray_version" in json.load(r)
        except OSError:
            return False

    marks = (str(temp).encode(), f"127.0.0.1:{ports['--port']}".encode())
    try:
        wait_for(up, 120, "the Ray head to answer")
        yield address
    finally:
        _stop_jobs(address)
        # Every process of this head (and any job entrypoint left), gracefully, then by force.
        os.killpg(head.pid, signal.SIGTERM)
        _signal_ours(marks, signal.SIGTERM)
        try:
            wait_for(lambda: head.poll() is not None and not _signal_ours(marks, 0), 5, "the Ray processes to end")
        except TimeoutError:
            _signal_ours(marks, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)


def _signal_ours(marks: tuple[bytes, ...], sig: int) -> int:
    """Send `sig` (0: none, just count) to every process of this head; how many there were."""
    found = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and _ours(int(entry.name), marks):
            found += 1
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), sig)
    return found


def _stop_jobs(address: str) -> None:
    """Stop every job still pending or running (a failed test may leave one) and give them a moment to end."""
    try:
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(address)
        live = [j.submission_id for j in client.list_jobs() if not j.status.is_terminal()]
        for job_id in live:
            client.stop_job(job_id)
        wait_for(lambda: all(client.get_job_status(j).is_terminal() for j in live), 60, "the jobs to stop")
    except Exception as e:  # the head may already be gone; its processes are killed below anyway
        print(f"stopping the Ray jobs: {type(e).__name__}: {e}", file=sys.stderr)
