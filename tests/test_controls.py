"""Controlled experiments: arms and their controls, the controls grid, matched equal-time runs, the table."""

import json
import os
import subprocess
import sys

import pytest

from tssd_viz import RunFolder
from tssd_viz.presets import preset
from tssd_viz.sweep import (
    CONTROL_ARMS,
    REGIMES,
    SWEEP_DEFAULTS,
    ArmError,
    control_cells,
    parse_arms,
    render_controls,
    summarize_controls,
    twin,
)
from tssd_viz.sweep.arms import NO_KL_SETTINGS
from tssd_viz.validation import validate

EVENTS = preset("events").replace(**SWEEP_DEFAULTS)


def test_each_twin_differs_from_its_mode_in_the_distillation_weight_alone():
    base = preset("digits")
    for mode, settings in NO_KL_SETTINGS.items():
        arm, plain = twin(mode), base.replace(**{"distill.mode": mode, "distill.t_student": 2})
        cfg = arm.config(plain)
        d, p = cfg.to_dict(), plain.to_dict()
        changed = {f"{s}.{k}" for s in d for k in d[s] if d[s][k] != p[s][k]}
        assert changed == set(settings) and all(v == 0.0 for v in settings.values()), mode
        assert arm.name == f"{mode}·noKL" and arm.slug == f"{mode}.noKL"
    with pytest.raises(ArmError, match="no distillation term"):
        twin("baseline")


def test_parse_arms_matches_equal_time_to_the_first_distilling_arm():
    arms = parse_arms(["baseline", "tsd.noKL", "tssd", "tsd", "baseline·equal-time"])
    assert [a.name for a in arms] == ["baseline", "tsd·noKL", "tssd", "tsd", "baseline·equal-time"]
    assert arms[-1].match == "tssd" and arms[-1].mode == "baseline"
    for bad, message in (
        (["baseline", "baseline·equal-time"], "distilling arm"),
        (["tsd", "tsd"], "named twice"),
        (["tsd·slow"], "neither"),
        (["teacher"], "not one of"),
    ):
        with pytest.raises(ArmError, match=message):
            parse_arms(bad)


def test_the_controls_grid_is_balanced_seed_by_seed_and_valid():
    cells = control_cells(EVENTS, seeds=2)
    per_seed = len(cells) // 2
    # every regime has every arm, except w2s where T_s = 1
    assert per_seed == len(REGIMES) * len(CONTROL_ARMS) - 1
    assert [c.cfg.train.seed for c in cells] == [0] * per_seed + [1] * per_seed
    for c in cells:
        validate(c.cfg)
    by_name = {c.name: c for c in cells}
    timed = by_name["baseline.equal-time-noise30-s1"]
    assert timed.match == "tsd-noise30-s1" and timed.budget == "time" and timed.cfg.data.label_noise == 0.3
    assert timed.cfg.train.epochs == 4 * EVENTS.train.epochs  # a cap out of reach: the clock stops it
    names = [c.name for c in cells]
    assert all(names.index(c.match) < names.index(c.name) for c in cells if c.match)  # its match starts first
    assert by_name["tsd.noKL-ts1-s0"].cfg.distill.alpha == 0.0 and by_name["tsd-ts1-s0"].cfg.distill.t_student == 1
    assert by_name["baseline-e8-s0"].cfg.train.epochs == 8


def _record(runs, name, arm, regime, seed, acc, mode="baseline"):
    """A finished run folder as a sweep leaves it (config, cell.json, records), with accuracy `acc` at T_s = 2."""
    cfg = EVENTS.replace(**{"distill.mode": mode, "train.seed": seed})
    run = RunFolder(runs / name)
    run.prepare(cfg)
    cell = {"name": name, "budget": "epochs", "factor": None, "mode": mode, "t_student": 2, "t_teacher": 4}
    (run.path / "cell.json").write_text(json.dumps({**cell, "seed": seed, "arm": arm, "regime": regime}))
    run.append_metric({"kind": "epoch", "step": 10, "epoch": 1, "wall_s": 4.0, "complete": True})
    for t, a in ((1, acc - 0.1), (2, acc)):
        run.append_metric({"kind": "eval", "step": 10, "epoch": 1, "wall_s": 4.0, "split": "test", "t": t, "acc": a})
    run.set_status("done", "finished")


def test_the_table_pairs_by_seed_and_computes_its_verdicts(tmp_path):
    runs = tmp_path / "runs"
    # tsd is 2 points above its twin on every seed and 3 above the baseline; the equal-time baseline ties tsd
    for s in range(5):
        base = 0.90 + 0.01 * s  # seed noise that pairing cancels
        _record(runs, f"baseline-ref-s{s}", "baseline", "ref", s, base)
        _record(runs, f"tsd-ref-s{s}", "tsd", "ref", s, base + 0.03, "tsd")
        _record(runs, f"tsd.noKL-ref-s{s}", "tsd·noKL", "ref", s, base + 0.01 + 0.001 * (s % 2), "tsd")
        _record(runs, f"baseline.equal-time-ref-s{s}", "baseline·equal-time", "ref", s, base + 0.03 + (s - 2) / 1000)
    summary = summarize_controls(runs)
    text = render_controls(summary)
    assert "| reference | tsd | 95.0 ± 1.6 | +3.0 (±0.0) 5/5 |" in text
    # by hand: tsd - twin = 0.02 - 0.001 (s % 2) -> +2.0 points, sd 0.00055 -> 2 SE 0.0005 (±0.0)
    kl = "the KL term (`tsd` vs `tsd·noKL`): +2.0 points (±0.0, 2 SE over 5 seeds; higher on 5 of 5): a gain beyond"
    # tsd - equal-time = +2, +1, 0, -1, -2 thousandths: mean 0, sd sqrt(10e-6 / 4) = 0.00158, 2 SE 0.0014 (±0.1)
    timed = (
        "`tsd` vs `baseline·equal-time`: +0.0 points (±0.1, 2 SE over 5 seeds; higher on 2 of 5, equal on 1): inside"
    )
    assert kl in text and timed in text
    # the summary that opens the section, from the same comparisons
    assert text.startswith("In this regime no KL term pays beyond both its no-KL twin and the equal-time baseline")
    first = "- The KL term (`tsd` vs `tsd·noKL`, the only difference between them): +2.0 (±0.0) in reference"
    assert first + "; beyond the seed noise." in text
    assert "+0.0 (±0.1) in reference; inside the seed noise." in text  # equal time
    assert "1 regimes" not in text


def test_a_controls_sweep_matches_the_equal_time_baseline_to_its_arm(tmp_path):
    sweep_dir = tmp_path / "controls"
    tiny = ["--data.limit-train", "64", "--data.limit-test", "32", "--model.width", "0.25", "--train.epochs", "1"]
    only = "tsd-ref-s0,baseline.equal-time-ref-s0"
    args = ["sweep", "--grid", "controls", "--preset", "events", "--seeds", "1", "--only", only, *tiny]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.run(
        [sys.executable, "-m", "tssd_viz", *args, "--sweep-dir", str(sweep_dir), "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=540,
        env=env,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    tsd, timed = (
        RunFolder(sweep_dir / "runs" / "tsd-ref-s0"),
        RunFolder(sweep_dir / "runs" / "baseline.equal-time-ref-s0"),
    )
    assert tsd.status()["state"] == timed.status()["state"] == "done"
    # two at a time, yet the equal-time run waited for its match and got its measured training seconds
    assert timed.config().train.time_budget_s == pytest.approx(tsd.metrics("epoch")[-1]["wall_s"], abs=0.06)
    cell = json.loads((timed.path / "cell.json").read_text())
    assert (cell["arm"], cell["match"], cell["regime"]) == ("baseline·equal-time", "tsd-ref-s0", "ref")
    assert "| reference | baseline·equal-time |" in (sweep_dir / "summary.md").read_text()


def test_the_race_controls_grid_is_the_race_at_ts2_with_both_controls():
    from tssd_viz.sweep import expand

    cells = expand("race-controls", preset("classroom").replace(**SWEEP_DEFAULTS), seeds=3)
    arms = [c.arm for c in cells if c.cfg.train.seed == 0]
    assert arms == ["baseline", "tsd", "tsd·noKL", "ssd", "tssd", "s2w", "w2s", "baseline·equal-time"]
    assert len(cells) == 24 and {c.cfg.distill.t_student for c in cells} == {2}
    assert [c.match for c in cells if c.match] == ["tsd-ref-s0", "tsd-ref-s1", "tsd-ref-s2"]
    for c in cells:
        validate(c.cfg)
