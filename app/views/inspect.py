"""Inspect a run: any run folder (from the CLI, a notebook or this app), one test image, one layer."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch
from dashboard import inference, live, probe_batch, reading, state

from tssd_viz import CheckpointError, DataUnavailable, RunFolder, exit_points, figures
from tssd_viz.figures.dashboard import busiest_neurons, probe_batch_figure
from tssd_viz.snn.probes import ProbeError


def pick_run() -> RunFolder | None:
    """The run folder to open: one under the runs folder, or any path."""
    source = st.radio(
        "Open",
        ["runs folder", "any folder"],
        key="inspect_source",
        horizontal=True,
        format_func={"runs folder": "a run in the runs folder", "any folder": "any run folder"}.get,
    )
    if source == "any folder":
        text = st.text_input("Run folder", key="inspect_path", placeholder="e.g. runs/first or ~/notebook-runs/x")
        if not text.strip():
            return None
        try:  # ~nouser, a NUL byte, a name longer than the system allows: one line, like any refusal
            path = Path(text.strip()).expanduser()
            refusal = state.outside_runs_refusal(path if path.is_absolute() else Path.cwd() / path)
            path.is_dir()
        except (RuntimeError, ValueError, OSError) as e:
            reason = (getattr(e, "strerror", None) or str(e) or type(e).__name__).splitlines()[0].rstrip(".")
            st.error(f"{text.strip()[:80]!r} is not a path this machine can open: {reason[:100].lower()}.")
            return None
        if refusal:
            st.error(refusal)
            return None
        return RunFolder(path)
    rows = [r for r in reading.run_rows(state.runs_root()) if r.run.checkpoints_dir.is_dir()]
    if not rows:
        st.info("No run with a checkpoint yet: train one, or open any run folder by its path.")
        return None
    labels = {r.name: r.label() for r in rows}
    if st.session_state.get("inspect_run") not in labels:
        st.session_state.inspect_run = rows[0].name
    name = st.selectbox("Run", list(labels), key="inspect_run", format_func=labels.get)
    return RunFolder(state.runs_root() / name)


def neurons_of(run: RunFolder) -> dict:
    """The neurons the run's probe snapshots sampled, per layer (empty when it has none)."""
    paths = run.probes()
    if not paths:
        return {}
    try:
        return reading.load_probe(paths[-1]).neurons
    except ProbeError as e:
        st.warning(str(e))
        return {}


def show(run: RunFolder) -> None:
    if not run.exists():
        st.error(f"{run.path} is not a run folder: it has no config.json.")
        return
    ckpts = [w for w in ("best", "last") if run.checkpoint_path(w).exists()]
    header(run)
    if not ckpts:
        st.warning("This run has no checkpoint yet (one is written after every epoch).")
        return
    opened = open_checkpoint(run, ckpts)
    if opened is None:
        return
    loaded, ds = opened
    index, layer, T = controls(loaded, ds)
    trace = inference.trace_image(loaded, ds, index, T, neurons_of(run))
    t_s = min(loaded.cfg.distill.t_student, T)
    image_charts(trace, list(ds.classes), index, t_s)
    layer_charts(trace, layer, loaded.cfg)
    history(run, index, layer)


def header(run: RunFolder) -> None:
    """The run's state, and what it is (when its config.json reads) with its test accuracy at T_s."""
    status = run.status()
    final = run.final_eval()
    cfg = reading.config(run)
    text, color, icon = reading.STATE_BADGES.get(status.get("state"), ("unknown", "gray", ":material/help:"))
    st.badge(text, color=color, icon=icon)
    if cfg is not None:
        t_s = cfg.distill.t_student
        st.caption(
            f"{cfg.distill.mode} · {cfg.model.arch} ×{cfg.model.width:g} · {cfg.data.dataset} · "
            f"T_s = {t_s}, T_t = {cfg.distill.t_teacher}"
            + (f" · test accuracy at T_s: {final[t_s]:.1%}" if t_s in final else "")
        )


def open_checkpoint(run: RunFolder, ckpts: list[str]):
    """The chosen checkpoint's network and its data set, or None (the reason shown) when either fails."""
    which = st.radio(
        "Weights",
        ckpts,
        key="inspect_ckpt",
        horizontal=True,
        format_func={"best": "best (highest test accuracy at T_s)", "last": "last"}.get,
    )
    path = run.checkpoint_path(which)
    try:
        loaded = inference.load_model(str(path), path.stat().st_mtime_ns)
        ds = inference.load_data(loaded.cfg.data, loaded.cfg.distill)
    except (CheckpointError, DataUnavailable) as e:
        st.error(reading.in_form_words(str(e)))
        return None
    return loaded, ds


def controls(loaded, ds) -> tuple[int, str, int]:
    """The test image, the layer and the timesteps to run it for; a choice out of range falls back."""
    t_s, t_t = loaded.cfg.distill.t_student, loaded.cfg.distill.t_teacher
    layers = list(inference.lif_layer_names(loaded))
    c1, c2, c3 = st.columns([1, 1.4, 1.4])
    n_test = len(ds.test.labels)
    if st.session_state.get("inspect_image", 0) >= n_test:
        st.session_state.inspect_image = 0
    index = c1.number_input(
        f"Test image (0–{n_test - 1})", min_value=0, max_value=n_test - 1, step=1, key="inspect_image"
    )
    if st.session_state.get("inspect_layer") not in layers:
        st.session_state.inspect_layer = layers[0]
    layer = c2.selectbox("Layer", layers, key="inspect_layer")
    T = c3.slider(
        "Timesteps to run",
        1,
        t_t if ds.is_events else max(16, 2 * t_t),  # a recording is binned for windows up to T_t
        t_t,
        key="inspect_T",
        help=f"Trained with T_s = {t_s} (student) and T_t = {t_t} (teacher)" + ("." if ds.is_events else "; try more."),
    )
    return int(index), layer, int(T)


def image_charts(trace: inference.Trace, classes: list[str], index: int, t_s: int) -> None:
    """The image with the student's guess, each layer's firing rate, and what each timestep says about it."""
    c1, c2 = st.columns([1, 2])
    with c1:
        live.chart(image_figure(trace, classes, index, t_s), "inspect_image_fig")
        live.chart(
            figures.firing_rate_figure(trace.rates, title="firing rate per layer, this image").update_xaxes(
                tickangle=-30
            ),
            "inspect_rates",
        )
    with c2:
        live.chart(
            figures.timestep_logits_figure(trace.logits[:, 0], classes, t_student=t_s, label=trace.label),
            "inspect_logits",
        )
        st.caption(exit_caption(trace.logits[:, 0], trace.label, t_s))


def layer_charts(trace: inference.Trace, layer: str, cfg) -> None:
    """The layer's spike raster on this image, and the membrane potentials of its five busiest neurons."""
    spikes, membrane = trace.spikes[layer], trace.membrane[layer]
    c1, c2 = st.columns(2)
    with c1:
        live.chart(
            figures.raster_figure(spikes, title=f"spike raster · {layer} · {spikes.shape[1]} neurons"), "inspect_raster"
        )
    with c2:
        live.chart(
            figures.membrane_traces_figure(
                membrane,
                spikes,
                cfg.model.threshold,
                neuron_ids=busiest_neurons(spikes, 5),
                title="membrane potential · the 5 busiest",
            ),
            "inspect_traces",
        )
        st.caption(live.traces_caption(cfg.model.threshold, cfg.model.tau))


def image_figure(trace: inference.Trace, classes: list[str], index: int, t_s: int):
    """The test image with its class and the student's guess, named by its place in the test split."""
    fig = probe_batch_figure(
        trace.images, [trace.label], classes, trace.logits, t_student=t_s, title=f"test image #{index}"
    )
    # The figure numbers the images it is given (one: "#0"); this one is test image #index.
    head = fig.layout.annotations[0]
    head.text = f"#{index}" + head.text[len("#0") :]
    return fig


def exit_caption(logits, label: int, t_s: int) -> str:
    """How sure each timestep of the student window is about this image, and where early exit would stop it."""
    z = torch.as_tensor(logits, dtype=torch.float32)  # (T, K)
    conf = torch.softmax(z[:t_s], -1).amax(-1)
    sure = " · ".join(f"t={t + 1}: {c:.0%}" for t, c in enumerate(conf.tolist()))
    exits = exit_points(z[:t_s, None], torch.tensor([label]), [0.5, 0.9])
    stops = ", ".join(
        f"at {p.threshold:g} it stops after {p.mean_timesteps:.0f} of {t_s} ({'right' if p.acc else 'wrong'})"
        for p in exits
    )
    return f"Each timestep alone is this sure (largest softmax probability): {sure}. Early exit: {stops}."


def history(run: RunFolder, index: int, layer: str) -> None:
    """For a probe image: its raster in `layer` at every snapshot recorded during training."""
    paths = run.probes()
    if not paths:
        return
    try:
        first = reading.load_probe(paths[0])
    except ProbeError as e:
        st.error(str(e))
        return
    if index >= len(first.labels) or layer not in first.spikes:
        st.caption(
            f"Test images 0–{len(first.labels) - 1} are the probe batch: pick one of them to see how "
            "its spikes changed during training."
        )
        return
    st.markdown(f"##### During training: image #{index} in {layer}, at each snapshot")
    stems = [p.stem for p in paths]
    # A key of its own per run: another run's snapshot choice must not carry over ("after epoch 1" of a run
    # that has three).
    stem = st.select_slider(
        "Snapshot", stems, value=stems[-1], key=f"inspect_snapshot_{run.path}", format_func=probe_batch.snapshot_label
    )
    try:
        probe = reading.load_probe(paths[stems.index(stem)])
    except ProbeError as e:
        st.error(str(e))
        return
    live.chart(
        figures.raster_figure(probe.spikes[layer][:, index], title=f"spike raster {probe_batch.snapshot_label(stem)}"),
        "inspect_history",
    )


st.title("Inspect a run")
st.caption(
    "Open any run folder, pick a test image and a layer: the trained network runs it here and shows "
    "its spikes, membrane potentials and per-timestep logits."
)
chosen = pick_run()
if chosen is not None:
    show(chosen)
