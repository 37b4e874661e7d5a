"""Figures the live dashboard adds to the shared ones: firing rates over training, the probe batch.

Like every figure builder, pure functions from recorded data (metrics records, probe arrays) to a
plotly figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from ._inputs import Records, as_numpy, as_runs
from .lessons import image_grid_figure
from .neuron import RATE_TITLE
from .style import LONG_LEGEND, category_color, finish, legend_below, run_dash


def firing_rate_history_figure(
    records_or_runs: Records | Mapping[str, Records], *, title: str | None = None
) -> go.Figure:
    """Firing rate of every LIF layer (one colour per layer, in forward order) against the training step.

    Args:
        records_or_runs: step records, whose `firing_rate` maps layer -> spikes per neuron per timestep; or
            several runs as {label: records}, each run with its own dash.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    fig = go.Figure()
    layers: list[str] = []
    for i, (run, records) in enumerate(as_runs(records_or_runs).items()):
        rows = [r for r in records if r.get("kind") == "step" and r.get("firing_rate")]
        for r in rows:
            layers += [name for name in r["firing_rate"] if name not in layers]
        for j, layer in enumerate(layers):
            points = [(r["step"], r["firing_rate"][layer]) for r in rows if layer in r["firing_rate"]]
            if not points:
                continue
            steps, rates = zip(*points)
            name = layer if run is None else f"{layer} · {run}"
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=rates,
                    mode="lines",
                    name=name,
                    legendgroup=str(run),
                    line=dict(color=category_color(j), dash=run_dash(i)),
                    hovertemplate="step %{x}: %{y:.3f}<extra>" + name + "</extra>",
                )
            )
    if not fig.data:
        fig.add_annotation(
            text="no firing rates recorded yet",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            font=dict(size=16, color="#7F7F7F"),
        )
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text=RATE_TITLE, rangemode="tozero")
    return legend_below(
        finish(fig, title or "firing rate per layer during training", hovermode="x unified"), LONG_LEGEND
    )


def probe_batch_figure(
    images: Any, labels: Any, classes: Sequence[str], logits: Any, *, t_student: int, title: str | None = None
) -> go.Figure:
    """The probe images with their true class and the student's prediction (window T_s) under each.

    Args:
        images: (P, C, H, W) uint8.
        labels: (P,) class indices.
        classes: the K class names.
        logits: (T, P, K) per-timestep logits, T >= t_student.
        t_student: T_s.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    z = as_numpy(logits, "logits", 3)  # (T, P, K)
    if not 1 <= t_student <= z.shape[0]:
        raise ValueError(f"t_student should be in 1..{z.shape[0]}, got {t_student}")
    student = z[:t_student].mean(0).argmax(-1)  # the window of the first T_s steps: (P, K) -> (P,)
    return image_grid_figure(
        images,
        labels=as_numpy(labels, "labels", 1),
        classes=list(classes),
        predictions=student,
        columns=8,
        title=title or f"probe images · student's guess at T_s = {t_student}",
    )


def busiest_neurons(spikes: Any, k: int = 5) -> list[int]:
    """Columns of a (T, N) spike train with the most spikes, for trace plots.

    Silent neurons draw flat lines that teach nothing.

    Args:
        spikes: (T, N).
        k: how many.

    Returns:
        Up to k column indices, most spikes first (ties: the lower index).
    """
    s = as_numpy(spikes, "spikes", 2)
    counts = s.astype(np.int64).sum(0)  # (T, N) -> (N,); uint8 spikes would wrap when negated
    order = sorted(range(s.shape[1]), key=lambda i: (-counts[i], i))
    return order[:k]
