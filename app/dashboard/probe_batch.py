"""The probe batch of one run: a few fixed test images recorded before training and after every epoch.

`probe_panel` is drawn in a fragment of its own, slower than the run's, since a snapshot arrives once an
epoch. It picks a snapshot, an image and a layer, then draws what the whole batch decided, what each
timestep said about the chosen image, the chosen layer's spikes and membrane potentials for it, and the
batch's windows and firing rates. Figures go through `live.figure`, so a refresh rebuilds only what changed.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from tssd_viz import RunFolder, figures
from tssd_viz.figures.dashboard import busiest_neurons, probe_batch_figure
from tssd_viz.snn.probes import ProbeError

from . import reading, state
from .live import chart, figure, traces_caption


def snapshot_label(stem: str) -> str:
    """'epoch-0003' -> 'after epoch 3'; snapshot 0 is taken before the first step."""
    if not stem.startswith("epoch-") or not stem[6:].isdigit():
        return stem
    return "before training" if int(stem[6:]) == 0 else f"after epoch {int(stem[6:])}"


def probe_panel(name: str) -> None:
    """The probe batch of run `name`: its own fragment, refreshed less often (a snapshot per epoch)."""
    run = RunFolder(state.runs_root() / name)
    cfg = reading.config(run) if run.exists() else None
    if cfg is not None:
        _probe_section(run, cfg)


def _probe_section(run: RunFolder, cfg) -> None:
    paths = run.probes()
    st.markdown("##### The probe batch: fixed test images, recorded before training and after every epoch")
    if not paths:
        st.caption("The first snapshot is taken before the first step.")
        return
    c1, c2, c3 = st.columns([1.2, 1, 1.4])
    path = _pick_snapshot(run, paths, c1)
    try:
        probe = reading.load_probe(path)
    except ProbeError as e:
        st.error(str(e))
        return
    when = reading.snapshot_when(probe.epoch, probe.step, reading.steps_per_epoch(run.status(), cfg))
    i, layer = _pick_image_and_layer(probe, c2, c3)
    t_s = cfg.distill.t_student
    version = (str(path), i, layer)  # what the charts of one image in one layer are drawn from
    _image_decisions(probe, path, version, t_s, when)
    _neuron_charts(probe, path, version, cfg)
    _batch_charts(probe, path, t_s)


def _pick_snapshot(run: RunFolder, paths: list[Path], col) -> Path:
    """The snapshot chosen in `col`; "latest" follows the run."""
    stems = [p.stem for p in paths]
    # "latest"'s label stays fixed (a select box keeps the label it first drew)
    choice = col.selectbox(
        "Snapshot", ["latest"] + stems[::-1], key=f"probe_snapshot_{run.name}", format_func=snapshot_label
    )
    return paths[-1] if choice == "latest" or choice not in stems else paths[stems.index(choice)]


def _pick_image_and_layer(probe, c_image, c_layer) -> tuple[int, str]:
    """The probe image and the layer to show; a choice the snapshot lacks falls back to the first."""
    labels, classes = probe.labels, list(probe.classes)
    P = len(labels)
    if st.session_state.get("probe_image", 0) >= P:
        st.session_state.probe_image = 0
    i = c_image.selectbox(
        "Image", list(range(P)), key="probe_image", format_func=lambda k: f"#{k} · {classes[int(labels[k])]}"
    )
    layers = probe.layers
    if st.session_state.get("probe_layer") not in layers:
        st.session_state.probe_layer = layers[0]
    return i, c_layer.selectbox("Layer", layers, key="probe_layer")


def _image_decisions(probe, path: Path, version: tuple, t_s: int, when: str) -> None:
    """The student's guess on every probe image, then what each timestep says about the chosen one."""
    labels, classes, i = probe.labels, list(probe.classes), version[1]
    batch_title = f"probe images {when} · the student's guess at T_s = {t_s}"
    chart(
        figure(
            "probe_batch",
            str(path),
            lambda: probe_batch_figure(probe.images, labels, classes, probe.logits, t_student=t_s, title=batch_title),
        ),
        "live_probe_batch",
    )
    chart(
        figure(
            "probe_logits",
            version,
            lambda: figures.timestep_logits_figure(
                probe.logits[:, i],
                classes,
                t_student=t_s,
                label=int(labels[i]),
                title=f"image #{i}: what each timestep says, and what each window decides",
            ),
        ),
        "live_probe_logits",
    )


def _neuron_charts(probe, path: Path, version: tuple, cfg) -> None:
    """The chosen layer on the chosen image: its spike raster, its input frames (event data) and the
    membrane potentials of its five busiest sampled neurons."""
    _, i, layer = version
    threshold = cfg.model.threshold
    spikes, membrane = probe.spikes[layer][:, i], probe.membrane[layer][:, i]  # (T, N) of image i
    events = probe.images.ndim == 5  # event frames (P, T, 2, H, W): each timestep has its own input
    c1, c2 = st.columns(2)
    with c1:
        chart(
            figure(
                "probe_raster",
                version,
                lambda: figures.raster_figure(
                    spikes, title=f"spike raster · {layer} · {spikes.shape[1]} sampled neurons"
                ),
            ),
            "live_raster",
        )
    if events:  # what the camera gave at each timestep, beside what the layer did with it
        with c2:
            chart(
                figure(
                    "probe_frames",
                    (str(path), i),
                    lambda: figures.event_frames_figure(
                        probe.images[i], title=f"image #{i}: the input frame of each timestep"
                    ),
                ),
                "live_probe_frames",
            )
        c2 = st.columns(2)[0]
    with c2:
        chart(
            figure(
                "probe_traces",
                version,
                lambda: figures.membrane_traces_figure(
                    membrane,
                    spikes,
                    threshold,
                    neuron_ids=busiest_neurons(spikes, 5),
                    title="membrane potential · the 5 busiest of them",
                ),
            ),
            "live_traces",
        )
        st.caption(traces_caption(threshold, cfg.model.tau))


def _batch_charts(probe, path: Path, t_s: int) -> None:
    """The whole probe batch: how each window agrees with the full window, and each layer's firing rate."""
    c1, c2 = st.columns(2)
    with c1:
        chart(
            figure(
                "probe_windows",
                str(path),
                lambda: figures.window_agreement_figure(
                    probe.logits, t_student=t_s, title="the probe batch: each window vs the full window"
                ),
            ),
            "live_probe_windows",
            True,
        )
    with c2:
        fig = figure(
            "probe_rates",
            str(path),
            lambda: figures.firing_rate_figure(probe.rate, title="firing rate per layer on the probe batch"),
        )
        chart(fig.update_xaxes(tickangle=-20), "live_probe_rates")
