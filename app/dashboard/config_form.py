"""The sidebar that builds a `TSSDConfig`: one widget per field, impossible combinations prevented.

Every widget's value lives in session state under `cfg_<field>` (kept across pages with
`persist_state="session"`; form_fields.py), so a starting point can fill them all from a callback.
The Distillation section is form_distillation.py; the Network, Data and Training sections are here.
Whatever the widgets cannot rule out is checked by the library's `validate()`, whose one-line message
is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from tssd_viz import ConfigError, TSSDConfig, is_available, validate
from tssd_viz.config import ARCHS, DATASETS, EVENT_DATASETS, WINDOWINGS
from tssd_viz.snn.models import num_stages

from .form_distillation import distillation
from .form_fields import FIELDS, PERSIST, cast, key, limit
from .starts import STARTS

ARCH_HELP = {
    "vgg_small": "vgg_small · 3 stages, CPU-sized",
    "vgg_fast": "vgg_fast · 4 stages, the classroom net",
    "vgg11": "vgg11 · 5 stages",
    "resnet19": "resnet19 · the paper's CIFAR net (GPU)",
    "vgg_bench": "vgg_bench · the benchmark's net",
}
WIDTHS = (0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class FormResult:
    cfg: TSSDConfig | None  # None when the values do not make a valid config
    error: str | None  # validate()'s one-line message
    summary: str  # one sentence: what pressing Train will do


def config_sidebar() -> FormResult:
    """Draw the form's fields in the sidebar; return the config they describe (or the reason there is none)."""
    ss = st.session_state
    sb = st.sidebar
    distillation(sb.expander("Distillation", expanded=True))
    _network(sb.expander("Network", expanded=False))
    _data(sb.expander("Data", expanded=True))
    _training(sb.expander("Training", expanded=True))
    values = {f: cast(f, ss[key(f)]) for f in FIELDS}
    try:
        cfg = validate(STARTS[ss.cfg_start][1]().replace(**values))
    except ConfigError as e:
        return FormResult(None, str(e), "")
    return FormResult(cfg, None, summary(cfg))


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
    c1.number_input(
        "Training images (0 = all)",
        min_value=limit("data.limit_train", "lo", int),
        step=256,
        key=key("data.limit_train"),
        **PERSIST,
    )
    c2.number_input(
        "Batch size",
        min_value=limit("data.batch_size", "lo", int),
        max_value=4096,
        step=16,
        key=key("data.batch_size"),
        **PERSIST,
    )


def _training(box) -> None:
    ss = st.session_state
    c1, c2 = box.columns(2)
    c1.number_input(
        "Epochs", min_value=limit("train.epochs", "lo", int), max_value=1000, step=1, key=key("train.epochs"), **PERSIST
    )
    c2.number_input(
        "Time budget (s)",
        min_value=limit("train.time_budget_s", "lo", int),
        max_value=86400,
        step=30,
        key=key("train.time_budget_s"),
        help="0: no limit. Training stops at the epochs or the budget, whichever comes first, "
        "and every window is still evaluated.",
        **PERSIST,
    )
    c1, c2 = box.columns(2)
    c1.number_input(
        "Seed", min_value=limit("train.seed", "lo", int), max_value=2**31 - 1, step=1, key=key("train.seed"), **PERSIST
    )
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
    c2.number_input(
        "Peak lr",
        min_value=1e-5,  # LIMITS' lower end, 0, is open
        max_value=limit("train.lr", "hi", float),
        step=0.01,
        format="%.4g",
        key=key("train.lr"),
        **PERSIST,
    )
    c3.number_input(
        "Log every",
        min_value=limit("train.log_every", "lo", int),
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
