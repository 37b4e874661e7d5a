"""Reading run folders cheaply, about once a second, for every open browser session.

What the files mean is `tssd_viz.runs`'s business; this module only decides how often to read them:
- metrics.jsonl through one `MetricsTail` per run and session, which parses only the lines appended since.
- config.json and probe snapshots are cached by (path, modification time).
- the runs table reads each status.json; final accuracies only once a run has finished.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import streamlit as st

from tssd_viz import RunFolder, TSSDConfig, runs
from tssd_viz.config import ConfigError
from tssd_viz.jobs import ACTIVE
from tssd_viz.runs import UNREADABLE, ProbeSnapshot, run_folders


def records(run: RunFolder) -> list[dict[str, Any]]:
    """Every record of the run so far (this session's tail of its metrics.jsonl, refreshed)."""
    tails = st.session_state.setdefault("_tails", {})
    tail = tails.get(run.metrics_path)
    if tail is None:
        tail = tails[run.metrics_path] = run.tail()
    tail.refresh()
    return tail.records


def last_of(recs: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((r for r in reversed(recs) if r.get("kind") == kind), None)


def thin(recs: list[dict[str, Any]], max_steps: int = 1500) -> list[dict[str, Any]]:
    """At most about `max_steps` step records (every k-th, the last kept), all epoch and eval records.

    Display only: a long run's charts stay light to send once a second.
    """
    steps = [r for r in recs if r.get("kind") == "step"]
    if len(steps) <= max_steps:
        return recs
    k = -(-len(steps) // max_steps)  # ceiling division
    keep = {id(r) for r in steps[::k]} | {id(steps[-1])}
    return [r for r in recs if r.get("kind") != "step" or id(r) in keep]


# -- config and probes, cached by modification time
def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


@lru_cache(maxsize=2048)
def _config(path: str, mtime_ns: int) -> TSSDConfig | str:
    """The run's config, or why it cannot be read (one line)."""
    try:
        return RunFolder(path).config()
    except ConfigError as e:  # a folder that is not a run of this version: listed as unreadable, never fatal
        return str(e)
    except Exception as e:  # whatever the bytes: one line, never a traceback on a page
        return f"{path}/config.json: {type(e).__name__}"


def config(run: RunFolder) -> TSSDConfig | None:
    cfg = _config(str(run.path), _mtime(run.config_path))
    return cfg if isinstance(cfg, TSSDConfig) else None


def config_problem(run: RunFolder) -> str:
    """Why the run's config.json cannot be read ("" when it can)."""
    cfg = _config(str(run.path), _mtime(run.config_path))
    return "" if isinstance(cfg, TSSDConfig) else cfg


@st.cache_data(max_entries=64, show_spinner=False)
def _probe(path: str, mtime_ns: int) -> ProbeSnapshot:
    return runs.load_probe(path)  # a ProbeError of one line for any file that is not a snapshot


def load_probe(path: Path) -> ProbeSnapshot:
    """A probe snapshot file of `RunFolder.probes()`."""
    return _probe(str(path), _mtime(path))


# -- the runs table
@dataclass(frozen=True)
class RunRow:
    name: str
    path: Path
    state: str
    message: str
    cfg: TSSDConfig | None
    status: dict[str, Any]

    @property
    def run(self) -> RunFolder:
        return RunFolder(self.path)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def label(self) -> str:
        if self.cfg is None:
            return f"{self.name} (unreadable)"
        d = self.cfg.distill  # no state here: a select box keeps showing the label it first drew
        return f"{self.name} · {d.mode}, T_s={d.t_student}, T_t={d.t_teacher}"


def run_rows(root: Path) -> list[RunRow]:
    """Every run folder under `root`, newest first (by the time its config was written)."""
    rows = []
    for run in run_folders(root):
        status, cfg = run.status(), config(run)
        if cfg is None:  # listed, with the file and the reason, and never started or charted
            status = {"state": UNREADABLE, "message": config_problem(run) or f"{run.name}: config.json is missing"}
        rows.append(RunRow(run.name, run.path, status["state"], status["message"], cfg, status))
    return rows


STATE_BADGES = {
    "queued": ("queued", "gray", ":material/schedule:"),
    "running": ("running", "blue", ":material/play_circle:"),
    "done": ("done", "green", ":material/check_circle:"),
    "failed": ("failed", "red", ":material/error:"),
    "cancelled": ("cancelled", "orange", ":material/cancel:"),
    UNREADABLE: ("unreadable", "red", ":material/broken_image:"),
    "missing": ("missing", "gray", ":material/help:"),
}


# -- progress and time left
@dataclass(frozen=True)
class Progress:
    fraction: float  # in [0, 1]
    text: str


def duration(seconds: float) -> str:
    """Seconds as a student reads them: tenths below 10 s (a digits run trains in 3), then whole units."""
    if max(seconds, 0) < 9.95:
        return f"{max(seconds, 0):.1f} s"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress(
    status: dict[str, Any], recs: list[dict[str, Any]], cfg: TSSDConfig | None, queue_position: int | None = None
) -> Progress:
    """Where a run is, from status.json (`total_steps`) and its latest step record (`step`, `wall_s`)."""
    state = status.get("state")
    if state == "queued":
        where = f" ({_ordinal(queue_position)} in line)" if queue_position else ""
        return Progress(0.0, f"queued{where}: waiting for a free slot")
    last = last_of(recs, "step") or last_of(recs, "epoch")
    if state == "running" and last is None:
        waited = time.time() - float(status.get("started") or status.get("time") or time.time())
        return Progress(0.0, f"{status.get('message') or 'starting'} ({duration(waited)})")
    step, wall = (last.get("step", 0), last.get("wall_s", 0.0)) if last else (0, 0.0)
    total = status.get("total_steps") or (step if state == "done" else 0)
    budget = cfg.train.time_budget_s if cfg else 0.0
    fraction = max(step / total if total else 0.0, wall / budget if budget else 0.0)
    if state in ("done", "failed", "cancelled"):
        fraction = 1.0 if state == "done" else min(fraction, 1.0)
        return Progress(fraction, f"{state} after {step:,} steps and {duration(wall)} of training")
    left = (total - step) * wall / step if step and total else None
    if budget:
        left = min(left if left is not None else budget, budget - wall)
    epoch = f" · epoch {last.get('epoch', '?')} of {cfg.train.epochs}" if last and cfg else ""
    tail = f" · about {duration(left)} left" if left is not None else ""
    return Progress(min(fraction, 1.0), f"step {step:,} of {total:,}{epoch}{tail}")


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


@lru_cache(maxsize=1024)
def _final(path: str, mtime_ns: int) -> dict[int, float]:
    return RunFolder(path).final_eval()


def final_of(row: RunRow) -> dict[int, float]:
    """Test accuracy by window of a finished run (read once per change of its metrics.jsonl)."""
    if row.active:
        return {}
    return _final(str(row.path), _mtime(row.run.metrics_path))
