"""The event-camera grid: baseline, tsd and tssd on event_digits under both windowings, and its table.

`python -m tssd_viz sweep --grid events --preset events --sweep-dir DIR` trains the cells into ordinary
run folders (as every sweep does); the table is rebuilt from them, like the CIFAR tables, and written
to `summary.md` and to the site's page between the `events-results` markers (`--readme docs/results/events.md
--readme-section events-results`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from ..config import WINDOWINGS, TSSDConfig
from .grid import Cell
from .records import cell_stats, collect, recipe
from .sections import generated_by, markers, rewrite_section
from .tables import difference_text, pm

EVENT_MODES = ("baseline", "tsd", "tssd")
EVENTS_SECTION = "events-results"  # the page's section: --readme docs/results/events.md --readme-section events-results


def event_cells(base: TSSDConfig, seeds: int) -> list[Cell]:
    """Seed by seed (a partial sweep has whole seeds), each windowing, each mode; T_s and T_t of `base`.
    whole_recording needs the separate pass (two binnings, two inputs); fixed_window keeps base's pass."""
    cells = []
    for seed in range(seeds):
        for windowing in WINDOWINGS:
            for mode in EVENT_MODES:
                settings: dict[str, Any] = {"distill.mode": mode, "data.windowing": windowing, "train.seed": seed}
                if windowing == "whole_recording":
                    settings["distill.tsd_pass"] = "separate"
                cfg = base.replace(**settings)
                d = cfg.distill
                name = f"{mode}-{windowing.split('_')[0]}-ts{d.t_student}-tt{d.t_teacher}-s{seed}-epochs"
                cells.append(Cell(name, cfg, "epochs", None))
    return cells


def summarize_events(runs_dir: Path) -> dict[str, Any]:
    """Per (windowing, mode): accuracy at T_s and per window, mean ± std over seeds, and s / epoch."""
    runs = [r for r in collect(runs_dir) if r["acc_by_window"]]
    rows = []
    for windowing in WINDOWINGS:
        for mode in EVENT_MODES:
            group = [r for r in runs if r["mode"] == mode and r["cfg"].data.windowing == windowing]
            if group:
                rows.append({"windowing": windowing, "mode": mode, **cell_stats(group)})
    scale = {}
    if runs:
        c = runs[0]["cfg"]
        scale = {**recipe(runs), "epochs": c.train.epochs, "t_student": c.distill.t_student}
    totals = {"runs": len(runs), "train_s": sum(r["train_s"] or 0 for r in runs)}
    plain = [{k: v for k, v in r.items() if k != "cfg"} for r in runs]  # JSON-ready
    return {"scale": scale, "rows": rows, "totals": totals, "runs": plain}


def render_events(summary: dict[str, Any]) -> str:
    """The table as markdown: accuracy at T_s, the difference to the same windowing's baseline, every window."""
    rows, s, t = summary["rows"], summary["scale"], summary["totals"]
    if not rows:
        return "(no finished runs yet)"
    windows = sorted(set.union(*(set(r["acc_by_window"]) for r in rows)))
    lines = [
        f"Offline event camera: {s['dataset']} (34x34, 2 polarity channels), `{s['arch']}` at width "
        f"{s['width']:g}, {s['epochs']} epochs, batch {s['batch_size']}, sgd lr {s['lr']:g}, "
        f"T_s = {s['t_student']}, T_t = {s['t_teacher']}, CPU ({s['threads'] or 'default'} thread(s) per run). "
        'Test accuracy in %, mean ± sample standard deviation over seeds; "vs baseline" compares with the '
        "baseline of the same windowing, paired by seed (the mean per-seed difference, two standard errors of it in "
        f"brackets). Code: {', '.join(s.get('code', [])) or '?'}.",
        "",
        "| windowing | mode | test acc. at T_s (%) | vs baseline (points) | "
        + " | ".join(f"n={n}" for n in windows)
        + " | s / epoch | seeds |",
        "|---|---|---|---|" + "---|" * len(windows) + "---|---|",
    ]
    baseline = {r["windowing"]: r for r in rows if r["mode"] == "baseline"}
    for r in rows:
        b = baseline.get(r["windowing"])
        delta = difference_text(r, b) if b is not None and r is not b else ""
        per_window = [pm(r["acc_by_window"][n]) if n in r["acc_by_window"] else "" for n in windows]
        cost = f"{r['epoch_s']:.1f}" if r["epoch_s"] else "–"
        lines.append(
            f"| {r['windowing']} | {r['mode']} | {pm(r['acc'])} | {delta} | "
            + " | ".join(per_window)
            + f" | {cost} | {r['n']} |"
        )
    lines += ["", f"{t['runs']} runs; {t['train_s'] / 60:.1f} min of training steps in all.", ""]
    return "\n".join(lines)


def write_events_summary(sweep_dir: Path, readme: Path | None = None, section: str = EVENTS_SECTION) -> dict[str, Any]:
    """Rebuild summary.json and summary.md from `<sweep-dir>/runs`; rewrite `readme`'s `section`."""
    summary = summarize_events(sweep_dir / "runs")
    atomic_write_json(sweep_dir / "summary.json", summary)
    (sweep_dir / "summary.md").write_text(render_events(summary) + "\n")
    if readme is not None:
        text = f"{render_events(summary)}\n{generated_by(sweep_dir, readme, section)}\n"
        rewrite_section(readme, text, *markers(section))
    return summary
