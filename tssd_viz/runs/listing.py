"""Listing the run folders under a root: every folder with a config.json, newest first (`run_folders`), and
one summary line of each for a table of runs (`list_runs`), a folder this version cannot read among them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from .folders import RunFolder
from .status import UNREADABLE
from .unreadable import first_line


def run_folders(root: str | os.PathLike) -> list[RunFolder]:
    """Every run folder directly under `root` (a folder with a config.json).

    Args:
        root: the folder of run folders.

    Returns:
        Newest first: by when its config was written, then by name.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [RunFolder(p) for p in root.iterdir() if p.is_dir() and _has_config(p)]
    return sorted(runs, key=lambda run: (_mtime_ns(run.config_path), run.name), reverse=True)


def _has_config(folder: Path) -> bool:
    try:
        return (folder / "config.json").exists()
    except OSError:  # a folder we may not look into: listed, and read as unreadable (never a traceback)
        return True


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # gone, or not ours to look at
        return 0


@dataclass(frozen=True)
class RunSummary:
    path: Path
    name: str
    state: str
    message: str
    mode: str  # "" for an unreadable folder
    dataset: str
    t_student: int  # 0 for an unreadable folder
    acc_student: float | None  # final test accuracy at T_s, when evaluated


def list_runs(root: str | os.PathLike) -> list[RunSummary]:
    """Every run folder directly under `root`, summarised for a table.

    Args:
        root: the folder of run folders.

    Returns:
        One `RunSummary` per folder, newest first; one whose config this version cannot read is listed as
        "unreadable", its message one line naming the file and why.
    """
    out = []
    for run in run_folders(root):
        try:
            cfg = run.config()
            st = run.status()
            acc = run.final_eval().get(cfg.distill.t_student)
        except Exception as e:  # one folder that cannot be read never hides the others
            why = str(e) if isinstance(e, ConfigError) else f"{run.path}: {type(e).__name__}: {first_line(e)[:120]}"
            out.append(RunSummary(run.path, run.name, UNREADABLE, why, "", "", 0, None))
            continue
        out.append(
            RunSummary(
                run.path,
                run.name,
                st.get("state", "?"),
                st.get("message", ""),
                cfg.distill.mode,
                cfg.data.dataset,
                cfg.distill.t_student,
                acc,
            )
        )
    return out
