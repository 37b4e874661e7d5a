"""A sweep's run folders read back: one record per finished run (its cell, config, accuracies, cost and
code version), and the statistics over a cell's seeds that every table starts from."""

from __future__ import annotations

import json
import math
import statistics
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from ..config import ConfigError, TSSDConfig
from ..runs.folders import RunFolder
from ..runs.metrics import final_accuracy
from ..runs.status import UNREADABLE
from .grid import TRAIN_SIZES


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
        "train_timesteps": train_timesteps(cfg),
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


def train_timesteps(cfg: TSSDConfig) -> int:
    """Timesteps one training step runs: the training window, plus the student's own pass when tsd runs it
    separately (what a step costs, per image)."""
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


def cell_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
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
