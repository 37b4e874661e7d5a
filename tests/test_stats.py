"""The statistics helper: golden numbers worked out by hand, and properties."""

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tssd_viz.stats import MIN_SEEDS, paired, spread


def test_spread_by_hand():
    # 0.90, 0.92, 0.94: mean 0.92, deviations -0.02, 0, 0.02 -> sd = sqrt(0.0008 / 2) = 0.02; 2 SE = 0.04 / sqrt(3)
    s = spread([0.90, 0.92, 0.94])
    assert s.mean == pytest.approx(0.92)
    assert s.sd == pytest.approx(0.02)
    assert s.two_se == pytest.approx(0.04 / math.sqrt(3))  # 0.02309
    assert s.text() == "92.0 ± 2.0"
    one = spread([0.5])
    assert (one.sd, one.two_se, one.text()) == (None, None, "50.0")


def test_paired_by_hand_inside_the_noise():
    # differences in points: +1, +2, -1, +3, +0.5 (seed 0..4) -> mean 1.1; squared deviations
    # 0.01 + 0.81 + 4.41 + 3.61 + 0.36 = 9.2 -> sd sqrt(9.2 / 4) = 1.5166; 2 SE = 2 * 1.5166 / sqrt(5) = 1.3565
    ref = {s: 0.90 for s in range(5)}
    arm = {0: 0.91, 1: 0.92, 2: 0.89, 3: 0.93, 4: 0.905}
    p = paired(arm, ref)
    assert p.seeds == (0, 1, 2, 3, 4)
    assert 100 * p.mean == pytest.approx(1.1)
    assert 100 * p.two_se == pytest.approx(1.3565, abs=1e-4)
    assert (p.wins, p.ties, p.losses) == (4, 0, 1)
    assert not p.beyond_noise
    assert p.numbers() == "+1.1 (±1.4)"
    assert p.verdict() == "+1.1 points (±1.4, 2 SE over 5 seeds; higher on 4 of 5): inside the seed noise"


def test_paired_by_hand_beyond_the_noise():
    # -2, -3, -2, -3, -2.5 points: mean -2.5, sd sqrt((0.25*4 + 0) / 4) = 0.5, 2 SE = 1 / sqrt(5) = 0.447
    ref = {s: 0.95 for s in range(5)}
    arm = {0: 0.93, 1: 0.92, 2: 0.93, 3: 0.92, 4: 0.925}
    p = paired(arm, ref)
    assert 100 * p.two_se == pytest.approx(2 * 0.5 / math.sqrt(5))
    assert p.beyond_noise
    assert p.verdict() == "-2.5 points (±0.4, 2 SE over 5 seeds; higher on 0 of 5): a loss beyond the seed noise"


def test_paired_uses_common_seeds_only_and_says_too_few():
    p = paired({0: 0.9, 1: 0.9, 2: 0.95}, {1: 0.85, 2: 0.85, 7: 0.1})
    assert p.seeds == (1, 2)
    assert p.diffs == pytest.approx((0.05, 0.10))
    assert p.verdict().endswith(f"fewer than {MIN_SEEDS} seeds, not a claim")
    assert "equal on 1" in paired({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.5}).verdict()
    one = "+10.0 points on one seed (seed 3): no spread to judge it by, not a claim"
    assert paired({3: 0.9}, {3: 0.8}).verdict() == one
    assert paired({}, {1: 0.5}).verdict() == "no seed in common: nothing to compare"


accs = st.floats(min_value=0, max_value=1, allow_nan=False)


@given(st.lists(st.tuples(accs, accs), min_size=2, max_size=12))
def test_paired_matches_an_independent_computation(pairs):
    arm = {s: a for s, (a, _) in enumerate(pairs)}
    ref = {s: b for s, (_, b) in enumerate(pairs)}
    p = paired(arm, ref)
    diffs = [a - b for a, b in pairs]
    assert p.mean == pytest.approx(statistics.mean(diffs), abs=1e-12)
    assert p.two_se == pytest.approx(2 * statistics.stdev(diffs) / math.sqrt(len(diffs)), abs=1e-12)
    assert p.wins + p.ties + p.losses == len(pairs)
    # swapping the arms mirrors the verdict: same noise, opposite sign
    q = paired(ref, arm)
    assert q.mean == pytest.approx(-p.mean, abs=1e-12) and q.beyond_noise == p.beyond_noise
    assert (q.wins, q.losses) == (p.losses, p.wins)


def test_signed_never_prints_minus_zero():
    from tssd_viz.stats import signed

    assert (signed(-0.0004), signed(0.04), signed(-0.05), signed(1.25, 2)) == ("+0.0", "+0.0", "-0.1", "+1.25")
