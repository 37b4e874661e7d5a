"""A controlled experiment at a glance: each seed's accuracy per arm, and the paired differences.

Left, one column per arm: a dot per finished run (accuracy at T_s), the dots of one seed joined across the
arms (the same seed gives every arm the same initial weights and data order, so a line that slopes the same
way on every seed is an effect, crossing lines are noise), and beside each column its mean ± 2 SE. Shaded:
the reference arm's mean ± 2 SE, the band inside which a column is not told apart from it. Right: each arm's
per-seed difference from the reference and its mean ± 2 SE (`tssd_viz.stats.paired`), against a zero line.

The axes run over whole points with at least `MIN_SPAN` points of accuracy (and `MIN_DIFF_SPAN` of
difference) in view: plotly's auto-range would zoom a 0.3-point difference (one test image of 360) into a
cliff across the whole plot.
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..stats import POINTS, paired, spread
from .style import finish_wrapped, noise_band, run_color, whole_point_range, whole_ticks

MIN_SPAN = 10.0  # points of accuracy always in view
MIN_DIFF_SPAN = 4.0  # points of difference always in view
MEAN_OFFSET = 0.22  # the mean ± 2 SE marker sits this far right of its column of dots
MEAN_COLOR = "#000000"


def experiment_figure(
    acc_by_arm: Mapping[str, Mapping[int, float]],
    reference: str,
    *,
    title: str | None = None,
    n_test: int | None = None,
) -> go.Figure:
    """A controlled experiment: each arm's accuracy over seeds, paired against a reference arm, in points.

    Args:
        acc_by_arm: arm -> {seed: test accuracy at T_s as a fraction}, arms in column order (an arm with no
            finished run yet keeps its column, empty).
        reference: the arm the others are compared with.
        title: the figure's title (None: its default, if it has one).
        n_test: the test images, to say what one image is worth in points.

    Returns:
        The plotly figure.
    """
    arms = list(acc_by_arm)
    others = [a for a in arms if a != reference]
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.58, 0.42],
        horizontal_spacing=0.1,
        subplot_titles=("test accuracy at T_s, one dot per run", f"paired difference from {reference}"),
    )
    seeds = sorted({s for accs in acc_by_arm.values() for s in accs})
    for k, seed in enumerate(seeds):  # a seed's dots, joined across arms
        xs = [i for i, a in enumerate(arms) if seed in acc_by_arm[a]]
        ys = [POINTS * acc_by_arm[arms[i]][seed] for i in xs]
        fig.add_trace(_seed_trace(xs, ys, seed, run_color(k), show=True), row=1, col=1)
    _means(fig, [spread(acc_by_arm[a].values()) if acc_by_arm[a] else None for a in arms], col=1)
    ref = acc_by_arm.get(reference, {})
    values = [POINTS * v for accs in acc_by_arm.values() for v in accs.values()]
    values += noise_band(fig, ref.values(), scale=POINTS, row=1, col=1) or []
    span = whole_point_range(values or [50.0], MIN_SPAN, 0, 100)
    fig.update_yaxes(range=span, dtick=whole_ticks(span[1] - span[0]), ticksuffix="%", row=1, col=1)
    _axis(fig, arms, col=1)

    diffs = {a: paired(acc_by_arm[a], ref) for a in others}
    for k, seed in enumerate(seeds):
        xs = [i for i, a in enumerate(others) if seed in diffs[a].seeds]
        ys = [POINTS * diffs[others[i]].diffs[diffs[others[i]].seeds.index(seed)] for i in xs]
        fig.add_trace(_seed_trace(xs, ys, seed, run_color(k), show=False), row=1, col=2)
    _means(fig, [diffs[a].spread if diffs[a].n else None for a in others], col=2)
    fig.add_hline(y=0, line=dict(color="#7F7F7F", dash="dash", width=1), row=1, col=2)
    dvalues = [POINTS * d for p in diffs.values() for d in p.diffs] + [0.0]
    dvalues += [POINTS * (p.mean + sign * p.two_se) for p in diffs.values() if p.two_se for sign in (-1, 1)]
    dspan = whole_point_range(dvalues, MIN_DIFF_SPAN)
    fig.update_yaxes(range=dspan, dtick=whole_ticks(dspan[1] - dspan[0]), ticksuffix=" pt", row=1, col=2)
    _axis(fig, others, col=2)
    if n_test:
        note = f"one test image = {POINTS / n_test:.2f} points · shaded: {reference} mean ± 2 SE (its seed noise)"
        fig.add_annotation(text=note, xref="paper", yref="paper", x=0, y=-0.16, showarrow=False, xanchor="left")
    finish_wrapped(fig, title, height=460)
    fig.update_layout(margin_b=90, legend=dict(title_text="seed"))
    return fig


def _seed_trace(xs: list[int], ys: list[float], seed: int, color: str, show: bool) -> go.Scatter:
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines+markers",
        name=f"seed {seed}",
        legendgroup=f"seed {seed}",
        showlegend=show,
        line=dict(color=color, width=1),
        marker=dict(color=color, size=9),
        opacity=0.8,
        hovertemplate=f"seed {seed}: %{{y:.1f}}<extra></extra>",
    )


def _means(fig: go.Figure, spreads: list, col: int) -> None:
    """Each column's mean ± 2 SE (a marker without bar for one seed; nothing for none), right of its dots."""
    xs = [i + MEAN_OFFSET for i, s in enumerate(spreads) if s is not None]
    kept = [s for s in spreads if s is not None]
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=[POINTS * s.mean for s in kept],
            error_y=dict(type="data", array=[POINTS * (s.two_se or 0.0) for s in kept], width=6, thickness=2),
            mode="markers",
            marker=dict(symbol="diamond", size=11, color=MEAN_COLOR),
            name="mean ± 2 SE",
            legendgroup="mean",
            showlegend=col == 1,
            hovertemplate="mean %{y:.1f} ± %{error_y.array:.1f}<extra></extra>",
        ),
        row=1,
        col=col,
    )


def _axis(fig: go.Figure, names: list[str], col: int) -> None:
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(len(names))),
        ticktext=names,
        range=[-0.5, max(len(names), 1) - 0.5 + MEAN_OFFSET],
        showgrid=False,
        row=1,
        col=col,
    )
