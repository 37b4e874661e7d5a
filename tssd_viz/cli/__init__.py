"""Command line: `python -m tssd_viz train | evaluate | export | sweep` (SPEC §8).

Every config field is a flag named by its dotted path (`--distill.t-student 2`), generated from the
config dataclasses by tyro, on top of a preset. Bad input ends with a one-line reason and exit
status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import NoReturn

import tyro

from .atomic import StorageError
from .config import EVENT_DATASETS, LIMITS, PRESETS, ConfigError, TSSDConfig, preset, validate
from .data import DataUnavailable, Loader, load_dataset
from .runs.checkpoints import CheckpointError
from .runs.folders import RunFolder
from .runs.trained import export_student, load_trained
from .training import allocator
from .training.observers import ConsoleProgress

EXIT_BAD_INPUT, EXIT_CANCELLED = 2, 130
USAGE = (
    """usage:
  python -m tssd_viz train [--preset NAME | --config JSON] [--run-dir DIR] [--CONFIG.FIELD VALUE ...]
  python -m tssd_viz train --resume DIR
  torchrun --nproc-per-node N -m tssd_viz train ...   (data-parallel over N processes: SPEC §11)
  python -m tssd_viz evaluate (--run-dir DIR | --checkpoint FILE) [--which best|last] [--t N] [--json]
                             [--early-exit 0.5,0.8,0.9,0.95 [--figure FILE.html]]
        [--data.FIELD VALUE ...]
  python -m tssd_viz export --run-dir DIR [--which best|last] [--out FILE] [--format pt|nir]
  python -m tssd_viz sweep --sweep-dir DIR [--grid main|ablations|all] [--preset NAME] [--seeds N] [--budget-s S]
        [--jobs N] [--dry-run | --summarize-only | --background] [--only GLOBS] [--readme FILE [--readme-section NAME]]
        [--CONFIG.FIELD VALUE ...]
presets: """
    + ", ".join(PRESETS)
    + "\nconfig fields: python -m tssd_viz train --help"
)


MAX_SEEDS = 1000  # a sweep's seeds per cell: a typo of 10**6 would plan runs for ever


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    if os.environ.get("TORCHELASTIC_ERROR_FILE"):  # a torchrun rank: its failure report quotes this line
        from .training.distributed import tell_launcher

        tell_launcher(f"error: {message}")
    if os.environ.get("RANK", "0") == "0":  # under torchrun rank 0 says it once, not once per rank
        print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, whose refusals are one line and exit status 2 (its own print a usage box of 3-10 lines)."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} ({self.prog} --help lists the options)" if self.add_help else message)


def parse_config(base: TSSDConfig, overrides: list[str], prog: str) -> TSSDConfig:
    """Apply dotted-name overrides to `base` with tyro. `--help` prints tyro's help; an override that
    tyro cannot parse ends in one line and exit status 2 (tyro's own message is a box of 5-9 lines)."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            cfg = tyro.cli(TSSDConfig, default=base, args=overrides, prog=prog, config=(tyro.conf.FlagConversionOff,))
    except SystemExit as e:
        if e.code in (0, None):
            raise  # --help
        fail(override_error(overrides, prog) or _first_line(captured.getvalue()))
    sys.stderr.write(captured.getvalue())  # tyro's warnings, if any
    return cfg


# The type of every config flag, by its name on the command line (--section.field-name).
FLAG_KINDS = {
    f"--{sec.name}.{f.name.replace('_', '-')}": str(f.type)
    for sec in dataclasses.fields(TSSDConfig)
    for f in dataclasses.fields(sec.default_factory)
}


def override_error(args: list[str], prog: str) -> str | None:
    """The first override that tyro cannot parse, said in one line (None: none found)."""
    i = 0
    while i < len(args):
        flag, has_value, value = args[i].partition("=")
        kind = FLAG_KINDS.get(flag.replace("_", "-"))
        if kind is None:
            if flag.startswith("-"):
                return f"{flag}: no such option ({prog} --help lists them)"
            return f"unexpected argument {flag!r}"
        if not has_value:
            i += 1
            if i == len(args) or args[i].startswith("--"):
                return f"{flag}: needs a value"
            value = args[i]
        i += 1
        problem = _unparsable(kind, value)
        if problem:
            return f"{flag}: {value!r} {problem}"
    return None


def _unparsable(kind: str, text: str) -> str | None:
    """Why tyro cannot read `text` as a value of `kind` (None: it can)."""
    if kind == "bool":
        return None if text in ("True", "False") else "is not True or False"
    if kind in ("int", "float"):
        try:
            (int if kind == "int" else float)(text)
        except ValueError:
            return "is not an integer" if kind == "int" else "is not a number"
    return None


def _first_line(text: str) -> str:
    """The first line of a tyro message, without its box drawing (a fallback for errors not diagnosed above)."""
    lines = [line.strip(" │╭╮╰╯─") for line in text.splitlines()]
    lines = [line for line in lines if line]
    return lines[1] if len(lines) > 1 else (lines[0] if lines else "the options could not be parsed")


def preset_or_fail(name: str) -> TSSDConfig:
    try:
        return preset(name)
    except ConfigError as e:
        fail(str(e))


def config_file_or_fail(path: str) -> TSSDConfig:
    """A saved config.json, checked before the overrides apply (tyro needs values of the right type)."""
    try:
        return validate(TSSDConfig.from_dict(json.loads(Path(path).read_text())))
    except ConfigError as e:
        fail(f"--config {path}: {e}")
    except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON or bad UTF-8
        reason = str(e).partition("\n")[0][:200]
        fail(f"--config {path}: cannot read a config from it ({type(e).__name__}: {reason})")


def cmd_train(argv: list[str], own_process: bool = False) -> int:
    """`own_process`: argv is this process's command line, which may run again under the allocator."""
    ap = ArgumentParser(add_help=False)
    ap.add_argument("--preset", default="classroom")
    ap.add_argument("--config", default=None, metavar="JSON", help="start from a saved config.json instead of a preset")
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--resume", default=None, metavar="RUN_DIR")
    ap.add_argument("--no-progress", action="store_true")
    known, rest = ap.parse_known_args(argv)
    if "-h" in rest or "--help" in rest:
        print(
            "python -m tssd_viz train [--preset NAME] [--run-dir DIR | --resume DIR] [--no-progress] [config flags]\n"
            f"presets: {', '.join(PRESETS)}; config flags below.\n"
        )
    if known.resume:
        if rest:
            fail("--resume continues a run with its saved config; start a new --run-dir to change settings")
        run = RunFolder(known.resume)
        if not run.exists():
            fail(f"{known.resume} is not a run folder (no config.json)")
        try:
            cfg, run_dir, resume = run.config(), run.path, True
        except ConfigError as e:
            fail(str(e))
    else:
        base = preset_or_fail(known.preset) if not known.config else config_file_or_fail(known.config)
        cfg = parse_config(base, rest, "python -m tssd_viz train")
        run_dir = Path(known.run_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{cfg.distill.mode}")
        resume = False
    try:
        validate(cfg)
    except ConfigError as e:
        fail(str(e))
    if own_process:
        allocator.reexec(cfg.train.allocator)  # returns when it already runs (or cannot run) the one asked

    # SIGTERM / first Ctrl-C: finish the step, save last.pt, mark the run cancelled.
    stop = {"requested": False}

    def request_stop(signum, _frame):
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        print("\nstopping after this step (again to abort)…", file=sys.stderr)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    from .training.distributed import RankLost
    from .training.fit import TrainingDiverged, fit  # imported late: keeps `--help` and input errors fast

    try:
        result = fit(
            cfg,
            [ConsoleProgress(bar=not known.no_progress)],
            run_dir=run_dir,
            resume=resume,
            should_stop=lambda: stop["requested"],
        )
    except (ConfigError, DataUnavailable, CheckpointError, TrainingDiverged) as e:
        fail(str(e))
    except StorageError as e:
        fail(str(e))  # a full disk: one line and exit 2 like any refusal; nothing saved is lost
    except RankLost as e:
        fail(str(e), 1)  # torchrun: another rank died; the run folder says failed
    if os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 speaks for the run
        print(f"run folder: {run_dir}")
    return EXIT_CANCELLED if result.stopped == "cancelled" else 0


def _checkpoint_path(run_dir: str | None, checkpoint: str | None, which: str) -> Path:
    if checkpoint:
        return Path(checkpoint)
    if not run_dir:
        fail("give --run-dir DIR or --checkpoint FILE")
    run = RunFolder(run_dir)
    if not run.exists():
        fail(f"{run_dir} is not a run folder (no config.json)")
    path = run.checkpoints_dir / f"{which}.pt"
    if not path.exists() and which == "best":
        path = run.checkpoints_dir / "last.pt"
    return path


def cmd_evaluate(argv: list[str]) -> int:
    ap = ArgumentParser(prog="python -m tssd_viz evaluate")
    ap.add_argument("--run-dir")
    ap.add_argument("--checkpoint")
    ap.add_argument("--which", choices=("best", "last"), default="best")
    ap.add_argument("--t", type=int, default=0, help="largest window to evaluate (default: T_t of the run)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--early-exit",
        default="",
        metavar="THRESHOLDS",
        help="comma-separated confidences in (0, 1], e.g. 0.5,0.8,0.9,0.95: also the early-exit table at T_s "
        "(or at --t)",
    )
    ap.add_argument("--figure", default="", metavar="FILE.html", help="with --early-exit: write its plotly figure")
    known, rest = ap.parse_known_args(argv)
    if any(not a.startswith("--data.") for a in rest[::2]):
        fail(
            f"unknown option {rest[0]}; evaluate takes --run-dir, --checkpoint, --which, --t, --json, "
            "--early-exit, --figure and --data.* fields"
        )
    thresholds = _thresholds(known.early_exit)
    if known.figure and not thresholds:
        fail("--figure draws the early-exit table: give --early-exit too")
    if known.figure:
        _writable_file("--figure", Path(known.figure))
    t_max = int(LIMITS["distill.t_teacher"].hi)  # the longest window any run trains with: memory grows with T
    if not 0 <= known.t <= t_max:
        fail(f"--t must be between 1 and {t_max} timesteps, got {known.t}")
    try:
        path = _checkpoint_path(known.run_dir, known.checkpoint, known.which)
        saved = load_trained(path)
        cfg = parse_config(saved.cfg, rest, "python -m tssd_viz evaluate") if rest else saved.cfg
        validate(cfg)
        model = saved.model
        T = known.t or saved.t_eval
        if T < 1:
            fail(f"--t must be >= 1, got {T}")
        if cfg.data.dataset in EVENT_DATASETS and T > cfg.distill.t_teacher:
            fail(f"--t: the recordings are binned for windows up to T_t = {cfg.distill.t_teacher}, got {T}")
        ds = load_dataset(cfg.data, cfg.distill)
    except (ConfigError, DataUnavailable, CheckpointError) as e:
        fail(str(e))
    from .training.evaluation import collect_outputs, exit_points, whole_recording_bn
    from .training.fit import resolve_device

    device = resolve_device(cfg.train.device)
    model.to(device)
    step = saved.payload.get("step")  # the batches its statistics were last estimated on (0: a student file)
    bn = whole_recording_bn(model, ds, cfg, step if isinstance(step, int) else 0, device)  # each window its own
    out = collect_outputs(model, Loader(ds.test, ds, 256, train=False, device=device), T, bn=bn)
    table = {n: a for n, a in enumerate(out.acc_by_window(), start=1)}
    t_exit = known.t or cfg.distill.t_student
    exits = exit_points(out.logits[:t_exit], out.labels, thresholds) if thresholds else []
    if known.figure:
        from .figures import early_exit_figure

        name = Path(known.run_dir).name if known.run_dir else Path(known.checkpoint).stem
        try:
            early_exit_figure({name: exits}, full_window=t_exit).write_html(known.figure, include_plotlyjs="cdn")
        except OSError as e:
            fail(f"--figure {known.figure}: cannot write it ({e.strerror or type(e).__name__})")
    if known.json:
        result = {"t_student": cfg.distill.t_student, "acc_by_window": table}
        if exits:
            result["early_exit"] = {"t": t_exit, "points": [p.as_dict() for p in exits]}
        print(json.dumps(result))
        return 0
    for n, a in table.items():
        mark = "  <- T_s (student)" if n == cfg.distill.t_student else ""
        print(f"window n={n}: test accuracy {a:.2%}{mark}")
    if exits:
        print(
            f"early exit within {t_exit} timesteps (stop at the first timestep whose running prediction is this sure):"
        )
        print(f"{'threshold':>10}  {'accuracy':>9}  {'mean timesteps':>14}")
        for p in exits:
            print(f"{p.threshold:>10g}  {p.acc:>9.2%}  {p.mean_timesteps:>14.2f}")
    if known.figure:
        print(f"figure: {known.figure}")
    return 0


def _writable_file(option: str, path: Path) -> None:
    """Refuse (one line) a file that cannot be written because its folder is missing or is no folder."""
    if path.is_dir():
        fail(f"{option} {path}: is a folder; give a file name")
    if not path.parent.is_dir():
        fail(f"{option} {path}: no folder {path.parent} to write it in")


def _thresholds(text: str) -> list[float]:
    """`0.5,0.8` -> [0.5, 0.8]; anything else ends the command with one line (exit status 2)."""
    if not text:
        return []
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        fail(f"--early-exit: {text!r} is not a comma-separated list of numbers, e.g. 0.5,0.8,0.9,0.95")
    bad = [v for v in values if not 0 < v <= 1]  # nan fails both comparisons
    if bad:
        fail(f"--early-exit: every threshold must lie in (0, 1] (a softmax probability), got {bad[0]!r}")
    return values


def cmd_export(argv: list[str]) -> int:
    from .export.nir_writer import NIRExportError, export_nir  # needs the nir extra only when --format nir runs

    ap = ArgumentParser(prog="python -m tssd_viz export")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--which", choices=("best", "last"), default="best")
    ap.add_argument("--out", default=None, help="default: RUN_DIR/student.pt, or RUN_DIR/student.nir with --format nir")
    ap.add_argument("--format", choices=("pt", "nir"), default="pt", help="nir: a NIR graph for other frameworks")
    known = ap.parse_args(argv)
    out = Path(known.out) if known.out else Path(known.run_dir) / f"student.{known.format}"
    try:
        trained = load_trained(_checkpoint_path(known.run_dir, None, known.which))
        if known.format == "nir":
            export_nir(trained, out)
        else:
            n_trained, n_plain = export_student(trained, out)
    except CheckpointError as e:
        fail(str(e))
    except StorageError as e:
        fail(str(e))  # a full disk: one line and exit 2 like any refusal; nothing saved is lost
    except (NIRExportError, DataUnavailable) as e:
        fail(str(e))  # NIR cannot express something exactly, nir is not installed, or no data to size the input
    if known.format == "nir":
        T_s = trained.cfg.distill.t_student
        print(f"exported the student (T_s={T_s}, the weak head dropped) as a NIR graph to {out}")
        print(f"{out.stat().st_size:,} bytes; run it for {T_s} timesteps of dt = 1e-4 (docs/SPEC.md §15)")
        return 0
    print(f"exported the student (T_s={trained.cfg.distill.t_student}) to {out}")
    print(
        f"parameters: {n_plain:,} (the plain network: {n_plain:,}; the weak head dropped "
        f"{n_trained - n_plain:,} used only in training)"
    )
    return 0


def cmd_sweep(argv: list[str]) -> int:
    """Train a grid of runs into <sweep-dir>/runs (finished runs are skipped) and summarise them."""
    from . import sweep
    from .jobs import executors

    ap = ArgumentParser(prog="python -m tssd_viz sweep")
    ap.add_argument("--sweep-dir", required=True)
    ap.add_argument("--grid", choices=sweep.GRIDS, default="all")
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
    known, rest = ap.parse_known_args(argv)
    sweep_dir, readme = Path(known.sweep_dir), Path(known.readme) if known.readme else None
    _check_sweep_options(known, sweep_dir, readme, sweep.markers(known.readme_section))
    if known.summarize_only:
        try:
            with sweep.summary.skipped_said():  # a folder it cannot read: left out, one line each
                summary = sweep.write_summary(sweep_dir, readme, section=known.readme_section)
        except (sweep.SweepError, ConfigError, StorageError, ValueError) as e:
            fail(_sweep_refusal(e))
        print(f"{summary['totals']['runs']} finished runs summarised into {sweep_dir / 'summary.md'}")
        return 0
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
    from .sweep import SweepError

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


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "export": cmd_export, "sweep": cmd_sweep}


def main(argv: list[str] | None = None) -> int:
    own_process = argv is None  # this process's own command line: `train` may re-execute it (allocator)
    warnings.formatwarning = lambda message, *_: f"{message}\n"  # a skipped folder or a remade cache: one line
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)  # asked for: stdout; a bare command is a refusal
        return 0 if argv else EXIT_BAD_INPUT
    if argv[0] not in COMMANDS:
        fail(f"unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)}")
    if argv[0] == "train":
        return cmd_train(argv[1:], own_process)
    return COMMANDS[argv[0]](argv[1:])
