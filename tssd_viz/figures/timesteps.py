"""The student window's timesteps as sub-models (SPEC §10): how confident each one is over training,
which one was the strongest and the weakest at each logged step, and what early exit buys.

Every mode records these signals once T_s >= 2; the strong/weak modes (s2w, w2s) train on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from . import style
from ._inputs import Records, as_runs
from .style import (
    ROLE_COLORS,
    category_color,
    empty_note,
    finish,
    legend_below,
    legend_name,
    percent_axis,
    run_color,
    run_dash,
)


def _timestep_rows(records: Records, key: str) -> tuple[list[int], np.ndarray]:
    """(steps, values (steps, T)) of a per-timestep list over the step records that carry it."""
    rows = [(r["step"], r[key]) for r in records if r.get("kind") == "step" and r.get(key)]
    if not rows:
        return [], np.zeros((0, 0))
    width = min(len(v) for _, v in rows)
    return [s for s, _ in rows], np.array([v[:width] for _, v in rows], dtype=float)


def timestep_confidence_figure(records_or_runs: Records | Mapping[str, Records], *, title: str | None = None):
    """Confidence of each timestep of the student window against the training step.

    Confidence is the batch mean of its largest softmax probability; one colour per timestep, one dash per run.

    Args:
        records_or_runs: metrics records, or several runs as {label: records}.
        title: the figure's title (None: its default, if it has one).

    Returns:
        (go.Figure): the plotly figure.
    """
    fig = go.Figure()
    values: list[float] = []
    for i, (run, records) in enumerate(as_runs(records_or_runs).items()):
        steps, conf = _timestep_rows(records, "confidence_by_timestep")
        values += conf.ravel().tolist()
        for t in range(conf.shape[1]):
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=conf[:, t],
                    mode="lines",
                    name=legend_name(f"timestep {t + 1}", run),
                    legendgroup=str(run),
                    line=dict(color=category_color(t), dash=run_dash(i)),
                    hovertemplate=f"timestep {t + 1}: %{{y:.1%}}<extra></extra>",
                )
            )
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="confidence (mean max softmax)", range=style.percent_range(values), **percent_axis())
    title = title or "how sure each timestep of the student window is"
    return legend_below(finish(empty_note(fig, "per-timestep confidence"), title, hovermode="x unified"), 8)


def strong_weak_strip_figure(records: Records, *, title: str | None = None) -> go.Figure:
    """A heat strip over the logged training steps: which timestep was the strongest and the weakest of its batch.

    For each timestep of the student window, whether it was the strongest (most confident) or the weakest. In
    s2w the strong one teaches the weak one, in w2s the reverse.

    Args:
        records: step records.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    steps, strong = _timestep_rows(records, "strongest_by_timestep")
    _, weak = _timestep_rows(records, "weakest_by_timestep")
    fig = go.Figure()
    if steps:
        z = strong - weak  # +1 strongest, -1 weakest, 0 neither (T_s > 2)
        labels = np.where(z > 0, "strongest", np.where(z < 0, "weakest", "in between"))
        fig.add_trace(
            go.Heatmap(
                x=steps,
                y=[f"t={t + 1}" for t in range(z.shape[1])],
                z=z.T,
                text=labels.T,
                zmin=-1,
                zmax=1,
                colorscale=[[0, ROLE_COLORS["weak"]], [0.5, "#f2f2f2"], [1, ROLE_COLORS["teacher"]]],
                colorbar=dict(tickvals=[-1, 0, 1], ticktext=["weakest", "in between", "strongest"], len=0.9),
                hovertemplate="step %{x}, %{y}: %{text}<extra></extra>",
                xgap=0,
                ygap=2,
            )
        )
        fig.update_yaxes(title_text="timestep", autorange="reversed")
    fig.update_xaxes(title_text="training step")
    height = 160 + 40 * (strong.shape[1] if steps else 2)
    return finish(
        empty_note(fig, "strongest/weakest timesteps"),
        title or "strongest and weakest timestep per step",
        height=height,
    )


def _point(p: Any) -> tuple[float, float, float]:
    """(threshold, accuracy, mean timesteps) of an `ExitPoint` or its dict."""
    if isinstance(p, Mapping):
        return p["threshold"], p["acc"], p["mean_timesteps"]
    return p.threshold, p.acc, p.mean_timesteps


def _threshold_labels(pts: list[tuple[float, float, float]], close: float = 0.1) -> list[str]:
    """One label per place on the chart: thresholds whose points (nearly) coincide, the same accuracy within
    `close` timesteps of each other (every image already ran the full window, say), share one label,
    "0.9–0.99", on the first of them, instead of a stack of numbers."""
    labels = [""] * len(pts)
    first = 0
    for j in range(1, len(pts) + 1):
        apart = j == len(pts) or abs(pts[j][2] - pts[first][2]) > close or abs(pts[j][1] - pts[first][1]) > 1e-4
        if apart:
            low, high = pts[first][0], pts[j - 1][0]
            labels[first] = f"{low:g}" if j - 1 == first else f"{low:g}–{high:g}"
            first = j
    return labels


def early_exit_figure(
    runs: Mapping[str, Sequence[Any]], *, full_window: int | None = None, title: str | None = None
) -> go.Figure:
    """Accuracy against the mean timesteps an image used, one point per confidence threshold, one line per run.

    The latency/accuracy trade-off each run buys. Each point is labelled with its threshold (`label_points`:
    never on top of another label, however close the points).

    Args:
        runs: name -> ExitPoints (or their dicts).
        full_window: the full window T, marked.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    fig = go.Figure()
    labelled: list[tuple[tuple[float, float], str]] = []
    for i, (name, points) in enumerate(runs.items()):
        pts = sorted((_point(p) for p in points), key=lambda p: p[0])
        if not pts:
            continue
        fig.add_trace(
            go.Scatter(
                x=[p[2] for p in pts],
                y=[p[1] for p in pts],
                mode="lines+markers",
                name=name,
                line=dict(color=run_color(i)),
                customdata=[[p[0]] for p in pts],
                cliponaxis=False,
                hovertemplate="threshold %{customdata[0]:g}: %{y:.1%} with %{x:.2f} timesteps<extra>%{fullData.name}"
                "</extra>",
            )
        )
        labelled += [((p[2], p[1]), text) for p, text in zip(pts, _threshold_labels(pts))]
    fig.update_xaxes(title_text="mean timesteps used per image", rangemode="tozero")
    if full_window:
        fig.update_xaxes(range=[0.8, full_window + 0.2], dtick=1 if full_window <= 16 else None)
    y_range = style.percent_range([y for (_, y), _ in labelled])
    y_range = style.label_points(fig, [p for p, _ in labelled], [t for _, t in labelled], y_range)
    fig.update_yaxes(title_text="test accuracy", range=style.percent_range(y_range), **percent_axis())
    title = title or "early exit: accuracy vs timesteps (labels: confidence threshold)"
    return legend_below(finish(empty_note(fig, "early-exit points"), title), 8)


def _extremes(accs: Sequence[float], t_window: int) -> tuple[list[int], list[int]]:
    """The 1-based timesteps among the first `t_window` with the highest and with the lowest accuracy (every
    one of a tie); none when they all score the same."""
    head = list(accs[:t_window])
    if not head or max(head) == min(head):
        return [], []
    return [t + 1 for t, a in enumerate(head) if a == max(head)], [t + 1 for t, a in enumerate(head) if a == min(head)]


def timestep_accuracy_figure(
    runs: Mapping[str, Mapping[str, Any]], *, t_student: int | None = None, title: str | None = None
) -> go.Figure:
    """Each timestep's own accuracy (z(t) alone) at the end of training, from runs' analysis records.

    The most and the least accurate timestep of the student window are marked (▲, ▼; all of a tie). The
    confidence of each timestep, which the s2w and w2s modes rank their strong and weak timestep by, is in
    the hover.

    Args:
        runs: name -> analysis record.
        t_student: the student window (default: the record's `t`).
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    fig = go.Figure()
    values: list[float] = []
    for i, (name, a) in enumerate(runs.items()):
        accs = list(a.get("acc_by_timestep") or [])
        conf = list(a.get("confidence_by_timestep") or [])
        conf += [None] * (len(accs) - len(conf))
        t = list(range(1, len(accs) + 1))
        values += accs
        fig.add_trace(
            go.Scatter(
                x=t,
                y=accs,
                mode="lines+markers",
                name=name,
                line=dict(color=run_color(i)),
                customdata=[["–" if c is None else f"{c:.1%}"] for c in conf],
                cliponaxis=False,
                hovertemplate="t = %{x}: %{y:.2%} right, mean confidence %{customdata[0]}<extra>%{fullData.name}"
                "</extra>",
            )
        )
        for ts, what, symbol in zip(
            _extremes(accs, t_student or a.get("t") or len(accs)), ("most", "least"), ("up", "down")
        ):
            fig.add_trace(
                go.Scatter(
                    x=ts,
                    y=[accs[k - 1] for k in ts],
                    mode="markers",
                    name=f"{what} accurate timestep",
                    legendgroup=what,
                    showlegend=i == 0,
                    marker=dict(symbol=f"triangle-{symbol}", size=14, color=run_color(i)),
                    cliponaxis=False,
                    hoverinfo="skip",
                )
            )
    fig.update_xaxes(title_text="timestep t (its output z(t) alone)", dtick=1)
    fig.update_yaxes(title_text="test accuracy", range=style.percent_range(values), **percent_axis())
    return legend_below(finish(empty_note(fig, "per-timestep accuracy"), title or "accuracy of each timestep alone"), 8)
