"""`python -m tssd_viz evaluate`: a trained run's test accuracy for every window n = 1..T, and with
`--early-exit` the accuracy and mean timesteps of stopping at the first confident timestep (as a table,
as JSON with `--json`, or as a plotly figure with `--figure`). Only `--data.*` fields may be overridden:
the network is the one the checkpoint holds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import EVENT_DATASETS, ConfigError, TSSDConfig
from ..data import Dataset, DataUnavailable, Loader, load_dataset
from ..runs.checkpoints import CheckpointError
from ..runs.trained import Trained, load_trained
from ..validation import LIMITS, validate
from .options import ArgumentParser, checkpoint_path, fail, parse_config


def cmd_evaluate(argv: list[str]) -> int:
    known, rest = _options(argv)
    thresholds = _thresholds(known.early_exit)
    if known.figure and not thresholds:
        fail("--figure draws the early-exit table: give --early-exit too")
    if known.figure:
        _writable_file("--figure", Path(known.figure))
    t_max = int(LIMITS["distill.t_teacher"].hi)  # the longest window any run trains with: memory grows with T
    if not 0 <= known.t <= t_max:
        fail(f"--t must be between 1 and {t_max} timesteps, got {known.t}")
    saved, cfg, T, ds = _load(known, rest)
    from ..training.evaluation import collect_outputs, exit_points, whole_recording_bn
    from ..training.fit import resolve_device

    device = resolve_device(cfg.train.device)
    model = saved.model
    model.to(device)
    step = saved.payload.get("step")  # the batches its statistics were last estimated on (0: a student file)
    bn = whole_recording_bn(model, ds, cfg, step if isinstance(step, int) else 0, device)  # each window its own
    out = collect_outputs(model, Loader(ds.test, ds, 256, train=False, device=device), T, bn=bn)
    table = {n: a for n, a in enumerate(out.acc_by_window(), start=1)}
    t_exit = known.t or cfg.distill.t_student
    exits = exit_points(out.logits[:t_exit], out.labels, thresholds) if thresholds else []
    if known.figure:
        _write_figure(known, exits, t_exit)
    if known.json:
        result = {"t_student": cfg.distill.t_student, "acc_by_window": table}
        if exits:
            result["early_exit"] = {"t": t_exit, "points": [p.as_dict() for p in exits]}
        print(json.dumps(result))
        return 0
    _print_tables(table, cfg.distill.t_student, exits, t_exit)
    if known.figure:
        print(f"figure: {known.figure}")
    return 0


def _options(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """evaluate's own options, and the `--data.*` overrides left for tyro (anything else is refused)."""
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
    return known, rest


def _load(known: argparse.Namespace, rest: list[str]) -> tuple[Trained, TSSDConfig, int, Dataset]:
    """The trained network, its config with the `--data.*` overrides, the window T to evaluate and the data;
    every refusal one line."""
    try:
        saved = load_trained(checkpoint_path(known.run_dir, known.checkpoint, known.which))
        cfg = parse_config(saved.cfg, rest, "python -m tssd_viz evaluate") if rest else saved.cfg
        validate(cfg)
        T = known.t or saved.t_eval
        if T < 1:
            fail(f"--t must be >= 1, got {T}")
        if cfg.data.dataset in EVENT_DATASETS and T > cfg.distill.t_teacher:
            fail(f"--t: the recordings are binned for windows up to T_t = {cfg.distill.t_teacher}, got {T}")
        ds = load_dataset(cfg.data, cfg.distill)
    except (ConfigError, DataUnavailable, CheckpointError) as e:
        fail(str(e))
    return saved, cfg, T, ds


def _write_figure(known: argparse.Namespace, exits: list, t_exit: int) -> None:
    from ..figures import early_exit_figure

    name = Path(known.run_dir).name if known.run_dir else Path(known.checkpoint).stem
    try:
        early_exit_figure({name: exits}, full_window=t_exit).write_html(known.figure, include_plotlyjs="cdn")
    except OSError as e:
        fail(f"--figure {known.figure}: cannot write it ({e.strerror or type(e).__name__})")


def _print_tables(table: dict[int, float], t_student: int, exits: list, t_exit: int) -> None:
    """The accuracy of every window (the student's marked), then the early-exit table if one was asked for."""
    for n, a in table.items():
        mark = "  <- T_s (student)" if n == t_student else ""
        print(f"window n={n}: test accuracy {a:.2%}{mark}")
    if exits:
        print(
            f"early exit within {t_exit} timesteps (stop at the first timestep whose running prediction is this sure):"
        )
        print(f"{'threshold':>10}  {'accuracy':>9}  {'mean timesteps':>14}")
        for p in exits:
            print(f"{p.threshold:>10g}  {p.acc:>9.2%}  {p.mean_timesteps:>14.2f}")


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
