"""Where runs live, the job manager every session shares, and session state set up once per session."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from tssd_viz.jobs.queue import JobManager

from . import starts

# How often a fragment re-reads run folders and re-sends its charts, in seconds. Every refresh re-sends every
# chart of its fragment; on a loaded 2-core machine a refresh every second queued up behind the training runs
# (charts blank while redrawn, updates seconds late), so the live charts refresh every 2 s, the rest less often.
REFRESH_S = 2.0  # the watched run: progress, tiles and the training charts
PROBE_REFRESH_S = 6.0  # probe snapshots arrive once an epoch: their charts need not be re-sent often
RUNS_REFRESH_S = 5.0  # the runs panel: the other runs' progress bars and the table of every run
POLL_S = 0.5  # job manager: how often queued runs are considered for a free slot, in seconds


def runs_root() -> Path:
    """$TSSD_RUNS_DIR, or ./runs relative to where `streamlit run` was started."""
    return Path(os.environ.get("TSSD_RUNS_DIR") or "runs").expanduser().absolute()


def classroom_mode() -> bool:
    """$TSSD_SERVE=classroom (`make serve`): the dashboard is open to a network, so it opens run
    folders inside the runs folder only."""
    return os.environ.get("TSSD_SERVE", "").strip().lower() == "classroom"


def outside_runs_refusal(path: Path) -> str | None:
    """Why `path` may not be opened in classroom mode (None: it may; or not in classroom mode)."""
    if not classroom_mode():
        return None
    root = runs_root().resolve()
    if path.resolve() == root or root not in path.resolve().parents:
        return f"{path} is outside the runs folder {root}: this classroom server opens run folders there only."
    return None


@st.cache_resource(show_spinner=False)
def _job_manager(root: str, max_running: int | None) -> JobManager:
    # One per runs folder and app process, shared by every browser session. Its thread only starts
    # queued runs and reaps finished ones: the runs themselves live in their own process sessions,
    # so nothing here has to outlive a tab or a rerun.
    jobs = JobManager(root, max_running=max_running)
    jobs.start(POLL_S)
    return jobs


def job_manager() -> JobManager:
    """The shared job manager (`TSSD_MAX_RUNNING` overrides its limit: one per GPU, one on a CPU)."""
    limit = os.environ.get("TSSD_MAX_RUNNING")
    return _job_manager(str(runs_root()), int(limit) if limit else None)


def init_session() -> None:
    """Session state, set once per browser session (a reload is a new session; the URL keeps the run)."""
    ss = st.session_state
    if ss.get("_initialised"):
        return
    ss.my_runs = []  # names of the runs this session submitted, newest last
    ss.flash = None  # (kind, text) shown once after a rerun, e.g. the result of pressing Train
    starts.init_defaults(ss)
    ss._initialised = True


def my_runs() -> list[str]:
    return st.session_state.get("my_runs", [])


def flash(kind: str, text: str) -> None:
    """Show `text` once, at the next run of the page (set from callbacks, which run before the page)."""
    st.session_state.flash = (kind, text)


def show_flash() -> None:
    """The note a button left for this run, in a slot drawn on every run.

    With the slot drawn, note or not, what follows keeps its place on the page. Without it, the rerun after
    the note would move every later part one place up, and until that run ended the page would show the old
    copy of each, stale, beside the new one.
    """
    slot = st.empty()
    note = st.session_state.get("flash")
    if note:
        kind, text = note
        {"error": slot.error, "success": slot.success, "warning": slot.warning}.get(kind, slot.info)(text)
        st.session_state.flash = None
