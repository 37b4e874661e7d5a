"""The grid: which runs a sweep trains, as a deterministic list of named cells."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import MODES, TSSDConfig

GRIDS = ("main", "ablations", "all", "race", "events", "controls", "race-controls")
# The classroom grid's modes (main); the race adds the strong/weak modes, which distil inside the T_s
# window: all six at RACE_TS, and at RACE_EXIT_TS the baseline and the strong/weak modes, for early exit.
CLASSROOM_MODES = ("baseline", "tsd", "ssd", "tssd")
RACE_TS = 2
RACE_EXIT_TS = 4
RACE_EXIT_MODES = ("baseline", "s2w", "w2s")
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
    "distill.alpha": lambda v: f"alpha{v:g}",
    "distill.beta": lambda v: f"beta{v:g}",
    "distill.kd_temperature": lambda v: f"temp{v:g}",
    "distill.tsd_pass": lambda v: f"{v}pass",
    "distill.teacher_ce": lambda v: "teacherce" if v else "noteacherce",
    "distill.ssd_teacher": lambda v: f"ssd{v}",
}
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "digits": 1_437, "event_digits": 1_437}
TEST_SIZES = {"cifar10": 10_000, "cifar100": 10_000, "digits": 360, "event_digits": 360}


class SweepError(RuntimeError):
    """The sweep cannot go on (a run folder that holds another config, a second sweep in the folder)."""


@dataclass(frozen=True)
class Cell:
    """One run of the grid. `budget` is "epochs" or "time"; `factor` the ablated field or None.

    Controlled experiments (sweep/arms.py) also name the `arm` and the `regime` a run belongs to, and an
    equal-time arm the cell whose measured training seconds become its budget (`match`, same seed)."""

    name: str
    cfg: TSSDConfig
    budget: str
    factor: str | None
    arm: str = ""
    regime: str | None = None
    match: str | None = None

    @property
    def meta(self) -> dict[str, Any]:
        d = self.cfg.distill
        meta = {
            "name": self.name,
            "budget": self.budget,
            "factor": self.factor,
            "mode": d.mode,
            "t_student": d.t_student,
            "t_teacher": d.t_teacher,
            "seed": self.cfg.train.seed,
        }
        if self.arm:
            meta.update(arm=self.arm, regime=self.regime, match=self.match)
        return meta


def setting_text(value: Any) -> str:
    """A config value as folder names and tables show it: on/off for a switch, %g for a float."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def cell_name(cfg: TSSDConfig, base: TSSDConfig, budget: str) -> str:
    """`<mode>-ts<T_s>-tt<T_t>[-<ablated field>...]-s<seed>-<budget>`, naming the fields that differ from `base`."""
    d, b = cfg.distill, base.distill
    diffs = [
        short(getattr(d, k.split(".")[1]))
        for k, short in SHORT.items()
        if getattr(d, k.split(".")[1]) != getattr(b, k.split(".")[1])
    ]
    return "-".join([d.mode, f"ts{d.t_student}", f"tt{d.t_teacher}", *diffs, f"s{cfg.train.seed}", budget])


def expand_grid(
    grid: str, base: TSSDConfig, *, seeds: int = 3, ablation_seeds: int = 1, budget_s: float | None = None
) -> list[Cell]:
    """The grid's cells in the order they run: equal-epoch main cells (seed by seed, so a partial
    sweep has whole seeds), equal-time cells, then ablations. Deterministic; no duplicate names.

    `race`: every mode at T_s = RACE_TS, equal epochs and equal time, plus RACE_EXIT_MODES at
    T_s = RACE_EXIT_TS (equal epochs), seed by seed.

    Equal-time cells get `train.time_budget_s = budget_s` when given, else 0 (resolved at run time
    from the baseline equal-epoch runs, `measured_budget`).
    """
    if grid not in GRIDS:
        raise ValueError(f"grid {grid!r} is not one of {', '.join(GRIDS)}")
    if grid not in ("main", "ablations", "all", "race"):  # the others have grids of their own (sweep/plan.py)
        raise ValueError(f"grid {grid!r} is not expanded here")
    cells: dict[str, Cell] = {}

    def add(cfg: TSSDConfig, budget: str, factor: str | None) -> None:
        if budget == "time":
            cfg = cfg.replace(
                **{"train.epochs": cfg.train.epochs * EPOCH_CAP_FACTOR, "train.time_budget_s": float(budget_s or 0.0)}
            )
        name = cell_name(cfg, base, budget)
        cells.setdefault(name, Cell(name, cfg, budget, factor))

    def main_cfg(mode: str, ts: int, seed: int) -> TSSDConfig:
        return base.replace(
            **{"distill.mode": mode, "distill.t_student": ts, "distill.t_teacher": 2 * ts, "train.seed": seed}
        )

    if grid in ("main", "all"):
        for budget in ("epochs", "time"):
            for seed in range(seeds):
                for ts in (1, 2):
                    for mode in CLASSROOM_MODES:
                        add(main_cfg(mode, ts, seed), budget, None)
    if grid == "race":
        for seed in range(seeds):
            for mode in MODES:
                add(main_cfg(mode, RACE_TS, seed), "epochs", None)
            for mode in RACE_EXIT_MODES:
                add(main_cfg(mode, RACE_EXIT_TS, seed), "epochs", None)
        for seed in range(seeds):
            for mode in MODES:
                add(main_cfg(mode, RACE_TS, seed), "time", None)
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
