"""Figures of neurons and layers: one LIF neuron, spike rasters, membrane traces, firing rates.

Time axes are integer timesteps t = 0..T-1 (the index of the time-major first dimension).
The potential's own traces (the soft reset's sawtooth, the threshold) are in `potential`.
The figures only draw: the neuron maths lives in `tssd_viz.snn.neurons`, the recording in `tssd_viz.snn.record`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._inputs import as_numpy, as_series, first_item
from .potential import neuron_traces, potential_traces, threshold_trace
from .style import ROLE_COLORS, category_color, finish, finish_wrapped, run_color, timestep_ticks

# On two lines: in one, the title is longer than a short chart is tall and runs into the figure title.
RATE_TITLE = "firing rate<br>(spikes per neuron per timestep)"
DODGE = 0.06  # timesteps between the traces of neighbouring neurons (see membrane_traces_figure)


def _neuron_rows(variants: dict, delayed: set[str]) -> go.Figure:
    """The rows of `neuron_figure`, each named by its subplot title: the current, one potential per
    variant, and the spike trains of all variants together in a short bottom row."""
    n_var = len(variants)
    return make_subplots(
        rows=2 + n_var,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05,
        row_heights=[0.8] + [1.0] * n_var + [0.25 + 0.15 * n_var],
        subplot_titles=[
            "input current I(t)",
            *(
                f"membrane potential before its delayed reset: {k}"
                if k in delayed
                else f"membrane potential, H(t) at a spike, then V(t): {k}"
                for k in variants
            ),
            "spikes S(t)",
        ],
    )


def _potential_row(
    fig: go.Figure, row: int, name: str, v: np.ndarray, s: np.ndarray, threshold: float, color: str, delayed: bool
) -> None:
    """One variant's row of `neuron_figure`: its potential, the threshold line and its value (in the legend
    once, from the first row)."""
    T = len(v)
    fired = s > 0
    h = v if delayed else v + threshold * fired  # (T,): H(t) = V(t) + θ·S(t), the soft reset undone
    for trace in potential_traces(name, v, h, fired, color):
        fig.add_trace(trace, row=row, col=1)
    fig.add_trace(threshold_trace(threshold, T, showlegend=row == 2), row=row, col=1)
    fig.add_annotation(
        x=T - 0.5,
        y=threshold,
        text=f"θ = {threshold:g}",
        showarrow=False,
        xanchor="right",
        yanchor="bottom",
        font=dict(color=ROLE_COLORS["threshold"]),
        row=row,
        col=1,
    )
    fig.update_yaxes(title_text="potential", row=row, col=1)


def _spike_ticks(name: str, s: np.ndarray, color: str) -> go.Scatter:
    """A variant's spike times as ticks on its own line of the categorical spike row."""
    times = np.flatnonzero(s)
    return go.Scatter(
        x=times,
        y=[name] * len(times),
        mode="markers",
        name=f"spikes: {name}",
        marker=dict(symbol="line-ns-open", size=18, color=color, line=dict(width=3, color=color)),
        hovertemplate="spike at t=%{x}<extra>" + name + "</extra>",
    )


def neuron_figure(
    current: Any,
    membrane: Any,
    spikes: Any,
    threshold: float,
    *,
    title: str | None = None,
    compare: Mapping[str, tuple[Any, Any]] | None = None,
    label: str = "soft reset (tssd-viz LIF)",
) -> go.Figure:
    """One LIF neuron driven by `current`: I(t), then the potential of each variant, then the spike times.

    Each variant's line charges to H(t) = V(t) + θ·S(t) where it fired (a star) and drops by θ to V(t) at the
    same t (as in `membrane_traces_figure`); a variant labelled "reset_delay=True" is drawn as given.

    Args:
        current: (T,).
        membrane: (T,) V(t), the potential after the reset.
        spikes: (T,).
        threshold: θ.
        title: the figure's title (None: its default, if it has one).
        compare: label -> (membrane, spikes) of variants driven by the same current, each in its own row.
        label: names the main variant.

    Returns:
        The plotly figure.
    """
    I = as_numpy(current, "current", 1)  # noqa: E741 (I: the input current, as in SPEC §1)
    variants = {label: (membrane, spikes), **dict(compare or {})}
    variants = {
        k: (as_numpy(v, f"membrane of {k!r}", 1), as_numpy(s, f"spikes of {k!r}", 1)) for k, (v, s) in variants.items()
    }
    T, rows = len(I), 2 + len(variants)  # current, one membrane row per variant, spikes
    delayed = {k for k in variants if "reset_delay=True" in k}
    fig = _neuron_rows(variants, delayed)
    fig.add_trace(
        go.Scatter(
            x=np.arange(T),
            y=I,
            mode="lines+markers",
            name="input current I(t)",
            line=dict(color=ROLE_COLORS["current"]),
        ),
        row=1,
        col=1,
    )
    for i, (name, (v, s)) in enumerate(variants.items()):
        color = ROLE_COLORS["membrane"] if i == 0 else run_color(i)
        _potential_row(fig, 2 + i, name, v, s, threshold, color, name in delayed)
        fig.add_trace(_spike_ticks(name, s, color), row=rows, col=1)
    fig.update_yaxes(title_text="I(t)", row=1, col=1)
    # The spike row is categorical: one line of ticks per variant, top to bottom in order.
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=list(variants)[::-1], row=rows, col=1)
    fig.update_xaxes(**timestep_ticks(T))
    fig.update_xaxes(title_text="timestep t", row=rows, col=1)
    fig.update_layout(showlegend=False)  # every row is named by its subplot title
    # A lesson's title names every variant and may outgrow the figure: wrapped, as the lessons' own, with
    # room under it for the first row's subplot title.
    fig = finish_wrapped(fig, title or "one LIF neuron", height=220 + 170 * (rows - 1))
    return fig.update_layout(hovermode="x", margin_t=fig.layout.margin.t + 20)


def raster_figure(spikes: Any, *, title: str | None = None, max_neurons: int = 200) -> go.Figure:
    """Spike raster: a dot at (t, neuron) for every spike, in one trace.

    Args:
        spikes: (T, N), or (T, B, ...) of which batch item 0 is drawn with its features flattened.
        title: the figure's title (None: its default, if it has one).
        max_neurons: only the first neurons are drawn, to keep the figure light.

    Returns:
        The plotly figure.
    """
    s = first_item(as_numpy(spikes, "spikes"))[:, :max_neurons]  # (T, N)
    T, N = s.shape
    t, neuron = np.nonzero(s)  # time-major order
    size = float(np.clip(500 / max(N, 1), 4, 10))
    fig = go.Figure(
        go.Scatter(
            x=t,
            y=neuron,
            mode="markers",
            name="spike",
            marker=dict(color=ROLE_COLORS["spike"], size=size, symbol="square"),
            hovertemplate="t=%{x}, neuron %{y}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="timestep t", **timestep_ticks(T))
    fig.update_yaxes(title_text="neuron index", range=[-0.5, N - 0.5])
    return finish(fig, title or f"spike raster ({len(t)} spikes, {N} neurons × {T} timesteps)")


def membrane_traces_figure(
    membrane: Any,
    spikes: Any = None,
    threshold: float | None = 1.0,
    *,
    neuron_ids: list[int] | None = None,
    title: str | None = None,
) -> go.Figure:
    """The membrane potential of a few neurons, each in its own colour, with the soft reset drawn.

    With soft reset V(t) = H(t) - θ·S(t), so the potential before the reset, H(t) = V(t) + θ·S(t),
    follows from what was recorded. Each neuron is one line through V(t); where it spiked, the line
    rises to H(t), marked by a star in the neuron's colour, and drops straight down by θ to V(t) at
    the same t: a sawtooth. Without a threshold H cannot be derived, and the stars sit on V(t).

    Args:
        membrane: V(t), the potential after the reset (as `record` and `lif_multistep` return it); (T, n),
            (T,) or (T, B, ...) (batch item 0, features flattened).
        spikes: S(t), the shape of `membrane`.
        threshold: θ, or None.
        neuron_ids: which of the n columns to draw (default: the first five).
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    v = first_item(as_numpy(membrane, "membrane"))  # (T, n)
    s = None if spikes is None else first_item(as_numpy(spikes, "spikes"))
    if s is not None and s.shape != v.shape:
        raise ValueError(f"spikes {s.shape} and membrane {v.shape} should have the same shape")
    T, n = v.shape
    ids = list(range(min(n, 5))) if neuron_ids is None else [int(i) for i in neuron_ids]
    fig = go.Figure()
    for k, i in enumerate(ids):
        fired = np.zeros(T, bool) if s is None else s[:, i] > 0
        h = v[:, i] + (threshold or 0.0) * fired  # (T,): H(t) = V(t) + θ·S(t), the soft reset undone
        # Neurons that fire at the same t would drop along the same vertical line: each is drawn a little
        # to the side of the timestep (neuron k by DODGE·(k - centre)), the hover says the true t.
        dodge = DODGE * (k - (len(ids) - 1) / 2)
        for trace in neuron_traces(i, v[:, i], h, fired, category_color(k), dodge, stars=s is not None):
            fig.add_trace(trace)
    if threshold is not None:
        fig.add_trace(threshold_trace(threshold, T))
    fig.update_xaxes(title_text="timestep t", **timestep_ticks(T))
    fig.update_yaxes(title_text="membrane potential")
    fig = finish(fig, title or "membrane potential of a few neurons")
    if s is not None and threshold is not None:  # the key to the sawtooth, under the title
        key = f"★ spike: H(t) reached θ; the line drops by θ = {threshold:g} to V(t) (soft reset)"
        fig.update_layout(title_subtitle_text=key, margin_t=fig.layout.margin.t + 18)
    return fig


def firing_rate_figure(
    rates: Mapping[str, float] | Mapping[str, Mapping[str, float]], *, title: str | None = None
) -> go.Figure:
    """Firing rate per layer, in layer order.

    Args:
        rates: {layer: rate} (bars) or {run: {layer: rate}} (grouped bars); a rate is spikes per neuron per
            timestep, in [0, 1].
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    runs, layers, nested = as_series(rates)
    fig = go.Figure()
    for i, (run, r) in enumerate(runs.items()):
        fig.add_trace(
            go.Bar(
                x=layers,
                y=[r.get(name) for name in layers],
                name=run or "firing rate",
                marker_color=run_color(i) if nested else ROLE_COLORS["spike"],
                hovertemplate="%{x}: %{y:.3f}<extra>" + (run or "") + "</extra>",
            )
        )
    fig.update_layout(barmode="group", showlegend=nested)
    fig.update_xaxes(title_text="layer (forward order)", type="category", tickangle=-30 if len(layers) > 4 else 0)
    fig.update_yaxes(title_text=RATE_TITLE, rangemode="tozero")
    return finish(fig, title or "firing rate per layer")
