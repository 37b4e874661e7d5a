"""The sweep machinery: grid expansion, resume by skipping, summaries rebuilt from run folders."""

import json
import os
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tssd_viz import RunFolder
from tssd_viz.cli.options import parse_config
from tssd_viz.config import TSSDConfig
from tssd_viz.presets import preset
from tssd_viz.sweep import (
    ABLATIONS,
    EPOCH_CAP_FACTOR,
    SWEEP_DEFAULTS,
    Cell,
    SweepError,
    accuracy_figure,
    expand,
    markers,
    render_markdown,
    rewrite_section,
    run_cell,
    select,
    summarize,
)
from tssd_viz.training import allocator
from tssd_viz.validation import validate

TINY = [
    "--preset",
    "digits",
    "--data.limit-train",
    "128",
    "--data.limit-test",
    "64",
    "--train.epochs",
    "1",
    "--model.width",
    "0.25",
    "--train.device",
    "cpu",
    "--data.batch-size",
    "64",
]
BASE = preset("digits").replace(**SWEEP_DEFAULTS)


def cli(*args, timeout=600):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tssd_viz", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )


def diff(a: TSSDConfig, b: TSSDConfig) -> set[str]:
    da, db = a.to_dict(), b.to_dict()
    return {f"{s}.{k}" for s in da for k in da[s] if da[s][k] != db[s][k]}


def test_main_grid_is_4_modes_x_2_ts_x_seeds_x_2_budgets():
    cells = expand("main", BASE, seeds=3)
    assert len(cells) == 48 and len({c.name for c in cells}) == 48
    assert cells[0].name == "baseline-ts1-tt2-s0-epochs" and cells[-1].name == "tssd-ts2-tt4-s2-time"
    for c in cells:
        d = c.cfg.distill
        assert d.t_teacher == 2 * d.t_student and c.factor is None
        assert c.name == f"{d.mode}-ts{d.t_student}-tt{d.t_teacher}-s{c.cfg.train.seed}-{c.budget}"
        allowed = {"distill.mode", "distill.t_student", "distill.t_teacher", "train.seed"}
        if c.budget == "time":
            allowed |= {"train.epochs", "train.time_budget_s"}
            assert c.cfg.train.epochs == EPOCH_CAP_FACTOR * BASE.train.epochs
        assert diff(c.cfg, BASE) <= allowed
    # the equal-epoch cells all come before the equal-time ones (their baselines give the budget)
    assert [c.budget for c in cells] == ["epochs"] * 24 + ["time"] * 24


def test_race_grid_is_six_modes_at_ts2_both_budgets_and_three_at_ts4():
    cells = expand("race", BASE, seeds=3)
    assert len(cells) == 45 and len({c.name for c in cells}) == 45
    epochs = [c for c in cells if c.budget == "epochs"]
    assert [c.budget for c in cells] == ["epochs"] * 27 + ["time"] * 18  # the budget comes from the baselines
    modes = ["baseline", "tsd", "ssd", "tssd", "s2w", "w2s"]
    assert {(c.cfg.distill.mode, c.cfg.distill.t_student) for c in epochs} == {
        *((m, 2) for m in modes),
        ("baseline", 4),
        ("s2w", 4),
        ("w2s", 4),
    }
    assert {c.cfg.distill.mode for c in cells if c.budget == "time"} == set(modes)
    for c in cells:
        validate(c.cfg)  # every cell is a valid run (T_s >= 2 for the strong/weak modes)
        assert c.cfg.distill.t_teacher == 2 * c.cfg.distill.t_student
    assert epochs[:9] == [c for c in epochs if c.cfg.train.seed == 0]  # seed by seed


def test_the_sites_race_tables_are_the_summary_of_the_committed_run_folders():
    root = Path(__file__).resolve().parents[1]
    sweep_dir = root / "results" / "cifar10-race"
    body = render_markdown(summarize(sweep_dir / "runs"), "../../results/cifar10-race/accuracy_vs_timesteps.html")
    start, end = markers("race")
    page = (root / "docs" / "results" / "cifar10.md").read_text()  # the page of the site that shows them
    section = page[page.index(start) + len(start) : page.index(end)]
    assert body.strip() in section  # typed by nobody: rebuilt from the run folders
    assert "teacher margin (points) | train − test (points)" in body and "**Early exit**" in body


def test_ablations_change_one_field_around_the_reference():
    cells = expand("ablations", BASE, ablation_seeds=1)
    reference = cells[0]
    assert reference.name == "tssd-ts1-tt2-s0-epochs" and reference.factor is None
    expected = sum(len(v) - 1 for v in ABLATIONS.values())  # every value but the reference's
    assert len(cells) == 1 + expected
    for c in cells[1:]:
        assert diff(c.cfg, reference.cfg) == {c.factor}, c.name
    names = {c.name for c in cells}
    assert {
        "tssd-ts1-tt2-alpha0.5-s0-epochs",
        "tssd-ts1-tt6-s0-epochs",
        "tssd-ts1-tt2-separatepass-s0-epochs",
        "tssd-ts1-tt2-noteacherce-s0-epochs",
        "tssd-ts1-tt2-ssdteacher-s0-epochs",
    } <= names
    # "all" shares the reference with the main grid instead of running it twice
    assert len(expand("all", BASE, seeds=3, ablation_seeds=1)) == 48 + expected


def test_budget_and_selection():
    cells = expand("main", BASE, seeds=1, budget_s=12.5)
    assert {c.cfg.train.time_budget_s for c in cells if c.budget == "time"} == {12.5}
    assert {c.cfg.train.time_budget_s for c in cells if c.budget == "epochs"} == {0.0}
    assert [c.name for c in select(cells, "baseline-ts1-*,tssd-ts2-tt4-s0-time")] == [
        "baseline-ts1-tt2-s0-epochs",
        "baseline-ts1-tt2-s0-time",
        "tssd-ts2-tt4-s0-time",
    ]


# -- summaries from planted run folders -------------------------------------------------------------------


def plant(runs_dir: Path, cell: Cell, accs: dict[int, float], epoch_s: float = 2.0) -> None:
    """A finished run folder with the given final test accuracies, as the trainer would leave it."""
    run = RunFolder(runs_dir / cell.name)
    run.prepare(cell.cfg)
    (run.path / "cell.json").write_text(json.dumps({**cell.meta, "process_s": 10.0}))
    run.append_metric(
        {"kind": "epoch", "step": 10, "epoch": 1, "wall_s": epoch_s, "epoch_s": epoch_s, "complete": True}
    )
    for t, a in accs.items():
        run.append_metric(
            {"kind": "eval", "step": 10, "epoch": 1, "wall_s": epoch_s, "split": "test", "t": t, "acc": a}
        )
    run.set_status("done", "finished")


def test_mean_and_std_over_seeds(tmp_path):
    cells = {c.name: c for c in expand("all", BASE, seeds=3)}
    planted = {0: [0.60, 0.70], 1: [0.62, 0.71], 2: [0.61, 0.75]}  # seed -> accuracy of window 1, 2
    for seed, (a1, a2) in planted.items():
        plant(tmp_path, cells[f"tssd-ts1-tt2-s{seed}-epochs"], {1: a1, 2: a2}, epoch_s=3.0 + seed)
        plant(tmp_path, cells[f"baseline-ts1-tt2-s{seed}-epochs"], {1: a1 - 0.05, 2: a2})
    plant(tmp_path, cells["tssd-ts1-tt2-alpha0.5-s0-epochs"], {1: 0.5, 2: 0.6})
    plant(tmp_path, cells["tssd-ts1-tt6-s0-epochs"], {t: 0.4 for t in range(1, 7)})
    s = summarize(tmp_path)
    tssd = next(r for r in s["main"]["epochs"] if r["mode"] == "tssd")
    assert tssd["n"] == 3 and tssd["seeds"] == [0, 1, 2]
    assert tssd["acc"][0] == pytest.approx(0.61) and tssd["acc"][1] == pytest.approx(
        statistics.stdev([0.60, 0.62, 0.61])
    )
    assert tssd["acc_by_window"][2][0] == pytest.approx(0.72)
    assert tssd["acc_by_window"][2][1] == pytest.approx(statistics.stdev([0.70, 0.71, 0.75]))
    assert tssd["epoch_s"] == pytest.approx(4.0)
    assert s["main"]["time"] == []
    alpha = s["ablations"]["distill.alpha"]
    assert [(r["value"], r["reference"], r["n"]) for r in alpha] == [(0.5, False, 1), (1.0, True, 3)]
    assert [r["value"] for r in s["ablations"]["distill.t_teacher"]] == [2, 6]
    md = render_markdown(s)
    # baseline: 0.55, 0.57, 0.56, each 0.05 under the same seed's tssd: paired, the differences have no spread
    assert "| tssd | 1 | 2 | 61.0 ± 1.0 | +5.0 (±0.0) | 4.0 | 3 |" in md
    assert "- `tssd` vs `baseline` at T_s = 1: +5.0 points (±0.0, 2 SE over 3 seeds; higher on 3 of 3)" in md
    assert "| 0.5 | 50.0 | 2.0 | 1 |" in md  # one seed: no spread to show
    assert s["totals"]["runs"] == 8


def test_unfinished_runs_are_left_out_of_the_summary(tmp_path):
    cell = expand("main", BASE, seeds=1)[0]
    plant(tmp_path, cell, {1: 0.5, 2: 0.6})
    RunFolder(tmp_path / cell.name).set_status("failed", "boom")
    assert summarize(tmp_path)["totals"]["runs"] == 0


SWEEP_JUNK = [
    ("status.json", b"\xff\xfe junk"),
    ("status.json", b"[]"),
    ("metrics.jsonl", b"1\n[]\nnull\n"),
    ("metrics.jsonl", b'{"kind": "epoch", "step": 10, "epoch": 0, "wall_s": 1.0}\n'),  # epoch 0: no steps per epoch
    ("cell.json", b"\xff junk"),
    ("cell.json", b"[]"),
    ("cell.json", b'{"mode": "tssd"}'),  # no t_student
    ("config.json", b'{"model": {"colour": 1}}'),
]


@pytest.mark.parametrize("name,junk", SWEEP_JUNK)
def test_a_summary_leaves_out_a_run_folder_it_cannot_read_with_one_line(tmp_path, capsys, name, junk):
    from tssd_viz.cli import main

    good, bad = expand("main", BASE, seeds=2)[:2]
    plant(tmp_path / "runs", good, {1: 0.5, 2: 0.6})
    plant(tmp_path / "runs", bad, {1: 0.7, 2: 0.8})
    lines_only = junk.startswith(b"1\n")  # lines that are no records are skipped: the run itself still counts
    with open(tmp_path / "runs" / bad.name / name, "ab" if lines_only else "wb") as f:
        f.write(junk)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        runs = summarize(tmp_path / "runs")["runs"]
    assert sorted(r["name"] for r in runs) == sorted([good.name] + [bad.name] * lines_only)
    assert len(said) == (not lines_only)
    assert all(bad.name in str(w.message) and "\n" not in str(w.message) for w in said)
    assert main(["sweep", "--sweep-dir", str(tmp_path), "--summarize-only"]) == 0
    out, err = capsys.readouterr()
    assert f"{1 + lines_only} finished runs summarised" in out
    lines = err.strip().splitlines()
    assert len(lines) == (not lines_only), err
    assert all(line.startswith(f"skipped {tmp_path / 'runs' / bad.name}: ") for line in lines), err


def test_readme_section_is_rewritten_and_the_rest_kept(tmp_path):
    readme = tmp_path / "README.md"
    before, after = "# Title\n\nintro ✓\n<!-- results:start -->\n", "<!-- results:end -->\n\n## Next\ntext\n"
    readme.write_text(before + "old table\n" + after)
    rewrite_section(readme, "| new | table |\n")
    assert readme.read_text() == before + "| new | table |\n" + after
    rewrite_section(readme, "second\n")
    assert readme.read_text() == before + "second\n" + after
    (tmp_path / "plain.md").write_text("no markers\n")
    with pytest.raises(SweepError, match="results:start"):
        rewrite_section(tmp_path / "plain.md", "x")


def test_a_run_folder_with_another_config_stops_the_sweep(tmp_path):
    cell = expand("main", BASE, seeds=1)[0]
    RunFolder(tmp_path / cell.name).prepare(cell.cfg.replace(**{"distill.alpha": 0.3}))
    with pytest.raises(SweepError, match="different config"):
        run_cell(cell, tmp_path, print)


# -- the command, end to end on digits --------------------------------------------------------------------

ONLY = "baseline-ts1-tt2-s0-epochs,tssd-ts1-tt2-s0-time"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("sweep")
    args = ["sweep", "--sweep-dir", sweep_dir, "--grid", "main", "--seeds", "1", "--only", ONLY, *TINY]
    # A half-finished run without a checkpoint (a killed process) must be started over, not trusted.
    cell = expand("main", parse_config(BASE, TINY[2:], "test"), seeds=1)[0]
    stale = RunFolder(sweep_dir / "runs" / cell.name)
    stale.prepare(cell.cfg)
    stale.append_metric({"kind": "step", "step": 999})
    stale.set_status("failed", "killed")
    p = cli(*args)
    assert p.returncode == 0, p.stdout + p.stderr
    return sweep_dir, args, p


def test_sweep_trains_measures_the_budget_and_summarises(swept):
    sweep_dir, _, p = swept
    runs = sweep_dir / "runs"
    assert sorted(x.name for x in runs.iterdir()) == ["baseline-ts1-tt2-s0-epochs", "tssd-ts1-tt2-s0-time"]
    base_run, timed = RunFolder(runs / "baseline-ts1-tt2-s0-epochs"), RunFolder(runs / "tssd-ts1-tt2-s0-time")
    assert base_run.status()["state"] == timed.status()["state"] == "done"
    assert all(r["step"] != 999 for r in base_run.metrics())  # the stale folder was started over
    assert not base_run.checkpoints_dir.exists() and not timed.checkpoints_dir.exists()
    # the equal-time budget is the baseline's measured training time
    assert timed.config().train.time_budget_s == pytest.approx(base_run.metrics("epoch")[-1]["wall_s"], abs=0.06)
    assert sorted(timed.final_eval()) == [1, 2]
    found = allocator.wanted("auto")  # each run trains under the fast malloc when one is installed
    assert {json.loads(r.env_path.read_text())["allocator"]["name"] for r in (base_run, timed)} == {
        found.name if found else "glibc"
    }
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert summary["totals"]["runs"] == 2 and len(summary["main"]["time"]) == 1
    assert "| baseline | 1 | 2 |" in (sweep_dir / "summary.md").read_text()
    assert (sweep_dir / "accuracy_vs_timesteps.html").exists()
    assert "tssd-ts1-tt2-s0-time" in (sweep_dir / "sweep.log").read_text()


def test_second_invocation_skips_finished_runs(swept):
    sweep_dir, args, _ = swept
    metrics = {p: p.read_bytes() for p in (sweep_dir / "runs").glob("*/metrics.jsonl")}
    p = cli(*args)
    assert p.returncode == 0, p.stderr
    assert "2 already done, 0 to train" in p.stdout
    assert {p: p.read_bytes() for p in (sweep_dir / "runs").glob("*/metrics.jsonl")} == metrics


def test_summarize_only_rebuilds_the_same_summary(swept, tmp_path):
    sweep_dir, _, _ = swept
    before = (sweep_dir / "summary.md").read_text()
    (sweep_dir / "summary.md").unlink()
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- results:start -->\n<!-- results:end -->\nbottom\n")
    p = cli("sweep", "--sweep-dir", sweep_dir, "--summarize-only", "--readme", readme)
    assert p.returncode == 0, p.stderr
    assert (sweep_dir / "summary.md").read_text() == before
    text = readme.read_text()
    assert text.startswith("top\n<!-- results:start -->\n") and text.endswith("<!-- results:end -->\nbottom\n")
    assert "| baseline | 1 | 2 |" in text and "--summarize-only" in text


def test_dry_run_lists_the_plan_with_a_cost(tmp_path):
    p = cli("sweep", "--sweep-dir", tmp_path / "s", "--dry-run", *TINY)
    assert p.returncode == 0, p.stderr
    assert "tssd-ts2-tt4-s2-time" in p.stdout and "tssd-ts1-tt6-s0-epochs" in p.stdout
    assert "62 runs; about" in p.stdout
    assert not (tmp_path / "s").exists()


def test_bad_override_is_one_line(tmp_path):
    p = cli("sweep", "--sweep-dir", tmp_path / "s", *TINY, "--distill.alpha", "-1")
    assert p.returncode == 2 and "distill.alpha" in p.stderr


def test_the_summary_figure_holds_every_seed_error_bar_on_a_percent_axis():
    # Three seeds spread 4 points around 96 %: the error bars used to run past the axis set from the means.
    row = {"mode": "tssd", "t_student": 2, "acc_by_window": {1: (0.95, 0.04), 2: (0.96, 0.03), 3: (0.97, None)}}
    fig = accuracy_figure({"main": {"epochs": [row]}})
    low, high = fig.layout.yaxis.range
    assert low <= 0.95 - 0.04 and high >= 0.96 + 0.03 and 0.0 <= low < high <= 1.0, (low, high)
    assert list(fig.data[0].error_y.array) == [0.04, 0.03, 0.0]
