"""A CIFAR sweep's summary: its tables computed from the run folders (`records`), rendered as markdown
(`tables`) with the accuracy figure, written beside the runs and into a generated section of a page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from .grid import ABLATION_TS, ABLATIONS, MODES, setting_text
from .records import cell_stats, collect
from .sections import generated_by, markers, rewrite_section
from .tables import exit_table, main_table, pm, scale_text, verdict_lines, window_table


def summarize(runs_dir: Path) -> dict[str, Any]:
    """Every table of the summary from the finished run folders (JSON-ready)."""
    runs = [r for r in collect(runs_dir) if r["acc_by_window"]]
    main: dict[str, list[dict]] = {"epochs": [], "time": []}
    for budget in main:
        for ts in sorted({r["t_student"] for r in runs}):
            for mode in MODES:
                group = [
                    r
                    for r in runs
                    if r["budget"] == budget
                    and r["factor"] is None
                    and r["mode"] == mode
                    and r["t_student"] == ts
                    and r["t_teacher"] == 2 * ts
                ]
                if group:
                    main[budget].append({"mode": mode, "t_student": ts, "t_teacher": 2 * ts, **cell_stats(group)})
    ablations: dict[str, list[dict]] = {}
    for field in ABLATIONS:
        section, name = field.split(".")
        # The reference (factor None, tssd, T_s = ABLATION_TS, T_t = 2 T_s, equal epochs) joins every ablation.
        members = [
            r
            for r in runs
            if r["budget"] == "epochs"
            and r["mode"] == "tssd"
            and r["t_student"] == ABLATION_TS
            and (r["factor"] == field or (r["factor"] is None and r["t_teacher"] == 2 * ABLATION_TS))
        ]
        if not any(r["factor"] == field for r in members):
            continue
        value = lambda r, section=section, name=name: getattr(getattr(r["cfg"], section), name)  # noqa: E731
        rows = []
        for v in sorted({value(r) for r in members}, key=lambda v: (str(type(v)), v)):
            group = [r for r in members if value(r) == v]
            rows.append({"value": v, "reference": group[0]["factor"] is None, **cell_stats(group)})
        ablations[field] = rows
    totals = {
        "runs": len(runs),
        "train_s": sum(r["train_s"] or 0 for r in runs),
        "process_s": sum(r["process_s"] or 0 for r in runs),
    }
    return {
        "scale": _scale(runs),
        "main": main,
        "ablations": ablations,
        "totals": totals,
        "runs": [{k: v for k, v in r.items() if k != "cfg"} for r in runs],
    }


def _scale(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the runs were: data, network, epochs, optimiser (from the reference run's config)."""
    if not runs:
        return {}
    from ..snn.models import build_model, count_parameters

    ref = next((r for r in runs if r["factor"] is None and r["budget"] == "epochs"), runs[0])
    c = ref["cfg"]
    params = count_parameters(build_model(c.model, 1 if c.data.dataset == "digits" else 3, 10, weak_head=False))
    budgets = sorted({(r["t_student"], r["cfg"].train.time_budget_s) for r in runs if r["budget"] == "time"})
    return {
        "dataset": c.data.dataset,
        "limit_train": c.data.limit_train,
        "limit_test": c.data.limit_test,
        "arch": c.model.arch,
        "width": c.model.width,
        "parameters": params,
        "epochs": c.train.epochs,
        "batch_size": c.data.batch_size,
        "optimizer": c.train.optimizer,
        "lr": c.train.lr,
        "schedule": c.train.schedule,
        "label_smoothing": c.train.label_smoothing,
        "augment": c.data.augment,
        "time_budgets_s": {str(ts): b for ts, b in budgets},
        "code": sorted({r["code"] for r in runs}),
    }


def render_markdown(summary: dict[str, Any], figure: str | None = None) -> str:
    """The summary as markdown: scale, the two main tables, accuracy by window, ablations, totals."""
    s, t = summary["scale"], summary["totals"]
    lines = [
        "Classroom-scale numbers, not the paper's: small network, CIFAR-10 subset, few epochs, CPU. "
        'Test accuracy in %, mean ± sample standard deviation over seeds; "vs baseline" is the mean of the '
        "per-seed differences (paired: the same seed gives both runs the same initial weights and data order), "
        "with two standard errors of that mean in brackets (a difference inside it is within the seed-to-seed "
        "noise).",
        "",
    ]
    if s:
        lines += [scale_text(s), ""]
    lines += _main_lines(summary["main"]) + _figure_lines(figure)
    for field, rows in summary["ablations"].items():
        lines += _ablation_lines(field, rows)
    lines += [
        f"{t['runs']} runs; {t['train_s'] / 3600:.2f} h of training steps, "
        f"{t['process_s'] / 3600:.2f} h of CPU wall-clock in all (data loading and evaluation included).",
        "",
    ]
    return "\n".join(lines)


def _main_lines(main: dict[str, list[dict]]) -> list[str]:
    """The equal-epoch and equal-time tables with their verdicts, then accuracy by window and early exit."""
    lines = [
        "**Equal epochs** (every mode trains the same number of epochs):",
        "",
        *main_table(main["epochs"], "epochs"),
        "",
        *verdict_lines(main["epochs"]),
        "",
        "**Equal time** (every mode trains for the same seconds; TSSD costs more per step, so it gets fewer epochs):",
        "",
        *main_table(main["time"], "time"),
        "",
        *verdict_lines(main["time"]),
        "",
    ]
    if main["epochs"]:
        lines += [
            "**Accuracy by inference window n** (equal epochs; bold: the student window T_s):",
            "",
            *window_table(main["epochs"]),
            "",
        ]
    exits = exit_table([r for r in main["epochs"] if r["t_student"] > 1])
    if exits:
        lines += [
            "**Early exit** (equal epochs; each test image stops at the first timestep whose running prediction "
            "is at least this confident, largest softmax probability, else at T_s; accuracy and the mean "
            "timesteps an image used):",
            "",
            *exits,
            "",
        ]
    return lines


def _figure_lines(figure: str | None) -> list[str]:
    """The accuracy figure: the picture with a link to its interactive page, or the link alone."""
    if figure and figure.endswith(".png"):
        return [
            f"![test accuracy vs timesteps at inference, per mode]({figure})",
            "",
            f"(interactive: [{figure[:-4]}.html]({figure[:-4]}.html))",
            "",
        ]
    return [f"Figure: [test accuracy vs timesteps at inference, per mode]({figure}).", ""] if figure else []


def _ablation_lines(field: str, rows: list[dict]) -> list[str]:
    """One ablation's table: accuracy and cost per value of `field`, the reference value starred."""
    lines = [
        f"**Ablation `{field}`** (tssd, T_s={ABLATION_TS}, T_t={2 * ABLATION_TS} unless varied, equal epochs; "
        "* the reference setting, shared with the main table; with one seed, read a difference against "
        "the seed spread above):",
        "",
        "| value | test acc. at T_s (%) | s / epoch | seeds |",
        "|---|---|---|---|",
    ]
    for r in rows:
        value = setting_text(r["value"]) + (" *" if r["reference"] and r["epoch_s"] else "")
        cost = f"{r['epoch_s']:.1f}" if r["epoch_s"] else "–"
        lines.append(f"| {value} | {pm(r['acc'])} | {cost} | {r['n']} |")
    return lines + [""]


def accuracy_figure(summary: dict[str, Any]):
    """Mean test accuracy against inference timesteps n, one line per (mode, T_s), seed std as error bars."""
    from ..figures import accuracy_vs_timesteps_figure
    from ..figures.style import percent_range, run_color

    rows = summary["main"]["epochs"]
    runs = {f"{r['mode']} · T_s={r['t_student']}": {n: ms[0] for n, ms in r["acc_by_window"].items()} for r in rows}
    fig = accuracy_vs_timesteps_figure(
        runs, title="test accuracy vs timesteps at inference (equal epochs, mean over seeds)"
    )
    ends = []  # every error bar's two ends: the axis holds them whole
    for trace, r in zip(fig.data, rows):  # a colour per mode, a dash per T_s, the seed spread as error bars
        stds = [r["acc_by_window"][n][1] or 0.0 for n in sorted(r["acc_by_window"])]
        ends += [m + d * sd for (m, _), sd in zip(_by_window(r), stds) for d in (-1, 1)]
        color = run_color(MODES.index(r["mode"]))
        trace.update(
            error_y=dict(type="data", array=stds, visible=True, thickness=1),
            marker=dict(color=color),
            line=dict(color=color, dash={1: "solid", 2: "dash"}.get(r["t_student"], "dot")),
        )
    return fig.update_yaxes(tickformat=".1%", range=percent_range(ends))


def _by_window(row: dict[str, Any]) -> list[tuple[float, float | None]]:
    """A row's (mean, std) of every window n, n ascending."""
    return [row["acc_by_window"][n] for n in sorted(row["acc_by_window"])]


def write_summary(
    sweep_dir: Path, readme: Path | None = None, png: bool = True, section: str = "results"
) -> dict[str, Any]:
    """Rebuild summary.json, summary.md and the figure from `<sweep-dir>/runs`; rewrite `readme`'s `section`.
    (The CIFAR grids' tables; `sweep.plan.write_summary` picks the table of any sweep.)"""
    summary = summarize(sweep_dir / "runs")
    atomic_write_json(sweep_dir / "summary.json", summary)
    figure = None
    if summary["main"]["epochs"]:
        fig = accuracy_figure(summary)
        # A fixed div id: rebuilding the summary from the same runs rewrites the file byte for byte.
        fig.write_html(sweep_dir / "accuracy_vs_timesteps.html", include_plotlyjs="cdn", div_id="accuracy-vs-timesteps")
        figure = "accuracy_vs_timesteps.html"
        if png:
            try:  # kaleido renders through a local Chromium; without one the HTML figure stands alone
                fig.write_image(sweep_dir / "accuracy_vs_timesteps.png", width=900, height=520)
                figure = "accuracy_vs_timesteps.png"
            except Exception:
                pass
    (sweep_dir / "summary.md").write_text(render_markdown(summary, figure) + "\n")
    if readme is not None:
        rel = os.path.relpath(sweep_dir, readme.parent)  # the figure's link, from the page
        body = render_markdown(summary, figure and f"{rel}/{figure}")
        rewrite_section(readme, f"{body}\n{generated_by(sweep_dir, readme, section)}\n", *markers(section))
    return summary
