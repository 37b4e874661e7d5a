"""Polling helper shared by the tests that watch a run in another process (app, job manager)."""

import time


def wait_for(predicate, timeout=150.0, what="condition"):
    """Return once `predicate()` is true; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.1)
