"""status.json, a run's state (SPEC §8): the states a run can be in, the record written, and what a reader
makes of the record it reads back (fields of the wrong type dropped, a state it does not know refused,
a run whose process died without saying so reported as failed).

`RunFolder.set_status` and `RunFolder.status` go through here; a folder without status.json gets its state
from its other files (`RunFolder.derived_status`).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from .processes import is_training_process, process_start
from .unreadable import is_number, json_object, shown

STATES = ("queued", "running", "done", "failed", "cancelled")
UNREADABLE = "unreadable"  # what status() says of a folder whose status.json cannot be read; never written
# Fields of status.json that readers do arithmetic with: a value of another type is dropped on reading.
_NUMERIC_STATUS = ("time", "started", "total_steps", "steps", "exit_code", "gpu", "proc_start")


def status_record(state: str, message: str, **extra: Any) -> dict[str, Any]:
    """What status.json holds; with the pid (this process's unless given) goes its start time, so that a
    reader can tell the run's process from another one that later gets the same pid."""
    assert state in STATES, state
    record = {"state": state, "message": message, "pid": os.getpid(), "time": time.time(), **extra}
    pid = record["pid"]
    record["proc_start"] = process_start(pid) if isinstance(pid, int) else None
    return record


def parse_status(data: bytes) -> tuple[dict[str, Any] | None, str]:
    """status.json's record with its fields of the wrong type dropped, or (None, why it cannot be read)."""
    st, why = json_object(data, "status.json")
    if st is not None and st.get("state") not in STATES:
        st, why = None, f"status.json says state {shown(st.get('state'))}, not one of {', '.join(STATES)}"
    return (sane_status(st), "") if st is not None else (None, why)


def sane_status(st: dict[str, Any]) -> dict[str, Any]:
    """A status record whose fields have the types its readers expect: ill-typed known fields are dropped."""
    out = {k: v for k, v in st.items() if k not in _NUMERIC_STATUS or is_number(v)}
    out["message"] = st["message"] if isinstance(st.get("message"), str) else ""
    if not isinstance(out.get("host", ""), str):
        out.pop("host")
    return out


def checked_alive(st: dict[str, Any], folder: Path) -> dict[str, Any]:
    """`st`, or failed when it says running on this host and its process is no longer the run's."""
    if st["state"] == "running" and st.get("host", platform.node()) == platform.node():
        # No pid: a cluster job (watched through the cluster). A pid: it must be this run's process.
        if st.get("pid") is not None and not is_training_process(st, folder.absolute()):
            return {
                **st,
                "state": "failed",
                "message": "the training process ended without a final status (killed?); "
                "its last checkpoint is kept: resume with --resume",
            }
    return st
