"""Reading run folders cheaply, every few seconds, for every open browser session.

What the files mean is `tssd_viz.runs.folders`'s business; this module only decides how often to read them:
- metrics.jsonl through one `MetricsTail` per run and session, which parses only the lines appended since.
- config.json and probe snapshots are cached by (path, modification time).
- the runs table reads each status.json; final accuracies only once a run has finished.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import streamlit as st

from tssd_viz import RunFolder, TSSDConfig
from tssd_viz.config import ConfigError
from tssd_viz.data.events import event_digits_path
from tssd_viz.jobs.disk_queue import ACTIVE
from tssd_viz.runs.listing import run_folders
from tssd_viz.runs.status import UNREADABLE
from tssd_viz.snn.probes import ProbeSnapshot, read_probe
from tssd_viz.sweep import TRAIN_SIZES


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

    Display only: a long run's charts stay light to send every refresh.
    """
    steps = [r for r in recs if r.get("kind") == "step"]
    if len(steps) <= max_steps:
        return recs
    k = -(-len(steps) // max_steps)  # ceiling division
    keep = {id(r) for r in steps[::k]} | {id(steps[-1])}
    return [r for r in recs if r.get("kind") != "step" or id(r) in keep]


# -- config and probes, cached by modification time
def mtime_ns(path: Path) -> int:
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
    cfg = _config(str(run.path), mtime_ns(run.config_path))
    return cfg if isinstance(cfg, TSSDConfig) else None


def config_problem(run: RunFolder) -> str:
    """Why the run's config.json cannot be read ("" when it can)."""
    cfg = _config(str(run.path), mtime_ns(run.config_path))
    return "" if isinstance(cfg, TSSDConfig) else cfg


@st.cache_data(max_entries=64, show_spinner=False)
def _probe(path: str, mtime_ns: int) -> ProbeSnapshot:
    return read_probe(path)  # a ProbeError of one line for any file that is not a snapshot


def load_probe(path: Path) -> ProbeSnapshot:
    """A probe snapshot file of `RunFolder.probes()`."""
    return _probe(str(path), mtime_ns(path))


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
        making = cfg is not None and cfg.data.dataset == "event_digits" and not event_digits_path().exists()
        what = " · making the event recordings from the digits (once: later runs reuse them)" if making else ""
        return Progress(0.0, f"{status.get('message') or 'starting'}{what} ({duration(waited)})")
    step, wall = (last.get("step", 0), last.get("wall_s", 0.0)) if last else (0, 0.0)
    total = status.get("total_steps") or (step if state == "done" else 0)
    budget = cfg.train.time_budget_s if cfg else 0.0
    fraction = max(step / total if total else 0.0, wall / budget if budget else 0.0)
    spe = steps_per_epoch(status, cfg)
    if state == "cancelled" and last is not None and spe:
        step = max(step, int(status.get("steps") or 0))  # the step it stopped at (records come every log_every)
        where = snapshot_when(max(1, -(-step // spe)), step, spe)  # its epoch: ceil(step / steps per epoch)
        return Progress(min(fraction, 1.0), f"cancelled {where}, {duration(wall)} of training")
    if state in ("done", "failed", "cancelled"):
        fraction = 1.0 if state == "done" else min(fraction, 1.0)
        return Progress(fraction, f"{state} after {step:,} steps and {duration(wall)} of training")
    if evaluating(status, recs):
        return Progress(min(fraction, 1.0), f"step {step:,} of {total:,} · evaluating on the test set…")
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
    return _final(str(row.path), mtime_ns(row.run.metrics_path))


def steps_per_epoch(status: dict[str, Any], cfg: TSSDConfig | None) -> int | None:
    """Optimizer steps in one epoch: from status.json's `total_steps` while the run trains, else (a finished
    status keeps no total) from the config and the dataset's known size; None when unknown."""
    if cfg is None:
        return None
    if status.get("total_steps"):
        return status["total_steps"] // cfg.train.epochs
    return epoch_steps(cfg)


def epoch_steps(cfg: TSSDConfig) -> int | None:
    """Optimizer steps in one epoch of `cfg`, from the dataset's known size; None when it is not known."""
    n = cfg.data.limit_train or TRAIN_SIZES.get(cfg.data.dataset)
    return n // cfg.data.batch_size if n else None  # the loader drops a partial last batch


def snapshot_when(epoch: int, step: int, per_epoch: int | None) -> str:
    """When a snapshot (or a stop) happened: "before training", "after epoch 2", or, when the epoch was cut
    short (a cancel), "during epoch 1, at step 80 of 390"."""
    if step == 0:
        return "before training"
    if per_epoch and step < epoch * per_epoch:
        return f"during epoch {epoch}, at step {step - (epoch - 1) * per_epoch:,} of {per_epoch:,}"
    return f"after epoch {epoch}"


def evaluating(status: dict[str, Any], recs: list[dict[str, Any]]) -> bool:
    """Whether the run is evaluating now: status.json's `evaluating_at` (the step whose evaluation began,
    written by the trainer's before_eval) is not yet followed by a record of its result or a later step."""
    at = status.get("evaluating_at")
    if status.get("state") != "running" or not isinstance(at, int):
        return False
    return not any(r.get("step", -1) > at or (r.get("kind") != "step" and r.get("step") == at) for r in recs[-20:])


@lru_cache(maxsize=1024)
def _last_tested(path: str, mtime_ns: int) -> tuple[int, float] | None:
    tested = [r for r in RunFolder(path).metrics("epoch") if r.get("test_acc") is not None]
    return (tested[-1]["epoch"], tested[-1]["test_acc"]) if tested else None


def last_tested_of(row: RunRow) -> tuple[int, float] | None:
    """(epoch, test accuracy at T_s) of the run's last evaluation during training, or None."""
    return _last_tested(str(row.path), mtime_ns(row.run.metrics_path))


# What the library says in the command line's words, said in the form's (`--data.root` is the field "Data root").
FORM_WORDS = (
    ("--data.download is false", "downloading is off"),
    ("Pass --data.root PATH", "Give a **Data root**"),
    ("--data.root", "**Data root**"),
    ("or use --data.dataset ", "or pick the **Dataset** "),
    ("--data.dataset ", "**Dataset** "),
)


def in_form_words(message: str) -> str:
    """A library message as Markdown for a page: command-line flags named as the form's fields, and folder
    patterns such as train/<class>/* code-formatted (Markdown would read their `*` as emphasis)."""
    text = re.sub(r"(\S*/<class>/\*)", r"`\1`", message)
    text = re.sub(  # paths, whose _ and * are no Markdown either
        r"Paths tried: (.+?)\. ", lambda m: "Paths tried: " + ", ".join(f"`{p}`" for p in m[1].split(", ")) + ". ", text
    )
    for flag, field in FORM_WORDS:
        text = text.replace(flag, field)
    return text
