"""What every command shares: its one-line refusals, and a command line turned into a config (SPEC §8).

A refusal (`fail`) is one line on stderr and exit status 2, before anything is written; argparse's and
tyro's own refusals are boxes of several lines, so both are caught here and said in one. Every config
field is a flag named by its dotted path (`--distill.t-student 2`), generated from the config dataclasses
by tyro on top of a preset or a saved config.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

import tyro

from ..config import ConfigError, TSSDConfig
from ..presets import preset
from ..runs.folders import RunFolder
from ..validation import validate

EXIT_BAD_INPUT, EXIT_CANCELLED = 2, 130


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    if os.environ.get("TORCHELASTIC_ERROR_FILE"):  # a torchrun rank: its failure report quotes this line
        from ..training.distributed import tell_launcher

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


def checkpoint_path(run_dir: str | None, checkpoint: str | None, which: str) -> Path:
    """The checkpoint that `--run-dir DIR --which best|last` or `--checkpoint FILE` names (evaluate, export);
    a run without best.pt falls back to last.pt."""
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
