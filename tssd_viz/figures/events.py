"""What an event camera sees: its ON/OFF events over the sensor with a time slider, and the T frames
a network gets once tonic's ToFrame has binned them.

ON (brighter) is orange and OFF (darker) sky blue in every figure here: two Okabe-Ito colours that
are no role's (the student and teacher keep blue and vermillion elsewhere).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..data.dvs import log_intensity
from ._inputs import as_numpy
from .style import finish

POLARITY_COLORS = {"ON": "#E69F00", "OFF": "#56B4E9"}
_ON_RGB, _OFF_RGB = np.array([230, 159, 0]), np.array([86, 180, 233])


def events_rgb(frames: Any) -> np.ndarray:
    """Event counts as pictures, each scaled by its own largest count.

    Channel 0 is OFF and 1 is ON (tonic's polarity order); ON is drawn orange and OFF sky blue on black,
    mixed where a pixel has both.

    Args:
        frames: (N, 2, H, W) or (N, T, 2, H, W) counts (summed over T).

    Returns:
        (N, 3, H, W) uint8.
    """
    x = as_numpy(frames, "frames", (4, 5)).astype(np.float64)
    if x.ndim == 5:
        x = x.sum(1)  # (N, T, 2, H, W) -> (N, 2, H, W): the whole recording
    if x.shape[1] != 2:
        raise ValueError(f"event frames should have 2 polarity channels, got {x.shape[1]}")
    peak = np.maximum(x.max(axis=(1, 2, 3), keepdims=True), 1.0)  # (N, 1, 1, 1)
    off, on = x[:, :1] / peak, x[:, 1:] / peak  # (N, 1, H, W) each, in [0, 1]
    rgb = on * _ON_RGB[None, :, None, None] + off * _OFF_RGB[None, :, None, None]  # (N, 3, H, W)
    return np.clip(rgb, 0, 255).round().astype(np.uint8)


def _axes(fig: go.Figure, width: int, height: int, **where) -> None:
    """Pixel axes as in an image: y grows downwards, one unit per pixel, square pixels."""
    fig.update_xaxes(range=[-0.5, width - 0.5], showgrid=False, zeroline=False, constrain="domain", **where)
    fig.update_yaxes(
        range=[height - 0.5, -0.5], showgrid=False, zeroline=False, scaleanchor="x", constrain="domain", **where
    )


def _slice_points(ev: np.ndarray, in_slice: np.ndarray, on: np.ndarray) -> list[go.Scatter]:
    """The ON and the OFF events of one time slice (`in_slice`, a mask over the events) as points at their pixel."""
    return [
        go.Scatter(
            x=ev["x"][in_slice & mask],
            y=ev["y"][in_slice & mask],
            mode="markers",
            name=name,
            marker=dict(color=POLARITY_COLORS[name], size=6, symbol="square", opacity=0.8),
            hovertemplate=f"{name} x=%{{x}} y=%{{y}}<extra></extra>",
        )
        for name, mask in (("ON", on), ("OFF", ~on))
    ]


def _player(labels: list[str]) -> dict:
    """Layout of a slider over the figure's frames (one step per label, frame k named "k") and play/pause
    buttons below the plot."""
    still = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate", "transition": {"duration": 0}}
    play = {"frame": {"duration": 300, "redraw": False}, "fromcurrent": True, "transition": {"duration": 0}}
    return dict(
        sliders=[
            dict(  # right of the buttons, so that its handle is never under them and can be dragged
                active=0,
                x=0.22,
                len=0.78,
                currentvalue=dict(prefix="events in "),
                pad=dict(t=40),
                steps=[dict(method="animate", args=[[str(k)], still], label=text) for k, text in enumerate(labels)],
            )
        ],
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0,
                y=0,
                xanchor="left",
                yanchor="top",
                pad=dict(t=75),
                buttons=[
                    dict(label="▶ play", method="animate", args=[None, play]),
                    dict(label="❚❚ pause", method="animate", args=[[None], still]),
                ],
            )
        ],
    )


def camera_figure(
    events: Any, *, sensor: tuple[int, int] = (34, 34), slices: int = 15, title: str | None = None
) -> go.Figure:
    """One recording as the camera reports it: ON and OFF events as points at their pixel.

    The recording is cut into `slices` equal time slices; the slider (and the play button) steps through
    them, showing the events of one slice at a time (plotly frames).

    Args:
        events: a tonic-style structured array with fields x, y, t (microseconds), p (1 = ON).
        sensor: (W, H) in pixels.
        slices: how many time slices.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    ev = np.asarray(events)
    if ev.dtype.names is None or not {"x", "y", "t", "p"} <= set(ev.dtype.names):
        raise ValueError("events should be a structured array with fields x, y, t, p")
    if slices < 1:
        raise ValueError(f"slices should be >= 1, got {slices}")
    t = ev["t"].astype(np.float64)
    t0, t1 = (float(t.min()), float(t.max())) if t.size else (0.0, 1.0)
    edges = np.linspace(t0, max(t1, t0 + 1), slices + 1)
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, slices - 1)  # slice of every event
    on = ev["p"] > 0
    frames = [go.Frame(data=_slice_points(ev, which == k, on), name=str(k)) for k in range(slices)]
    fig = go.Figure(data=_slice_points(ev, which == 0, on), frames=frames)
    fig.update_layout(
        **_player([f"{(edges[k] - t0) / 1000:.0f}–{(edges[k + 1] - t0) / 1000:.0f} ms" for k in range(slices)])
    )
    _axes(fig, *sensor)
    fig.update_xaxes(title="x (pixel)")
    fig.update_yaxes(title="y (pixel)")
    return finish(fig, title or f"what the camera sees: {len(ev):,} events in {(t1 - t0) / 1000:.0f} ms", height=520)


def event_frames_figure(frames: Any, *, title: str | None = None, first: int = 1) -> go.Figure:
    """The T frames a network gets for one recording, one panel per timestep.

    Each panel shows ON minus OFF counts on one shared diverging scale (orange ON, blue OFF); the panel titles
    give t and the frame's event count.

    Args:
        frames: (T, 2, H, W) event counts (channel 0 OFF, 1 ON), e.g. `split.images[i]` or one sample of a batch.
        title: the figure's title (None: its default, if it has one).
        first: the number of the first timestep in the panel titles.

    Returns:
        The plotly figure.
    """
    f = as_numpy(frames, "frames", 4).astype(np.float64)
    if f.shape[1] != 2:
        raise ValueError(f"frames should be (T, 2, H, W), got {f.shape}")
    T, _, H, W = f.shape
    net = f[:, 1] - f[:, 0]  # (T, H, W) ON minus OFF
    top = max(float(np.abs(net).max()), 1.0)
    fig = make_subplots(
        rows=1,
        cols=T,
        # Two short lines a panel: on one line, "t = 1 · 1,380 events" ran into its neighbour's title once
        # eight panels shared a page-wide figure.
        subplot_titles=[f"t = {first + t}<br>{int(f[t].sum()):,}" for t in range(T)],
        horizontal_spacing=0.02,
    )
    scale = [[0.0, POLARITY_COLORS["OFF"]], [0.5, "#FFFFFF"], [1.0, POLARITY_COLORS["ON"]]]
    for t in range(T):
        fig.add_trace(
            go.Heatmap(
                z=net[t],
                coloraxis="coloraxis",
                hovertemplate="x=%{x} y=%{y}<br>ON − OFF = %{z}<extra></extra>",
            ),
            row=1,
            col=t + 1,
        )
    fig.update_layout(coloraxis=dict(colorscale=scale, cmin=-top, cmax=top, colorbar=dict(title="ON − OFF")))
    _axes(fig, W, H, showticklabels=False)
    fig.update_annotations(font_size=11)
    title = title or f"the {T} frames the network gets (ToFrame), each with its number of events"
    finish(fig, title, height=100 + max(160, 900 // max(T, 1)))
    return fig.update_layout(margin_t=fig.layout.margin.t + 16)  # room for the panels' second title line


def pixel_events_figure(
    times_us: Any, intensity: Any, events: Any, *, threshold: float, eps: float = 0.1, title: str | None = None
) -> go.Figure:
    """One DVS pixel: its log intensity log(I + eps) over time and the events it emitted.

    Each event is drawn at the reference level it moved to (ON up, OFF down, `threshold` apart), so the
    staircase shows when the line had moved a whole threshold from the pixel's last event.

    Args:
        times_us: (S,) times in microseconds.
        intensity: (S,) the pixel's intensity in [0, 1] at each time.
        events: the pixel's events, a structured array.
        threshold: the contrast threshold C.
        eps: added before the log.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    t = as_numpy(times_us, "times_us", 1).astype(np.float64)
    log = log_intensity(as_numpy(intensity, "intensity", 1), eps)
    ev = np.asarray(events)
    step = np.where(ev["p"] > 0, threshold, -threshold)
    level = log[0] + np.cumsum(step)  # the reference level after each event
    fig = go.Figure(
        go.Scatter(x=t / 1000, y=log, mode="lines", name=f"log(I + {eps:g})", line=dict(color="#000000", width=2))
    )
    for name, mask, symbol in (("ON", ev["p"] > 0, "triangle-up"), ("OFF", ev["p"] <= 0, "triangle-down")):
        fig.add_trace(
            go.Scatter(
                x=ev["t"][mask] / 1000,
                y=level[mask],
                mode="markers",
                name=f"{name} event ({mask.sum()})",
                marker=dict(color=POLARITY_COLORS[name], size=11, symbol=symbol, line=dict(width=1, color="#333")),
                hovertemplate=f"{name} at %{{x:.2f}} ms<br>new reference %{{y:.2f}}<extra></extra>",
            )
        )
    fig.update_xaxes(title="time (ms)")
    fig.update_yaxes(title="log intensity")
    return finish(fig, title or f"one pixel: an event each time the log intensity moves {threshold:g}", height=380)
