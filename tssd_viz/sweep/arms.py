"""Arms of a controlled experiment: a mode, its no-distillation twin, and a baseline given equal time.

A distilling mode changes two things at once: it adds a KL term (the teacher), and it adds what the
teacher needs (tsd and tssd run a longer T_t window that also gets the task loss; tssd and ssd train a
weak head). To see what the teacher itself contributes, every distilling mode has two controls:

- its **no-distillation twin** `<mode>·noKL`: the same losses with the distillation term's weight at 0
  (α = 0 for tsd, β = 0 for ssd, both for tssd, λ = 0 for s2w / w2s), so that the twin and the mode
  differ in the KL term alone;
- **`baseline·equal-time`**: the baseline trained for the distilling arm's measured training seconds
  (same seed) instead of for its epochs, so that the distilling arm's extra cost buys the baseline
  more epochs instead.

An arm's name is what tables, pages and cell.json show; run-folder names use `slug()` (ASCII).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import MODES, TSSDConfig

SEP = "·"
NO_KL, EQUAL_TIME = "noKL", "equal-time"
# The weights that switch each mode's distillation term off, leaving every other loss in place.
NO_KL_SETTINGS: dict[str, dict[str, float]] = {
    "tsd": {"distill.alpha": 0.0},
    "ssd": {"distill.beta": 0.0},
    "tssd": {"distill.alpha": 0.0, "distill.beta": 0.0},
    "s2w": {"distill.sw_weight": 0.0},
    "w2s": {"distill.sw_weight": 0.0},
}


class ArmError(ValueError):
    """An arm name or list that cannot be run (one line)."""


@dataclass(frozen=True)
class Arm:
    """One arm: `name` as shown, the `mode` it trains, dotted config `settings` on top of the base, and for an
    equal-time arm the name of the arm whose training seconds it gets (`match`)."""

    name: str
    mode: str
    settings: dict[str, Any] = field(default_factory=dict, hash=False)
    match: str | None = None

    @property
    def equal_time(self) -> bool:
        return self.match is not None

    @property
    def slug(self) -> str:
        """The name for a run folder: `tsd.noKL`, `baseline.equal-time`."""
        return self.name.replace(SEP, ".")

    def config(self, base: TSSDConfig) -> TSSDConfig:
        """The arm's config from `base` (an equal-time arm's budget is set when its match has run)."""
        return base.replace(**{"distill.mode": self.mode, **self.settings})


def twin(mode: str) -> Arm:
    """`<mode>·noKL`: `mode` with its distillation weight(s) at 0."""
    if mode not in NO_KL_SETTINGS:
        raise ArmError(f"{mode!r} has no distillation term to switch off (twins exist for {', '.join(NO_KL_SETTINGS)})")
    return Arm(f"{mode}{SEP}{NO_KL}", mode, dict(NO_KL_SETTINGS[mode]))


def parse_arms(names: list[str] | tuple[str, ...]) -> list[Arm]:
    """Arms from names: a mode (`tsd`), a twin (`tsd·noKL`, or `tsd.noKL`) or `baseline·equal-time`, which
    gets the training seconds of the first distilling arm in the list (not a twin)."""
    arms: list[Arm] = []
    for raw in names:
        name = raw.replace(".", SEP)
        mode, _, suffix = name.partition(SEP)
        if mode not in MODES:
            raise ArmError(f"arm {raw!r}: {mode!r} is not one of {', '.join(MODES)}")
        if suffix == NO_KL:
            arms.append(twin(mode))
        elif suffix == EQUAL_TIME:
            arms.append(Arm(name, mode, {}, match=""))  # the match is filled in below
        elif suffix:
            raise ArmError(f"arm {raw!r}: {suffix!r} is neither {NO_KL} nor {EQUAL_TIME}")
        else:
            arms.append(Arm(name, mode))
    if len({a.name for a in arms}) != len(arms):
        raise ArmError(f"arms {', '.join(names)}: an arm is named twice")
    distilling = next((a.name for a in arms if a.mode != "baseline" and not a.settings and not a.equal_time), None)
    if any(a.equal_time for a in arms) and distilling is None:
        raise ArmError(f"an {EQUAL_TIME} arm needs a distilling arm to take its training time from")
    return [Arm(a.name, a.mode, a.settings, distilling) if a.equal_time else a for a in arms]
