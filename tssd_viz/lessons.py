"""What the lessons (notebooks/) need beyond training and recording: their configuration, where their
run folders live, a few measurements of a trained network that a lesson prints, and the race table that
lesson 4 reads (a sweep's summary, or the lesson's own runs in its shape).

A lesson runs on real CIFAR-10 when it is on disk and on the offline digits otherwise, and says which;
with `TSSD_FAST=1` (the test suite) it runs the short digits recipe for one epoch whatever is on disk.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .config import TSSDConfig
from .data import Dataset, offline_default
from .presets import preset
from .runs.folders import RunFolder
from .runs.metrics import final_accuracy
from .sweep.tables import paired_difference
from .training.fit import fit
from .training.observers import Observer
from .validation import validate

# How big a lesson's runs are, by the data it found: a preset, its overrides, and what the lesson says.
FAST_RECIPE = (
    "quick",
    {"train.epochs": 1},
    "Fast mode: the offline digits, one epoch of the short-run `quick` recipe.",
)
CIFAR_RECIPE = (
    "classroom",
    {"data.download": False, "data.limit_train": 10_000, "data.limit_test": 5_000},
    "CIFAR-10 from disk: a subset of 10,000 training and 5,000 test images, the `classroom` recipe.",
)
# Lesson 5 in fast mode: fewer, larger steps over every recording (one epoch of 512 recordings stayed near chance);
# no test evaluation or probe snapshot after each epoch (the lesson reads the final evaluation only).
EVENTS_FAST = {"train.epochs": 2, "train.lr": 0.2, "train.eval_every": 0, "train.probe_every": 0}
FOUND_BUT_FAST = (
    "CIFAR-10 is on this machine, but fast mode uses the digits for speed: unset TSSD_FAST for the real lesson."
)
DIGITS_RECIPE = (
    "digits",
    {},
    "Note: no CIFAR-10 on this machine. {why} Everything below works the same; "
    "the images are 8×8 handwritten digits and the numbers are theirs.",
)


def events_config(*, fast: bool | None = None) -> TSSDConfig:
    """Lesson 5's configuration, validated: the `events` preset (event_digits, made offline); prints its size.

    Args:
        fast: 2 epochs at learning rate 0.2 instead of 3 at 0.1, every recording, and only the final
            evaluation (default: `fast_mode()`).

    Returns:
        The validated config.
    """
    fast = fast_mode() if fast is None else fast
    cfg = preset("events").replace(**(EVENTS_FAST if fast else {}))
    print(
        ("Fast mode: " if fast else "")
        + f"event_digits, the `events` recipe: {cfg.train.epochs} epochs at learning rate {cfg.train.lr:g}."
    )
    return validate(cfg)


def fast_mode() -> bool:
    """Whether the lessons run in fast mode: the environment variable TSSD_FAST is "1".

    Returns:
        True in fast mode (the test suite's).
    """
    return os.environ.get("TSSD_FAST") == "1"


def lesson_config(
    mode: str = "tssd", *, t_student: int = 2, t_teacher: int = 4, seed: int = 0, fast: bool | None = None
) -> TSSDConfig:
    """The configuration of a lesson's runs, validated; prints which data it uses and why.

    CIFAR-10 when it is on disk (never downloaded): a 10,000-image subset, the `classroom` recipe (4 epochs);
    else the `digits` recipe, with the reason CIFAR-10 was not found.

    Args:
        mode: the training mode (baseline, tsd, ssd, tssd, s2w, w2s).
        t_student: T_s.
        t_teacher: T_t.
        seed: the training seed.
        fast: the digits with the short-run `quick` recipe for one epoch (default: `fast_mode()`).

    Returns:
        The validated config.
    """
    fast = fast_mode() if fast is None else fast
    data, why_not = offline_default("cifar10")
    name, size, say = FAST_RECIPE if fast else CIFAR_RECIPE if data.dataset == "cifar10" else DIGITS_RECIPE
    print(say.format(why=why_not))
    if fast and data.dataset == "cifar10":  # on disk, and left there on purpose: say so
        print(FOUND_BUT_FAST)
    settings = {
        "distill.mode": mode,
        "distill.t_student": t_student,
        "distill.t_teacher": t_teacher,
        "train.seed": seed,
    }
    return validate(preset(name).replace(**size, **settings))


def lesson_runs_dir(lesson: str, *, temporary: bool | None = None) -> Path:
    """Where a lesson keeps its run folders.

    Args:
        lesson: the lesson's folder name ("lesson01", ...).
        temporary: a new empty folder, removed when Python exits (default: `fast_mode()`).

    Returns:
        The temporary folder, or `$TSSD_RUNS_DIR/<lesson>`, else `../runs/<lesson>`: the project's runs/
        seen from notebooks/, the folder the dashboard lists.
    """
    if fast_mode() if temporary is None else temporary:
        path = Path(tempfile.mkdtemp(prefix=f"tssd-{lesson}-"))
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        return path
    return Path(os.environ.get("TSSD_RUNS_DIR") or "../runs") / lesson


def train_or_read(
    cfg: TSSDConfig, root: str | os.PathLike, observers: Iterable[Observer] = (), *, dataset: Dataset | None = None
) -> RunFolder:
    """The run folder of `cfg` under `root`, trained to its end.

    Read when it is done, continued from its last checkpoint when it was stopped, trained from the start
    otherwise. Its name is the mode and a hash of the whole config, so a changed setting trains into a new
    folder and the old run is kept. Trains in this process (`fit`).

    Args:
        cfg: the run's config.
        root: the lesson's runs folder (`lesson_runs_dir`).
        observers: listen to the training (a progress bar, a live figure).
        dataset: the loaded dataset, to spare loading it again.

    Returns:
        The finished run folder.

    Raises:
        RuntimeError: another process is training that folder.
    """
    cfg = validate(cfg)
    run = _run_folder(cfg, root)
    state = run.status()["state"]
    if state == "done":
        print(f"{cfg.distill.mode}: already trained in {run.path}, reading it")
        return run
    if state == "running":
        raise RuntimeError(f"{run.path} is being trained by process {run.status().get('pid')}")
    # A stopped run continues from last.pt; one stopped before its first checkpoint starts clean (fit).
    resume = run.exists()
    print(f"{cfg.distill.mode}: {'continuing the stopped run' if resume else 'training'} in {run.path}")
    fit(cfg, observers, run_dir=run.path, resume=resume, dataset=dataset)
    return run


def _run_folder(cfg: TSSDConfig, root: str | os.PathLike) -> RunFolder:
    """`root/<mode>-<the first 8 hex digits of the config's SHA-256>`."""
    return RunFolder(Path(root) / f"{cfg.distill.mode}-{hashlib.sha256(cfg.to_json().encode()).hexdigest()[:8]}")


def runs_summary(runs: Mapping[str, RunFolder]) -> dict[str, Any]:
    """Finished run folders, one seed each, in the shape of a sweep summary's main table.

    Args:
        runs: name -> finished run folder.

    Returns:
        {"main": {"epochs": rows, "time": []}} as in `summary.json` of `python -m tssd_viz sweep`: per run its
        mode, T_s, test accuracy at T_s, teacher margin and train-test gap, each [mean, std] with std None
        (one seed), and seconds per epoch. What `race_rows` reads.
    """
    rows = []
    for run in runs.values():
        d = run.config().distill
        records = run.metrics()  # metrics.jsonl read once; each quantity below is a filter of it
        test, train = final_accuracy(records).get(d.t_student), final_accuracy(records, "train").get(d.t_student)
        latest = {r.get("kind"): r for r in records}  # the last record of each kind
        margin = latest.get("analysis", {}).get("teacher_margin")  # None: baseline, or an older run
        gap = train - test if train is not None and test is not None else None
        last = latest.get("epoch")  # wall_s: seconds in training steps, over all epochs so far
        rows.append(
            {
                "mode": d.mode,
                "t_student": d.t_student,
                "n": 1,
                "acc": [test, None],
                "acc_by_seed": {run.config().train.seed: test},
                "teacher_margin": None if margin is None else [margin, None],
                "gap": None if gap is None else [gap, None],
                "epoch_s": last["wall_s"] / last["epoch"] if last else None,
            }
        )
    return {"main": {"epochs": rows, "time": []}}


def race_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A sweep summary's main table as flat rows, equal epochs first, then equal time.

    Args:
        summary: a sweep's `summary.json` (or `runs_summary`).

    Returns:
        Rows of budget, mode, t_student, seeds, acc and acc_std (test accuracy at T_s over seeds),
        vs_baseline (difference of mean accuracy to the baseline row of the same budget and T_s; None for the
        baseline or without one), noise (two standard errors of the mean per-seed difference,
        `tssd_viz.stats.paired`; None with fewer than two seeds in common), teacher_margin and gap (means;
        None where not recorded), epoch_s (mean seconds of training per epoch), verdict (`Paired.verdict`
        against that baseline; None for the baseline or without one). Accuracies are fractions.
    """
    rows = []
    for budget in ("epochs", "time"):
        table = (summary.get("main") or {}).get(budget) or []
        baselines = {r["t_student"]: r for r in table if r["mode"] == "baseline"}
        for r in table:
            (acc, std), b = r["acc"], baselines.get(r["t_student"])
            versus = noise = None
            if b is not None and b is not r:
                versus = acc - b["acc"][0]
                noise = paired_difference(r, b).two_se  # 2 SE of the per-seed differences (None: under 2 seeds)
            rows.append(
                {
                    "budget": budget,
                    "mode": r["mode"],
                    "t_student": r["t_student"],
                    "seeds": r["n"],
                    "acc": acc,
                    "acc_std": std,
                    "vs_baseline": versus,
                    "noise": noise,
                    "teacher_margin": (r.get("teacher_margin") or [None])[0],
                    "gap": (r.get("gap") or [None])[0],
                    "epoch_s": r.get("epoch_s"),
                    "verdict": None if b is None or b is r else paired_difference(r, b).verdict(),
                }
            )
    return rows
