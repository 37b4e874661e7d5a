"""Helpers shared by the tests that watch another process: polling (app, job manager), a local server
(the dashboard, JupyterLab) and the headless Chromium that the browser tests drive."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's; Playwright's own download is not used
# Without the background-networking flags Chromium keeps trying hosts this offline machine cannot reach.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def wait_for(predicate, timeout=150.0, what="condition"):
    """Return once `predicate()` is true; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_server(args: list[str], health: str, log_path: Path, *, cwd: Path, env: dict, timeout: float = 90.0):
    """Start a server (`python -m ARGS`) in a session of its own, wait until GET `health` answers 200,
    yield; on exit stop it and everything it started (kernels, training runs keep their own sessions).
    A server that dies while starting fails the test with its log."""
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def up() -> bool:
            assert server.poll() is None, log_path.read_text()
            try:
                return urllib.request.urlopen(health, timeout=2).status == 200
            except OSError:
                return False

        try:
            wait_for(up, timeout, f"{args[0]} to start")
            yield server
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
