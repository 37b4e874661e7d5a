"""Figures the lessons need beyond the live signals: the images, predictions of several heads side by
side, bar comparisons of runs, the neurons worth a membrane trace, and controls that redraw a figure
(the network's layout is drawn in `network`).

Like every figure builder these only draw what they are given; what they draw (images from a
dataset split, layer shapes from a recording, accuracies from run folders) is computed elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from ._inputs import as_numpy, as_series
from .events import events_rgb
from .style import ROLE_COLORS, category_color, finish_wrapped, run_color


def _as_rgb(images: Any) -> np.ndarray:
    """(N, C, H, W) uint8 or [0, 1] pixels, C 1 or 3, or event frames -> (N, 3, H, W) uint8 RGB pixels."""
    x = as_numpy(images, "images", (4, 5))
    if x.ndim == 5 or x.shape[1] == 2:  # event frames: a picture of the recording's events
        x = events_rgb(x)
    if x.dtype != np.uint8:
        x = (np.clip(x, 0.0, 1.0) * 255).round().astype(np.uint8)
    C = x.shape[1]
    if C not in (1, 3):
        raise ValueError(f"images should have 1 or 3 channels, got {C}")
    return np.repeat(x, 3, axis=1) if C == 1 else x  # (N, 3, H, W)


def _image_titles(
    N: int,
    labels: Sequence[int] | None,
    classes: Sequence[str] | None,
    predictions: Sequence[int] | None,
    indices: Sequence[int] | None,
    captions: Sequence[str] | None,
) -> list[str]:
    """Each image's subplot title: its number or caption, its true class, and its prediction coloured green
    when right, vermillion when wrong."""
    numbers = [int(i) for i in indices] if indices is not None else list(range(N))
    heads = list(captions) if captions is not None else [f"#{k}" for k in numbers]
    if len(numbers) != N or len(heads) != N:
        raise ValueError(f"{len(numbers)} indices and {len(heads)} captions for {N} images")
    names = [str(c) for c in classes] if classes is not None else None

    def name(k: int) -> str:
        return names[k] if names is not None else str(k)

    titles = []
    for i in range(N):
        text = heads[i] + (f": {name(int(labels[i]))}" if labels is not None else "")
        if predictions is not None:
            right = labels is not None and int(predictions[i]) == int(labels[i])
            color = "#009E73" if right else "#D55E00"
            text += f"<br><span style='color:{color}'>→ {name(int(predictions[i]))}</span>"
        titles.append(text)
    return titles


def image_grid_figure(
    images: Any,
    *,
    labels: Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
    predictions: Sequence[int] | None = None,
    indices: Sequence[int] | None = None,
    captions: Sequence[str] | None = None,
    columns: int = 8,
    title: str | None = None,
) -> go.Figure:
    """A grid of images with their true class and, optionally, a prediction (green if right, red if wrong).

    Args:
        images: (N, C, H, W), uint8 pixels (as a dataset split stores them) or floats in [0, 1]; C is 1 (drawn
            grey) or 3; event frames, (N, 2, H, W) or (N, T, 2, H, W) counts, are drawn with `events_rgb`.
        labels: N class indices.
        classes: the class names.
        predictions: N class indices.
        indices: the N numbers that name the images ("#12: cat"), e.g. their positions in the split when
            `images` is a slice of it; default 0..N-1.
        captions: N names that replace "#12" (e.g. "t = 50 ms", for frames of one video).
        columns: images per row.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    rgb = _as_rgb(images)  # (N, 3, H, W) uint8
    N = len(rgb)
    titles = _image_titles(N, labels, classes, predictions, indices, captions)
    cols = max(1, min(columns, N))
    rows = -(-N // cols)  # ceiling division
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.02,
        vertical_spacing=0.12 if predictions is not None else 0.08,
    )
    for i in range(N):
        fig.add_trace(
            go.Image(z=rgb[i].transpose(1, 2, 0), hoverinfo="skip"),  # (3, H, W) -> (H, W, 3)
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=11)
    per_row = 150 if predictions is not None else 130
    return finish_wrapped(fig, title, height=60 + per_row * rows)


def head_predictions_figure(
    probs: Mapping[str, Any],
    classes: Sequence[str],
    *,
    label: int | None = None,
    roles: Mapping[str, str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Class probabilities of several outputs for one image, as grouped bars.

    Args:
        probs: output name -> (K,) probabilities (e.g. "student (T_s)", "teacher (T_t)", "weak head").
        classes: the K class names.
        label: the true class, marked on the axis.
        roles: output name -> a key of ROLE_COLORS, so each output wears its role's colour.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    names = [str(c) for c in classes]
    ticks = [f"<b>{c} (true)</b>" if k == label else c for k, c in enumerate(names)]
    fig = go.Figure()
    for i, (who, p) in enumerate(probs.items()):
        p = as_numpy(p, f"probabilities of {who!r}", 1)
        if len(p) != len(names):
            raise ValueError(f"{len(p)} probabilities of {who!r} for {len(names)} classes")
        role = (roles or {}).get(who)
        color = ROLE_COLORS[role] if role else run_color(i)
        guess = names[int(np.argmax(p))]
        fig.add_trace(
            go.Bar(
                x=ticks,
                y=p,
                name=f"{who}: {guess}",
                marker_color=color,
                hovertemplate="%{x}: %{y:.1%}<extra>" + who + "</extra>",
            )
        )
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="class")
    fig.update_yaxes(title_text="probability", range=[0, 1], tickformat=".0%")
    return finish_wrapped(fig, title or "what each output predicts")


def comparison_bars_figure(
    values: Mapping[str, float | None] | Mapping[str, Mapping[str, float | None]],
    *,
    value_format: str = ".1%",
    yaxis_title: str = "test accuracy",
    barmode: str = "group",
    colors: Mapping[str, str] | None = None,
    errors: Mapping[str, Mapping[str, float | None]] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Bars of one number per category, or of several series ({series: {category: value}}), labelled with values.

    Args:
        value_format: d3 format of the labels (".1%", ".3s", ",.0f"); barmode: "group" side by side, "stack" piled.
        colors: series -> colour (e.g. a role's from ROLE_COLORS); other series take the run colours.
        errors: {series: {category: half-width}} in the values' units, drawn as error bars (a paired difference's 2 SE).

    Returns:
        The plotly figure.
    """
    if barmode not in ("group", "stack"):
        raise ValueError(f"barmode should be 'group' or 'stack', got {barmode!r}")
    series, categories, nested = as_series(values)
    fig = go.Figure()
    for i, (name, s) in enumerate(series.items()):
        color = (category_color(i) if barmode == "stack" else run_color(i)) if nested else run_color(0)
        color = (colors or {}).get(name, color)
        fig.add_trace(
            go.Bar(
                x=categories,
                y=[s.get(c) for c in categories],
                name=name or yaxis_title,
                marker_color=color,
                texttemplate="%{y:" + value_format + "}",
                textposition="inside" if barmode == "stack" else "outside",
                # An outside label may be wider than its bar ("+14.8" over a narrow grouped bar): shrunk to the
                # bar's width it fell under uniformtext's minimum size and was hidden.
                constraintext="inside" if barmode == "stack" else "none",
                cliponaxis=False,
                hovertemplate="%{x}: %{y:" + value_format + "}<extra>" + (name or "") + "</extra>",
                error_y=_error_bars((errors or {}).get(name), categories),
            )
        )
    fig.update_layout(barmode=barmode, showlegend=nested, uniformtext=dict(minsize=9, mode="hide"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(
        title_text=yaxis_title,
        rangemode="tozero",
        tickformat=value_format.replace(".1", ".0") if value_format.endswith("%") else None,
    )
    if barmode == "group":  # headroom for the labels outside the tallest (and the lowest) bar
        err = lambda name, c: ((errors or {}).get(name) or {}).get(c) or 0.0  # noqa: E731
        shown = [v + d * err(n, c) for n, s in series.items() for c, v in s.items() if v is not None for d in (-1, 1)]
        high, low = max([0.0, *shown]), min([0.0, *shown])
        pad = 0.15 * ((high - low) or 1.0)
        top = high + pad if high > 0 else 0.0
        if value_format.endswith("%") and 0 <= low and high <= 1:  # a percent axis ends at 100 %: the
            top = min(top, 1.0)  # label of a bar near the top stands above the plot (cliponaxis off)
        fig.update_yaxes(range=[low - pad if low < 0 else 0.0, top])
    return finish_wrapped(fig, title)


def _error_bars(half_widths: Mapping[str, float | None] | None, categories: list[str]) -> dict | None:
    """A bar trace's error_y for {category: half-width}, or None when the series has none."""
    if not half_widths or all(half_widths.get(c) is None for c in categories):
        return None
    spans = [half_widths.get(c) or 0.0 for c in categories]
    return dict(type="data", array=spans, visible=True, thickness=1.5, width=6, color="#555555")


def intermittent_neurons(spikes: Any, k: int = 5) -> list[int]:
    """Columns of a (T, N) spike train that fire at some timesteps but not at all of them.

    For membrane traces: a neuron that never fires or fires at every step shows no integrate-and-fire
    cycle (`busiest_neurons` would pick the ones that always fire).

    Args:
        spikes: (T, N).
        k: how many.

    Returns:
        The first `k` such columns by index; the other columns, in order, fill up to `k` when fewer do.
    """
    s = as_numpy(spikes, "spikes", 2)
    counts = s.astype(np.int64).sum(0)  # (T, N) -> (N,)
    sometimes = [i for i in range(s.shape[1]) if 0 < counts[i] < s.shape[0]]
    others = [i for i in range(s.shape[1]) if i not in set(sometimes)]
    return (sometimes + others)[:k]


def _mime_bundle(fig: go.Figure) -> dict[str, Any]:
    """What Jupyter shows for `fig`: the plotly mime type (JupyterLab, Notebook 7, VS Code) and a text line.

    Built here because Output.append_display_data would not do: it shows a plotly figure through the
    figure's own _ipython_display_, in whichever cell is current, not in the output area.
    """
    title = fig.layout.title.text or "figure"
    return {
        "application/vnd.plotly.v1+json": json.loads(pio.to_json(fig, validate=False)),
        "text/plain": f"<plotly figure: {title}>",
    }


def figure_explorer(draw: Callable[..., go.Figure | Sequence[go.Figure]], **controls: Any) -> Any:
    """Widgets above the figure(s) that `draw(**values)` returns; changing a control redraws them.

    The first drawing happens here, so an error in `draw` raises at once (and fails a headless run)
    instead of being printed inside a widget. Figures are written into the output area's state, not
    captured with `with output:`: headless runners (nbclient, hence nbmake and nbconvert) answer
    captured output with messages of their own that can race the cell's reply and hang the cell.

    Args:
        draw: returns a figure or a sequence of figures.
        **controls: keyword -> an ipywidgets control (slider, dropdown, checkbox) whose `.value` is passed
            to `draw` under that keyword; one control may drive several explorers.

    Returns:
        An ipywidgets VBox to display.
    """
    import ipywidgets as widgets  # an optional dependency: only the notebooks need it

    out = widgets.Output()

    def redraw() -> None:
        drawn = draw(**{name: control.value for name, control in controls.items()})
        figures = [drawn] if isinstance(drawn, go.Figure) else list(drawn)
        out.outputs = tuple(
            {"output_type": "display_data", "data": _mime_bundle(fig), "metadata": {}} for fig in figures
        )

    def on_change(_change: Any) -> None:
        try:
            redraw()
        except Exception as e:  # keep the controls alive; say what went wrong where the figure was
            out.outputs = ()
            out.append_stderr(f"{type(e).__name__}: {e}\n")

    redraw()
    for control in controls.values():
        control.observe(on_change, names="value")
    row = widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
    return widgets.VBox([row, out])
