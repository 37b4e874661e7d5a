"""Which process a run folder's status.json names, and whether it is still that run's training process.

A pid alone does not say it: the system reuses pids, and a status.json may hold any number. So a status
records, with the pid, the process's start time (/proc/PID/stat); a run counts as running while a process
with that pid and that start time lives. A status written before start times were recorded counts while its
process's command line names the run folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PID_MAX = 2**22  # Linux's largest pid_max: a "pid" beyond it (or below 1: a process group) names no process


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (/proc/PID/stat, field 22); None without /proc or
    such a process. With the pid it names one process: a pid the system reuses starts at another time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return int(stat.rsplit(b")", 1)[1].split()[19])  # fields after the command's ")" start at field 3
    except (OSError, IndexError, ValueError):
        return None


def is_training_process(st: Mapping[str, Any], run_path: Path) -> bool:
    """Whether the process that status `st` names is alive and is the one that trains the run at `run_path`:
    its start time is the one recorded with it (status.json's "proc_start"), or, in a status written before
    start times were recorded, its command line names the run folder. Where /proc is missing the pid's
    existence is all there is to go by."""
    pid = st.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < PID_MAX or not pid_alive(pid):
        return False
    started = process_start(pid)
    if started is None:
        return not Path("/proc/self/stat").exists()  # no /proc: trust the pid; with /proc: the process is gone
    if "proc_start" in st:
        return st["proc_start"] == started
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    # --run-dir RUN, --resume=RUN, --config RUN/config.json: an argument that is the folder or a file in it
    paths = [Path(arg.rpartition("=")[2].rstrip("/")) for arg in args if arg]
    return any(Path(run_path).name in (p.name, p.parent.name) for p in paths)
