"""The config fields the sidebar form shows: the session-state key of each widget, and its bounds.

Every widget's value lives in session state under `cfg_<field>`, so a starting point fills them all
(`fill`) and the form reads them back in the config's own types (`cast`). A number input's bounds that
are the library's come from `tssd_viz.validation.LIMITS` (`bounds`, `limit`), so the form and
`validate()` never disagree about them.
"""

from __future__ import annotations

from typing import Any

from tssd_viz import TSSDConfig
from tssd_viz.validation import LIMITS

FIELDS = (  # the fields the form shows, by dotted name; widget key: cfg_<name>
    "distill.mode",
    "distill.t_student",
    "distill.t_teacher",
    "distill.alpha",
    "distill.beta",
    "distill.kd_temperature",
    "distill.tsd_pass",
    "distill.detach_teacher",
    "distill.teacher_ce",
    "distill.ssd_teacher",
    "distill.weak_ce",
    "distill.sw_weight",
    "distill.sw_variant",
    "model.arch",
    "model.width",
    "model.aux_stage",
    "model.tau",
    "model.threshold",
    "model.detach_reset",
    "data.dataset",
    "data.root",
    "data.windowing",
    "data.limit_train",
    "data.batch_size",
    "train.epochs",
    "train.time_budget_s",
    "train.seed",
    "train.device",
    "train.optimizer",
    "train.lr",
    "train.log_every",
)
PERSIST = dict(persist_state="session")


def key(dotted: str) -> str:
    return "cfg_" + dotted.split(".")[1]


def _values(cfg: TSSDConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    return {key(f): d[f.split(".")[0]][f.split(".")[1]] for f in FIELDS}


def fill(ss, cfg: TSSDConfig) -> None:
    """Set every field's widget to its value in `cfg` (a starting point's callback)."""
    for k, v in _values(cfg).items():
        ss[k] = v


def cast(dotted: str, value: Any) -> Any:
    """A widget's value in the type of the config field it sets."""
    default = getattr(getattr(TSSDConfig(), dotted.split(".")[0]), dotted.split(".")[1])
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, (int, float)) and value is not None:
        return type(default)(value)
    return "" if value is None else value


def limit(dotted: str, end: str, kind: type) -> int | float:
    """The `lo` or `hi` end of the field's range in LIMITS, as a `kind` (int or float): a number input
    refuses bounds whose type differs from its step's. Only for a closed end: an open one is not allowed."""
    return kind(getattr(LIMITS[dotted], end))


def bounds(dotted: str, kind: type) -> dict[str, int | float]:
    """A number input's `min_value` and `max_value`: the field's whole range in LIMITS, as a `kind`."""
    return {"min_value": limit(dotted, "lo", kind), "max_value": limit(dotted, "hi", kind)}
