"""Neuron playground: one LIF neuron with sliders (lesson 01), and snntorch's Leaky beside it."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from dashboard import live

from tssd_viz import figures, lif_multistep, snntorch_multistep

INPUTS = {
    "constant": "the same current at every step",
    "step": "off for the first quarter, then on",
    "ramp": "rising from 0 to the amplitude",
    "noisy": "the amplitude plus Gaussian noise",
    "pulses": "a pulse every few steps",
}


def input_current(kind: str, amplitude: float, T: int, noise: float, period: int, seed: int) -> np.ndarray:
    """I(t) for t = 0..T-1, shape (T,)."""
    t = np.arange(T)
    if kind == "step":
        return np.where(t >= T // 4, amplitude, 0.0)
    if kind == "ramp":
        return amplitude * t / max(T - 1, 1)
    if kind == "noisy":
        return amplitude + noise * np.random.default_rng(seed).standard_normal(T)
    if kind == "pulses":
        return np.where(t % period == 0, amplitude, 0.0)
    return np.full(T, amplitude)


def snntorch_variant(current: torch.Tensor, tau: float, threshold: float, reset_delay: bool):
    """snntorch's Leaky beside ours (the library's comparison neuron): (membrane, spikes) as numpy."""
    with torch.no_grad():
        spikes, membrane = snntorch_multistep(current, tau, threshold, reset_delay=reset_delay)
    return membrane.numpy(), spikes.numpy()


st.title("Neuron playground")
st.caption(
    "One leaky integrate-and-fire neuron, the building block of every layer: it charges with its input, "
    "fires when it crosses the threshold, and subtracts the threshold when it fires."
)
st.latex(
    r"H(t) = \beta\,V(t-1) + I(t), \quad S(t) = [\,H(t) \ge \theta\,], \quad V(t) = H(t) - \theta\,S(t), "
    r"\quad \beta = 1 - 1/\tau"
)
controls, plot = st.columns([1, 3], gap="large")
with controls:
    kind = st.radio(
        "Input current", list(INPUTS), key="pg_kind", captions=list(INPUTS.values()), persist_state="session"
    )
    amplitude = st.slider("Amplitude", 0.0, 3.0, 0.8, 0.05, key="pg_amplitude", persist_state="session")
    noise = st.slider(
        "Noise (σ)", 0.0, 1.5, 0.3, 0.05, key="pg_noise", disabled=kind != "noisy", persist_state="session"
    )
    period = st.slider("Pulse every", 2, 10, 3, key="pg_period", disabled=kind != "pulses", persist_state="session")
    T = st.slider("Timesteps", 4, 64, 16, key="pg_T", persist_state="session")
    tau = st.slider(
        "Membrane τ",
        1.1,
        10.0,
        2.0,
        0.1,
        key="pg_tau",
        persist_state="session",
        help="β = 1 − 1/τ: τ = 2 halves the potential every step.",
    )
    threshold = st.slider("Threshold θ", 0.2, 3.0, 1.0, 0.05, key="pg_threshold", persist_state="session")
    compare = st.toggle("Compare with snntorch", key="pg_compare", persist_state="session")

current = input_current(kind, amplitude, T, noise, period, seed=0)
I = torch.tensor(current, dtype=torch.float64)  # noqa: E741 (I: the input current, as in SPEC §1)
spikes, membrane = lif_multistep(I, tau=tau, threshold=threshold)
variants = {}
if compare:
    variants["snntorch, reset_delay=False"] = snntorch_variant(I, tau, threshold, reset_delay=False)
    variants["snntorch default (reset_delay=True)"] = snntorch_variant(I, tau, threshold, reset_delay=True)
with plot:
    n = int(spikes.sum())
    first = int(np.flatnonzero(spikes.numpy())[0]) if n else None
    c1, c2, c3 = st.columns(3)
    c1.metric("Spikes", n, border=True)
    c2.metric("Firing rate", f"{n / T:.2f}", help="spikes per timestep", border=True)
    c3.metric("First spike at", "–" if first is None else f"t = {first}", border=True)
    live.chart(
        figures.neuron_figure(
            current,
            membrane.numpy(),
            spikes.numpy(),
            threshold,
            compare=variants,
            title=f"τ = {tau:g} (β = {1 - 1 / tau:.2f}), θ = {threshold:g}",
        ),
        "pg_figure",
    )
    if compare:
        st.caption(
            "snntorch with `reset_delay=False` matches this neuron while the potential left after a reset "
            "stays below θ; under strong input (try an amplitude above 2θ) it subtracts θ once more a step "
            "later. Its default, `reset_delay=True`, lands the reset one step late and undamped."
        )
