"""The Experiment page's sidebar: a prepared question or one built from arms, and its Run button's work.

The widgets return plain values (`ExperimentForm`); `build` turns them into a checked
`tssd_viz.sweep.experiment.Experiment`, `start` writes its folder and starts its driver, which trains the
cells through the shared job queue.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from tssd_viz import ConfigError
from tssd_viz.config import MODES
from tssd_viz.sweep.arms import EQUAL_TIME, NO_KL, NO_KL_SETTINGS, SEP, ArmError
from tssd_viz.sweep.experiment import (
    ARMS_RANGE,
    QUESTIONS,
    Experiment,
    create,
    launch,
    make_arms,
    make_experiment,
    parse_overrides,
    prepared,
)

from . import starts, state

CUSTOM = "custom"
SEEDS = (3, 8)  # the page's range: fewer than 3 seeds has no spread worth showing
ARM_KINDS = (*MODES, *(f"{m}{SEP}{NO_KL}" for m in NO_KL_SETTINGS), f"baseline{SEP}{EQUAL_TIME}")
DEFAULT_ARMS = ("baseline", "tsd", f"tsd{SEP}noKL", "tssd", "ssd")
PERSIST = {"persist_state": "session"}


@dataclass(frozen=True)
class ExperimentForm:
    """What the sidebar says: a question key (or CUSTOM), seeds, overrides for every arm, and for CUSTOM its
    starting point and arms (kind, overrides text)."""

    question: str
    seeds: int
    shared: str
    start: str = "events"
    arms: tuple[tuple[str, str], ...] = ()


def sidebar() -> ExperimentForm:
    """Draw the question picker and its settings in the sidebar; return their values."""
    sb = st.sidebar
    keys = [*QUESTIONS, CUSTOM]
    names = {k: q.text for k, q in QUESTIONS.items()} | {CUSTOM: "Build your own…"}
    question = sb.selectbox("Question", keys, format_func=names.get, key="exp_question", **PERSIST)
    seeds = sb.number_input("Seeds", *SEEDS, value=3, step=1, key="exp_seeds", **PERSIST)
    shared = sb.text_input(
        "Settings for every arm (optional)",
        key="exp_shared",
        placeholder="e.g. train.epochs=2, data.limit_train=512",
        help="Dotted config names with values, comma-separated, on top of the starting point: a shorter "
        "version of the question for a lesson.",
        **PERSIST,
    )
    if question != CUSTOM:
        q = QUESTIONS[question]
        sb.caption(f"Arms: {', '.join(q.arms)}. {q.why}")
        return ExperimentForm(question, int(seeds), shared)
    start = sb.selectbox("Start from", list(starts.STARTS), format_func=lambda s: starts.STARTS[s][0], key="exp_start")
    n = sb.number_input("Arms", *ARMS_RANGE, value=3, step=1, key="exp_n_arms", **PERSIST)
    arms = []
    for i in range(int(n)):
        c1, c2 = sb.columns([2, 3])
        kind = c1.selectbox(
            f"Arm {i + 1}", ARM_KINDS, index=ARM_KINDS.index(DEFAULT_ARMS[i]), key=f"exp_arm_{i}", **PERSIST
        )
        over = c2.text_input(
            f"its overrides {i + 1}", key=f"exp_arm_over_{i}", placeholder="distill.alpha=2", **PERSIST
        )
        arms.append((kind, over))
    sb.caption("The first arm is the reference the others are compared with, seed by seed.")
    return ExperimentForm(CUSTOM, int(seeds), shared, start, tuple(arms))


def build(form: ExperimentForm, at_once: int) -> Experiment:
    """The experiment the form describes (ConfigError / ArmError in one line when it cannot run)."""
    shared = parse_overrides(form.shared)
    if form.question != CUSTOM:
        return prepared(form.question, form.seeds, at_once=at_once, settings=shared)
    label, make_base = starts.STARTS[form.start]
    base = make_base().replace(**shared)
    arms = make_arms([k for k, _ in form.arms], [parse_overrides(o) for _, o in form.arms])
    question = f"{' vs '.join(a.name for a in arms)} · {label.split(' · ')[0]}"
    return make_experiment(question, base, arms, form.seeds, at_once=at_once)


def check(form: ExperimentForm) -> str | None:
    """Why the form's experiment cannot run (one line), or None."""
    try:
        build(form, state.job_manager().max_running)
    except (ConfigError, ArmError, TypeError, ValueError) as e:
        return str(e)
    return None


def start(form: ExperimentForm) -> None:
    """The Run button's callback: make the experiment's folder, start its driver, watch it (the address keeps
    it, so a reload re-attaches)."""
    jobs = state.job_manager()
    try:
        exp = build(form, jobs.max_running)
        sweep_dir = create(exp, state.runs_root())
    except (ConfigError, ArmError, TypeError, ValueError, OSError) as e:
        state.flash("error", f"Not started: {e}")
        return
    proc = launch(sweep_dir)
    threading.Thread(target=proc.wait, name=f"reap {sweep_dir.name}", daemon=True).start()  # no zombie left
    watch(sweep_dir.name)
    state.flash(
        "success",
        f"Started {sweep_dir.name}: {len(exp.arms)} arms × {len(exp.seeds)} seeds = {len(exp.cells())} runs through "
        f"the job queue, {jobs.max_running} at a time, seed by seed.",
    )


def watch(name: str) -> None:
    st.session_state.experiment = name
    st.query_params["experiment"] = name


def folder(name: str) -> Path:
    return state.runs_root() / "experiments" / name
