"""Statistics over seeds: the one place where a result becomes a sentence (SPEC §14).

Every table, lesson and page that says one arm beats, ties or costs another goes through here, so
that they all read the same numbers the same way:

- `spread(values)`: mean, sample standard deviation (n - 1) and two standard errors of the mean.
- `paired(arm, reference)`: the per-seed differences arm - reference over the seeds both have (same
  seed: same initial weights and data order, so the seed-to-seed noise that both share cancels), with
  their mean, two standard errors of that mean and how many seeds went up, stayed equal or went down.
- `Paired.verdict()`: the sentence, e.g. "+1.1 points (±1.2, 2 SE over 5 seeds; higher on 4 of 5):
  inside the seed noise". Beyond the noise means |mean| > 2 SE; fewer than `MIN_SEEDS` seeds is
  always said to be too few for a claim.

Accuracies come in as fractions (0.953) and are shown in points (95.3). Two standard errors (rather
than a t-quantile) is the convention of the README's tables: with 5 seeds the 95 % t-interval is
about 1.4 times wider, so "beyond 2 SE" is a lenient bar, and the sentence says how many seeds agree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MIN_SEEDS = 5  # no claim rests on fewer seeds (README, DEVELOPERS' standards)
POINTS = 100.0  # an accuracy fraction in points


def signed(value: float, digits: int = 1) -> str:
    """`+1.1` / `-0.4`; a value that rounds to zero is `+0.0`, never `-0.0`."""
    text = f"{value:+.{digits}f}"
    return "+" + text[1:] if float(text) == 0 else text


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation (None for one value) and two standard errors of the mean (None likewise)."""

    mean: float
    sd: float | None
    two_se: float | None
    n: int

    def text(self, scale: float = POINTS, digits: int = 1) -> str:
        """`95.3 ± 0.7` (mean ± sd, in points by default); the mean alone for one value."""
        mean = f"{scale * self.mean:.{digits}f}"
        return mean if self.sd is None else f"{mean} ± {scale * self.sd:.{digits}f}"


def spread(values: Iterable[float]) -> Spread:
    """Mean, sample sd and 2 SE of `values` (at least one)."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("spread of no values")
    n, mean = len(xs), statistics.fmean(xs)
    if n < 2:
        return Spread(mean, None, None, n)
    sd = statistics.stdev(xs, mean)  # n - 1 in the denominator
    return Spread(mean, sd, 2 * sd / math.sqrt(n), n)


@dataclass(frozen=True)
class Paired:
    """Per-seed differences arm - reference (fractions), over the seeds both arms have, in seed order."""

    seeds: tuple[int, ...]
    diffs: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def spread(self) -> Spread:
        return spread(self.diffs)

    @property
    def mean(self) -> float:
        return self.spread.mean

    @property
    def two_se(self) -> float | None:
        """Two standard errors of the mean difference; None with fewer than two seeds."""
        return self.spread.two_se if self.n >= 2 else None

    @property
    def wins(self) -> int:
        return sum(d > 0 for d in self.diffs)

    @property
    def ties(self) -> int:
        return sum(d == 0 for d in self.diffs)

    @property
    def losses(self) -> int:
        return sum(d < 0 for d in self.diffs)

    @property
    def beyond_noise(self) -> bool:
        """The mean difference lies outside ± 2 SE (never with one seed)."""
        return self.two_se is not None and abs(self.mean) > self.two_se

    def numbers(self, scale: float = POINTS) -> str:
        """`+1.1 (±1.2)`: the mean difference in points with 2 SE in brackets (no bracket for one seed)."""
        text = signed(scale * self.mean)
        return text if self.two_se is None else f"{text} (±{scale * self.two_se:.1f})"

    def verdict(self, unit: str = "points", scale: float = POINTS) -> str:
        """One sentence computed from the differences; see the module docstring."""
        if self.n == 0:
            return "no seed in common: nothing to compare"
        mean = f"{signed(scale * self.mean)} {unit}"
        if self.n == 1:
            return f"{mean} on one seed (seed {self.seeds[0]}): no spread to judge it by, not a claim"
        counts = f"higher on {self.wins} of {self.n}" + (f", equal on {self.ties}" if self.ties else "")
        head = f"{mean} (±{scale * self.two_se:.1f}, 2 SE over {self.n} seeds; {counts})"  # type: ignore[operator]
        if not self.beyond_noise:
            judged = "inside the seed noise"
        else:
            judged = "a gain beyond the seed noise" if self.mean > 0 else "a loss beyond the seed noise"
        few = f"; fewer than {MIN_SEEDS} seeds, not a claim" if self.n < MIN_SEEDS else ""
        return f"{head}: {judged}{few}"


def paired(arm: Mapping[int, float], reference: Mapping[int, float]) -> Paired:
    """`arm` and `reference` map seed -> value (e.g. test accuracy at T_s); the differences over their common
    seeds, in seed order. Seeds only one side has are left out (a partial experiment stays paired)."""
    seeds = tuple(sorted(set(arm) & set(reference)))
    return Paired(seeds, tuple(float(arm[s]) - float(reference[s]) for s in seeds))
