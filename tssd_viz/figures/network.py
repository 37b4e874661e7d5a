"""The network's layout as a figure: its spiking layers in forward order as boxes joined by arrows,
the image before them and the classifier after, and the weak head under the layer it reads.

Boxes and arrows are plotly shapes and annotations on hidden axes, one data unit per box; the layer
shapes and firing rates they print come from a recording made elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from .style import ROLE_COLORS, finish_wrapped

BOX_W, BOX_H = 0.84, 1.0  # box size in data units; boxes sit at x = 0, 1, 2, ...
WEAK_Y = -1.6  # the weak head's row, under the layers


def _shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(int(s)) for s in shape)


def _wrap_name(name: str, width: int = 12) -> str:
    """A dotted layer name on lines of about `width` characters, broken at dots: stages.1<br>blocks.0.lif."""
    lines = [""]
    for part in name.split("."):
        piece = part if not lines[-1] else "." + part
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append(part)
        else:
            lines[-1] += piece
    return "<br>".join(lines)


def _tint(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _box(fig: go.Figure, x: float, y: float, head: str, body: str, color: str, dash: str = "solid") -> None:
    """A box centred on (x, y), tinted with its outline's colour, its name in bold above its body text."""
    fig.add_shape(
        type="rect",
        x0=x - BOX_W / 2,
        x1=x + BOX_W / 2,
        y0=y - BOX_H / 2,
        y1=y + BOX_H / 2,
        line=dict(color=color, width=1.5, dash=dash),
        fillcolor=_tint(color, 0.12),
    )
    fig.add_annotation(x=x, y=y, text=f"<b>{head}</b><br>{body}", showarrow=False, font=dict(size=11))


def _arrow(fig: go.Figure, x0: float, y0: float, x1: float, y1: float, color: str) -> None:
    """An arrow from (x0, y0) to (x1, y1) in data units."""
    fig.add_annotation(
        x=x1,
        y=y1,
        ax=x0,
        ay=y0,
        xref="x",
        yref="y",
        axref="x",
        ayref="y",
        text="",
        showarrow=True,
        arrowhead=2,
        arrowwidth=2,
        arrowcolor=color,
    )


def _chain(fig: go.Figure, boxes: list[tuple[str, str, float | None]]) -> None:
    """The forward path on the row y = 0: image, the spiking layers (with their rate when given), classifier."""
    for i, (head, body, rate) in enumerate(boxes):
        is_layer = 0 < i < len(boxes) - 1
        color = ROLE_COLORS["spike"] if is_layer else ROLE_COLORS["student"]
        if rate is not None:
            body += f"<br>rate {rate:.3f}"
        _box(fig, i, 0, _wrap_name(head), body, color)
        if i:
            _arrow(fig, i - 1 + BOX_W / 2, 0, i - BOX_W / 2, 0, ROLE_COLORS["threshold"])


def _weak_head(fig: go.Figure, names: list[str], tap: str, num_classes: int) -> None:
    """The weak head, dashed, under the layer `tap` whose spikes it reads."""
    if tap not in names:
        raise ValueError(f"tap {tap!r} is not one of the layers: {', '.join(names)}")
    x = names.index(tap) + 1
    body = f"pool + linear → {num_classes}<br>(training only)"
    _box(fig, x, WEAK_Y, "weak head", body, ROLE_COLORS["weak"], "dash")
    _arrow(fig, x, -BOX_H / 2, x, WEAK_Y + BOX_H / 2, ROLE_COLORS["weak"])


def network_diagram_figure(
    layers: Mapping[str, Sequence[int]],
    *,
    input_shape: Sequence[int],
    num_classes: int,
    tap: str | None = None,
    rates: Mapping[str, float] | None = None,
    title: str | None = None,
) -> go.Figure:
    """The spiking layers in forward order as boxes, and where the weak head reads (`tap`).

    Args:
        layers: LIF layer name -> shape of its spikes for one image at one timestep, (C, H, W) or (C,).
        input_shape: (C, H, W) of an image.
        num_classes: K.
        tap: the LIF layer whose spikes feed the weak head (global average pool + linear); None draws no weak head.
        rates: firing rate per layer, printed in its box.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    names = list(layers)
    boxes = [("image", _shape_text(input_shape), None)]
    boxes += [(n, _shape_text(layers[n]), None if rates is None else rates.get(n)) for n in names]
    boxes.append(("classifier", f"pool + linear → {num_classes}", None))
    fig = go.Figure()
    _chain(fig, boxes)
    if tap is not None:
        _weak_head(fig, names, tap, num_classes)
    fig.update_xaxes(visible=False, range=[-0.6, len(boxes) - 0.4])
    fig.update_yaxes(visible=False, range=[-2.15, 0.55] if tap is not None else [-0.55, 0.55])
    return finish_wrapped(
        fig,
        title or "the network, layer by layer (shapes per image and timestep)",
        height=400 if tap is not None else 230,
    )
