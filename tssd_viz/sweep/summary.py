"""Reading a sweep's run folders back: records, statistics over seeds, the tables, the figure, the README section."""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from ..atomic import atomic_write_json
from ..config import ConfigError, TSSDConfig
from ..runs.folders import UNREADABLE, RunFolder, final_accuracy
from ..stats import Paired, paired, signed
from .grid import ABLATION_TS, ABLATIONS, MODES, TRAIN_SIZES, SweepError, _fmt


def collect(runs_dir: Path) -> list[dict[str, Any]]:
    """One record per finished run under `runs_dir` (sorted by name): its cell, config and results.

    A run folder that cannot be read (its cell.json, config.json or status.json junk, records that make no
    sense) is left out with a warning of one line naming it: one bad folder never stops a summary."""
    out = []
    for path in sorted(p for p in Path(runs_dir).glob("*") if (p / "cell.json").exists()):
        try:
            record = _run_record(RunFolder(path))
        except Exception as e:  # any bytes at all may be in someone's folder
            why = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {str(e).strip()[:160]!r}"
            warnings.warn(f"skipped {path}: {why.replace(chr(10), ' ')}", stacklevel=2)
            continue
        if record is not None:
            out.append(record)
    return out


@contextmanager
def skipped_said(stream: TextIO | None = None) -> Iterator[None]:
    """Inside it, the run folders `collect` leaves out are said on `stream` (stderr) when it ends, one line
    each, each folder once however many summaries met it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            said = dict.fromkeys(str(w.message) for w in caught if str(w.message).startswith("skipped "))
            for line in said:
                print(line, file=stream or sys.stderr)


def _run_record(run: RunFolder) -> dict[str, Any] | None:
    """The summary's record of one run folder; None when it has not finished. Raises when it cannot be read."""
    st = run.status()
    if st.get("state") == UNREADABLE:
        raise ValueError(st["message"])
    if not run.exists() or st.get("state") != "done":
        return None
    cell, cfg = json.loads((run.path / "cell.json").read_bytes()), run.config()
    if not isinstance(cell, dict):
        raise ValueError(f"cell.json holds {type(cell).__name__}, not a JSON object")
    records = run.metrics()  # metrics.jsonl read once; each quantity below is a filter of it
    epochs = [r for r in records if r.get("kind") == "epoch"]
    complete = [r for r in epochs if r.get("complete", True)]
    n_train = cfg.data.limit_train or TRAIN_SIZES.get(cfg.data.dataset)
    # The training loader drops the last partial batch; from a complete epoch record when there is one.
    steps_per_epoch = (
        complete[0]["step"] / complete[0]["epoch"] if complete else n_train // cfg.data.batch_size if n_train else None
    )
    epochs_trained = epochs[-1]["step"] / steps_per_epoch if epochs and steps_per_epoch else None
    train_s = epochs[-1]["wall_s"] if epochs else None  # seconds in training steps, kept across resumes
    final = next((r for r in reversed(records) if r.get("kind") == "analysis"), {})  # none before 0.2.0
    test = final_accuracy(records)
    train_acc, test_acc = final_accuracy(records, "train").get(cell["t_student"]), test.get(cell["t_student"])
    return {
        **cell,
        "cfg": cfg,
        "acc_by_window": {int(t): a for t, a in sorted(test.items())},
        "train_s": train_s,
        "epochs_trained": round(epochs_trained, 2) if epochs_trained else None,
        "epoch_s": train_s / epochs_trained if train_s and epochs_trained else None,
        "n_train": n_train,
        "train_timesteps": _train_timesteps(cfg),
        "process_s": cell.get("process_s"),
        "code": _code(run.env()),
        "teacher_margin": final.get("teacher_margin"),
        "gap": train_acc - test_acc if train_acc is not None and test_acc is not None else None,
        "early_exit": final.get("early_exit"),
    }


def _code(env: dict[str, Any]) -> str:
    """The code version a run was trained with, from its env.json: `tssd-viz 0.2.0 (commit abc123)`."""
    version = env.get("versions", {}).get("tssd_viz", "?")
    source = env.get("source") or {}
    commit = (
        f" (commit {source['commit']}{', modified' if source.get('dirty') else ''})" if source.get("commit") else ""
    )
    return f"tssd-viz {version}{commit}"


def recipe(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What a table's runs were trained with (the first run's config) and every code version among them;
    `runs`: `collect(runs_dir)`, at least one."""
    c = runs[0]["cfg"]
    return {
        "dataset": c.data.dataset,
        "arch": c.model.arch,
        "width": c.model.width,
        "batch_size": c.data.batch_size,
        "lr": c.train.lr,
        "t_teacher": c.distill.t_teacher,
        "threads": c.train.threads,
        "code": sorted({r["code"] for r in runs}),
    }


def _train_timesteps(cfg: TSSDConfig) -> int:
    d = cfg.distill
    return cfg.train_timesteps + (d.t_student if cfg.uses_teacher and d.tsd_pass == "separate" else 0)


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1 in the denominator; None for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def measured_budget(records: list[dict[str, Any]], t_student: int) -> float | None:
    """The equal-time budget for T_s: the median training seconds of the finished baseline
    equal-epoch runs at that T_s (the cheapest mode: every mode gets what a baseline costs).
    `records`: `collect(runs_dir)`."""
    seconds = [
        r["train_s"]
        for r in records
        if r["budget"] == "epochs"
        and r["factor"] is None
        and r["mode"] == "baseline"
        and r["t_student"] == t_student
        and r["train_s"]
    ]
    return statistics.median(seconds) if seconds else None


def calibrated_cost(records: list[dict[str, Any]]) -> float | None:
    """Seconds per training image-timestep measured on the finished runs of this sweep (median);
    `records`: `collect(runs_dir)`."""
    costs = [r["epoch_s"] / (r["n_train"] * r["train_timesteps"]) for r in records if r["epoch_s"] and r["n_train"]]
    return statistics.median(costs) if costs else None


# -- the summary: tables, figure, README section -----------------------------------------------------------


def _cell_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of one cell's accuracy at T_s, per window, and its cost."""
    ts = records[0]["t_student"]
    acc = mean_std([r["acc_by_window"][ts] for r in records])
    windows = sorted(set.intersection(*(set(r["acc_by_window"]) for r in records)))
    per_window = {n: mean_std([r["acc_by_window"][n] for r in records]) for n in windows}
    numbers = lambda key: [r[key] for r in records if r.get(key) is not None]  # noqa: E731
    exits = [r["early_exit"] for r in records if r.get("early_exit")]
    return {
        "teacher_margin": mean_std(numbers("teacher_margin")) if numbers("teacher_margin") else None,
        "gap": mean_std(numbers("gap")) if numbers("gap") else None,
        # per threshold: (mean ± std of accuracy, mean timesteps used), over the seeds that have the table
        "early_exit": [
            {
                "threshold": points[0]["threshold"],
                "acc": mean_std([p["acc"] for p in points]),
                "mean_timesteps": mean_std([p["mean_timesteps"] for p in points])[0],
            }
            for points in zip(*exits)
        ]
        if exits
        else [],
        "n": len(records),
        "seeds": sorted(r["seed"] for r in records),
        "acc_by_seed": {r["seed"]: r["acc_by_window"][ts] for r in records},  # what the comparisons pair
        "acc": acc,
        "acc_by_window": per_window,
        "epoch_s": mean_std(numbers("epoch_s"))[0] if numbers("epoch_s") else None,
        "epochs_trained": mean_std(numbers("epochs_trained"))[0] if numbers("epochs_trained") else None,
        "train_s": mean_std(numbers("train_s"))[0] if numbers("train_s") else None,
    }


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
                    main[budget].append({"mode": mode, "t_student": ts, "t_teacher": 2 * ts, **_cell_stats(group)})
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
            rows.append({"value": v, "reference": group[0]["factor"] is None, **_cell_stats(group)})
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


def _pm(ms: tuple[float, float | None] | list) -> str:
    mean, std = ms
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def _scale_text(s: dict[str, Any]) -> str:
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


def _main_table(rows: list[dict], budget: str) -> list[str]:
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
            f"| {r['mode']} | {r['t_student']} | {r['t_teacher']} | {_pm(r['acc'])} | {delta} | "
            f"{cost[1](r)} | {r['n']} |"
        )
        if extra:
            line += f" {_points(r.get('teacher_margin'))} | {_points(r.get('gap'))} |"
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


def _points(ms: tuple[float, float | None] | list | None) -> str:
    """Mean ± std of a difference of accuracies, in points with a sign."""
    if not ms:
        return "–"
    mean, std = ms
    return signed(100 * mean) + (f" ± {100 * std:.1f}" if std is not None else "")


def _exit_table(rows: list[dict]) -> list[str]:
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
        cells = [f"{_pm(p['acc'])} / {p['mean_timesteps']:.2f}" for p in r["early_exit"]]
        out.append(f"| {r['mode']} | {r['t_student']} | {_pm(r['acc'])} | " + " | ".join(cells) + " |")
    return out


def paired_difference(r: Mapping[str, Any], b: Mapping[str, Any]) -> Paired:
    """Row `r` against row `b`, paired by seed (`acc_by_seed`: seed -> accuracy at T_s; JSON's string keys too)."""
    seeds = lambda row: {int(k): v for k, v in (row.get("acc_by_seed") or {}).items()}  # noqa: E731
    return paired(seeds(r), seeds(b))


def difference_text(r: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """The mean per-seed difference in points, two standard errors of it in brackets (`Paired.numbers`)."""
    return paired_difference(r, b).numbers()


def _window_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    L = max(max(r["acc_by_window"], default=0) for r in rows)
    out = ["| mode | T_s | " + " | ".join(f"n={n}" for n in range(1, L + 1)) + " |", "|---|---|" + "---|" * L]
    for r in rows:
        cells = [
            (("**" + _pm(r["acc_by_window"][n]) + "**") if n == r["t_student"] else _pm(r["acc_by_window"][n]))
            if n in r["acc_by_window"]
            else ""
            for n in range(1, L + 1)
        ]
        out.append(f"| {r['mode']} | {r['t_student']} | " + " | ".join(cells) + " |")
    return out


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
        lines += [_scale_text(s), ""]
    lines += [
        "**Equal epochs** (every mode trains the same number of epochs):",
        "",
        *_main_table(summary["main"]["epochs"], "epochs"),
        "",
        *verdict_lines(summary["main"]["epochs"]),
        "",
        "**Equal time** (every mode trains for the same seconds; TSSD costs more per step, so it gets fewer epochs):",
        "",
        *_main_table(summary["main"]["time"], "time"),
        "",
        *verdict_lines(summary["main"]["time"]),
        "",
    ]
    if summary["main"]["epochs"]:
        lines += [
            "**Accuracy by inference window n** (equal epochs; bold: the student window T_s):",
            "",
            *_window_table(summary["main"]["epochs"]),
            "",
        ]
    exits = _exit_table([r for r in summary["main"]["epochs"] if r["t_student"] > 1])
    if exits:
        lines += [
            "**Early exit** (equal epochs; each test image stops at the first timestep whose running prediction "
            "is at least this confident, largest softmax probability, else at T_s; accuracy and the mean "
            "timesteps an image used):",
            "",
            *exits,
            "",
        ]
    if figure and figure.endswith(".png"):
        lines += [
            f"![test accuracy vs timesteps at inference, per mode]({figure})",
            "",
            f"(interactive: [{figure[:-4]}.html]({figure[:-4]}.html))",
            "",
        ]
    elif figure:
        lines += [f"Figure: [test accuracy vs timesteps at inference, per mode]({figure}).", ""]
    for field, rows in summary["ablations"].items():
        lines += [
            f"**Ablation `{field}`** (tssd, T_s={ABLATION_TS}, T_t={2 * ABLATION_TS} unless varied, equal epochs; "
            "* the reference setting, shared with the main table; with one seed, read a difference against "
            "the seed spread above):",
            "",
            "| value | test acc. at T_s (%) | s / epoch | seeds |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {_fmt(r['value'])}{' *' if r['reference'] else ''} | {_pm(r['acc'])} | {r['epoch_s']:.1f} | {r['n']} |"
            if r["epoch_s"]
            else f"| {_fmt(r['value'])} | {_pm(r['acc'])} | – | {r['n']} |"
            for r in rows
        ]
        lines.append("")
    lines += [
        f"{t['runs']} runs; {t['train_s'] / 3600:.2f} h of training steps, "
        f"{t['process_s'] / 3600:.2f} h of CPU wall-clock in all (data loading and evaluation included).",
        "",
    ]
    return "\n".join(lines)


def accuracy_figure(summary: dict[str, Any]):
    """Mean test accuracy against inference timesteps n, one line per (mode, T_s), seed std as error bars."""
    from ..figures import accuracy_vs_timesteps_figure
    from ..figures.style import run_color

    rows = summary["main"]["epochs"]
    runs = {f"{r['mode']} · T_s={r['t_student']}": {n: ms[0] for n, ms in r["acc_by_window"].items()} for r in rows}
    fig = accuracy_vs_timesteps_figure(
        runs, title="test accuracy vs timesteps at inference (equal epochs, mean over seeds)"
    )
    for trace, r in zip(fig.data, rows):  # a colour per mode, a dash per T_s, the seed spread as error bars
        stds = [r["acc_by_window"][n][1] or 0.0 for n in sorted(r["acc_by_window"])]
        color = run_color(MODES.index(r["mode"]))
        trace.update(
            error_y=dict(type="data", array=stds, visible=True, thickness=1),
            marker=dict(color=color),
            line=dict(color=color, dash={1: "solid", 2: "dash"}.get(r["t_student"], "dot")),
        )
    return fig.update_yaxes(tickformat=".1%")


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
        rel = os.path.relpath(sweep_dir, readme.parent)
        body = render_markdown(summary, figure and f"{rel}/{figure}")
        body += (
            f"\nGenerated by `python -m tssd_viz sweep --summarize-only --sweep-dir {rel}"
            + (f" --readme README.md --readme-section {section}" if section != "results" else "")
            + "` "
            f"from the run folders in `{rel}/runs/`.\n"
        )
        rewrite_section(readme, body, *markers(section))
    return summary


def markers(section: str = "results") -> tuple[str, str]:
    """The comment lines that delimit a generated section of a markdown file."""
    return f"<!-- {section}:start -->", f"<!-- {section}:end -->"


START, END = markers()


def rewrite_section(path: Path, body: str, start: str = START, end: str = END) -> None:
    """Replace what lies between the `start` and `end` markers of `path`; the rest stays byte for byte."""
    text = path.read_text()
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise SweepError(f"{path} has no '{start}' ... '{end}' section to rewrite")
    path.write_text(text[: i + len(start)] + "\n" + body.strip("\n") + "\n" + text[j:])
