"""`python -m tssd_viz sweep`: train a grid of runs into <sweep-dir>/runs and summarise them.

Finished runs are skipped, so the same command resumes a stopped sweep; `--dry-run` prints the plan and
its estimated cost, `--summarize-only` rebuilds the summary from the run folders, `--background` detaches.
Every option that needs no config is checked first, and each refusal is one line (exit status 2).
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from ..atomic import StorageError
from ..config import ConfigError, TSSDConfig
from ..presets import preset
from ..validation import validate
from .options import EXIT_CANCELLED, ArgumentParser, fail, parse_config

MAX_SEEDS = 1000  # a sweep's seeds per cell: a typo of 10**6 would plan runs for ever


def cmd_sweep(argv: list[str]) -> int:
    """Train a grid of runs into <sweep-dir>/runs (finished runs are skipped) and summarise them."""
    from .. import sweep

    known, rest = _options(argv, sweep.GRIDS)
    sweep_dir, readme = Path(known.sweep_dir), Path(known.readme) if known.readme else None
    _check_sweep_options(known, sweep_dir, readme, sweep.markers(known.readme_section))
    if known.summarize_only:
        try:
            with sweep.records.skipped_said():  # a folder it cannot read: left out, one line each
                summary = sweep.write_summary(sweep_dir, readme, section=known.readme_section)
        except (sweep.SweepError, ConfigError, StorageError, ValueError) as e:
            fail(_sweep_refusal(e))
        print(f"{summary['totals']['runs']} finished runs summarised into {sweep_dir / 'summary.md'}")
        return 0
    base, cells = _planned(known, rest)
    if known.dry_run:
        print(sweep.plan_text(cells, sweep_dir, known.budget_s, max(known.jobs, 1)))
        return 0
    if known.background:
        pid = sweep.start_background(argv, sweep_dir)
        print(
            f"sweep running in the background, pid {pid}; progress: {sweep_dir / 'sweep.log'}\n"
            f"stop it with `kill {pid}` (the run in progress is checkpointed); run the same command to resume"
        )
        return 0
    return _run(known, argv, base, cells, sweep_dir, readme)


def _options(argv: list[str], grids: tuple[str, ...]) -> tuple[argparse.Namespace, list[str]]:
    """The sweep's own options, and the config flags left for tyro."""
    ap = ArgumentParser(prog="python -m tssd_viz sweep")
    ap.add_argument("--sweep-dir", required=True)
    ap.add_argument("--grid", choices=grids, default="all")
    ap.add_argument("--preset", default="classroom")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 of the main grid")
    ap.add_argument("--ablation-seeds", type=int, default=1)
    ap.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="equal-time budget in training seconds (default: median of the baseline's equal-epoch runs)",
    )
    ap.add_argument("--dry-run", action="store_true", help="print the planned runs and an estimated cost")
    ap.add_argument("--summarize-only", action="store_true", help="rebuild the summary from the run folders")
    ap.add_argument("--background", action="store_true", help="detach; progress goes to <sweep-dir>/sweep.log")
    ap.add_argument("--readme", default=None, help="also rewrite the <!-- SECTION:start/end --> section of this file")
    ap.add_argument("--readme-section", default="results", metavar="SECTION", help="the section's name (results)")
    ap.add_argument("--keep-checkpoints", action="store_true")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (with --train.threads 1: one per core)")
    ap.add_argument("--only", default="", metavar="GLOBS", help="comma-separated run-name patterns to keep")
    return ap.parse_known_args(argv)


def _planned(known: argparse.Namespace, rest: list[str]) -> tuple[TSSDConfig, list]:
    """The preset with the sweep's defaults and the overrides, and the grid's cells (each config valid)."""
    from .. import sweep

    try:
        base = parse_config(preset(known.preset).replace(**sweep.SWEEP_DEFAULTS), rest, "python -m tssd_viz sweep")
        cells = sweep.expand(
            known.grid, base, seeds=known.seeds, ablation_seeds=known.ablation_seeds, budget_s=known.budget_s
        )
        cells = sweep.select(cells, known.only)
        if not cells:
            fail(f"--only {known.only}: no planned run of the {known.grid} grid matches (see --dry-run without --only)")
        for cell in cells:
            validate(cell.cfg)
    except ConfigError as e:
        fail(str(e))
    return base, cells


def _run(
    known: argparse.Namespace, argv: list[str], base: TSSDConfig, cells: list, sweep_dir: Path, readme: Path | None
) -> int:
    """Train the cells not done yet, summarising after each; 1 when some run did not finish, 130 on Ctrl-C."""
    from .. import sweep
    from ..jobs import executors

    try:
        executor = executors.from_env()  # TSSD_EXECUTOR: local processes, or jobs of a Ray cluster
    except ConfigError as e:
        fail(str(e))
    log = sweep.Log(sweep_dir / "sweep.log")
    sweep.write_manifest(sweep_dir, known.grid, base, argv, cells)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl-C: the run is checkpointed
    try:
        states = sweep.run_sweep(
            cells,
            sweep_dir,
            log,
            jobs=max(known.jobs, 1),
            keep_checkpoints=known.keep_checkpoints,
            after_run=lambda: sweep.write_summary(sweep_dir, png=False),
            executor=executor,
        )
        summary = sweep.write_summary(sweep_dir, readme, section=known.readme_section)
    except (sweep.SweepError, ConfigError, StorageError, ValueError) as e:
        log(f"error: {_sweep_refusal(e)}")
        fail(_sweep_refusal(e))
    except KeyboardInterrupt:
        log("stopped; run the same command to resume")
        return EXIT_CANCELLED
    failed = [name for name, state in states.items() if state != "done"]
    log(
        f"finished: {summary['totals']['runs']} runs summarised in {sweep_dir / 'summary.md'}"
        + (f"; not done: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def _sweep_refusal(e: Exception) -> str:
    """Why a sweep stopped, in one line: a SweepError, ConfigError or StorageError says it (naming the folder or
    file); a run folder's file of junk bytes (cell.json, say) is named by its error's type."""
    from ..sweep import SweepError

    if isinstance(e, (ConfigError, StorageError, SweepError)):
        return str(e)
    text = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
    return f"a file of the sweep's run folders cannot be read ({type(e).__name__}: {text})"


def _check_sweep_options(known: argparse.Namespace, sweep_dir: Path, readme: Path | None, marks: tuple) -> None:
    """The sweep's options that need no config, each refused in one line (exit 2) before anything is written."""
    if sweep_dir.exists() and not sweep_dir.is_dir():
        fail(f"--sweep-dir {sweep_dir}: is a file, not a folder")
    if known.summarize_only and not sweep_dir.is_dir():
        fail(f"--sweep-dir {sweep_dir}: no such folder to summarise")
    for option, value, lo in (("--seeds", known.seeds, 1), ("--ablation-seeds", known.ablation_seeds, 1)):
        if not lo <= value <= MAX_SEEDS:
            fail(f"{option} must be between {lo} and {MAX_SEEDS}, got {value}")
    if readme is None:
        return
    try:
        text = readme.read_text()
    except (OSError, UnicodeDecodeError) as e:
        why = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else (e.strerror or type(e).__name__).lower()
        fail(f"--readme {readme}: cannot read it ({why})")
    if marks[0] not in text:
        fail(f"--readme {readme}: no '{marks[0]}' ... '{marks[1]}' section in it")
