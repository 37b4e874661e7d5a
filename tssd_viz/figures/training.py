"""Figures of training, drawn from metrics records (SPEC §8): losses, accuracies, windows, agreement.

Each takes the records of one run (a list of dicts, as read from metrics.jsonl) or a dict
{run label: records} to overlay runs. A quantity that is missing or None (a mode without that term)
simply has no trace. With several runs, a quantity keeps its colour and each run gets its own dash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..runs.metrics import final_accuracy
from ._inputs import Records, as_runs, ema, series
from .style import (
    LONG_LEGEND,
    ROLE_COLORS,
    empty_note,
    finish,
    label_points,
    legend_below,
    legend_name,
    percent_axis,
    percent_range,
    run_color,
    run_dash,
    timestep_ticks,
)

RecordsOrRuns = Records | Mapping[str, Records]

LOSS_PARTS = {  # record key -> legend text
    "loss": "total loss",
    "loss_task": "task loss (cross-entropy terms)",
    "loss_tsd": "TSD loss (teacher → student)",
    "loss_ssd": "SSD loss (final output → weak head)",
    "loss_sw": "strong/weak loss (timestep → timestep)",
}
ACCURACIES = {  # record key -> (role, legend text)
    "acc_student": ("student", "student (window T_s)"),
    "acc_teacher": ("teacher", "teacher (window T_t)"),
    "acc_weak": ("weak", "weak head"),
}


def _signal_line(steps: list, values: list, text: str, run: str | None, color: str, i: int) -> go.Scatter:
    """One training signal of one run: the quantity's colour, the run's dash (run i of several)."""
    return go.Scatter(
        x=steps,
        y=values,
        mode="lines",
        name=legend_name(text, run),
        legendgroup=str(run),
        line=dict(color=color, dash=run_dash(i)),
        cliponaxis=False,  # a line at 100 % on an axis that ends there is drawn whole
    )


def loss_parts_figure(records_or_runs: RecordsOrRuns, *, smooth: float = 0.0, title: str | None = None) -> go.Figure:
    """loss, loss_task, loss_tsd, loss_ssd and loss_sw against the training step, from the step records.

    Args:
        records_or_runs: metrics records, or several runs as {label: records}.
        smooth: in [0, 1): weight of an exponential moving average for display (0 draws raw values).
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    fig = go.Figure()
    for i, (run, records) in enumerate(as_runs(records_or_runs).items()):
        for key, text in LOSS_PARTS.items():
            steps, values = series(records, key)
            if steps:
                fig.add_trace(_signal_line(steps, ema(values, smooth), text, run, ROLE_COLORS[key], i))
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="loss (nats)", rangemode="tozero")
    return legend_below(
        finish(empty_note(fig, "losses"), title or "loss and its parts", hovermode="x unified"), LONG_LEGEND
    )


def accuracy_figure(records_or_runs: RecordsOrRuns, *, title: str | None = None) -> go.Figure:
    """Training accuracy of student, teacher, weak head (lines, epoch means as diamonds) and test accuracy by step.

    Args:
        records_or_runs: step, epoch (`test_acc`) and test-split eval records (markers labelled n), or {label: records}.

    Returns:
        The plotly figure.
    """
    fig = go.Figure()
    evals_by_run = []
    for i, (run, records) in enumerate(as_runs(records_or_runs).items()):
        for key, (role, text) in ACCURACIES.items():
            steps, values = series(records, key)
            if steps:
                fig.add_trace(_signal_line(steps, values, text, run, ROLE_COLORS[role], i))
            steps, values = series(records, key, kind="epoch")
            if steps:
                fig.add_trace(
                    go.Scatter(
                        x=steps,
                        y=values,
                        mode="markers",
                        name=legend_name(f"{text}, epoch mean", run),
                        legendgroup=str(run),
                        marker=dict(
                            color=ROLE_COLORS[role], symbol="diamond", size=9, line=dict(width=1, color="white")
                        ),
                    )
                )
        steps, values = series(records, "test_acc", kind="epoch")
        if steps:
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=values,
                    mode="lines+markers",
                    name=legend_name("test (window T_s)", run),
                    legendgroup=str(run),
                    line=dict(color=ROLE_COLORS["test"], dash=run_dash(i)),
                    marker=dict(symbol="square", size=8),
                )
            )
        evals = [
            r
            for r in records
            if r.get("kind") == "eval"
            and r.get("split") == "test"
            and r.get("acc") is not None
            and r.get("step") is not None
        ]
        if evals:
            evals_by_run.append((i, run, evals))
    fig.update_xaxes(title_text="training step")
    y_range = _add_window_evals(fig, evals_by_run)
    fig.update_traces(cliponaxis=False)  # markers at 100 % drawn whole
    fig.update_yaxes(title_text="accuracy", range=y_range, **percent_axis())
    return legend_below(
        finish(empty_note(fig, "accuracies"), title or "accuracy during training", hovermode="x unified"), LONG_LEGEND
    )


def _add_window_evals(fig: go.Figure, evals_by_run: list[tuple[int, Any, Records]]) -> list[float]:
    """The final test evaluations of every window n, after the last step: one column per window, set apart
    to the right of the curves, n = 1 first (all were measured at the same step, where their labels "n=1",
    "n=2", ... would pile up on each other). Every run's marker of window n stands in the same column, and
    the column is labelled once, near its highest marker, by `label_points` (neighbouring columns' labels
    alternate between two heights, so narrow columns never write one over another). Hovering a marker gives
    its run, step and window. Returns the accuracy axis's range, [0, 1] unless a label needs more."""
    if not evals_by_run:
        return [0.0, 1.0]
    steps = [x for d in fig.data for x in d.x] + [r["step"] for _, _, evals in evals_by_run for r in evals]
    start, end = min(steps), max(steps)
    gap = max(end - start, 1) * 0.05  # x-distance between two windows' columns
    top: dict[float, float] = {}  # column x -> its highest accuracy
    for _, run, evals in evals_by_run:
        xs = [r["step"] + gap * int(r.get("t") or 1) for r in evals]
        for x, r in zip(xs, evals):
            top[x] = max(top.get(x, 0.0), r["acc"])
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[r["acc"] for r in evals],
                mode="markers",
                customdata=[[r["step"], r.get("t")] for r in evals],
                hovertemplate="after step %{customdata[0]}: window n = %{customdata[1]}, %{y:.1%}",
                name=legend_name("test, eval (window n)", run),
                legendgroup=str(run),
                marker=dict(color=ROLE_COLORS["test"], symbol="circle-open", size=9),
            )
        )
    first = evals_by_run[0][2]
    xs = [r["step"] + gap * int(r.get("t") or 1) for r in first]
    texts = [f"n={r.get('t')}" for r in first]  # neighbouring columns alternate heights; every other one shares
    y_range = label_points(fig, [(x, top[x]) for x in xs], texts, [0.0, 1.0], min_dx=1.5 * gap)
    fig.update_xaxes(range=[start - 0.02 * (max(top) - start), max(top) + gap])
    return percent_range(y_range)


def window_heatmap_figure(records: Records, *, t_student: int | None = None, title: str | None = None) -> go.Figure:
    """Accuracy of every window n (y) at every logged step (x), from the step records' acc_by_window.

    Lists of different lengths (a run that changed T, a mode that only ran T_s) are padded with None,
    drawn as gaps.

    Args:
        records: step records.
        t_student: draws a line at the student window.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    rows = [r for r in records if r.get("kind") == "step" and r.get("acc_by_window") and r.get("step") is not None]
    L = max((len(r["acc_by_window"]) for r in rows), default=0)
    # z[n-1][j]: accuracy of window n at the j-th logged step.
    z = [[r["acc_by_window"][n] if n < len(r["acc_by_window"]) else None for r in rows] for n in range(L)]
    fig = go.Figure()
    if rows:
        fig.add_trace(
            go.Heatmap(
                x=[r["step"] for r in rows],
                y=list(range(1, L + 1)),
                z=z,
                zmin=0,
                zmax=1,
                colorscale="Viridis",
                colorbar=dict(title=dict(text="accuracy"), **percent_axis()),
                hovertemplate="step %{x}, window n=%{y}: %{z:.1%}<extra></extra>",
            )
        )
        if t_student is not None:
            # Outline the student's row rather than cross it out.
            fig.add_hrect(
                y0=t_student - 0.5,
                y1=t_student + 0.5,
                line=dict(color="white", dash="dash", width=2),
                annotation=dict(text=f"student (T_s = {t_student})", font=dict(color="white")),
                annotation_position="top left",
            )
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="window n (first n timesteps)", **(timestep_ticks(L, start=1) if L else {}))
    return finish(empty_note(fig, "accuracy by window"), title or "accuracy of each window over training")


def _test_acc_by_window(records_or_table: Records | Mapping[Any, float]) -> dict[int, float]:
    if isinstance(records_or_table, Mapping):
        return {int(t): acc for t, acc in records_or_table.items() if acc is not None}
    return final_accuracy(records_or_table)


def accuracy_vs_timesteps_figure(
    runs: Mapping[str, Records | Mapping[int, float]], *, t_student: int | None = None, title: str | None = None
) -> go.Figure:
    """Test accuracy against the number of timesteps n used at inference, one line per run.

    Args:
        runs: name -> its records (eval records on the test split give (t, acc)) or a table {n: accuracy}.
        t_student: marks the student window.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    fig = go.Figure()
    all_t: set[int] = set()
    for i, (run, data) in enumerate(runs.items()):
        table = _test_acc_by_window(data)
        if table:
            ts = sorted(table)
            all_t.update(ts)
            fig.add_trace(
                go.Scatter(
                    x=ts,
                    y=[table[t] for t in ts],
                    mode="lines+markers",
                    name=str(run),
                    line=dict(color=run_color(i)),
                    hovertemplate="n=%{x}: %{y:.1%}",
                )
            )
    if t_student is not None and fig.data:
        fig.add_vline(
            x=t_student,
            line=dict(color=ROLE_COLORS["student"], dash="dot", width=2),
            annotation=dict(text=f"student (T_s = {t_student})", font=dict(color=ROLE_COLORS["student"])),
        )
    if all_t:
        fig.update_xaxes(**timestep_ticks(max(all_t) - min(all_t) + 1, start=min(all_t)))
    fig.update_xaxes(title_text="timesteps at inference (window n)")
    values = [y for d in fig.data for y in d.y]
    fig.update_traces(cliponaxis=False)
    fig.update_yaxes(title_text="test accuracy", range=percent_range(values), **percent_axis())
    return finish(empty_note(fig, "test evaluation"), title or "test accuracy vs timesteps", hovermode="x unified")


def kl_agreement_figure(records_or_runs: RecordsOrRuns, *, title: str | None = None) -> go.Figure:
    """Teacher-student agreement and KL(teacher || student) against the training step, from the step records.

    Agreement (left axis) is the argmax match rate; KL (right axis) is the record's `kl`, in nats.

    Args:
        records_or_runs: metrics records, or several runs as {label: records}.
        title: the figure's title (None: its default, if it has one).

    Returns:
        The plotly figure.
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for i, (run, records) in enumerate(as_runs(records_or_runs).items()):
        for key, text, right in (
            ("agreement", "agreement (teacher vs student)", False),
            ("kl", "KL(teacher ‖ student)", True),
        ):
            steps, values = series(records, key)
            if steps:
                fig.add_trace(_signal_line(steps, values, text, run, ROLE_COLORS[key], i), secondary_y=right)
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="agreement (argmax match rate)", range=[0, 1], secondary_y=False, **percent_axis())
    fig.update_yaxes(
        title_text="KL divergence (nats)", rangemode="tozero", showgrid=False, tickmode="auto", secondary_y=True
    )
    return legend_below(
        finish(
            empty_note(fig, "teacher-student signals"),
            title or "teacher-student agreement and KL",
            hovermode="x unified",
        ),
        0,  # under the plot always: beside it, the legend would sit on the right axis's title
    )
