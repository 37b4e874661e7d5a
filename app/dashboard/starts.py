"""Starting points: a full config each, the "Start from" box that fills the form, and what a start will cost.

A start must fit a lesson, so the box says, before Train, how long the chosen settings will train on this
machine: steps × the seconds a step took in an earlier run of the same network here, else the classroom
network's known cost per image and timestep, else (a GPU recipe on a CPU) a plain warning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import streamlit as st
import torch

from tssd_viz import RunFolder, TSSDConfig, offline_default, preset
from tssd_viz.sweep.records import train_timesteps
from tssd_viz.sweep.runner import DEFAULT_COST_S

from . import reading

# Short labels: the select box is as wide as the sidebar, and a longer one is cut ("…200 epochs (G").
STARTS: dict[str, tuple[str, Callable[[], TSSDConfig]]] = {
    "quick": ("Quick look · digits, seconds", lambda: preset("quick")),
    "digits": ("Digits · offline, 8 epochs, about 20 s", lambda: preset("digits")),
    "events": ("Event camera · emulated DVS digits", lambda: preset("events")),
    "classroom": ("Classroom · CIFAR-10, about 2 min", lambda: preset("classroom-quick")),
    "classroom-full": ("Classroom, full · CIFAR-10, long", lambda: preset("classroom")),
    "paper": ("Paper · ResNet-19, 200 epochs, GPU", lambda: preset("paper-resnet19")),
}
START_NOTES = {  # under the box: what the short label leaves out
    "events": "Digits seen by an emulated event camera (DVS), offline. The first run makes the event "
    "recordings once (about a minute on a CPU); later runs reuse them.",
    "classroom": "CIFAR-10: the first 10,000 training images, 4 epochs, tested on 2,000 images "
    "(about 100 s on an idle 2-core CPU, longer on a busy one: every run trains all its steps).",
    "classroom-full": "The recipe of the committed CIFAR-10 tables: all 50,000 training images × 4 epochs, "
    "tested on all 10,000 (about half an hour on a 2-core CPU).",
    "paper": "The paper's CIFAR-10 recipe: ResNet-19, 200 epochs. A GPU recipe.",
}
GPU_ARCHS = ("resnet19", "vgg11", "vgg_bench")  # nets whose cost on a CPU is not known here: hours to days


def apply_start(ss=None) -> None:
    """Fill every field from the chosen starting point (the starting point selectbox's callback)."""
    from .form_fields import fill

    ss = st.session_state if ss is None else ss
    fill(ss, STARTS[ss.cfg_start][1]())


def init_defaults(ss) -> None:
    """First visit: CIFAR-10 when it is on disk (the two-minute classroom start), else digits with a notice."""
    data, note = offline_default(prefer="cifar10")
    ss.data_default = data
    ss.data_note = note and (
        f"{note} To use CIFAR-10, give its folder as **Data root**, or start the dashboard with `TSSD_CIFAR10_ROOT` "
        "(the image tree itself) or `TSSD_DATA_ROOT` (holding `cifar10/`, or the tree itself) set."
    )
    ss.cfg_start = "classroom" if data.dataset == "cifar10" else "digits"
    apply_start(ss)
    ss.cfg_root = data.root


def start_picker() -> None:
    """The "Start from" select box (and the note on the default dataset), at the top of the sidebar."""
    sb = st.sidebar
    sb.selectbox(
        "Start from",
        list(STARTS),
        format_func=lambda s: STARTS[s][0],
        key="cfg_start",
        on_change=apply_start,
        help="Fills every field below; then change what you like.",
        persist_state="session",
    )
    note = START_NOTES.get(st.session_state.get("cfg_start"))
    if note:
        sb.caption(note)
    if st.session_state.get("data_note"):
        sb.caption(f":material/info: {st.session_state.data_note}")


# -- what a start will cost here
def steps_of(cfg: TSSDConfig) -> int:
    """Optimizer steps of `cfg` (the loader drops a partial last batch)."""
    per_epoch = reading.epoch_steps(cfg)
    per_epoch = 50_000 // cfg.data.batch_size if per_epoch is None else per_epoch  # an unknown size: CIFAR's
    return cfg.train.epochs * max(1, per_epoch)


def _same_work(a: TSSDConfig, b: TSSDConfig) -> bool:
    """Two configs whose training steps cost the same (network, input, batch, timesteps of the training pass)."""
    fields = ("model.arch", "model.width", "data.dataset", "data.batch_size", "distill.mode", "train.device")
    fields += ("distill.t_student", "distill.t_teacher", "distill.tsd_pass")
    da, db = a.to_dict(), b.to_dict()
    return all(da[f.split(".")[0]][f.split(".")[1]] == db[f.split(".")[0]][f.split(".")[1]] for f in fields)


@lru_cache(maxsize=256)
def _step_seconds(path: str, mtime_ns: int) -> float | None:
    epochs = RunFolder(path).metrics("epoch")
    last = epochs[-1] if epochs else {}
    return last["wall_s"] / last["step"] if last.get("step") and last.get("wall_s") else None


def measured_step(cfg: TSSDConfig, root: Path) -> tuple[float, str] | None:
    """Seconds per step of the newest finished run of the same work in the runs folder, and its name."""
    for row in reading.run_rows(root):
        if row.state == "done" and row.cfg is not None and _same_work(row.cfg, cfg):
            seconds = _step_seconds(str(row.path), reading.mtime_ns(row.run.metrics_path))
            if seconds:
                return seconds, row.name
    return None


def cost_note(cfg: TSSDConfig, root: Path) -> tuple[str, str]:
    """("info" or "warning", one sentence): how long `cfg` will train on this machine, before Train (`root`: the
    runs folder, whose finished runs give measured step times)."""
    steps = steps_of(cfg)
    device = cfg.train.device if cfg.train.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    budget = cfg.train.time_budget_s
    measured = measured_step(cfg, root)
    if measured:
        seconds, source = steps * measured[0], f"{measured[0]:.2f} s a step in run {measured[1]} here"
    elif device == "cpu" and cfg.model.arch in GPU_ARCHS:
        text = f"{steps:,} steps of {cfg.model.arch} on this machine's CPU: hours to days, a GPU recipe."
        if budget:
            return "warning", text + f" The time budget stops it after {reading.duration(budget)}."
        return "warning", text + " Give it a time budget, or fewer epochs and training images."
    elif device == "cpu" and cfg.model.arch == "vgg_fast":  # the classroom network's measured cost
        per_image = DEFAULT_COST_S * (cfg.model.width / 0.5) ** 2 * train_timesteps(cfg)
        seconds, source = steps * cfg.data.batch_size * per_image, "the classroom network's cost on a 2-core CPU"
    else:
        return "info", f"{steps:,} training steps."
    if budget and budget < seconds:
        return "info", f"{steps:,} steps, at most {reading.duration(budget)} of training (its time budget)."
    kind = "warning" if seconds > 15 * 60 else "info"
    return kind, f"{steps:,} steps: about {reading.duration(math.ceil(seconds))} of training here ({source})."
