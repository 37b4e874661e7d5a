"""An experiment's table and verdicts, read from its finished runs (what the page shows and Export writes).

Per arm (the controls table's rows, `summarize_controls`): accuracy at T_s per seed and its spread, the
training seconds it cost, teacher margin and train − test gap. The comparisons, each paired by seed through
`tssd_viz.stats.paired`: every arm against the reference arm, then each mode against its no-KL twin (what the
KL term adds) and against `baseline·equal-time` (whether the gain outlives giving the baseline the same time),
where those arms are in the experiment. The figure is `tssd_viz.figures.experiment_figure`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from ..figures.experiment import experiment_figure
from ..stats import Paired, paired
from .arms import EQUAL_TIME, NO_KL, SEP
from .controls import summarize_controls
from .experiment import Experiment, cell_states, load
from .grid import TEST_SIZES


def experiment_rows(exp: Experiment, sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per arm with at least one finished run, in the experiment's arm order."""
    rows = summarize_controls(Path(sweep_dir) / "runs")["rows"]
    by_arm = {r["arm"]: r for r in rows if r["regime"] == exp.id}
    return [by_arm[a.name] for a in exp.arms if a.name in by_arm]


def comparisons(exp: Experiment, rows: list[dict[str, Any]]) -> list[tuple[str, Paired]]:
    """(what is compared, the paired differences): every arm vs the reference, then mode vs twin, vs equal time."""
    accs = {r["arm"]: r["acc_by_seed"] for r in rows}
    out: list[tuple[str, Paired]] = []
    ref = exp.reference
    if ref in accs:
        out += [(f"`{a}` vs `{ref}`", paired(accs[a], accs[ref])) for a in accs if a != ref]
    for arm in accs:
        for control, what in ((f"{arm}{SEP}{NO_KL}", "the KL term"), (f"baseline{SEP}{EQUAL_TIME}", "")):
            if control in accs and control != ref and arm != ref and SEP not in arm:
                label = f"{what} (`{arm}` vs `{control}`)" if what else f"`{arm}` vs `{control}`"
                out.append((label, paired(accs[arm], accs[control])))
    return out


def verdicts(exp: Experiment, rows: list[dict[str, Any]]) -> list[str]:
    """One sentence per comparison (`Paired.verdict`), as Markdown bullets."""
    return [f"- {label}: {p.verdict()}." for label, p in comparisons(exp, rows)]


def _mean(stat: dict[str, Any] | None, scale: float = 1.0) -> float | None:
    return None if not stat else scale * stat["mean"]


def table(exp: Experiment, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table as plain records (points for accuracies and differences, seconds for time)."""
    accs = {r["arm"]: r["acc_by_seed"] for r in rows}
    ref = accs.get(exp.reference)
    out = []
    for r in rows:
        p = paired(r["acc_by_seed"], ref) if ref is not None and r["arm"] != exp.reference else None
        out.append(
            {
                "arm": r["arm"],
                "mode": r["mode"],
                "seeds": r["n"],
                "test acc. at T_s (%)": 100 * r["acc"]["mean"],
                "sd (points)": None if r["acc"]["sd"] is None else 100 * r["acc"]["sd"],
                f"vs {exp.reference} (points)": None if p is None or not p.n else 100 * p.mean,
                "2 SE (points)": None if p is None or p.two_se is None else 100 * p.two_se,
                "higher on": None if p is None else f"{p.wins}/{p.n}",
                "training s": _mean(r["train_s"]),
                "epochs": _mean(r["epochs_trained"]),
                "teacher margin (points)": _mean(r["teacher_margin"], 100),
                "train − test (points)": _mean(r["gap"], 100),
                **{f"seed {s}": 100 * a for s, a in sorted(r["acc_by_seed"].items())},
            }
        )
    return out


def cell_text(value: Any, spec: str = ".1f") -> str:
    """A table cell as text: a value an arm does not have reads "–", never "None"; a number in format `spec`."""
    return "–" if value is None else value if isinstance(value, str) else f"{value:{spec}}"


def seconds_text(value: float | None) -> str:
    """Seconds for a table cell: tenths below 10 s (a tiny run's 0.4 s is not "0"), whole seconds above."""
    return cell_text(value, ".1f" if value is not None and round(value, 1) < 10 else ".0f")


SIGNED = ("teacher margin (points)", "train − test (points)")  # and every "vs …" column


def column_text(column: str, value: Any) -> str:
    """A cell of `table`'s column `column` as text, on the page and in the Markdown export."""
    if column == "training s":
        return seconds_text(value)
    spec = "d" if column == "seeds" else "+.1f" if column.startswith("vs ") or column in SIGNED else ".1f"
    return cell_text(value, spec)


def render_markdown(exp: Experiment, rows: list[dict[str, Any]], done: int, planned: int) -> str:
    """The question, the table, the verdicts and how many runs they rest on."""
    if not rows:
        return f"## {exp.question}\n\n(no finished runs yet: 0 of {planned})\n"
    c = exp.base
    lines = [
        f"## {exp.question}",
        "",
        f"{c.data.dataset}, `{c.model.arch}` at width {c.model.width:g}, {c.train.epochs} epochs, T_s = "
        f"{c.distill.t_student}, T_t = {c.distill.t_teacher}; seeds {', '.join(map(str, exp.seeds))}; "
        f"{done} of {planned} runs finished. Accuracy at T_s in %, mean ± sample sd over seeds; differences "
        f"against `{exp.reference}` paired by seed, in points, ± two standard errors, and on how many seeds higher.",
        "",
        f"| arm | test acc. at T_s (%) | vs {exp.reference} | training s | epochs | teacher margin | train − test "
        "| seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in table(exp, rows):
        diff = t[f"vs {exp.reference} (points)"]
        vs = "" if diff is None else f"{diff:+.1f}" + (f" (±{t['2 SE (points)']:.1f})" if t["2 SE (points)"] else "")
        acc = f"{t['test acc. at T_s (%)']:.1f}" + (
            f" ± {t['sd (points)']:.1f}" if t["sd (points)"] is not None else ""
        )
        lines.append(
            f"| {t['arm']} | {acc} | {vs} {t['higher on'] or ''} | "
            + " | ".join(column_text(k, t[k]) for k in ("training s", "epochs", *SIGNED))
            + f" | {t['seeds']} |"
        )
    return "\n".join([*lines, "", *verdicts(exp, rows), ""])


def render_csv(exp: Experiment, rows: list[dict[str, Any]]) -> str:
    records = table(exp, rows)
    columns = list(dict.fromkeys(k for r in records for k in r))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def figure_of(exp: Experiment, rows: list[dict[str, Any]], title: str | None = ""):
    """The experiment's figure (`experiment_figure`) from its rows, titled with its question unless `title`
    is given (None: no title, where the page already says it)."""
    accs = {a.name: {} for a in exp.arms} | {r["arm"]: r["acc_by_seed"] for r in rows}
    data = exp.base.data  # event_digits is made from the digits, test split included
    n_test = data.limit_test or TEST_SIZES.get("digits" if data.dataset == "event_digits" else data.dataset)
    return experiment_figure(accs, exp.reference, title=exp.question if title == "" else title, n_test=n_test)


def write_experiment_summary(sweep_dir: Path, readme: Path | None = None, section: str = "") -> dict[str, Any]:
    """summary.md and summary.json of the experiment in `sweep_dir` (what `sweep --summarize-only` rebuilds).
    `readme` and `section` are accepted for the sweep command's signature and ignored."""
    del readme, section
    exp = load(sweep_dir)
    rows = experiment_rows(exp, sweep_dir)
    states = cell_states(exp, sweep_dir)
    done = sum(s == "done" for s in states.values())
    text = render_markdown(exp, rows, done, len(states))
    (Path(sweep_dir) / "summary.md").write_text(text)
    plain = [{**r, "acc_by_seed": {str(k): v for k, v in r["acc_by_seed"].items()}} for r in rows]
    summary = {"experiment": exp.to_dict(), "rows": plain, "totals": {"runs": done, "planned": len(states)}}
    atomic_write_json(Path(sweep_dir) / "summary.json", summary)
    return summary


def export(sweep_dir: Path) -> dict[str, Path]:
    """Write the table as Markdown and CSV and the figure as a self-contained HTML page; their paths."""
    exp = load(sweep_dir)
    rows = experiment_rows(exp, sweep_dir)
    write_experiment_summary(sweep_dir)
    paths = {"markdown": Path(sweep_dir) / "summary.md", "csv": Path(sweep_dir) / "table.csv"}
    paths["csv"].write_text(render_csv(exp, rows))
    paths["html"] = Path(sweep_dir) / "figure.html"
    figure_of(exp, rows).write_html(paths["html"], include_plotlyjs=True)  # offline: plotly.js inside the page
    return paths
