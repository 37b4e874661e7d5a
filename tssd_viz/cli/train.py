"""`python -m tssd_viz train`: a new run from a preset or a saved config.json (plus dotted-name overrides),
or `--resume DIR` to continue one; SIGTERM or a first Ctrl-C finishes the step, saves last.pt and marks
the run cancelled (exit status 130). Under torchrun each process runs this, and rank 0 speaks for the run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from ..atomic import StorageError
from ..config import ConfigError, TSSDConfig
from ..data import DataUnavailable
from ..presets import PRESETS
from ..runs.checkpoints import CheckpointError
from ..runs.folders import RunFolder
from ..training import allocator
from ..training.observers import ConsoleProgress
from ..validation import validate
from .options import EXIT_CANCELLED, ArgumentParser, config_file_or_fail, fail, parse_config, preset_or_fail


def cmd_train(argv: list[str], own_process: bool = False) -> int:
    """`own_process`: argv is this process's command line, which may run again under the allocator."""
    known, rest = _options(argv)
    cfg, run_dir, resume = _resumed(known.resume, rest) if known.resume else _new_run(known, rest)
    try:
        validate(cfg)
    except ConfigError as e:
        fail(str(e))
    if own_process:
        allocator.reexec(cfg.train.allocator)  # returns when it already runs (or cannot run) the one asked
    stop = _stop_on_signals()

    from ..training.distributed import RankLost
    from ..training.fit import fit  # imported late: keeps `--help` and input errors fast
    from ..training.step import TrainingDiverged

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


def _options(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """train's own options, and the config flags left for tyro (whose `--help` follows this one's)."""
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
    return known, rest


def _resumed(resume: str, rest: list[str]) -> tuple[TSSDConfig, Path, bool]:
    """The saved config of the run folder `--resume` names; it takes no other settings."""
    if rest:
        fail("--resume continues a run with its saved config; start a new --run-dir to change settings")
    run = RunFolder(resume)
    if not run.exists():
        fail(f"{resume} is not a run folder (no config.json)")
    try:
        return run.config(), run.path, True
    except ConfigError as e:
        fail(str(e))


def _new_run(known: argparse.Namespace, rest: list[str]) -> tuple[TSSDConfig, Path, bool]:
    """A preset or a saved config.json with the overrides applied, and the run folder it trains into."""
    base = preset_or_fail(known.preset) if not known.config else config_file_or_fail(known.config)
    cfg = parse_config(base, rest, "python -m tssd_viz train")
    run_dir = Path(known.run_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{cfg.distill.mode}")
    return cfg, run_dir, False


def _stop_on_signals() -> dict[str, bool]:
    """SIGTERM / first Ctrl-C: finish the step, save last.pt, mark the run cancelled; a second one aborts."""
    stop = {"requested": False}

    def request_stop(signum, _frame):
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        print("\nstopping after this step (again to abort)…", file=sys.stderr)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
