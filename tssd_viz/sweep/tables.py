"""The sweep summary's markdown tables, from the rows `summarize` computes: accuracy ± seed spread, the
paired difference against the baseline of the same T_s (`stats.paired`) and its verdict, accuracy by
window, early exit, and the line that says what the runs were."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..stats import Paired, paired, signed


def pm(ms: tuple[float, float | None] | list) -> str:
    mean, std = ms
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def points(ms: tuple[float, float | None] | list | None) -> str:
    """Mean ± std of a difference of accuracies, in points with a sign."""
    if not ms:
        return "–"
    mean, std = ms
    return signed(100 * mean) + (f" ± {100 * std:.1f}" if std is not None else "")


def paired_difference(r: Mapping[str, Any], b: Mapping[str, Any]) -> Paired:
    """Row `r` against row `b`, paired by seed (`acc_by_seed`: seed -> accuracy at T_s; JSON's string keys too)."""
    seeds = lambda row: {int(k): v for k, v in (row.get("acc_by_seed") or {}).items()}  # noqa: E731
    return paired(seeds(r), seeds(b))


def difference_text(r: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """The mean per-seed difference in points, two standard errors of it in brackets (`Paired.numbers`)."""
    return paired_difference(r, b).numbers()


def main_table(rows: list[dict], budget: str) -> list[str]:
    if not rows:
        return ["(no finished runs yet)"]
    baseline = {r["t_student"]: r for r in rows if r["mode"] == "baseline"}
    cost = (
        ("s / epoch", lambda r: f"{r['epoch_s']:.1f}" if r["epoch_s"] else "–")
        if budget == "epochs"
        else ("epochs trained", lambda r: f"{r['epochs_trained']:.1f}" if r["epochs_trained"] else "–")
    )
    extra = any(r.get("teacher_margin") or r.get("gap") for r in rows)  # runs from before the analysis record
    out = [
        f"| mode | T_s | T_t | test acc. at T_s (%) | vs baseline (points) | {cost[0]} | seeds |"
        + (" teacher margin (points) | train − test (points) |" if extra else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|" if extra else ""),
    ]
    for r in rows:
        b = baseline.get(r["t_student"])
        delta = difference_text(r, b) if b is not None and r is not b else ""
        line = (
            f"| {r['mode']} | {r['t_student']} | {r['t_teacher']} | {pm(r['acc'])} | {delta} | "
            f"{cost[1](r)} | {r['n']} |"
        )
        if extra:
            line += f" {points(r.get('teacher_margin'))} | {points(r.get('gap'))} |"
        out.append(line)
    return out


def verdict_lines(rows: list[dict]) -> list[str]:
    """One bullet per row that has a baseline of its T_s: its verdict against it (`Paired.verdict`)."""
    baseline = {r["t_student"]: r for r in rows if r["mode"] == "baseline"}
    return [
        f"- `{r['mode']}` vs `baseline` at T_s = {r['t_student']}: {paired_difference(r, b).verdict()}."
        for r in rows
        if (b := baseline.get(r["t_student"])) is not None and r is not b
    ]


def exit_table(rows: list[dict]) -> list[str]:
    """Early exit at T_s per row that has it: accuracy (mean ± std) and mean timesteps used, per threshold."""
    rows = [r for r in rows if r.get("early_exit")]
    if not rows:
        return []
    thresholds = [p["threshold"] for p in rows[0]["early_exit"]]
    out = [
        "| mode | T_s | full window (%) | " + " | ".join(f"≥ {t:g}: acc. (%) / timesteps" for t in thresholds) + " |",
        "|---|---|---|" + "---|" * len(thresholds),
    ]
    for r in rows:
        cells = [f"{pm(p['acc'])} / {p['mean_timesteps']:.2f}" for p in r["early_exit"]]
        out.append(f"| {r['mode']} | {r['t_student']} | {pm(r['acc'])} | " + " | ".join(cells) + " |")
    return out


def window_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    L = max(max(r["acc_by_window"], default=0) for r in rows)
    out = ["| mode | T_s | " + " | ".join(f"n={n}" for n in range(1, L + 1)) + " |", "|---|---|" + "---|" * L]
    for r in rows:
        cells = [
            (("**" + pm(r["acc_by_window"][n]) + "**") if n == r["t_student"] else pm(r["acc_by_window"][n]))
            if n in r["acc_by_window"]
            else ""
            for n in range(1, L + 1)
        ]
        out.append(f"| {r['mode']} | {r['t_student']} | " + " | ".join(cells) + " |")
    return out


def scale_text(s: dict[str, Any]) -> str:
    images = (
        f"the first {s['limit_train']:,} training images (class-balanced)"
        if s["limit_train"]
        else "the whole training split"
    )
    test = f"the first {s['limit_test']:,} test images" if s["limit_test"] else "the whole test split"
    budgets = ", ".join(f"{b:.0f} s at T_s={ts}" for ts, b in s["time_budgets_s"].items())
    return (
        f"Scale: {s['dataset']}, {images}, tested on {test}; `{s['arch']}` at width {s['width']:g} "
        f"({s['parameters']:,} parameters); {s['epochs']} epochs (equal-epoch table), batch {s['batch_size']}, "
        f"{s['optimizer']} lr {s['lr']:g} ({s['schedule']}), label smoothing {s['label_smoothing']:g}, "
        f"augmentation {'on' if s['augment'] else 'off'}; T_t = 2·T_s. Code: {', '.join(s.get('code', [])) or '?'}."
        + (
            f" Equal-time budget (median training seconds of the baseline's equal-epoch runs): {budgets}."
            if budgets
            else ""
        )
    )
