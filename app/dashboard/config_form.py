"""The sidebar that builds a `TSSDConfig`: one widget per field, impossible combinations prevented.

Every widget's value lives in session state under `cfg_<field>` (kept across pages with
`persist_state="session"`), so a starting point can fill them all from a callback. Whatever the
widgets cannot rule out is checked by the library's `validate()`, whose one-line message is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st
import torch

from tssd_viz import ConfigError, DistillConfig, TSSDConfig, is_available, validate
from tssd_viz.config import (
    ARCHS,
    DATASETS,
    EVENT_DATASETS,
    MODES,
    SSD_TEACHERS,
    SW_VARIANTS,
    TSD_PASSES,
    WINDOWINGS,
)
from tssd_viz.snn.models import num_stages

from .starts import STARTS

FIELDS = (  # the fields the form shows, by dotted name; widget key: cfg_<name>
    "distill.mode",
    "distill.t_student",
    "distill.t_teacher",
    "distill.alpha",
    "distill.beta",
    "distill.kd_temperature",
    "distill.tsd_pass",
    "distill.detach_teacher",
    "distill.teacher_ce",
    "distill.ssd_teacher",
    "distill.weak_ce",
    "distill.sw_weight",
    "distill.sw_variant",
    "model.arch",
    "model.width",
    "model.aux_stage",
    "model.tau",
    "model.threshold",
    "model.detach_reset",
    "data.dataset",
    "data.root",
    "data.windowing",
    "data.limit_train",
    "data.batch_size",
    "train.epochs",
    "train.time_budget_s",
    "train.seed",
    "train.device",
    "train.optimizer",
    "train.lr",
    "train.log_every",
)
MODE_HELP = {
    "baseline": "plain training at T_s: no teacher, no weak head",
    "tsd": "temporal: the T_t window teaches the T_s window",
    "ssd": "spatial: the final output teaches a weak head",
    "tssd": "both, as in the paper",
    "s2w": "strong → weak: inside the T_s window, the most confident timestep teaches the least confident "
    "(no extra timesteps, no weak head)",
    "w2s": "weak → strong: inside the T_s window, the least confident timestep teaches the most confident",
}
ARCH_HELP = {
    "vgg_small": "vgg_small · 3 stages, CPU-sized",
    "vgg_fast": "vgg_fast · 4 stages, the classroom net",
    "vgg11": "vgg11 · 5 stages",
    "resnet19": "resnet19 · the paper's CIFAR net (GPU)",
    "vgg_bench": "vgg_bench · the benchmark's net",
}
WIDTHS = (0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
PERSIST = dict(persist_state="session")


def key(dotted: str) -> str:
    return "cfg_" + dotted.split(".")[1]


def _values(cfg: TSSDConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    return {key(f): d[f.split(".")[0]][f.split(".")[1]] for f in FIELDS}


def fill(ss, cfg: TSSDConfig) -> None:
    """Set every field's widget to its value in `cfg` (a starting point's callback)."""
    for k, v in _values(cfg).items():
        ss[k] = v


@dataclass(frozen=True)
class FormResult:
    cfg: TSSDConfig | None  # None when the values do not make a valid config
    error: str | None  # validate()'s one-line message
    summary: str  # one sentence: what pressing Train will do


def config_sidebar() -> FormResult:
    """Draw the form's fields in the sidebar; return the config they describe (or the reason there is none)."""
    ss = st.session_state
    sb = st.sidebar
    _distillation(sb.expander("Distillation", expanded=True))
    _network(sb.expander("Network", expanded=False))
    _data(sb.expander("Data", expanded=True))
    _training(sb.expander("Training", expanded=True))
    values = {f: _cast(f, ss[key(f)]) for f in FIELDS}
    try:
        cfg = validate(STARTS[ss.cfg_start][1]().replace(**values))
    except ConfigError as e:
        return FormResult(None, str(e), "")
    return FormResult(cfg, None, summary(cfg))


def _cast(dotted: str, value: Any) -> Any:
    default = getattr(getattr(TSSDConfig(), dotted.split(".")[0]), dotted.split(".")[1])
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, (int, float)) and value is not None:
        return type(default)(value)
    return "" if value is None else value


def _distillation(box) -> None:
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
    if timestep and ss[key("distill.t_student")] < 2:  # a timestep teaches another: the window needs two
        ss[key("distill.t_student")] = 2
    c1, c2 = box.columns(2)
    c1.number_input(
        "Student T_s",
        min_value=2 if timestep else 1,
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
        max_value=64,
        step=1,
        key=key("distill.t_teacher"),
        help="Timesteps of the teacher window in training (more than T_s; tsd and tssd train with it); every "
        "window n = 1..T_t is evaluated, in every mode.",
        **PERSIST,
    )
    c1, c2 = box.columns(2)
    c1.number_input(
        "α (TSD)",
        min_value=0.0,
        max_value=100.0,
        step=0.1,
        key=key("distill.alpha"),
        disabled=not temporal,
        help="Weight of the temporal term; only tsd and tssd have one.",
        **PERSIST,
    )
    c2.number_input(
        "β (SSD)",
        min_value=0.0,
        max_value=100.0,
        step=0.1,
        key=key("distill.beta"),
        disabled=not spatial,
        help="Weight of the spatial term; only ssd and tssd have one.",
        **PERSIST,
    )
    c3, c4 = box.columns(2)
    c3.number_input(
        "λ (s2w/w2s)",
        min_value=0.0,
        max_value=100.0,
        step=0.1,
        key=key("distill.sw_weight"),
        disabled=not timestep,
        help="Weight of the strong/weak term; only s2w and w2s have one.",
        **PERSIST,
    )
    c4.number_input(
        "τ_kd",
        min_value=0.1,
        max_value=20.0,
        step=0.5,
        key=key("distill.kd_temperature"),
        disabled=not (temporal or spatial or timestep),
        help="Softmax temperature of every KL term.",
        **PERSIST,
    )
    with box.popover("The method's open choices", width="stretch"):
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
        st.checkbox(
            "Teacher window also gets the task loss", key=key("distill.teacher_ce"), disabled=continuing, **PERSIST
        )
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


def _network(box) -> None:
    ss = st.session_state
    box.selectbox("Architecture", ARCHS, format_func=ARCH_HELP.get, key=key("model.arch"), **PERSIST)
    if ss[key("model.width")] not in WIDTHS:
        ss[key("model.width")] = min(WIDTHS, key=lambda w: abs(w - ss[key("model.width")]))
    box.select_slider("Width", WIDTHS, key=key("model.width"), help="Multiplier on every layer's channels.", **PERSIST)
    last = num_stages(ss[key("model.arch")]) - 1  # the weak head needs a stage after it
    ss[key("model.aux_stage")] = min(max(int(ss[key("model.aux_stage")]), 1), last)
    spatial = ss[key("distill.mode")] in ("ssd", "tssd")
    box.number_input(
        f"Weak head after stage (1–{last})",
        min_value=1,
        max_value=last,
        step=1,
        key=key("model.aux_stage"),
        disabled=not spatial,
        help="Where the weak classifier reads spikes; only ssd and tssd have one.",
        **PERSIST,
    )
    c1, c2 = box.columns(2)
    c1.number_input(
        "Membrane τ",
        min_value=1.05,
        max_value=50.0,
        step=0.5,
        key=key("model.tau"),
        help="LIF time constant in timesteps; decay β = 1 − 1/τ.",
        **PERSIST,
    )
    c2.number_input("Threshold θ", min_value=0.05, max_value=10.0, step=0.1, key=key("model.threshold"), **PERSIST)


def _data(box) -> None:
    ss = st.session_state

    root = ss[key("data.root")] or ""
    offline = ("digits", "event_digits")
    where = {
        name: "offline" if name in offline else ("on disk" if is_available(name, root) else "not found")
        for name in DATASETS
    }
    box.selectbox(
        "Dataset", DATASETS, format_func=lambda name: f"{name} · {where[name]}", key=key("data.dataset"), **PERSIST
    )
    dataset = ss[key("data.dataset")]
    box.text_input(
        "Data root",
        key=key("data.root"),
        placeholder="the cache folder" if dataset != "folder" else "a folder with train/<class>/* and test/<class>/*",
        help="Where the dataset lives (for CIFAR: a torchvision download or an image tree `train/<class>/*`, "
        "`test/<class>/*`). Empty: `$TSSD_CIFAR10_ROOT` (CIFAR-10's image tree), then `$TSSD_DATA_ROOT/<name>` or "
        "`$TSSD_DATA_ROOT` itself when it is the image tree, then the cache.",
        **PERSIST,
    )
    if dataset != "folder" and where[dataset] == "not found":  # the root the list above was checked with
        box.warning(
            f"{dataset} is not on disk: the run will try to download it, which needs the internet. "
            f"Offline, give a data root or use {'event_digits' if dataset in EVENT_DATASETS else 'digits'}.",
            icon=":material/cloud_download:",
        )
    if dataset not in EVENT_DATASETS:  # the switch is hidden for images: keep it at the value they accept
        ss[key("data.windowing")] = "fixed_window"
    else:
        box.selectbox(
            "Windows on a recording",
            WINDOWINGS,
            key=key("data.windowing"),
            help="fixed_window: frames of duration/T_t, the student sees the first T_s of them (early decision). "
            "whole_recording: student and teacher each see the whole recording, in T_s and T_t frames "
            "(needs the separate pass).",
            **PERSIST,
        )
    c1, c2 = box.columns(2)
    c1.number_input("Training images (0 = all)", min_value=0, step=256, key=key("data.limit_train"), **PERSIST)
    c2.number_input("Batch size", min_value=1, max_value=4096, step=16, key=key("data.batch_size"), **PERSIST)


def _training(box) -> None:
    ss = st.session_state
    c1, c2 = box.columns(2)
    c1.number_input("Epochs", min_value=1, max_value=1000, step=1, key=key("train.epochs"), **PERSIST)
    c2.number_input(
        "Time budget (s)",
        min_value=0,
        max_value=86400,
        step=30,
        key=key("train.time_budget_s"),
        help="0: no limit. Training stops at the epochs or the budget, whichever comes first, "
        "and every window is still evaluated.",
        **PERSIST,
    )
    c1, c2 = box.columns(2)
    c1.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=key("train.seed"), **PERSIST)
    gpu = torch.cuda.is_available()
    devices = ["auto", "cpu", "cuda"] if gpu else ["auto", "cpu"]
    if ss[key("train.device")] not in devices:
        ss[key("train.device")] = "auto"
    c2.selectbox(
        "Device",
        devices,
        key=key("train.device"),
        **PERSIST,
        help="auto: " + ("the GPU" if gpu else "the CPU (no GPU found)"),
    )
    c1, c2, c3 = box.columns(3)
    c1.selectbox("Optimizer", ("sgd", "adamw"), key=key("train.optimizer"), **PERSIST)
    c2.number_input("Peak lr", min_value=1e-5, max_value=10.0, step=0.01, format="%.4g", key=key("train.lr"), **PERSIST)
    c3.number_input(
        "Log every",
        min_value=1,
        max_value=1000,
        step=1,
        key=key("train.log_every"),
        help="Write a step record every N steps (the live charts' resolution).",
        **PERSIST,
    )


def summary(cfg: TSSDConfig) -> str:
    d, m, t = cfg.distill, cfg.model, cfg.train
    device = t.device if t.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    stop = f"{t.epochs} epoch{'s' if t.epochs != 1 else ''}"
    if t.time_budget_s:
        stop += f" or {t.time_budget_s:g} s"
    return (
        f"**{d.mode}**: {m.arch} ×{m.width:g} on {cfg.data.dataset}, {stop}, seed {t.seed}, on the {device}; "
        f"the student reads {d.t_student} timestep{'s' if d.t_student != 1 else ''}, "
        + (
            f"which teach each other; windows up to {d.t_teacher} are evaluated."
            if d.uses_timestep_teacher
            else f"the teacher window {d.t_teacher}."
        )
    )
