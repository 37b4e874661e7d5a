"""Every starting point the dashboard offers on the offline digits learns: >= 90% test accuracy at T_s,
in every mode, for seeds 0, 1 and 2 (chance is 10%). Each is trained exactly as the app would start it,
with only the mode and the seed changed, as a student would change them in the form."""

import sys
from pathlib import Path

import pytest

from tssd_viz import History, fit, load_dataset
from tssd_viz.config import MODES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from dashboard.config_form import STARTS  # noqa: E402  (the app's own list of starting points)

DIGIT_STARTS = [name for name, (_, make) in STARTS.items() if make().data.dataset == "digits"]


def test_the_app_offers_digits_starting_points():
    assert {"quick", "digits"} <= set(DIGIT_STARTS)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(STARTS["quick"][1]().data)


@pytest.mark.parametrize("start", DIGIT_STARTS)
@pytest.mark.parametrize("mode", MODES)
def test_starting_point_learns_in_every_mode_and_seed(start, mode, digits):
    base = STARTS[start][1]()
    for seed in (0, 1, 2):
        cfg = base.replace(**{"distill.mode": mode, "train.seed": seed})
        hist = History()
        result = fit(cfg, [hist], dataset=digits)
        acc = result.test_acc[cfg.distill.t_student]
        assert acc >= 0.90, f"{start} · {mode} · seed {seed}: {acc:.1%} at T_s"
        assert hist.epochs[-1]["test_acc"] == pytest.approx(acc)  # the epoch line reports the same number
