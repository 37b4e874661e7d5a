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

# When the runs themselves are what is compared (one line per run), they take these in turn.
RUN_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
# When a figure already uses colour for the quantity, runs are told apart by dash.
RUN_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
# Classes and neurons are not roles: a plain categorical palette.
CATEGORY_COLORS = ("#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F",
                   "#EDC948", "#B07AA1", "#FF9DA7", "#9C755F", "#BAB0AC")

TEMPLATE = "plotly_white"
FONT = dict(family="Inter, Helvetica, Arial, sans-serif", size=13)


def run_color(i: int) -> str:
    return RUN_COLORS[i % len(RUN_COLORS)]


def run_dash(i: int) -> str:
    return RUN_DASHES[i % len(RUN_DASHES)]


def category_color(i: int) -> str:
    return CATEGORY_COLORS[i % len(CATEGORY_COLORS)]


def finish(fig: go.Figure, title: str | None, *, height: int | None = None,
           hovermode: str | bool = "closest") -> go.Figure:
    """Apply the shared template, title, margins and legend; return the figure."""
    fig.update_layout(
        template=TEMPLATE, font=FONT, hovermode=hovermode, height=height,
        title=dict(text=title, x=0.01, xanchor="left") if title else None,
        margin=dict(l=70, r=30, t=70 if title else 30, b=60),
        legend=dict(groupclick="toggleitem", tracegroupgap=8),
    )
    return fig


def timestep_ticks(n: int, start: int = 0) -> dict:
    """Axis settings for an integer time axis of n values starting at `start`: whole numbers only."""
    dtick = 1 if n <= 32 else max(1, round(n / 16))
    return dict(tickmode="linear", tick0=start, dtick=dtick, range=[start - 0.5, start + n - 0.5])
