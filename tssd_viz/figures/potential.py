"""How a membrane potential is drawn: the path of the soft reset, stars at the spikes, the threshold.

With soft reset V(t) = H(t) - θ·S(t), so the potential before the reset, H(t) = V(t) + θ·S(t), follows
from what was recorded. Where a neuron fired, its line charges to H(t), marked by a star, and drops
straight down by θ to V(t) at the same t: a sawtooth, so a neuron that fires at every step is still
seen reaching θ. `neuron_figure` and `membrane_traces_figure` draw their potentials with these traces.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .style import ROLE_COLORS


def threshold_trace(threshold: float, T: int, showlegend: bool = True) -> go.Scatter:
    """The firing threshold θ as a dashed line across the T timesteps."""
    return go.Scatter(
        x=[-0.5, T - 0.5],
        y=[threshold, threshold],
        mode="lines",
        name=f"threshold θ = {threshold:g}",
        line=dict(color=ROLE_COLORS["threshold"], dash="dash", width=1.5),
        legendgroup="threshold",
        showlegend=showlegend,
        hoverinfo="skip",
    )


def sawtooth(v: np.ndarray, h: np.ndarray, fired: np.ndarray) -> list[tuple[int, float, str, bool]]:
    """The path of one neuron's potential: (t, potential, what it is, is it a spike) in drawing order.

    v, h, fired: (T,), V(t), H(t) and S(t). Where the neuron fired, the path charges from V(t-1) up to
    H(t) (the spike) and drops straight down to V(t) at the same t; elsewhere it just visits V(t).
    """
    points = []
    for t in range(len(v)):
        if fired[t] and h[t] != v[t]:
            points += [
                (t, float(h[t]), "H(t), before the reset", True),
                (t, float(v[t]), "V(t), after the reset", False),
            ]
        else:  # no spike, or no threshold to tell H from V: the spike is marked on V(t)
            points.append((t, float(v[t]), "V(t)", bool(fired[t])))
    return points


def potential_traces(name: str, v: np.ndarray, h: np.ndarray, fired: np.ndarray, color: str) -> list[go.Scatter]:
    """One variant's potential in `neuron_figure`: the sawtooth and a star at each spike."""
    t, y, what, spike = zip(*sawtooth(v, h, fired))
    j = np.flatnonzero(spike)
    line = go.Scatter(
        x=t,
        y=y,
        customdata=what,
        mode="lines+markers",
        name=f"potential: {name}",
        line=dict(color=color),
        marker=dict(color=color, size=[0 if sp else 6 for sp in spike]),
        hovertemplate="t=%{x}: %{customdata} = %{y:.3f}<extra>" + name + "</extra>",
    )
    stars = go.Scatter(
        x=np.array(t)[j],
        y=np.array(y)[j],
        mode="markers",
        name=f"spikes on the potential: {name}",
        marker=dict(symbol="star", size=12, color=color, line=dict(width=1, color="white")),
        hovertemplate="spike at t=%{x}: H(t) = %{y:.3f}<extra>" + name + "</extra>",
    )
    return [line, stars]


def neuron_traces(
    i: int, v: np.ndarray, h: np.ndarray, fired: np.ndarray, color: str, dodge: float, *, stars: bool
) -> list[go.Scatter]:
    """Neuron i's potential in `membrane_traces_figure`: the sawtooth, drawn `dodge` timesteps to the side of
    each timestep (the hover says the true t), and, when `stars`, a star at each spike (one legend entry)."""
    t, y, what, spike = zip(*sawtooth(v, h, fired))
    x = np.array(t) + dodge
    line = go.Scatter(
        x=x,
        y=y,
        customdata=list(zip(t, what)),
        mode="lines+markers",
        name=f"neuron {i}",
        legendgroup=f"neuron {i}",
        line=dict(color=color, width=2),
        marker=dict(color=color, size=[0 if sp else 6 for sp in spike]),  # stars below
        hovertemplate=f"neuron {i}, t=%{{customdata[0]}}: %{{customdata[1]}} = %{{y:.3f}}<extra></extra>",
    )
    if not stars:
        return [line]
    j = np.flatnonzero(spike)
    return [
        line,
        go.Scatter(
            x=x[j],
            y=np.array(y)[j],
            customdata=np.array(t)[j],
            mode="markers",
            name=f"spikes of neuron {i}",
            legendgroup=f"neuron {i}",
            showlegend=False,
            marker=dict(symbol="star", size=13, color=color, line=dict(width=1, color="white")),
            hovertemplate=f"neuron {i} spikes at t=%{{customdata}}<extra></extra>",
        ),
    ]
