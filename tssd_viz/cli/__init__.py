"""Command line: `python -m tssd_viz train | evaluate | export | sweep` (SPEC §8).

Every config field is a flag named by its dotted path (`--distill.t-student 2`), generated from the
config dataclasses by tyro, on top of a preset. Bad input ends with a one-line reason and exit
status 2, before anything is written.

The package: `options` (the one-line refusals and a command line turned into a config, shared by every
command), then one module per command: `train`, `evaluate`, `export`, `sweep`. This file is the entry
point: the usage text and `main()`, which hands the arguments to the command named first.
"""

from __future__ import annotations

import sys
import warnings

from ..presets import PRESETS
from .evaluate import cmd_evaluate
from .export import cmd_export
from .options import EXIT_BAD_INPUT, fail
from .sweep import cmd_sweep
from .train import cmd_train

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
