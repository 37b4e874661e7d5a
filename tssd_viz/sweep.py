"""Sweeps: a named grid of runs, trained into ordinary run folders and summarised from them.

The README's results table comes from here, never from typing: `python -m tssd_viz sweep` expands a
grid into a deterministic list of cells (run name, TSSDConfig), trains each one in its own
subprocess (`python -m tssd_viz train`, so that one crash or leak cannot take the sweep down), and
rebuilds the tables from whatever run folders exist. A sweep folder:

    <sweep-dir>/sweep.json                    what produced it: grid, base config, seeds, command line
               runs/<name>/                   a run folder (SPEC §8) + cell.json (its place in the grid)
                                              + train.log; checkpoints deleted once done
               sweep.log                      one line per event
               summary.md, summary.json       the tables, rebuilt from runs/ at any time
               accuracy_vs_timesteps.html     (+ .png when kaleido can render)

Names encode the cell: `tssd-ts2-tt4-s0-epochs`, `tssd-ts1-tt2-alpha0.5-s0-epochs`,
`baseline-ts1-tt2-s1-time`. A finished run (status done) is skipped, so running the same command
again resumes a sweep; a stopped run continues from its last checkpoint, one without a checkpoint
starts over.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import TSSDConfig
from .runs import RunFolder, _pid_alive, atomic_write_json

MODES = ("baseline", "tsd", "ssd", "tssd")
GRIDS = ("main", "ablations", "all")
# Settings every sweep run gets before the user's overrides: evaluate once at the end (on every
# window), and no probe snapshots, which a results table does not need.
SWEEP_DEFAULTS = {"train.eval_every": 0, "train.probe_every": 0}
# Equal-time cells stop on the clock; the epoch cap only has to be out of reach (a baseline, the
# cheapest mode, trains about `epochs` epochs in the budget measured from its own equal-epoch runs).
EPOCH_CAP_FACTOR = 4
# The ablations vary one field around the reference cell (tssd, T_s=1, T_t=2, equal epochs, the base's
# values); each value equal to the base's is the reference itself, which is run once.
ABLATION_TS = 1
ABLATIONS: dict[str, tuple] = {
    "distill.alpha": (0.0, 0.5, 1.0, 2.0),
    "distill.beta": (0.0, 0.5, 1.0, 2.0),
    "distill.kd_temperature": (1.0, 2.0, 4.0),
    "distill.t_teacher": (2, 3, 4, 6),
    "distill.tsd_pass": ("shared", "separate"),
    "distill.teacher_ce": (True, False),
    "distill.ssd_teacher": ("student", "teacher"),
}
# How a field that differs from the base shows in a run name (T_t is in every name already).
SHORT: dict[str, Callable[[Any], str]] = {
    "distill.alpha": lambda v: f"alpha{v:g}", "distill.beta": lambda v: f"beta{v:g}",
    "distill.kd_temperature": lambda v: f"temp{v:g}", "distill.tsd_pass": lambda v: f"{v}pass",
    "distill.teacher_ce": lambda v: "teacherce" if v else "noteacherce", "distill.ssd_teacher": lambda v: f"ssd{v}",
}
# Seconds per training image per timestep (forward + backward) of the classroom network (vgg_fast,
# width 0.5) in one thread, two runs side by side on a 2-core CPU that others also used; `--dry-run`
# uses it until finished runs in the sweep folder give a measured value.
DEFAULT_COST_S = 1.15e-3
STARTUP_S = 8.0  # a training process: importing torch, loading the cached dataset, building the network
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "digits": 1_437}
TEST_SIZES = {"cifar10": 10_000, "cifar100": 10_000, "digits": 360}


class SweepError(RuntimeError):
    """The sweep cannot go on (a run folder that holds another config, a second sweep in the folder)."""


@dataclass(frozen=True)
class Cell:
    """One run of the grid. `budget` is "epochs" or "time"; `factor` the ablated field or None."""

    name: str
    cfg: TSSDConfig
    budget: str
    factor: str | None

    @property
    def meta(self) -> dict[str, Any]:
        d = self.cfg.distill
        return {"name": self.name, "budget": self.budget, "factor": self.factor, "mode": d.mode,
                "t_student": d.t_student, "t_teacher": d.t_teacher, "seed": self.cfg.train.seed}


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def cell_name(cfg: TSSDConfig, base: TSSDConfig, budget: str) -> str:
    """`<mode>-ts<T_s>-tt<T_t>[-<ablated field>...]-s<seed>-<budget>`, naming the fields that differ from `base`."""
    d, b = cfg.distill, base.distill
    diffs = [short(getattr(d, k.split(".")[1])) for k, short in SHORT.items()
             if getattr(d, k.split(".")[1]) != getattr(b, k.split(".")[1])]
    return "-".join([d.mode, f"ts{d.t_student}", f"tt{d.t_teacher}", *diffs, f"s{cfg.train.seed}", budget])


def expand(grid: str, base: TSSDConfig, *, seeds: int = 3, ablation_seeds: int = 1,
           budget_s: float | None = None) -> list[Cell]:
    """The grid's cells in the order they run: equal-epoch main cells (seed by seed, so a partial
    sweep has whole seeds), equal-time cells, then ablations. Deterministic; no duplicate names.

    Equal-time cells get `train.time_budget_s = budget_s` when given, else 0 (resolved at run time
    from the baseline equal-epoch runs, `measured_budget`).
    """
    if grid not in GRIDS:
        raise ValueError(f"grid {grid!r} is not one of {', '.join(GRIDS)}")
    cells: dict[str, Cell] = {}

    def add(cfg: TSSDConfig, budget: str, factor: str | None) -> None:
        if budget == "time":
            cfg = cfg.replace(**{"train.epochs": cfg.train.epochs * EPOCH_CAP_FACTOR,
                                 "train.time_budget_s": float(budget_s or 0.0)})
        name = cell_name(cfg, base, budget)
        cells.setdefault(name, Cell(name, cfg, budget, factor))

    def main_cfg(mode: str, ts: int, seed: int) -> TSSDConfig:
        return base.replace(**{"distill.mode": mode, "distill.t_student": ts, "distill.t_teacher": 2 * ts,
                               "train.seed": seed})

    if grid in ("main", "all"):
        for budget in ("epochs", "time"):
            for seed in range(seeds):
                for ts in (1, 2):
                    for mode in MODES:
                        add(main_cfg(mode, ts, seed), budget, None)
    if grid in ("ablations", "all"):
        for seed in range(ablation_seeds):
            reference = main_cfg("tssd", ABLATION_TS, seed)
            add(reference, "epochs", None)
            for field, values in ABLATIONS.items():
                for value in values:
                    cfg = reference.replace(**{field: value})
                    if cfg.to_dict() != reference.to_dict():
                        add(cfg, "epochs", field)
    return list(cells.values())


def select(cells: list[Cell], patterns: str) -> list[Cell]:
    """The cells whose name matches one of the comma-separated glob `patterns` (all when empty)."""
    globs = [p for p in patterns.split(",") if p]
    return [c for c in cells if not globs or any(fnmatch.fnmatch(c.name, g) for g in globs)]


def measured_budget(runs_dir: Path, t_student: int) -> float | None:
    """The equal-time budget for T_s: the median training seconds of the finished baseline
    equal-epoch runs at that T_s (the cheapest mode: every mode gets what a baseline costs)."""
    seconds = [r["train_s"] for r in collect(runs_dir) if r["budget"] == "epochs" and r["factor"] is None
               and r["mode"] == "baseline" and r["t_student"] == t_student and r["train_s"]]
    return statistics.median(seconds) if seconds else None


# -- running ------------------------------------------------------------------------------------------------

class Log:
    """Progress lines, time-stamped, appended to `<sweep-dir>/sweep.log` and printed (a background
    sweep's stdout goes nowhere: its log file is the record)."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, text: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {text}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        print(line, flush=True)


def _train_command(run: RunFolder, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "tssd_viz", "train", "--no-progress"]
    return cmd + (["--resume", str(run.path)] if resume else ["--config", str(run.config_path), "--run-dir", str(run.path)])


def run_cell(cell: Cell, runs_dir: Path, log: Callable[[str], None], *, keep_checkpoints: bool = False,
             procs: set | None = None) -> str:
    """Train `cell` into `runs_dir/<name>` unless it is done; return the run's final state.
    The training process is in `procs` while it runs (so that a stopping sweep can signal it)."""
    run = RunFolder(runs_dir / cell.name)
    if run.exists() and run.config().to_dict() != cell.cfg.to_dict():
        raise SweepError(f"{run.path} holds a different config than this sweep plans "
                         "(changed overrides or budget?): remove it or use another --sweep-dir")
    state = run.status()["state"]
    if state == "done":
        return "done"
    if state == "running":
        raise SweepError(f"{run.path} is being trained by process {run.status().get('pid')}")
    resume = run.exists() and (run.checkpoints_dir / "last.pt").exists()
    if not resume and run.path.exists():  # failed or killed with nothing to continue from: start over
        shutil.rmtree(run.path)
    run.prepare(cell.cfg, resume=resume)  # writes config.json, which `train --config` then reads
    info_path = run.path / "cell.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {**cell.meta, "process_s": 0.0}
    atomic_write_json(info_path, info)
    log(f"{'resume' if resume else 'start '} {cell.name}")
    t0 = time.perf_counter()
    with open(run.path / "train.log", "a", encoding="utf-8") as out:
        # A session of its own: a Ctrl-C at the terminal reaches the sweep only, which passes on exactly one
        # SIGINT (run_sweep; the run then checkpoints and says cancelled, where a second one would abort it).
        proc = subprocess.Popen(_train_command(run, resume), stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        if procs is not None:
            procs.add(proc)
        try:
            proc.wait()
        finally:
            if procs is not None:
                procs.discard(proc)
            info["process_s"] = round(info["process_s"] + time.perf_counter() - t0, 3)
            atomic_write_json(info_path, info)
    st = run.status()
    log(f"{st['state']:<6} {cell.name} in {time.perf_counter() - t0:.0f} s: {st.get('message', '')}")
    if st["state"] == "done" and not keep_checkpoints:
        shutil.rmtree(run.checkpoints_dir, ignore_errors=True)  # keep configs and metrics, not weights
    return st["state"]


def run_sweep(cells: list[Cell], sweep_dir: Path, log: Callable[[str], None], *, jobs: int = 1,
              keep_checkpoints: bool = False, after_run: Callable[[], None] | None = None) -> dict[str, str]:
    """Train every cell not yet done, `jobs` at a time, in order; returns name -> final state.

    Equal-time cells without a budget get the measured one, so they wait until every cell before
    them has finished (the sweep runs in phases split at the equal-time cells). Holds
    `<sweep-dir>/sweep.pid` so that two sweeps never share a folder. On Ctrl-C / SIGTERM each run in
    progress gets one SIGINT (it checkpoints and says cancelled) and no new run starts.
    """
    runs_dir = sweep_dir / "runs"
    lock = sweep_dir / "sweep.pid"
    if lock.exists():
        other = int(lock.read_text().strip() or 0)
        if other and other != os.getpid() and _pid_alive(other):
            raise SweepError(f"a sweep (pid {other}) is already running in {sweep_dir}")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock.write_text(f"{os.getpid()}\n")
    states: dict[str, str] = {}
    procs: set[subprocess.Popen] = set()
    stop, guard = threading.Event(), threading.Lock()
    finished = [sum(RunFolder(runs_dir / c.name).status()["state"] == "done" for c in cells)]

    def one(cell: Cell) -> None:
        if stop.is_set():
            return
        if cell.budget == "time" and not cell.cfg.train.time_budget_s:
            budget = measured_budget(runs_dir, cell.cfg.distill.t_student)
            if budget is None:
                log(f"skip   {cell.name}: no finished baseline equal-epoch run at T_s={cell.cfg.distill.t_student} "
                    "to measure the budget from (give --budget-s)")
                states[cell.name] = "skipped"
                return
            cell = Cell(cell.name, cell.cfg.replace(**{"train.time_budget_s": round(budget, 1)}), "time", None)
        if RunFolder(runs_dir / cell.name).status()["state"] == "done":
            states[cell.name] = "done"
            return
        states[cell.name] = run_cell(cell, runs_dir, log, keep_checkpoints=keep_checkpoints, procs=procs)
        with guard:
            finished[0] += states[cell.name] == "done"
            log(f"{finished[0]}/{len(cells)} runs done")
            if after_run is not None:
                after_run()

    try:
        log(f"sweep: {len(cells)} runs planned, {finished[0]} already done, {len(cells) - finished[0]} to train, "
            f"{jobs} at a time")
        phases = [list(g) for _, g in itertools.groupby(cells, key=lambda c: c.budget == "time")]
        for phase in phases:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(one, cell) for cell in phase]
                try:
                    for future in as_completed(futures):
                        future.result()
                except BaseException:
                    stop.set()
                    for proc in list(procs):
                        proc.send_signal(signal.SIGINT)
                    raise
    finally:
        lock.unlink(missing_ok=True)
    return states


def estimate_seconds(cell: Cell, cost_s: float, budget_s: dict[int, float]) -> float:
    """Rough training + evaluation seconds of a cell: cost per image-timestep x images x timesteps x epochs."""
    c, d = cell.cfg, cell.cfg.distill
    n_train = c.data.limit_train or TRAIN_SIZES.get(c.data.dataset, 50_000)
    n_test = c.data.limit_test or TEST_SIZES.get(c.data.dataset, 10_000)
    # Forward only (about a third of a training step), every window in one T_t pass; plus the start.
    overhead = cost_s / 3 * n_test * d.t_teacher + STARTUP_S
    if cell.budget == "time":
        return (c.train.time_budget_s or budget_s.get(d.t_student, 0.0)) + overhead
    return cost_s * n_train * _train_timesteps(c) * c.train.epochs + overhead


def calibrated_cost(runs_dir: Path) -> float | None:
    """Seconds per training image-timestep measured on the finished runs of this sweep (median)."""
    costs = [r["epoch_s"] / (r["n_train"] * r["train_timesteps"]) for r in collect(runs_dir)
             if r["epoch_s"] and r["n_train"]]
    return statistics.median(costs) if costs else None


# -- reading the run folders back ------------------------------------------------------------------------

def collect(runs_dir: Path) -> list[dict[str, Any]]:
    """One record per finished run under `runs_dir` (sorted by name): its cell, config and results."""
    out = []
    for path in sorted(p for p in Path(runs_dir).glob("*") if (p / "cell.json").exists()):
        run = RunFolder(path)
        if not run.exists() or run.status().get("state") != "done":
            continue
        cell, cfg = json.loads((path / "cell.json").read_text()), run.config()
        epochs = run.metrics("epoch")
        complete = [r for r in epochs if r.get("complete", True)]
        n_train = cfg.data.limit_train or TRAIN_SIZES.get(cfg.data.dataset)
        # The training loader drops the last partial batch; from a complete epoch record when there is one.
        steps_per_epoch = (complete[0]["step"] / complete[0]["epoch"] if complete
                           else n_train // cfg.data.batch_size if n_train else None)
        epochs_trained = epochs[-1]["step"] / steps_per_epoch if epochs and steps_per_epoch else None
        train_s = epochs[-1]["wall_s"] if epochs else None  # seconds in training steps, kept across resumes
        out.append({
            **cell, "cfg": cfg,
            "acc_by_window": {int(t): a for t, a in sorted(run.final_eval().items())},
            "train_s": train_s, "epochs_trained": round(epochs_trained, 2) if epochs_trained else None,
            "epoch_s": train_s / epochs_trained if train_s and epochs_trained else None,
            "n_train": n_train, "train_timesteps": _train_timesteps(cfg),
            "process_s": cell.get("process_s"),
        })
    return out


def _train_timesteps(cfg: TSSDConfig) -> int:
    d = cfg.distill
    return cfg.train_timesteps + (d.t_student if cfg.uses_teacher and d.tsd_pass == "separate" else 0)


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1 in the denominator; None for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


# -- the summary: tables, figure, README section -----------------------------------------------------------

def _cell_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of one cell's accuracy at T_s, per window, and its cost."""
    ts = records[0]["t_student"]
    acc = mean_std([r["acc_by_window"][ts] for r in records])
    windows = sorted(set.intersection(*(set(r["acc_by_window"]) for r in records)))
    per_window = {n: mean_std([r["acc_by_window"][n] for r in records]) for n in windows}
    numbers = lambda key: [r[key] for r in records if r.get(key) is not None]  # noqa: E731
    return {"n": len(records), "seeds": sorted(r["seed"] for r in records), "acc": acc, "acc_by_window": per_window,
            "epoch_s": mean_std(numbers("epoch_s"))[0] if numbers("epoch_s") else None,
            "epochs_trained": mean_std(numbers("epochs_trained"))[0] if numbers("epochs_trained") else None,
            "train_s": mean_std(numbers("train_s"))[0] if numbers("train_s") else None}


def summarize(runs_dir: Path) -> dict[str, Any]:
    """Every table of the summary from the finished run folders (JSON-ready)."""
    runs = [r for r in collect(runs_dir) if r["acc_by_window"]]
    main: dict[str, list[dict]] = {"epochs": [], "time": []}
    for budget in main:
        for ts in sorted({r["t_student"] for r in runs}):
            for mode in MODES:
                group = [r for r in runs if r["budget"] == budget and r["factor"] is None and r["mode"] == mode
                         and r["t_student"] == ts and r["t_teacher"] == 2 * ts]
                if group:
                    main[budget].append({"mode": mode, "t_student": ts, "t_teacher": 2 * ts, **_cell_stats(group)})
    ablations: dict[str, list[dict]] = {}
    for field in ABLATIONS:
        section, name = field.split(".")
        # The reference (factor None, tssd, T_s = ABLATION_TS, T_t = 2 T_s, equal epochs) joins every ablation.
        members = [r for r in runs if r["budget"] == "epochs" and r["mode"] == "tssd" and r["t_student"] == ABLATION_TS
                   and (r["factor"] == field or (r["factor"] is None and r["t_teacher"] == 2 * ABLATION_TS))]
        if not any(r["factor"] == field for r in members):
            continue
        value = lambda r: getattr(getattr(r["cfg"], section), name)  # noqa: E731
        rows = []
        for v in sorted({value(r) for r in members}, key=lambda v: (str(type(v)), v)):
            group = [r for r in members if value(r) == v]
            rows.append({"value": v, "reference": group[0]["factor"] is None, **_cell_stats(group)})
        ablations[field] = rows
    totals = {"runs": len(runs), "train_s": sum(r["train_s"] or 0 for r in runs),
              "process_s": sum(r["process_s"] or 0 for r in runs)}
    return {"scale": _scale(runs), "main": main, "ablations": ablations, "totals": totals,
            "runs": [{k: v for k, v in r.items() if k != "cfg"} for r in runs]}


def _scale(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the runs were: data, network, epochs, optimiser (from the reference run's config)."""
    if not runs:
        return {}
    from .models import build_model, count_parameters

    ref = next((r for r in runs if r["factor"] is None and r["budget"] == "epochs"), runs[0])
    c = ref["cfg"]
    params = count_parameters(build_model(c.model, 1 if c.data.dataset == "digits" else 3, 10, weak_head=False))
    budgets = sorted({(r["t_student"], r["cfg"].train.time_budget_s) for r in runs if r["budget"] == "time"})
    return {"dataset": c.data.dataset, "limit_train": c.data.limit_train, "limit_test": c.data.limit_test,
            "arch": c.model.arch, "width": c.model.width, "parameters": params, "epochs": c.train.epochs,
            "batch_size": c.data.batch_size, "optimizer": c.train.optimizer, "lr": c.train.lr,
            "schedule": c.train.schedule, "label_smoothing": c.train.label_smoothing,
            "augment": c.data.augment, "time_budgets_s": {str(ts): b for ts, b in budgets}}


def _pm(ms: tuple[float, float | None] | list) -> str:
    mean, std = ms
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def _scale_text(s: dict[str, Any]) -> str:
    images = f"the first {s['limit_train']:,} training images (class-balanced)" if s["limit_train"] else "the whole training split"
    test = f"the first {s['limit_test']:,} test images" if s["limit_test"] else "the whole test split"
    budgets = ", ".join(f"{b:.0f} s at T_s={ts}" for ts, b in s["time_budgets_s"].items())
    return (f"Scale: {s['dataset']}, {images}, tested on {test}; `{s['arch']}` at width {s['width']:g} "
            f"({s['parameters']:,} parameters); {s['epochs']} epochs (equal-epoch table), batch {s['batch_size']}, "
            f"{s['optimizer']} lr {s['lr']:g} ({s['schedule']}), label smoothing {s['label_smoothing']:g}, "
            f"augmentation {'on' if s['augment'] else 'off'}; T_t = 2·T_s."
            + (f" Equal-time budget (median training seconds of the baseline's equal-epoch runs): {budgets}." if budgets else ""))


def _main_table(rows: list[dict], budget: str) -> list[str]:
    if not rows:
        return ["(no finished runs yet)"]
    baseline = {r["t_student"]: r for r in rows if r["mode"] == "baseline"}
    cost = ("s / epoch", lambda r: f"{r['epoch_s']:.1f}" if r["epoch_s"] else "–") if budget == "epochs" else \
        ("epochs trained", lambda r: f"{r['epochs_trained']:.1f}" if r["epochs_trained"] else "–")
    out = [f"| mode | T_s | T_t | test acc. at T_s (%) | vs baseline (points) | {cost[0]} | seeds |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        b = baseline.get(r["t_student"])
        delta = _difference(r, b) if b is not None and r is not b else ""
        out.append(f"| {r['mode']} | {r['t_student']} | {r['t_teacher']} | {_pm(r['acc'])} | {delta} | "
                   f"{cost[1](r)} | {r['n']} |")
    return out


def _difference(r: dict, b: dict) -> str:
    """Difference of means in points, with two standard errors of it in brackets when both have a spread."""
    text = f"{100 * (r['acc'][0] - b['acc'][0]):+.1f}"
    if r["acc"][1] is None or b["acc"][1] is None:
        return text
    two_se = 2 * math.sqrt(r["acc"][1] ** 2 / r["n"] + b["acc"][1] ** 2 / b["n"])
    return text + f" (±{100 * two_se:.1f})"


def _window_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    L = max(max(r["acc_by_window"], default=0) for r in rows)
    out = ["| mode | T_s | " + " | ".join(f"n={n}" for n in range(1, L + 1)) + " |", "|---|---|" + "---|" * L]
    for r in rows:
        cells = [(("**" + _pm(r["acc_by_window"][n]) + "**") if n == r["t_student"] else _pm(r["acc_by_window"][n]))
                 if n in r["acc_by_window"] else "" for n in range(1, L + 1)]
        out.append(f"| {r['mode']} | {r['t_student']} | " + " | ".join(cells) + " |")
    return out


def render_markdown(summary: dict[str, Any], figure: str | None = None) -> str:
    """The summary as markdown: scale, the two main tables, accuracy by window, ablations, totals."""
    s, t = summary["scale"], summary["totals"]
    lines = ["Classroom-scale numbers, not the paper's: small network, CIFAR-10 subset, few epochs, CPU. "
             "Test accuracy in %, mean ± sample standard deviation over seeds; \"vs baseline\" is the difference "
             "of means, with two standard errors of that difference in brackets (a difference inside it is within "
             "the seed-to-seed noise).", ""]
    if s:
        lines += [_scale_text(s), ""]
    lines += ["**Equal epochs** (every mode trains the same number of epochs):", "", *_main_table(summary["main"]["epochs"], "epochs"), "",
              "**Equal time** (every mode trains for the same seconds; TSSD costs more per step, so it gets fewer epochs):", "",
              *_main_table(summary["main"]["time"], "time"), ""]
    if summary["main"]["epochs"]:
        lines += ["**Accuracy by inference window n** (equal epochs; bold: the student window T_s):", "",
                  *_window_table(summary["main"]["epochs"]), ""]
    if figure and figure.endswith(".png"):
        lines += [f"![test accuracy vs timesteps at inference, per mode]({figure})", "",
                  f"(interactive: [{figure[:-4]}.html]({figure[:-4]}.html))", ""]
    elif figure:
        lines += [f"Figure: [test accuracy vs timesteps at inference, per mode]({figure}).", ""]
    for field, rows in summary["ablations"].items():
        lines += [f"**Ablation `{field}`** (tssd, T_s={ABLATION_TS}, T_t={2 * ABLATION_TS} unless varied, equal epochs; "
                  "* the reference setting, shared with the main table; with one seed, read a difference against "
                  "the seed spread above):", "",
                  "| value | test acc. at T_s (%) | s / epoch | seeds |", "|---|---|---|---|"]
        lines += [f"| {_fmt(r['value'])}{' *' if r['reference'] else ''} | {_pm(r['acc'])} | "
                  f"{r['epoch_s']:.1f} | {r['n']} |" if r["epoch_s"] else
                  f"| {_fmt(r['value'])} | {_pm(r['acc'])} | – | {r['n']} |" for r in rows]
        lines.append("")
    lines += [f"{t['runs']} runs; {t['train_s'] / 3600:.2f} h of training steps, "
              f"{t['process_s'] / 3600:.2f} h of CPU wall-clock in all (data loading and evaluation included).", ""]
    return "\n".join(lines)


def accuracy_figure(summary: dict[str, Any]):
    """Mean test accuracy against inference timesteps n, one line per (mode, T_s), seed std as error bars."""
    from .figures import accuracy_vs_timesteps_figure
    from .figures.style import run_color

    rows = summary["main"]["epochs"]
    runs = {f"{r['mode']} · T_s={r['t_student']}": {n: ms[0] for n, ms in r["acc_by_window"].items()} for r in rows}
    fig = accuracy_vs_timesteps_figure(runs, title="test accuracy vs timesteps at inference (equal epochs, mean over seeds)")
    for trace, r in zip(fig.data, rows):  # a colour per mode, a dash per T_s, the seed spread as error bars
        stds = [r["acc_by_window"][n][1] or 0.0 for n in sorted(r["acc_by_window"])]
        color = run_color(MODES.index(r["mode"]))
        trace.update(error_y=dict(type="data", array=stds, visible=True, thickness=1), marker=dict(color=color),
                     line=dict(color=color, dash="solid" if r["t_student"] == 1 else "dash"))
    return fig.update_yaxes(tickformat=".1%")


def write_summary(sweep_dir: Path, readme: Path | None = None, png: bool = True) -> dict[str, Any]:
    """Rebuild summary.json, summary.md and the figure from `<sweep-dir>/runs`; rewrite `readme`'s section."""
    summary = summarize(sweep_dir / "runs")
    atomic_write_json(sweep_dir / "summary.json", summary)
    figure = None
    if summary["main"]["epochs"]:
        fig = accuracy_figure(summary)
        fig.write_html(sweep_dir / "accuracy_vs_timesteps.html", include_plotlyjs="cdn")
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
        section = render_markdown(summary, figure and f"{rel}/{figure}")
        section += f"\nGenerated by `python -m tssd_viz sweep --summarize-only --sweep-dir {rel}` from the run folders in `{rel}/runs/`.\n"
        rewrite_section(readme, section)
    return summary


START, END = "<!-- results:start -->", "<!-- results:end -->"


def rewrite_section(path: Path, body: str, start: str = START, end: str = END) -> None:
    """Replace what lies between the `start` and `end` markers of `path`; the rest stays byte for byte."""
    text = path.read_text()
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise SweepError(f"{path} has no '{start}' ... '{end}' section to rewrite")
    path.write_text(text[:i + len(start)] + "\n" + body.strip("\n") + "\n" + text[j:])


# -- entry points of the `sweep` command --------------------------------------------------------------------

def plan_text(cells: list[Cell], sweep_dir: Path, budget_s: float | None, jobs: int = 1) -> str:
    """`--dry-run`: the planned runs, their state and an estimated cost (measured on this sweep's finished
    runs when there are some, else DEFAULT_COST_S)."""
    runs_dir = sweep_dir / "runs"
    measured = calibrated_cost(runs_dir)
    cost = measured or DEFAULT_COST_S
    budgets: dict[int, float] = {}
    for ts in (1, 2):  # the equal-time budget is what a baseline costs at that T_s
        ref = next((c for c in cells if c.budget == "epochs" and c.cfg.distill.mode == "baseline"
                    and c.cfg.distill.t_student == ts), None)
        budgets[ts] = budget_s or measured_budget(runs_dir, ts) or (
            cost * (ref.cfg.data.limit_train or 50_000) * ts * ref.cfg.train.epochs if ref else 0.0)
    lines, total = [f"{'run':<44} {'state':<8} {'est. s':>8}"], 0.0
    for c in cells:
        state = RunFolder(runs_dir / c.name).status()["state"]
        est = estimate_seconds(c, cost, budgets)
        total += est if state != "done" else 0.0
        lines.append(f"{c.name:<44} {state:<8} {est:>8.0f}")
    source = "measured on this sweep's finished runs" if measured else "default: vgg_fast width 0.5, one thread per run"
    lines.append(f"{len(cells)} runs; about {total / 3600:.2f} h of training left, {total / 3600 / jobs:.2f} h "
                 f"with {jobs} at a time ({cost * 1e3:.2f} ms per training image-timestep, {source})")
    return "\n".join(lines)


def start_background(argv: list[str], sweep_dir: Path) -> int:
    """Start this same sweep command detached from the terminal (it survives logout); return its pid."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    args = [a for a in argv if a != "--background"]
    with open(sweep_dir / "sweep.log", "a", encoding="utf-8") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tssd_viz", "sweep", *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc.pid


def write_manifest(sweep_dir: Path, grid: str, base: TSSDConfig, argv: list[str], cells: list[Cell]) -> None:
    """sweep.json: what produced the runs (base config, grid, command line, run names)."""
    atomic_write_json(sweep_dir / "sweep.json", {"grid": grid, "argv": argv, "base": base.to_dict(),
                                                 "runs": [c.name for c in cells]})
