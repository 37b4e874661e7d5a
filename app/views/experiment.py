"""Experiment: ask whether a teacher helps, with seeds and controls, and watch the verdict form.

The sidebar picks a prepared question or builds one; Run submits its arms × seeds as one sweep through the
job queue. While it runs, the panel re-reads its run folders every two seconds: a dot per finished run, the
paired differences against the reference arm and the verdict sentences of `tssd_viz.stats`.
"""

from __future__ import annotations

import time

import streamlit as st
from dashboard import experiment_form, live, reading, state

from tssd_viz import RunFolder
from tssd_viz.sweep import experiment as ex
from tssd_viz.sweep.experiment_table import (
    column_text,
    experiment_rows,
    export,
    figure_of,
    render_csv,
    render_markdown,
    table,
    verdicts,
)

STATE_BADGES = {
    "running": ("running", "blue", ":material/autorenew:"),
    "finished": ("finished", "green", ":material/check_circle:"),
    "stopped": ("stopped", "orange", ":material/stop_circle:"),
}
TEACHER_HELP = "Accuracy of the arm's teacher minus its student's at the end, in points (none for the baseline)."


def clock(exp: ex.Experiment, states: dict[str, str], sweep_dir) -> str:
    """Since the click: the seconds so far, or those from the click to the last run's end."""
    ends = [
        RunFolder(sweep_dir / "runs" / name).status().get("time", 0.0)
        for name, s in states.items()
        if s not in ("planned", "queued", "running")
    ]
    if all(s == "done" for s in states.values()) and ends:
        return f"verdict {reading.duration(max(ends) - exp.created)} after the click"
    return f"{reading.duration(time.time() - exp.created)} since the click"


def progress_line(exp: ex.Experiment, states: dict[str, str]) -> str:
    counts = {s: sum(v == s for v in states.values()) for s in ("done", "running", "queued", "planned")}
    other = len(states) - sum(counts.values())
    text = f"{counts['done']} of {len(states)} runs done · {counts['running']} training · {counts['queued']} queued"
    return text + (f" · {other} stopped or failed" if other else "")


def verdict_box(exp: ex.Experiment, rows: list[dict], complete: bool) -> None:
    """The verdict sentences; `complete`: every run of the experiment is done."""
    seeds_done = min((r["n"] for r in rows), default=0)
    with st.container(key="exp_verdict", border=True):
        if len(rows) < 2:
            st.markdown("**Verdict:** waiting for the first seed to finish in two arms.")
            return
        when = "all seeds" if complete else f"so far, {seeds_done} seed(s) in every arm"
        st.markdown(f"**Verdict** ({when}):")
        st.markdown("\n".join(verdicts(exp, rows)))


def page_text(column: str, value) -> str:
    """A cell as the page shows it: `column_text`, and the unit after training seconds."""
    text = column_text(column, value)
    return text + " s" if column == "training s" and value is not None else text


def results_table(exp: ex.Experiment, rows: list[dict]) -> None:
    records = table(exp, rows)
    if not records:
        return
    # Text cells, as on Compare: a number column would print "None" where the reference has no difference.
    shown = [{k: page_text(k, v) for k, v in r.items()} for r in records]
    help_for = {"training s": "seconds in training steps, mean", "teacher margin (points)": TEACHER_HELP}
    fmt = {k: st.column_config.TextColumn(help=h) for k, h in help_for.items()}
    st.dataframe(shown, hide_index=True, key="exp_table", column_config=fmt)


def export_row(sweep_dir, exp: ex.Experiment, rows: list[dict], done: int, planned: int) -> None:
    c1, c2, c3, c4 = st.columns(4, vertical_alignment="center")
    if c1.button("Export", key="exp_export", icon=":material/save:", help="Write summary.md, table.csv, figure.html"):
        paths = export(sweep_dir)
        st.toast(f"Wrote {', '.join(p.name for p in paths.values())} in {sweep_dir}")
    name = exp.id
    c2.download_button(
        "Markdown", render_markdown(exp, rows, done, planned), f"{name}.md", "text/markdown", key="exp_dl_md"
    )
    c3.download_button("CSV", render_csv(exp, rows), f"{name}.csv", "text/csv", key="exp_dl_csv")
    c4.download_button(
        "Figure (HTML)",
        lambda: figure_of(exp, rows).to_html(include_plotlyjs=True),  # built only when pressed
        f"{name}.html",
        "text/html",
        key="exp_dl_html",
    )


def last_line(sweep_dir) -> str:
    try:
        lines = (sweep_dir / "sweep.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(none)"
    return lines[-1] if lines else "(empty)"


def label(name: str) -> str:
    """An experiment in the picker: its question and when it was started."""
    try:
        exp = ex.load(experiment_form.folder(name))
    except (OSError, ValueError, KeyError):
        return f"{name} (unreadable)"
    return f"{exp.question} · {time.strftime('%H:%M:%S', time.localtime(exp.created))} · {name}"


def panel(name: str, was_running: bool) -> None:
    """The experiment `name`: progress, Cancel, the figure, the verdict, the table, Export."""
    sweep_dir = experiment_form.folder(name)
    try:
        exp = ex.load(sweep_dir)
    except (OSError, ValueError, KeyError) as e:
        st.warning(f"{sweep_dir} cannot be read: {e}")
        return
    exp_state = ex.experiment_state(exp, sweep_dir)
    if was_running and exp_state != "running":
        st.rerun()  # it just ended: redraw once, without the timer
    states = ex.cell_states(exp, sweep_dir)
    done = sum(s == "done" for s in states.values())
    # Re-read the finished runs only when one more has finished (the table reads their metrics).
    version = (name, done, tuple(sorted(states.items())))
    rows = live.figure("exp_rows", version, lambda: experiment_rows(exp, sweep_dir))
    st.subheader(exp.question)
    text, color, icon = STATE_BADGES[exp_state]
    c1, c2 = st.columns([5, 1], vertical_alignment="center")
    c1.badge(text, color=color, icon=icon)
    with st.container(key="exp_status"):
        st.caption(f"{progress_line(exp, states)} · {clock(exp, states, sweep_dir)} · folder `{sweep_dir}`")
    st.progress(done / max(len(states), 1))
    if exp_state == "running" and c2.button("Cancel", key="exp_cancel", icon=":material/stop_circle:"):
        st.toast(ex.cancel(sweep_dir))
    if exp_state == "stopped":
        st.caption(f"The end of its sweep.log: {last_line(sweep_dir)}")
    live.chart(live.figure("exp_figure", version, lambda: figure_of(exp, rows, title=None)), "exp_figure")
    verdict_box(exp, rows, done == len(states))
    results_table(exp, rows)
    if rows:
        export_row(sweep_dir, exp, rows, done, len(states))


st.title("Experiment")
st.caption(
    "Does a teacher help? Pick a question and press **Run**: its arms train seed by seed through the job queue, "
    "and the verdict forms as seeds finish. Differences are paired by seed and judged against two standard errors."
)
form = experiment_form.sidebar()
problem = experiment_form.check(form)
if problem:
    st.sidebar.error(problem, icon=":material/block:")
st.sidebar.button(
    "Run",
    key="exp_run",
    type="primary",
    icon=":material/play_arrow:",
    width="stretch",
    disabled=problem is not None,
    on_click=experiment_form.start,
    args=(form,),
)
state.show_flash()
found = [p.name for p in ex.attach(state.runs_root())]
if found and st.session_state.get("experiment") not in found:  # a new session: the address's, else a running one
    asked = st.query_params.get("experiment")
    running = [n for n in found if ex.driver_pid(experiment_form.folder(n)) is not None]
    st.session_state.experiment = asked if asked in found else (running or found)[0]
if not found:
    st.info("No experiment yet. Pick a question in the sidebar and press **Run**.", icon=":material/science:")
else:
    st.selectbox(
        "Experiment",
        found,
        key="experiment",
        format_func=label,
        on_change=lambda: experiment_form.watch(st.session_state.experiment),
    )
    chosen = experiment_form.folder(st.session_state.experiment)
    running = ex.driver_pid(chosen) is not None
    st.fragment(run_every=2 * state.REFRESH_S if running else None)(panel)(st.session_state.experiment, running)
