"""The form's Distillation section: the mode, the two windows, the weights of the loss terms, and the
method's open choices, each widget enabled only in the modes that use it.

What one field forces on another is set before the widget is drawn: s2w and w2s need a student window
of two timesteps, the teacher window is longer than the student's, and the 'continue' teacher pass
keeps the teacher detached and without a task loss.
"""

from __future__ import annotations

import streamlit as st

from tssd_viz import DistillConfig
from tssd_viz.config import MODES, SSD_TEACHERS, SW_VARIANTS, TSD_PASSES

from .form_fields import PERSIST, bounds, key, limit

MODE_HELP = {
    "baseline": "plain training at T_s: no teacher, no weak head",
    "tsd": "temporal: the T_t window teaches the T_s window",
    "ssd": "spatial: the final output teaches a weak head",
    "tssd": "both, as in the paper",
    "s2w": "strong → weak: inside the T_s window, the most confident timestep teaches the least confident "
    "(no extra timesteps, no weak head)",
    "w2s": "weak → strong: inside the T_s window, the least confident timestep teaches the most confident",
}


def distillation(box) -> None:
    """Draw the section in `box` (an expander of the sidebar)."""
    ss = st.session_state
    box.segmented_control(
        "Mode",
        MODES,
        key=key("distill.mode"),
        required=True,
        width="stretch",
        help=" · ".join(f"**{m}**: {t}" for m, t in MODE_HELP.items()),
        **PERSIST,
    )
    box.caption(MODE_HELP[ss[key("distill.mode")]])
    modes = DistillConfig(mode=ss[key("distill.mode")])
    temporal, spatial, timestep = modes.uses_teacher, modes.uses_weak_head, modes.uses_timestep_teacher
    _windows(box, timestep)
    _weights(box, temporal, spatial, timestep)
    with box.popover("The method's open choices", width="stretch"):
        _open_choices(temporal, spatial, timestep)


def _windows(box, timestep: bool) -> None:
    """T_s and T_t; `timestep`: the mode's timesteps teach each other, so the student window needs two."""
    ss = st.session_state
    if timestep and ss[key("distill.t_student")] < 2:  # a timestep teaches another: the window needs two
        ss[key("distill.t_student")] = 2
    c1, c2 = box.columns(2)
    c1.number_input(
        "Student T_s",
        min_value=2 if timestep else limit("distill.t_student", "lo", int),
        max_value=32,
        step=1,
        key=key("distill.t_student"),
        help="Timesteps the network uses at inference (at least 2 in s2w and w2s, whose timesteps teach each other).",
        **PERSIST,
    )
    t_s = int(ss[key("distill.t_student")])
    if ss[key("distill.t_teacher")] <= t_s:  # the teacher must see more timesteps than the student
        ss[key("distill.t_teacher")] = t_s + 1
    c2.number_input(
        "Teacher T_t",
        min_value=t_s + 1,
        max_value=limit("distill.t_teacher", "hi", int),
        step=1,
        key=key("distill.t_teacher"),
        help="Timesteps of the teacher window in training (more than T_s; tsd and tssd train with it); every "
        "window n = 1..T_t is evaluated, in every mode.",
        **PERSIST,
    )


def _weights(box, temporal: bool, spatial: bool, timestep: bool) -> None:
    """The weight of each distillation term, enabled in the modes that have it, and the softmax
    temperature they share."""
    weights = (  # label, field, whether the mode has the term, help
        ("α (TSD)", "distill.alpha", temporal, "Weight of the temporal term; only tsd and tssd have one."),
        ("β (SSD)", "distill.beta", spatial, "Weight of the spatial term; only ssd and tssd have one."),
        ("λ (s2w/w2s)", "distill.sw_weight", timestep, "Weight of the strong/weak term; only s2w and w2s have one."),
    )
    c1, c2 = box.columns(2)
    c3, c4 = box.columns(2)
    for col, (label, field, used, help_) in zip((c1, c2, c3), weights):
        col.number_input(
            label, **bounds(field, float), step=0.1, key=key(field), disabled=not used, help=help_, **PERSIST
        )
    c4.number_input(
        "τ_kd",
        min_value=limit("distill.kd_temperature", "lo", float),
        max_value=20.0,
        step=0.5,
        key=key("distill.kd_temperature"),
        disabled=not (temporal or spatial or timestep),
        help="Softmax temperature of every KL term.",
        **PERSIST,
    )


def _open_choices(temporal: bool, spatial: bool, timestep: bool) -> None:
    """The choices the paper leaves open (drawn inside a popover): how the teacher runs and what it teaches."""
    ss = st.session_state
    st.selectbox(
        "Teacher pass",
        TSD_PASSES,
        key=key("distill.tsd_pass"),
        disabled=not temporal,
        help="shared: one T_t pass, the student is its first T_s steps; separate: two passes; "
        "continue: the teacher's extra steps run without a graph.",
        **PERSIST,
    )
    continuing = ss[key("distill.tsd_pass")] == "continue"
    if continuing:  # no graph for the teacher's extra steps: nothing there may need a gradient
        ss[key("distill.detach_teacher")], ss[key("distill.teacher_ce")] = True, False
        st.caption(
            "'continue' builds no graph for the teacher's extra steps, so the teacher stays "
            "detached and gets no task loss."
        )
    st.checkbox("Detach the teacher in the KL", key=key("distill.detach_teacher"), disabled=continuing, **PERSIST)
    st.checkbox("Teacher window also gets the task loss", key=key("distill.teacher_ce"), disabled=continuing, **PERSIST)
    st.selectbox(
        "Who teaches the weak head", SSD_TEACHERS, key=key("distill.ssd_teacher"), disabled=not spatial, **PERSIST
    )
    st.checkbox("Weak head also gets the task loss", key=key("distill.weak_ce"), disabled=not spatial, **PERSIST)
    st.selectbox(
        "Strong/weak pairs",
        SW_VARIANTS,
        key=key("distill.sw_variant"),
        disabled=not timestep,
        help="pair: one teacher timestep, one student timestep; cascade: the timesteps ranked by confidence, "
        "each adjacent pair distilled.",
        **PERSIST,
    )
    st.checkbox("Detach the reset in the backward pass", key=key("model.detach_reset"), **PERSIST)
