"""One look for every figure: a colour per role, a dash per run, one template.

The colours come from the Okabe-Ito palette, which stays distinguishable under the common forms
of colour blindness. A role keeps its colour in every figure: the student window is always blue,
the teacher window always vermillion, so a student can follow a quantity from chart to chart.
"""

from __future__ import annotations

import plotly.graph_objects as go

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


def percent_axis() -> dict:
    """Axis settings for a fraction shown in percent, with as many decimals as the tick step needs.

    A fixed ".0%" repeats labels on a narrow range (10.0%, 10.2%, 10.4% all read "10%"). Plotly picks
    the tick step (dtick) from the range and the zoom, always 1, 2 or 5 times a power of ten, and the
    stops below give each step its decimals: whole percents from a step of 1%, one decimal from 0.1%,
    and so on. The stop bounds sit between those values, so each step matches exactly one stop.
    """
    stops = [([None, 0.00009], ".3%"), ([0.00009, 0.0009], ".2%"), ([0.0009, 0.009], ".1%"), ([0.009, None], ".0%")]
    return dict(tickformat=".0%", tickformatstops=[dict(dtickrange=r, value=v) for r, v in stops])


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
