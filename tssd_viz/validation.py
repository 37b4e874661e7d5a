"""The allowed values of every config field and the one check of a whole configuration (SPEC §8).

`LIMITS` holds the range of each numeric field and `CHOICES` the values of each switch (the command
line reads its bounds from here too). `validate()` checks a `TSSDConfig` field by field
(type, finiteness, range, choices) and then the fields against each other, raising a one-line
`ConfigError` that names the field; it is the only place a configuration's values are judged.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .archs import num_stages
from .config import (
    ALLOCATORS,
    ARCHS,
    BN_STATS,
    BN_WINDOWS,
    DATASETS,
    DEVICES,
    EVENT_DATASETS,
    MODES,
    OPTIMIZERS,
    SCHEDULES,
    SSD_TEACHERS,
    SW_VARIANTS,
    TSD_PASSES,
    WINDOWINGS,
    ConfigError,
    TSSDConfig,
    shown,
)


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric field: lo to hi, each end included unless it is open."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def check(self, name: str, value: float) -> None:
        if value < self.lo or (self.lo_open and value == self.lo):
            raise ConfigError(name, f"must be {'>' if self.lo_open else '>='} {self.lo}, got {shown(value)}")
        if value > self.hi or (self.hi_open and value == self.hi):
            raise ConfigError(name, f"must be {'<' if self.hi_open else '<='} {self.hi}, got {shown(value)}")


# The range of every numeric field. Upper bounds stop a typo from training for ever, allocating the
# machine away or overflowing a seed; each is well beyond any run this project makes, and each field's
# docstring repeats it (as does the README). model.aux_stage depends on the arch and distill.t_teacher
# on t_student: validate() checks those two against each other.
LIMITS: dict[str, Range] = {
    "model.width": Range(0, 4, lo_open=True),
    "model.tau": Range(1, 1000, lo_open=True),  # decay 1 - 1/tau must lie in (0, 1)
    "model.threshold": Range(0, 100, lo_open=True),
    "model.surrogate_width": Range(0.01, 100),  # the surrogate gradient is 1/width
    "distill.t_student": Range(1, 63),
    "distill.t_teacher": Range(2, 64),  # memory and time grow with T_t
    "distill.alpha": Range(0, 100),
    "distill.beta": Range(0, 100),
    "distill.sw_weight": Range(0, 100),
    "distill.kd_temperature": Range(0.1, 100),  # logits are divided by it
    "data.batch_size": Range(1, 65536),
    "data.limit_train": Range(0, 10**9),
    "data.limit_test": Range(0, 10**9),
    "data.label_noise": Range(0, 1, hi_open=True),
    "train.epochs": Range(1, 10_000),
    "train.time_budget_s": Range(0, 30 * 86400),
    "train.lr": Range(0, 10, lo_open=True),
    "train.momentum": Range(0, 1, hi_open=True),
    "train.weight_decay": Range(0, 1),
    "train.warmup": Range(0, 1, hi_open=True),
    "train.label_smoothing": Range(0, 1, hi_open=True),
    "train.seed": Range(0, 2**32 - 1),
    "train.bn_batches": Range(1, 1000),
    "train.log_every": Range(1, 10**6),
    "train.eval_every": Range(0, 10_000),
    "train.probe_every": Range(0, 10_000),
    "train.probe_images": Range(1, 64),
    "train.threads": Range(0, 256),  # 100,000 threads crashed the process
    "train.dist_timeout_s": Range(10, 86400),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "model.arch": ARCHS,
    "distill.mode": MODES,
    "distill.tsd_pass": TSD_PASSES,
    "distill.ssd_teacher": SSD_TEACHERS,
    "distill.sw_variant": SW_VARIANTS,
    "data.dataset": DATASETS,
    "data.windowing": WINDOWINGS,
    "train.optimizer": OPTIMIZERS,
    "train.schedule": SCHEDULES,
    "train.device": DEVICES,
    "train.bn_stats": BN_STATS,
    "train.bn_window": BN_WINDOWS,
    "train.allocator": ALLOCATORS,
}


def _check_field(name: str, kind: str, value: Any) -> None:
    """Type, finiteness, range and choices of one field; `kind` is its annotation (bool, int, float, str)."""
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(name, f"must be true or false, got {shown(value)}")
    if kind == "str" and not isinstance(value, str):
        raise ConfigError(name, f"must be a string, got {shown(value)}")
    # bool is a subclass of int in Python: True is neither an integer count nor a number here.
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(name, f"must be a whole number, got {shown(value)}")
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(name, f"must be a number, got {shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(name, f"must be a finite number, got {shown(value)}")
    if name in LIMITS:
        LIMITS[name].check(name, value)
    if name in CHOICES and value not in CHOICES[name]:
        raise ConfigError(name, f"{shown(value)} is not one of {', '.join(CHOICES[name])}")


def validate(cfg: TSSDConfig) -> TSSDConfig:
    """Check every field of `cfg`.

    Each field must have its annotated type (a bool is not an int, an int is a fine float), be finite
    and lie in its `LIMITS` range or `CHOICES`; then the fields are checked against each other.

    Args:
        cfg: the configuration.

    Returns:
        `cfg`, unchanged.

    Raises:
        ConfigError: one line naming the field.
    """
    for section in dataclasses.fields(cfg):
        part = getattr(cfg, section.name)
        for f in dataclasses.fields(part):
            _check_field(f"{section.name}.{f.name}", str(f.type), getattr(part, f.name))

    m, d, data = cfg.model, cfg.distill, cfg.data
    n = num_stages(m.arch)
    if not 1 <= m.aux_stage <= n - 1:
        raise ConfigError("model.aux_stage", f"must be between 1 and {n - 1} for {m.arch}, got {shown(m.aux_stage)}")
    if d.t_teacher <= d.t_student:
        raise ConfigError("distill.t_teacher", f"must be > distill.t_student ({d.t_student}), got {d.t_teacher}")
    if d.uses_timestep_teacher and d.t_student < 2:
        raise ConfigError(
            "distill.t_student",
            f"mode {d.mode!r} distils between the timesteps of the T_s window: "
            f"it needs t_student >= 2, got {d.t_student}",
        )
    if d.tsd_pass == "continue" and (not d.detach_teacher or d.teacher_ce):
        raise ConfigError(
            "distill.tsd_pass",
            "'continue' builds no graph for the teacher's extra steps: it needs "
            "distill.detach_teacher true and distill.teacher_ce false",
        )
    if data.windowing == "whole_recording":
        if data.dataset not in EVENT_DATASETS:
            raise ConfigError("data.windowing", f"'whole_recording' bins event recordings; {data.dataset} has none")
        if cfg.train_timesteps != d.t_student and d.tsd_pass != "separate":
            raise ConfigError(
                "data.windowing",
                "'whole_recording' gives the student and the teacher different frames: it needs distill.tsd_pass "
                f"'separate', got {d.tsd_pass!r}",
            )
    if data.dataset == "folder" and not data.root:
        raise ConfigError("data.root", "dataset 'folder' needs data.root, a folder with train/ and test/")
    if "\0" in data.root:
        raise ConfigError("data.root", "must not contain a NUL character")
    return cfg
