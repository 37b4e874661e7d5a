"""The controls table as markdown: the summary first (computed), then the table, the verdicts and the conclusion.

`summarize_controls` (sweep/controls.py) reads the run folders; this module only writes what they say. The
section `controls-summary` is the summary alone (README.md's: `--readme README.md --readme-section
controls-summary`); any other section gets the whole table (docs/results/index.md's `controls`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from ..stats import MIN_SEEDS, Paired, signed
from .arms import SEP
from .controls import comparisons, conclusion, regime_label, summarize_controls, verdicts
from .sections import generated_by, markers, rewrite_section

SUMMARY_SECTION = "controls-summary"  # the summary lines alone, without the table


def _cell(p) -> str:
    """A paired comparison in a table cell: `+1.1 (±1.2) 4/5` (mean Δ in points, 2 SE, seeds higher / seeds)."""
    return "" if p is None else f"{p.numbers()} {p.wins}/{p.n}"


def _mean(stat: dict[str, Any] | None, scale: float = 1.0, fmt: str = ".0f") -> str:
    if not stat:
        return "–"
    return signed(scale * stat["mean"]) if fmt == "+.1f" else f"{scale * stat['mean']:{fmt}}"


def _series(rows: list[dict[str, Any]], arm: str, reference: str) -> list[tuple[str, Paired]]:
    """(regime label, `arm` vs `reference`) for every regime that has both."""
    out = []
    for regime in dict.fromkeys(r["regime"] for r in rows):
        p = comparisons(rows, regime).get((arm, reference))
        if p is not None:
            out.append((regime_label(regime), p))
    return out


def _across(what: str, series: list[tuple[str, Paired]]) -> str:
    """One line: a comparison in every regime, and how many regimes it was ahead, behind, beyond the noise."""
    each = ", ".join(f"{p.numbers()} in {label}" for label, p in series)
    shown = [float(signed(100 * p.mean)) for _, p in series]  # as printed: +0.0 is neither ahead nor behind
    ahead, behind = sum(v > 0 for v in shown), sum(v < 0 for v in shown)
    beyond = sum(p.beyond_noise for _, p in series)
    few = f" (fewer than {MIN_SEEDS} seeds: not a claim)." if min(p.n for _, p in series) < MIN_SEEDS else "."
    if len(series) == 1:  # one regime: whether it lies beyond the noise, not a count of regimes
        return f"- {what}: {each}; {'beyond' if beyond else 'inside'} the seed noise" + few
    return (
        f"- {what}: {each}. Ahead in {ahead} of {len(series)} regimes, behind in {behind}; beyond the seed noise "
        f"in {beyond}" + few
    )


def summary_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The short summary that opens the section, for each arm that has a no-KL twin: the KL term, the gain at equal
    epochs, the equal-time baseline, and what its teacher knew (the teacher margins)."""
    lines = [conclusion(rows), ""]
    for arm in dict.fromkeys(r["arm"][: -len(SEP + "noKL")] for r in rows if r["arm"].endswith(SEP + "noKL")):
        twin, timed = f"{arm}{SEP}noKL", f"baseline{SEP}equal-time"
        lines += [
            _across(f"The KL term (`{arm}` vs `{twin}`, the only difference between them)", _series(rows, arm, twin)),
            _across(f"`{arm}` vs `baseline` at equal epochs", _series(rows, arm, "baseline")),
            _across(f"`{arm}` vs `{timed}` (the baseline given `{arm}`'s time)", _series(rows, arm, timed)),
        ]
        margins = [r["teacher_margin"]["mean"] for r in rows if r["arm"] == arm and r.get("teacher_margin")]
        if margins:
            lines.append(
                f"- What `{arm}`'s teacher knew beyond its student (its teacher margin, the T_t window's accuracy "
                f"minus the T_s window's, mean over seeds): "
                + (
                    f"from {signed(100 * min(margins))} to {signed(100 * max(margins))} points across the regimes."
                    if len(margins) > 1
                    else f"{signed(100 * margins[0])} points."
                )
            )
    return [*lines, ""]


def render_controls(summary: dict[str, Any]) -> str:
    """The summary as markdown: scale, the table, a verdict per regime and the conclusion."""
    rows, s, t = summary["rows"], summary["scale"], summary["totals"]
    if not rows:
        return "(no finished runs yet)"
    lines = [
        *summary_lines(rows),
        f"{s['dataset']}"
        + (f" (the first {s['limit_train']:,} training images)" if s.get("limit_train") else "")
        + f", `{s['arch']}` at width {s['width']:g}, batch {s['batch_size']}, sgd lr {s['lr']:g}, "
        f"T_t = {s['t_teacher']}, {s['epochs']} epochs and T_s = 2 unless the regime says otherwise, CPU "
        f"({s['threads'] or 'default'} thread(s) per run). Test accuracy at T_s in %, mean ± "
        "sample standard deviation over seeds. The comparisons are paired by seed (same initial weights and data "
        "order): mean difference in points, two standard errors in brackets, then on how many seeds the row was "
        f"higher. `·noKL`: the same losses with the distillation weight at 0; `baseline{SEP}equal-time`: the "
        "baseline trained for the measured training seconds of the first distilling arm (`tsd`), same seed. "
        f"Code: {', '.join(s.get('code', [])) or '?'}.",
        "",
        "| regime | arm | test acc. at T_s (%) | vs baseline | vs its no-KL twin | vs baseline·equal-time "
        "| training s | epochs | teacher margin (points) | train − test (points) | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_regime = {g: comparisons(rows, g) for g in dict.fromkeys(r["regime"] for r in rows)}  # once per regime
    for r in rows:
        comps = by_regime[r["regime"]]
        acc = r["acc"]
        lines.append(
            f"| {regime_label(r['regime'])} | {r['arm']} | {100 * acc['mean']:.1f}"
            + (f" ± {100 * acc['sd']:.1f}" if acc["sd"] is not None else "")
            + f" | {_cell(comps.get((r['arm'], 'baseline')))} | {_cell(comps.get((r['arm'], r['arm'] + SEP + 'noKL')))}"
            f" | {_cell(comps.get((r['arm'], 'baseline' + SEP + 'equal-time')))} | {_mean(r['train_s'])}"
            f" | {_mean(r['epochs_trained'], fmt='.1f')} | {_mean(r['teacher_margin'], 100, '+.1f')}"
            f" | {_mean(r['gap'], 100, '+.1f')} | {r['n']} |"
        )
    lines += ["", "Per regime:", "", *verdicts(rows), ""]
    lines += [f"{t['runs']} runs; {t['train_s'] / 60:.1f} min of training steps in all.", ""]
    return "\n".join(lines)


def short_scale(summary: dict[str, Any]) -> str:
    """One line under the summary alone: what was trained, on how many seeds, by which code."""
    s, seeds = summary["scale"], sorted({r["n"] for r in summary["rows"]})
    n = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    return (
        f"{s['dataset']}, `{s['arch']}` at width {s['width']:g}, T_t = {s['t_teacher']}, {s['epochs']} epochs and "
        f"T_s = 2 unless the regime says otherwise; {n} seeds per arm. Code: {', '.join(s.get('code', [])) or '?'}."
    )


def write_controls_summary(sweep_dir: Path, readme: Path | None = None, section: str = "controls") -> dict[str, Any]:
    """Rebuild summary.json and summary.md from `<sweep-dir>/runs`; rewrite `readme`'s `section`."""
    summary = summarize_controls(sweep_dir / "runs")
    rows = [{**r, "acc_by_seed": {str(k): v for k, v in r["acc_by_seed"].items()}} for r in summary["rows"]]
    plain = {**summary, "rows": rows}  # JSON keys are strings
    atomic_write_json(sweep_dir / "summary.json", plain)
    text = render_controls(summary)
    (sweep_dir / "summary.md").write_text(text + "\n")
    if readme is not None:
        if section == SUMMARY_SECTION:
            lines = [*summary_lines(summary["rows"]), short_scale(summary), ""] if summary["rows"] else []
            text = "\n".join(lines) or "(no finished runs yet)\n"
        rewrite_section(readme, f"{text}\n{generated_by(sweep_dir, readme, section)}\n", *markers(section))
    return summary
