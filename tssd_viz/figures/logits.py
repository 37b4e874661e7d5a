"""Figures of the network's output over time: what each timestep says, and what each window decides.

The prediction of the window of the first n timesteps is mean_{t<n} z(t) (SPEC §3): the student
reads the window n = T_s, the teacher the window n = T_t. These figures recompute that running mean
from recorded per-timestep logits, in numpy, only to draw it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._inputs import as_numpy
from .style import ROLE_COLORS, category_color, finish, percent_axis, timestep_ticks


def _window_means(z: np.ndarray) -> np.ndarray:
    """(T, ...) per-timestep logits -> (T, ...) where index n-1 is the mean of the first n."""
    n = np.arange(1, z.shape[0] + 1).reshape(-1, *[1] * (z.ndim - 1))
    return np.cumsum(z, axis=0) / n


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)  # shift for numerical stability
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _class_names(classes: Sequence[str] | None, K: int) -> list[str]:
    names = [str(c) for c in classes] if classes is not None else [f"class {k}" for k in range(K)]
    if len(names) != K:
        raise ValueError(f"{len(names)} class names for {K} logits")
    return names


def timestep_logits_figure(
    logits: Any,
    classes: Sequence[str] | None,
    *,
    t_student: int,
    label: int | str | None = None,
    title: str | None = None,
) -> go.Figure:
    """Per-timestep logits of one image (top) and the prediction of every window n = 1..T (bottom).

    The bottom panel plots softmax(mean_{t<n} z(t)) per class against n, with the student window
    n = T_s and the teacher window n = T marked. With more than ten classes it shows the five most
    probable at n = T, plus the true class.

    Args:
        logits: (T, K), T the teacher's window T_t.
        classes: the K class names, or None.
        t_student: T_s.
        label: the true class (index or name), highlighted.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    z = as_numpy(logits, "logits", 2).astype(np.float64)  # (T, K)
    T, K = z.shape
    if not 1 <= t_student <= T:
        raise ValueError(f"t_student should be in 1..{T} (the recorded timesteps), got {t_student}")
    names = _class_names(classes, K)
    y = names.index(label) if isinstance(label, str) else label
    probs = np.exp(_log_softmax(_window_means(z)))  # (T, K): row n-1 is window n

    fig = make_subplots(
        rows=2,
        cols=1,
        vertical_spacing=0.16,
        row_heights=[0.5, 0.5],
        subplot_titles=[
            "what each timestep says: logits z(t)",
            "what each window decides: softmax of the mean of z over the first n timesteps",
        ],
    )
    _logits_panel(fig, z, names, y, t_student)
    _window_lines(fig, probs, names, y)
    _mark_windows(fig, probs, names, t_student)
    fig.update_xaxes(title_text="window n (first n timesteps)", **timestep_ticks(T, start=1), row=2, col=1)
    fig.update_traces(cliponaxis=False, selector=dict(type="scatter"))  # a point at 100 % drawn whole
    fig.update_yaxes(title_text="probability", range=[0, 1], row=2, col=1, **percent_axis())
    fig.update_layout(legend=dict(y=0, yanchor="bottom"))  # beside the probabilities, below the colour bar
    return finish(fig, title or "one image over time", height=760)


def _logits_panel(fig: go.Figure, z: np.ndarray, names: list[str], y: int | None, t_student: int) -> None:
    """The top panel of `timestep_logits_figure`: z (T, K) as a heatmap of class against timestep, the true
    class `y` in bold, and a dotted line where the student window ends."""
    T = z.shape[0]
    fig.add_trace(
        go.Heatmap(
            x=np.arange(T),
            y=names,
            z=z.T,
            colorscale="RdBu_r",
            zmid=0,
            name="z(t)",
            colorbar=dict(title=dict(text="logit z(t)"), len=0.42, y=0.79),
            hovertemplate="t=%{x}, %{y}: z=%{z:.2f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    ticktext = [f"<b>{c} (true)</b>" if k == y else c for k, c in enumerate(names)]
    fig.update_yaxes(tickvals=names, ticktext=ticktext, title_text="class", row=1, col=1)
    fig.update_xaxes(title_text="timestep t", **timestep_ticks(T), row=1, col=1)
    # Where the student stops reading: its window covers t = 0..T_s-1.
    fig.add_vline(x=t_student - 0.5, line=dict(color=ROLE_COLORS["student"], dash="dot", width=2), row=1, col=1)


def _window_lines(fig: go.Figure, probs: np.ndarray, names: list[str], y: int | None) -> None:
    """The bottom panel's lines: each class's probability (T, K) against the window n, the true class `y` bold.
    With more than ten classes, only the five most probable at n = T and the true class."""
    T, K = probs.shape
    shown = list(range(K)) if K <= 10 else sorted(set(np.argsort(-probs[-1])[:5].tolist()) | ({y} - {None}))
    n = np.arange(1, T + 1)
    for i, k in enumerate(shown):
        true = k == y
        fig.add_trace(
            go.Scatter(
                x=n,
                y=probs[:, k],
                mode="lines+markers",
                name=names[k] + (" (true label)" if true else ""),
                line=dict(color=category_color(i), width=4 if true else 1.5),
                opacity=1.0 if true or y is None else 0.6,
                hovertemplate=f"{names[k]}: " + "%{y:.1%} at n=%{x}<extra></extra>",
            ),
            row=2,
            col=1,
        )


def _mark_windows(fig: go.Figure, probs: np.ndarray, names: list[str], t_student: int) -> None:
    """Dashed lines at the student window n = T_s and the teacher window n = T in the bottom panel, each named
    with its guess on a line of its own at the top of the panel (student above teacher): side by side they
    wrote one over the other when the two windows are a step or two apart."""
    T = probs.shape[0]
    for row, (n_mark, role, who) in enumerate(((t_student, "student", "T_s"), (T, "teacher", "T_t"))):
        if role == "teacher" and T == t_student:
            continue  # recorded only the student window: no teacher to mark
        guess = names[int(np.argmax(probs[n_mark - 1]))]
        color, left = ROLE_COLORS[role], n_mark <= (T + 1) / 2
        fig.add_vline(x=n_mark, line=dict(color=color, dash="dash", width=2), row=2, col=1)
        fig.add_annotation(
            x=n_mark,
            y=1 - 0.09 * row,  # one text line of the panel's height apart
            yref="y domain",
            text=f"{role} ({who} = {n_mark}): {guess}",
            font=dict(color=color),
            yanchor="top",
            xanchor="left" if left else "right",  # the text runs towards the middle of the panel
            xshift=4 if left else -4,
            bgcolor="rgba(255, 255, 255, 0.8)",
            showarrow=False,
            row=2,
            col=1,
        )


def window_agreement_figure(logits: Any, *, t_student: int | None = None, title: str | None = None) -> go.Figure:
    """How close each window n = 1..T is to the full window T, over a batch.

    Left axis: agreement, the fraction of images where the argmax of window n equals the argmax of window T.
    Right axis: KL(softmax(z_T) || softmax(z_n)) at temperature 1, batch mean, in nats.

    Args:
        logits: (T, B, K).
        t_student: marks the student window.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    z = as_numpy(logits, "logits", 3).astype(np.float64)  # (T, B, K)
    T = z.shape[0]
    logp = _log_softmax(_window_means(z))  # (T, B, K)
    agree = (logp.argmax(-1) == logp[-1].argmax(-1)).mean(axis=1)  # (T, B) -> (T,)
    kl = (np.exp(logp[-1]) * (logp[-1] - logp)).sum(-1).mean(-1)  # (T, B, K) -> (T,)
    n = np.arange(1, T + 1)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(
            x=n,
            y=agree,
            mode="lines+markers",
            name="agreement with window T",
            line=dict(color=ROLE_COLORS["agreement"]),
            hovertemplate="n=%{x}: %{y:.1%}",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=n,
            y=kl,
            mode="lines+markers",
            name="KL(window T ‖ window n)",
            line=dict(color=ROLE_COLORS["kl"], dash="dash"),
            hovertemplate="n=%{x}: %{y:.3f} nats",
        ),
        secondary_y=True,
    )
    if t_student is not None:
        fig.add_vline(
            x=t_student,
            line=dict(color=ROLE_COLORS["student"], dash="dot", width=2),
            annotation=dict(text=f"student (T_s = {t_student})", font=dict(color=ROLE_COLORS["student"])),
        )
    fig.update_xaxes(title_text="window n (first n timesteps)", **timestep_ticks(T, start=1))
    fig.update_traces(cliponaxis=False)
    fig.update_yaxes(title_text="agreement (argmax match rate)", range=[0, 1], secondary_y=False, **percent_axis())
    fig.update_yaxes(
        title_text="KL divergence (nats)", rangemode="tozero", showgrid=False, tickmode="auto", secondary_y=True
    )
    return finish(fig, title or "how close each window is to the full window", hovermode="x unified")
