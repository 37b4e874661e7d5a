"""One look for every figure: a colour per role, a dash per run, one template.

The colours come from the Okabe-Ito palette, which stays distinguishable under the common forms
of colour blindness. A role keeps its colour in every figure: the student window is always blue,
the teacher window always vermillion, so a student can follow a quantity from chart to chart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import plotly.graph_objects as go

from ..stats import spread

ROLE_COLORS: dict[str, str] = {
    "student": "#0072B2",  # the short window T_s, the network that is deployed
    "teacher": "#D55E00",  # the long window T_t of the same network, which teaches it
    "weak": "#009E73",  # the weak head on an intermediate stage (spatial distillation)
    "threshold": "#7F7F7F",  # the firing threshold theta, always dashed
    "current": "#E69F00",  # input current I(t)
    "membrane": "#332288",  # membrane potential V(t)
    "spike": "#AA3377",  # spikes S(t)
    "loss": "#000000",  # the total loss that is backpropagated
    "loss_task": "#56B4E9",  # the cross-entropy terms together
    "agreement": "#882255",  # teacher-student argmax match rate
    "kl": "#DDAA33",  # KL(teacher || student)
    "test": "#000000",  # held-out accuracy from eval records
}
# Each loss part wears the colour of who drives it: the TSD term is the teacher's, the SSD term
# teaches the weak head.
ROLE_COLORS["loss_tsd"] = ROLE_COLORS["teacher"]
ROLE_COLORS["loss_ssd"] = ROLE_COLORS["weak"]
ROLE_COLORS["loss_sw"] = "#EE7733"  # one timestep of the student window teaching another

# When the runs themselves are what is compared (one line per run), they take these in turn.
RUN_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
# When a figure already uses colour for the quantity, runs are told apart by dash.
RUN_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
# Classes and neurons are not roles: a plain categorical palette.
CATEGORY_COLORS = (
    "#4E79A7",
    "#F28E2B",
    "#E15759",
    "#76B7B2",
    "#59A14F",
    "#EDC948",
    "#B07AA1",
    "#FF9DA7",
    "#9C755F",
    "#BAB0AC",
)

TEMPLATE = "plotly_white"
FONT = dict(family="Inter, Helvetica, Arial, sans-serif", size=13)


def run_color(i: int) -> str:
    return RUN_COLORS[i % len(RUN_COLORS)]


def run_dash(i: int) -> str:
    return RUN_DASHES[i % len(RUN_DASHES)]


def category_color(i: int) -> str:
    return CATEGORY_COLORS[i % len(CATEGORY_COLORS)]


def finish(
    fig: go.Figure, title: str | None, *, height: int | None = None, hovermode: str | bool = "closest"
) -> go.Figure:
    """Apply the shared template, title, margins and legend; return the figure."""
    fig.update_layout(
        template=TEMPLATE,
        font=FONT,
        hovermode=hovermode,
        height=height,
        title=dict(text=title, x=0.01, xanchor="left") if title else None,
        margin=dict(l=70, r=30, t=70 if title else 30, b=60),
        legend=dict(groupclick="toggleitem", tracegroupgap=8),
    )
    return fig


def legend_name(quantity: str, run: str | None) -> str:
    """A trace's legend entry: the quantity, then the run it belongs to when several runs are overlaid."""
    return quantity if run is None else f"{quantity} · {run}"


def empty_note(fig: go.Figure, what: str) -> go.Figure:
    """A live dashboard opens runs before their first record: say so instead of drawing empty axes."""
    if not fig.data:
        fig.add_annotation(
            text=f"no {what} recorded yet",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            font=dict(size=16, color=ROLE_COLORS["threshold"]),
        )
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    return fig


def percent_axis() -> dict:
    """Axis settings for a fraction shown in percent, with as many decimals as the tick step needs.

    A fixed ".0%" repeats labels on a narrow range (10.0%, 10.2%, 10.4% all read "10%"). Plotly picks
    the tick step (dtick) from the range and the zoom, always 1, 2 or 5 times a power of ten, and the
    stops below give each step its decimals: whole percents from a step of 1%, one decimal from 0.1%,
    and so on. The stop bounds sit between those values, so each step matches exactly one stop.
    """
    stops = [([None, 0.00009], ".3%"), ([0.00009, 0.0009], ".2%"), ([0.0009, 0.009], ".1%"), ([0.009, None], ".0%")]
    return dict(tickformat=".0%", tickformatstops=[dict(dtickrange=r, value=v) for r, v in stops])


MIN_PERCENT_SPAN = 0.05  # a percent axis always shows at least 5 points of range


def whole_point_range(values: list[float], min_span: float, lo: float | None = None, hi: float | None = None):
    """[low, high] in whole points around `values` (points) with a point of margin, at least `min_span`
    wide (grown evenly on both sides), clipped to [lo, hi] when given."""
    low, high = math.floor(min(values) - 1), math.ceil(max(values) + 1)
    grow = math.ceil(max(0.0, min_span - (high - low)) / 2)
    low, high = low - grow, high + grow
    if lo is not None and low < lo:  # slide the window inside [lo, hi], keeping its width where it fits
        low, high = lo, high + (lo - low)
    if hi is not None and high > hi:
        low, high = low - (high - hi), hi
    return [low if lo is None else max(low, lo), high]


def whole_ticks(span: float) -> float:
    """A tick step in whole points: 1, 2, 5 or 10 for up to 12, 25, 60 or more points."""
    return 1 if span <= 12 else 2 if span <= 25 else 5 if span <= 60 else 10


def percent_range(values: Iterable[float | None] | None = None, min_span: float = MIN_PERCENT_SPAN) -> list[float]:
    """The y range, as fractions, of an axis that shows fractions in percent: whole points around `values`,
    at least `min_span` wide and always inside [0, 1]; None (or no finite value) gives the whole [0, 1].

    Why: plotly's auto-range zooms onto the data, so two accuracies one test image apart (98.06 % and
    97.78 %) fill the plot from bottom to top, and a single value gets a range that runs below 0 %.
    """
    shown = [100 * float(v) for v in values or () if v is not None and math.isfinite(float(v))]
    if not shown:
        return [0.0, 1.0]
    low, high = whole_point_range(shown, 100 * min_span, 0, 100)
    return [low / 100, high / 100]


LABEL_GAP = 0.07  # of the y range between two labels' centres: 11 px text with room, on a plot 300 px high


def label_points(
    fig: go.Figure,
    points: Sequence[tuple[float, float]],
    texts: Sequence[str],
    y_range: Sequence[float],
    min_dx: float = math.inf,
    **where,
) -> list[float]:
    """Write texts[i] near points[i] = (x, y), each joined to its point by a thin arrow; an empty text is
    skipped. Returns `y_range` grown to hold the texts (the caller sets it on the axis).

    The texts go to the side of the points with more room (below points near the top of the range) and
    stand at least `LABEL_GAP` of the range apart in y from every text less than `min_dx` away in x (by
    default every text), pushed away from the points in the order given, so no two overlap however close
    their points are (plotly does not move text to avoid other text). With `min_dx`, the texts start from one
    common height (next to the outermost point) and those far enough apart in x share it, so neighbours
    alternate between two heights instead of climbing a ladder. `where`: row/col of a subplot.
    """
    low, high = y_range
    gap = LABEL_GAP * (high - low)
    shown = [(p, t) for p, t in zip(points, texts) if t]
    if not shown:
        return [low, high]
    ys = [y for (_, y), _ in shown]
    side = -1 if max(ys) - low >= high - min(ys) else 1  # +1 above the points, -1 below
    away = [side * y + gap for y in ys]  # distance outwards, in the chosen direction
    if min_dx < math.inf:  # rows of texts: one common first height, so neighbours simply alternate
        away = [min(away)] * len(away)
    placed: dict[int, float] = {}
    for i in sorted(range(len(shown)), key=lambda i: away[i]):  # equal wishes: the first stays nearest
        near = sorted(u for j, u in placed.items() if abs(shown[j][0][0] - shown[i][0][0]) < min_dx)
        u = away[i]
        for v in near:  # the first free height at or beyond its wish, `gap` from every near text
            if abs(u - v) < gap:
                u = v + gap
        placed[i] = u
    heights = [placed[i] for i in range(len(shown))]
    for ((x, y), text), u in zip(shown, heights):
        fig.add_annotation(
            x=x,
            y=y,
            ax=x,
            ay=side * u,
            axref="x",
            ayref="y",
            text=text,
            font=dict(size=11),
            showarrow=True,
            arrowhead=0,
            arrowwidth=1,
            arrowcolor="#999999",
            standoff=4,
            **where,
        )
    ends = [side * u for u in heights]
    return [min(low, min(ends) - gap / 2), max(high, max(ends) + gap / 2)]


BAND_COLOR = "rgba(0, 114, 178, 0.12)"  # a seed-noise band: the student blue, faint


def noise_band(fig: go.Figure, values: Iterable[float], *, scale: float = 1.0, **where) -> tuple[float, float] | None:
    """Shade the mean ± 2 SE of `values` (one arm's result over seeds, `stats.spread`) across the plot, below
    the data: a difference that stays inside it is not told apart from seed-to-seed noise. `scale`: axis
    units per value (100 for points). `where`: row/col of a subplot. Returns the band (low, high) in axis
    units, or None (and draws nothing) with fewer than two values."""
    values = list(values)
    s = spread(values) if values else None
    if s is None or s.two_se is None:
        return None
    low, high = scale * (s.mean - s.two_se), scale * (s.mean + s.two_se)
    fig.add_hrect(y0=low, y1=high, fillcolor=BAND_COLOR, line_width=0, layer="below", **where)
    return low, high


LONG_LEGEND = 8  # a legend with more entries than this (several runs overlaid) goes under its plot


def legend_below(fig: go.Figure, beyond: int = 0) -> go.Figure:
    """Move the legend under the plot, in rows, and make the figure taller to hold it, when the legend
    has more than `beyond` entries (0: always).

    Why: a vertical legend taller than its plot scrolls, and beside a narrow chart it takes the width
    the plot needs. Under the plot, plotly lays the entries out in as many rows as the width requires
    and scrolls them only beyond half the figure's height: 20 px per entry keeps even one entry per
    row (a half-page chart, long names) below that.
    """
    entries = sum(1 for d in fig.data if d.showlegend is not False and d.name)
    if entries > beyond and fig.layout.legend.orientation != "h":  # once: the height grows each time
        fig.update_layout(
            legend=dict(orientation="h", x=0, xanchor="left", y=-0.2, yanchor="top"),
            margin=dict(r=20),
            height=(fig.layout.height or 450) + 20 * entries,
        )
    return fig


def timestep_ticks(n: int, start: int = 0) -> dict:
    """Axis settings for an integer time axis of n values starting at `start`: whole numbers only."""
    dtick = 1 if n <= 32 else max(1, round(n / 16))
    return dict(tickmode="linear", tick0=start, dtick=dtick, range=[start - 0.5, start + n - 0.5])


def wrap_title(title: str | None, width: int = 80) -> str | None:
    """A title on lines of at most about `width` characters, broken at " · " first, then at spaces.

    Why: plotly never wraps a title. A notebook's output area is about 950 px wide with JupyterLab's
    file browser open, which holds some 100 characters of title; text beyond the right edge is cut off.
    """
    if not title or len(title) <= width or "<br>" in title:  # short, or already broken by hand
        return title
    lines: list[str] = []
    for part in title.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
            continue
        lines.append("")
        for word in part.split(" "):
            if lines[-1] and len(lines[-1]) + 1 + len(word) > width:
                lines.append(word)
            else:
                lines[-1] += (" " if lines[-1] else "") + word
    return "<br>".join(lines)


def finish_wrapped(fig: go.Figure, title: str | None, *, height: int | None = None) -> go.Figure:
    """`finish`, with a long title wrapped and the top margin grown to hold its lines."""
    title = wrap_title(title)
    extra = 22 * (title or "").count("<br>")  # px per added line of the 17 px title font
    finish(fig, title, height=None if height is None else height + extra)
    if extra:
        fig.update_layout(margin_t=fig.layout.margin.t + extra)
    return fig
