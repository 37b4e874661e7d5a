"""One run on screen: progress, the distillation signals, the final result.

`run_panel` is drawn inside a fragment that reruns every two seconds while the run is queued or
training, so only these charts refresh, never the page; the probe batch, whose data changes once an
epoch, has a slower fragment of its own (probe_batch.py). Each refresh reads only what was appended to
metrics.jsonl; a figure is rebuilt only when its data changed (`figure`, shared by every page).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from tssd_viz import RunFolder, figures
from tssd_viz.figures import style
from tssd_viz.figures.dashboard import firing_rate_history_figure
from tssd_viz.jobs.disk_queue import ACTIVE
from tssd_viz.runs.metrics import final_accuracy

from . import reading, state

PLOTLY_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
# Each chart stands alone in a container keyed CHART_BOX + its key. A changed figure is a new chart to
# Streamlit, which keeps the old copy (stale) beside the new one until the page's run ends: half a second to
# two seconds in which a live page would show each chart twice and jump. Alone in its box, that copy is
# always the box's second child, which the app's style (CHART_BOX_STYLE, in app/main.py) hides.
CHART_BOX = "chartbox_"
CHART_BOX_STYLE = (
    f'[class*="st-key-{CHART_BOX}"] > .stElementContainer + .stElementContainer[data-stale="true"] {{ display: none; }}'
)


def figure(slot: str, version: Any, build: Callable[[], go.Figure]) -> go.Figure:
    """The figure in `slot`, rebuilt only when `version` (what it was drawn from) changed."""
    cache = st.session_state.setdefault("_figures", {})
    hit = cache.get(slot)
    if hit is None or hit[0] != version:
        hit = cache[slot] = (version, build())
    return hit[1]


def chart(fig: go.Figure, key: str, legend_below: bool = False) -> None:
    """Draw a figure; `legend_below` moves a long legend under a chart that shares the row with another."""
    if legend_below:  # the legend takes height instead of width
        style.legend_below(fig)
    with st.container(key=f"{CHART_BOX}{key}"):  # see CHART_BOX
        st.plotly_chart(fig, key=key, config=PLOTLY_CONFIG)


def traces_caption(threshold: float, tau: float) -> str:
    """Under a membrane-traces chart: how to read the sawtooth of soft reset."""
    return (
        f"Each line is one neuron. Between timesteps its potential leaks (× β = 1 − 1/τ = {1 - 1 / tau:g}) "
        f"and charges with its input, up to H(t). When H(t) reaches the threshold θ = {threshold:g} the neuron "
        "spikes (★, in its colour) and the **soft reset** subtracts θ: the line drops straight down to "
        "V(t) = H(t) − θ, so charge beyond θ is kept for the next step. What is recorded is V(t); "
        "H(t) = V(t) + θ·S(t) is drawn from it."
    )


def percent(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def cancel_button(name: str, key: str) -> None:
    if st.button(
        "Cancel",
        key=key,
        icon=":material/stop_circle:",
        help="Stop after the current step; the last checkpoint is kept.",
    ):
        st.toast(f"{name}: {state.job_manager().cancel(state.runs_root() / name)}")


def run_panel(name: str, was_active: bool) -> None:
    """Everything about run `name`; `was_active`: it was queued or training when the page was drawn."""
    run = RunFolder(state.runs_root() / name)
    if not run.exists():
        st.warning(f"The run folder {run.path} is gone.")
        return
    status = run.status()
    active = status.get("state") in ACTIVE
    if was_active and not active:
        st.rerun()  # it just finished: redraw the page once, without the timer
    cfg = reading.config(run)
    recs = reading.records(run)
    _header(run, status, active)
    position = None
    if status.get("state") == "queued":
        names = [r.name for r in state.job_manager().queue()]
        position = names.index(name) + 1 if name in names else None
    prog = reading.progress(status, recs, cfg, position)
    st.progress(prog.fraction, text=prog.text)
    last = reading.last_of(recs, "step")
    n_steps = sum(1 for r in recs if r.get("kind") == "step")
    with st.container(key="live_status"):
        when = time.strftime("%H:%M:%S")
        if last is None:
            st.caption(f"No step records yet · checked {when}")
        else:
            live = "Live" if active else "Final"
            st.caption(f"{live} · updated at step {last['step']} · {n_steps} step records · checked {when}")
    if status.get("state") == "failed":
        st.error(reading.in_form_words(status.get("message") or "failed"), icon=":material/error:")
        tail = run.log_tail(25, sep="\n")
        if tail:
            with st.expander("The end of its log.txt"):
                st.code(tail, language=None)
    if cfg is None:
        st.warning("Its config.json cannot be read by this version of tssd-viz.")
        return
    _tiles(recs)
    final = final_accuracy(recs)
    if final:  # the headline once training is over
        _final_section(name, recs, final, cfg)
    if recs:
        _training_charts(name, recs, cfg)


def _header(run: RunFolder, status: dict, active: bool) -> None:
    text, color, icon = reading.STATE_BADGES.get(status.get("state"), ("unknown", "gray", ":material/help:"))
    c1, c2 = st.columns([5, 1], vertical_alignment="center")
    with c1:
        st.markdown(f"#### {run.name}")
        st.badge(text, color=color, icon=icon)
        if status.get("message") and not active and status.get("state") != "failed":
            st.caption(status["message"])  # while active, the progress line says it
    if active:
        with c2:
            cancel_button(run.name, "cancel_watched")


def _tiles(recs: list[dict]) -> None:
    last = reading.last_of(recs, "step") or {}
    epoch = next((r for r in reversed(recs) if r.get("kind") == "epoch" and r.get("test_acc") is not None), None)
    final = final_accuracy(recs)
    tested = "held-out, at the last evaluated epoch"
    if epoch and not final:  # an evaluation during training (a cancelled run has no final one): say which
        tested = f"held-out, after epoch {epoch['epoch']} (step {epoch['step']:,}); not the final evaluation"
    tiles = [
        ("student accuracy", percent(last.get("acc_student")), "training batch, window T_s"),
        ("teacher accuracy", percent(last.get("acc_teacher")), "training batch, window T_t"),
        ("weak head accuracy", percent(last.get("acc_weak")), "training batch"),
        ("agreement", percent(last.get("agreement")), "argmax of teacher = argmax of student"),
        (
            "test accuracy at T_s",
            percent(epoch["test_acc"] if epoch else None),
            tested,
        ),
    ]
    if final and epoch is None:
        tiles[-1] = ("test accuracy at T_s", "–", "")
    for col, (label, value, help_) in zip(st.columns(len(tiles)), tiles):
        col.metric(label, value, help=help_, border=True)


def _training_charts(name: str, recs: list[dict], cfg) -> None:
    shown = reading.thin(recs)
    version = (name, len(recs))
    t_s = cfg.distill.t_student
    smooth = 0.6 if sum(r.get("kind") == "step" for r in shown) > 100 else 0.0
    st.markdown("##### The distillation signals, step by step")
    c1, c2 = st.columns(2)
    with c1:
        chart(figure("loss", version, lambda: figures.loss_parts_figure(shown, smooth=smooth)), "live_loss", True)
    with c2:
        chart(figure("acc", version, lambda: figures.accuracy_figure(shown)), "live_accuracy", True)
    c1, c2 = st.columns(2)
    with c1:
        teacher_signals(shown, cfg, version)
    with c2:
        chart(figure("heat", version, lambda: figures.window_heatmap_figure(shown, t_student=t_s)), "live_windows")
    c1, c2 = st.columns(2)
    with c1:
        chart(figure("rates", version, lambda: firing_rate_history_figure(shown)), "live_rates", True)
    last = reading.last_of(recs, "step")
    with c2:
        if last and last.get("firing_rate"):
            fig = figure(
                "rate_bars",
                version,
                lambda: figures.firing_rate_figure(
                    last["firing_rate"], title=f"firing rate per layer at step {last['step']}"
                ),
            )
            chart(fig.update_xaxes(tickangle=-20), "live_rate_bars")
    if last and last.get("confidence_by_timestep"):  # T_s >= 2: the student window's timesteps as sub-models
        c3, c4 = st.columns(2)
        with c3:
            chart(figure("conf", version, lambda: figures.timestep_confidence_figure(shown)), "live_confidence", True)
        with c4:
            chart(figure("strip", version, lambda: figures.strong_weak_strip_figure(shown)), "live_strong_weak")


NO_TEACHER_WINDOW = {  # modes whose step records carry no agreement or KL of a teacher window: what they do record
    "baseline": "A baseline run trains at T_s alone: no teacher, so no teacher-student agreement or KL to draw. "
    "Its signals are the task loss and the accuracies above.",
    "s2w": "s2w has no teacher window: inside the T_s window its most confident timestep teaches the least "
    "confident. It records that term as the **strong/weak loss** (in the loss chart) and each timestep's "
    "confidence and the strongest/weakest timestep (the charts below), not a KL(teacher ‖ student) of windows.",
    "w2s": "w2s has no teacher window: inside the T_s window its least confident timestep teaches the most "
    "confident. It records that term as the **strong/weak loss** (in the loss chart) and each timestep's "
    "confidence and the strongest/weakest timestep (the charts below), not a KL(teacher ‖ student) of windows.",
}


def teacher_signals(shown: list[dict], cfg, version: Any) -> None:
    """The agreement/KL chart, or, for a mode that records neither, what it records instead."""
    recorded = any(r.get("kl") is not None or r.get("agreement") is not None for r in shown if r.get("kind") == "step")
    note = NO_TEACHER_WINDOW.get(cfg.distill.mode)
    if note and not recorded:
        st.markdown("**teacher-student agreement and KL**")
        st.info(note, icon=":material/info:")
        return
    chart(figure("kl", version, lambda: figures.kl_agreement_figure(shown)), "live_kl", True)


def _final_section(name: str, recs: list[dict], final: dict[int, float], cfg) -> None:
    t_s = cfg.distill.t_student
    st.markdown("##### Test accuracy of every window after training")
    c1, c2 = st.columns([1, 2])
    # In percent with one decimal for every window ("percent" would print 97.5% beside 98.33%)
    table = [
        {"window n": f"{n} (T_s, the student)" if n == t_s else str(n), "test accuracy": 100 * acc}
        for n, acc in sorted(final.items())
    ]
    c1.dataframe(
        table,
        hide_index=True,
        key="live_final_table",
        column_config={
            "test accuracy": st.column_config.ProgressColumn(format="%.1f%%", min_value=0.0, max_value=100.0)
        },
    )
    with c2:
        chart(
            figure(
                "final", (name, len(recs)), lambda: figures.accuracy_vs_timesteps_figure({name: recs}, t_student=t_s)
            ),
            "live_final",
        )
    end = reading.last_of(recs, "analysis")  # runs from before the analysis record have none
    if end is None:
        return
    train_acc = final_accuracy(recs, "train").get(t_s)
    notes = []
    if end.get("teacher_margin") is not None:
        notes.append(f"its teacher knew **{100 * end['teacher_margin']:+.1f} points** more than its student")
    if train_acc is not None and final.get(t_s) is not None:
        notes.append(f"train − test accuracy at T_s: **{100 * (train_acc - final[t_s]):+.1f} points**")
    if notes:
        st.caption("At the end of training: " + "; ".join(notes) + ".")
    st.markdown("##### Each timestep alone, and early exit")
    c1, c2 = st.columns(2)
    with c1:
        chart(
            figure("final_steps", (name, len(recs)), lambda: figures.timestep_accuracy_figure({name: end})),
            "live_final_steps",
        )
    with c2:
        chart(
            figure(
                "final_exit",
                (name, len(recs)),
                lambda: figures.early_exit_figure({name: end.get("early_exit") or []}, full_window=t_s),
            ),
            "live_final_exit",
        )
