"""Training a sweep: each cell in its own `python -m tssd_viz train` process, a few at a time, resumable.

The processes are local children, or jobs of a Ray cluster (jobs/executors.py: TSSD_EXECUTOR=ray).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from ..atomic import atomic_write_json
from ..config import TSSDConfig
from ..jobs.executors import Local, RayJobs
from ..runs.folders import RunFolder
from ..runs.processes import pid_alive
from ..training import allocator
from .grid import TEST_SIZES, TRAIN_SIZES, Cell, SweepError
from .records import calibrated_cost, collect, measured_budget, train_timesteps

# Seconds per training image per timestep (forward + backward) of the classroom network (vgg_fast,
# width 0.5) in one thread, two runs side by side on an otherwise idle 2-core CPU (the median of the 62
# runs in results/cifar10-classroom); `--dry-run` uses it until finished runs in the sweep folder give
# a measured value.
DEFAULT_COST_S = 0.62e-3
STARTUP_S = 8.0  # a training process: importing torch, loading the cached dataset, building the network


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
    return cmd + (
        ["--resume", str(run.path)] if resume else ["--config", str(run.config_path), "--run-dir", str(run.path)]
    )


def run_cell(
    cell: Cell,
    runs_dir: Path,
    log: Callable[[str], None],
    *,
    keep_checkpoints: bool = False,
    procs: set | None = None,
    executor: Local | RayJobs | None = None,
) -> str:
    """Train `cell` into `runs_dir/<name>` unless it is done; return the run's final state.
    The training process (or Ray job) is in `procs` while it runs (so that a stopping sweep can signal it)."""
    run = RunFolder(runs_dir / cell.name)
    if run.exists() and run.config().to_dict() != cell.cfg.to_dict():
        raise SweepError(
            f"{run.path} holds a different config than this sweep plans "
            "(changed overrides or budget?): remove it or use another --sweep-dir"
        )
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
        # The run's allocator in its environment (a Ray job gets none: its CLI chooses on its own machine).
        env = allocator.launch_env(cell.cfg.train.allocator, {**os.environ, "PYTHONUNBUFFERED": "1"})
        proc = (executor or Local()).launch(run, _train_command(run, resume), env, out)
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


def run_sweep(
    cells: list[Cell],
    sweep_dir: Path,
    log: Callable[[str], None],
    *,
    jobs: int = 1,
    keep_checkpoints: bool = False,
    after_run: Callable[[], None] | None = None,
    executor: Local | RayJobs | None = None,
) -> dict[str, str]:
    """Train every cell not yet done, `jobs` at a time, in order; returns name -> final state.

    Equal-time cells without a budget get the measured one, so they wait until every cell before
    them has finished (the sweep runs in phases split at the equal-time cells). Holds
    `<sweep-dir>/sweep.pid` so that two sweeps never share a folder. On Ctrl-C / SIGTERM each run in
    progress gets one SIGINT (it checkpoints and says cancelled) and no new run starts.
    """
    runs_dir = sweep_dir / "runs"
    lock = _hold_lock(sweep_dir)
    states: dict[str, str] = {}
    procs: set[subprocess.Popen] = set()
    stop, guard = threading.Event(), threading.Lock()
    finished = [sum(RunFolder(runs_dir / c.name).status()["state"] == "done" for c in cells)]
    planned = {c.name for c in cells}

    def one(cell: Cell) -> None:
        if stop.is_set():
            return
        cell = _with_budget(cell, runs_dir, planned, states, stop, log)
        if cell is None:
            return
        if RunFolder(runs_dir / cell.name).status()["state"] == "done":
            states[cell.name] = "done"
            return
        states[cell.name] = run_cell(
            cell, runs_dir, log, keep_checkpoints=keep_checkpoints, procs=procs, executor=executor
        )
        with guard:
            finished[0] += states[cell.name] == "done"
            log(f"{finished[0]}/{len(cells)} runs done")
            if after_run is not None:
                after_run()

    try:
        log(
            f"sweep: {len(cells)} runs planned, {finished[0]} already done, {len(cells) - finished[0]} to train, "
            f"{jobs} at a time"
        )
        # A budget measured over the baselines waits for all of them: a phase; a matched one (one run) waits inside it.
        phases = [list(g) for _, g in itertools.groupby(cells, key=lambda c: c.budget == "time" and c.match is None)]
        for phase in phases:
            _run_phase(phase, one, jobs, stop, procs)
    finally:
        lock.unlink(missing_ok=True)
    return states


def _hold_lock(sweep_dir: Path) -> Path:
    """Write `<sweep-dir>/sweep.pid` (returned) unless a live sweep holds it: then a `SweepError`."""
    lock = sweep_dir / "sweep.pid"
    if lock.exists():
        other = int(lock.read_text().strip() or 0)
        if other and other != os.getpid() and pid_alive(other):
            raise SweepError(f"a sweep (pid {other}) is already running in {sweep_dir}")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock.write_text(f"{os.getpid()}\n")
    return lock


def _with_budget(
    cell: Cell,
    runs_dir: Path,
    planned: set[str],
    states: dict[str, str],
    stop: threading.Event,
    log: Callable[[str], None],
) -> Cell | None:
    """`cell` with the training seconds it is to match or the measured equal-time budget, once they are
    known; None (the cell skipped, said in `log` and `states`) when they never will be."""
    if cell.match is not None:
        budget = _matched_seconds(cell, runs_dir, planned, states, stop)
        if budget is None:
            log(f"skip   {cell.name}: {cell.match} did not finish, so there is no training time to match")
            states[cell.name] = "skipped"
            return None
        return replace(cell, cfg=cell.cfg.replace(**{"train.time_budget_s": round(budget, 1)}))
    if cell.budget == "time" and not cell.cfg.train.time_budget_s:
        budget = measured_budget(collect(runs_dir), cell.cfg.distill.t_student)
        if budget is None:
            log(
                f"skip   {cell.name}: no finished baseline equal-epoch run at T_s={cell.cfg.distill.t_student} "
                "to measure the budget from (give --budget-s)"
            )
            states[cell.name] = "skipped"
            return None
        return Cell(cell.name, cell.cfg.replace(**{"train.time_budget_s": round(budget, 1)}), "time", None)
    return cell


def _run_phase(
    phase: list[Cell], one: Callable[[Cell], None], jobs: int, stop: threading.Event, procs: set[subprocess.Popen]
) -> None:
    """`one` for every cell of `phase`, `jobs` at a time; on any error or interrupt no new run starts and
    each run in progress gets one SIGINT."""
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


def train_seconds(run: RunFolder) -> float | None:
    """Seconds a finished run spent in training steps (its last epoch record's clock, kept across resumes)."""
    epochs = run.metrics("epoch")
    return epochs[-1].get("wall_s") if epochs else None


def _matched_seconds(
    cell: Cell, runs_dir: Path, planned: set[str], states: dict[str, str], stop: threading.Event
) -> float | None:
    """The training seconds of the run `cell` is matched to, once it is done (it was started before `cell`:
    the sweep starts cells in order); None when it will not finish (failed, skipped, not in this sweep, stopped)."""
    run = RunFolder(runs_dir / cell.match)  # type: ignore[operator]
    while run.status()["state"] != "done":
        gone = states.get(cell.match, "done") != "done" or cell.match not in planned  # type: ignore[arg-type]
        if stop.is_set() or gone:
            return None
        time.sleep(0.5)
    return train_seconds(run)


def estimate_seconds(cell: Cell, cost_s: float, budget_s: dict[int, float]) -> float:
    """Rough training + evaluation seconds of a cell: cost per image-timestep x images x timesteps x epochs."""
    c, d = cell.cfg, cell.cfg.distill
    n_train = c.data.limit_train or TRAIN_SIZES.get(c.data.dataset, 50_000)
    n_test = c.data.limit_test or TEST_SIZES.get(c.data.dataset, 10_000)
    # Forward only (about a third of a training step), every window in one T_t pass; plus the start.
    overhead = cost_s / 3 * n_test * d.t_teacher + STARTUP_S
    if cell.budget == "time":
        return (c.train.time_budget_s or budget_s.get(d.t_student, 0.0)) + overhead
    return cost_s * n_train * train_timesteps(c) * c.train.epochs + overhead


def plan_text(cells: list[Cell], sweep_dir: Path, budget_s: float | None, jobs: int = 1) -> str:
    """`--dry-run`: the planned runs, their state and an estimated cost (measured on this sweep's finished
    runs when there are some, else DEFAULT_COST_S)."""
    runs_dir = sweep_dir / "runs"
    records = collect(runs_dir)  # read once: both estimates come from the same finished runs
    measured = calibrated_cost(records)
    cost = measured or DEFAULT_COST_S
    budgets: dict[int, float] = {}
    for ts in (1, 2):  # the equal-time budget is what a baseline costs at that T_s
        ref = next(
            (
                c
                for c in cells
                if c.budget == "epochs" and c.cfg.distill.mode == "baseline" and c.cfg.distill.t_student == ts
            ),
            None,
        )
        budgets[ts] = (
            budget_s
            or measured_budget(records, ts)
            or (cost * (ref.cfg.data.limit_train or 50_000) * ts * ref.cfg.train.epochs if ref else 0.0)
        )
    lines, total = [f"{'run':<44} {'state':<8} {'est. s':>8}"], 0.0
    for c in cells:
        state = RunFolder(runs_dir / c.name).status()["state"]
        est = estimate_seconds(c, cost, budgets)
        total += est if state != "done" else 0.0
        lines.append(f"{c.name:<44} {state:<8} {est:>8.0f}")
    source = "measured on this sweep's finished runs" if measured else "default: vgg_fast width 0.5, one thread per run"
    lines.append(
        f"{len(cells)} runs; about {total / 3600:.2f} h of training left, {total / 3600 / jobs:.2f} h "
        f"with {jobs} at a time ({cost * 1e3:.2f} ms per training image-timestep, {source})"
    )
    return "\n".join(lines)


def start_background(argv: list[str], sweep_dir: Path) -> int:
    """Start this same sweep command detached from the terminal (it survives logout); return its pid."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    args = [a for a in argv if a != "--background"]
    with open(sweep_dir / "sweep.log", "a", encoding="utf-8") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tssd_viz", "sweep", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return proc.pid


def write_manifest(sweep_dir: Path, grid: str, base: TSSDConfig, argv: list[str], cells: list[Cell]) -> None:
    """sweep.json: what produced the runs (base config, grid, command line, run names)."""
    atomic_write_json(
        sweep_dir / "sweep.json", {"grid": grid, "argv": argv, "base": base.to_dict(), "runs": [c.name for c in cells]}
    )
