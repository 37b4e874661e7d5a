"""The command line, run as a user runs it: a subprocess, exit codes, one-line errors."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tssd_viz import RunFolder, load_checkpoint
from tssd_viz.cli import main
from tssd_viz.config import TSSDConfig
from tssd_viz.snn.models import build_model, count_parameters

TINY = [
    "--preset",
    "digits",
    "--data.limit-train",
    "256",
    "--data.limit-test",
    "128",
    "--train.epochs",
    "1",
    "--model.width",
    "0.25",
    "--train.device",
    "cpu",
]


def cli(*args, cwd=None, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tssd_viz", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    p = cli("train", *TINY, "--run-dir", run_dir, "--no-progress")
    assert p.returncode == 0, p.stderr
    return run_dir, p


def test_train_writes_a_run_folder(trained):
    run_dir, p = trained
    run = RunFolder(run_dir)
    assert run.status()["state"] == "done"
    assert run.config().data.limit_train == 256 and run.config().model.width == 0.25
    assert "test accuracy by window" in p.stderr


def test_evaluate_prints_every_window(trained):
    run_dir, _ = trained
    p = cli("evaluate", "--run-dir", run_dir, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert sorted(map(int, out["acc_by_window"])) == [1, 2, 3, 4]
    saved = RunFolder(run_dir).final_eval()
    # best.pt may be an earlier epoch; with one epoch, best and last are the final weights
    assert out["acc_by_window"]["2"] == pytest.approx(saved[2], abs=1e-6)


def test_evaluate_early_exit_matches_the_runs_own_analysis(trained, tmp_path):
    run_dir, _ = trained
    figure = tmp_path / "exit.html"
    p = cli("evaluate", "--run-dir", run_dir, "--early-exit", "0.5,0.8,0.9,0.95", "--figure", figure)
    assert p.returncode == 0, p.stderr
    rows = [line.split() for line in p.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["0.5", "0.8", "0.9", "0.95"]
    (end,) = RunFolder(run_dir).metrics("analysis")  # the same weights (one epoch): the same table
    for row, point in zip(rows, end["early_exit"]):
        assert float(row[1].rstrip("%")) == pytest.approx(100 * point["acc"], abs=0.01)
        assert float(row[2]) == pytest.approx(point["mean_timesteps"], abs=0.005)
    assert "early exit: accuracy vs timesteps" in figure.read_text()
    j = json.loads(cli("evaluate", "--run-dir", run_dir, "--early-exit", "0.9", "--json").stdout)
    assert j["early_exit"]["t"] == 2 and j["early_exit"]["points"][0]["threshold"] == 0.9


@pytest.mark.parametrize(
    "args,message",
    [
        (["--early-exit", "0.5,high"], "--early-exit: '0.5,high' is not a comma-separated list of numbers"),
        (["--early-exit", "0,0.5"], "--early-exit: every threshold must lie in (0, 1]"),
        (["--early-exit", "nan"], "--early-exit: every threshold must lie in (0, 1]"),
        (["--figure", "x.html"], "--figure draws the early-exit table: give --early-exit too"),
    ],
)
def test_evaluate_refuses_bad_early_exit_options_in_one_line(trained, tmp_path, args, message):
    run_dir, _ = trained
    p = cli("evaluate", "--run-dir", run_dir, *args, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and message in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.html").exists()


def test_export_drops_the_weak_head_and_evaluates_at_ts(trained, tmp_path):
    run_dir, _ = trained
    out = tmp_path / "student.pt"
    p = cli("export", "--run-dir", run_dir, "--out", out)
    assert p.returncode == 0, p.stderr
    payload = load_checkpoint(out)
    assert not any(k.startswith("weak_head.") for k in payload["model"])
    cfg = TSSDConfig.from_dict(payload["config"])
    plain = count_parameters(build_model(cfg.model, 1, 10, weak_head=False))
    assert f"parameters: {plain:,}" in p.stdout
    assert sum(v.numel() for k, v in payload["model"].items() if "running" not in k and "num_batches" not in k) == plain
    e = cli("evaluate", "--checkpoint", out, "--json")
    assert e.returncode == 0, e.stderr
    accs = json.loads(e.stdout)["acc_by_window"]
    assert list(accs) == ["1", "2"]  # an exported student runs at T_s
    assert accs["2"] == pytest.approx(RunFolder(run_dir).final_eval()[2], abs=1e-6)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--distill.t-teacher", "2"], "distill.t_teacher: must be > distill.t_student (2), got 2"),
        (["--distill.alpha", "-1"], "distill.alpha: must be >= 0"),
        (["--model.arch", "alexnet"], "model.arch: 'alexnet' is not one of vgg_small"),
        (["--model.aux-stage", "7"], "model.aux_stage: must be between 1 and 2"),
        (["--data.dataset", "imagenet"], "data.dataset"),
        (["--data.batch-size", "0"], "data.batch_size"),
        (["--train.epochs", "0"], "train.epochs"),
        (["--preset", "huge"], "preset: 'huge' is not one of"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, needle):
    run_dir = tmp_path / "run"
    p = cli("train", *TINY, *args, "--run-dir", run_dir)
    assert p.returncode == 2
    assert needle in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()


# Refused before anything is written (issue 11: each crashed with a traceback, trained with NaN losses,
# trained for ever, or printed tyro's 5-9 line box). Run in-process: the refusal happens before fit().
@pytest.mark.parametrize(
    "args,needle",
    [
        (["--model.width", "nan"], "model.width: must be a finite number, got nan"),
        (["--model.width", "inf"], "model.width: must be a finite number, got inf"),
        (["--model.width", "1e6"], "model.width: must be <= 4, got 1000000.0"),
        (["--train.seed", "99999999999999999999999"], "train.seed: must be <= 4294967295"),
        (["--train.threads", "100000"], "train.threads: must be <= 256, got 100000"),
        (["--train.epochs", "1000000000"], "train.epochs: must be <= 10000"),
        (["--distill.alpha", "nan"], "distill.alpha: must be a finite number"),
        (["--train.lr", "inf"], "train.lr: must be a finite number"),
        (["--distill.kd-temperature", "nan"], "distill.kd_temperature: must be a finite number"),
        (["--train.epochs", "abc"], "error: --train.epochs: 'abc' is not an integer"),
        (["--train.epochs=2.5"], "error: --train.epochs: '2.5' is not an integer"),
        (["--distill.alpha", "lots"], "error: --distill.alpha: 'lots' is not a number"),
        (["--data.augment", "yes"], "error: --data.augment: 'yes' is not True or False"),
        (["--bogus", "3"], "error: --bogus: no such option"),
        (["--train.epochs"], "error: --train.epochs: needs a value"),
        (["stray"], "error: unexpected argument 'stray'"),
    ],
)
def test_refusals_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, args, needle):
    run_dir = tmp_path / "run"
    assert needle in refusal(capsys, ["train", "--run-dir", str(run_dir), *TINY, *args])
    assert not run_dir.exists()


def refusal(capsys, argv: list[str]) -> str:
    """The one line that `main(argv)` prints on stderr as it exits with status 2."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    "content,needle",
    [
        ('{"train": {"epochs": "3"}}', "train.epochs: must be a whole number, got '3'"),
        ('{"model": {"width": null}}', "model.width: must be a number, got None"),
        ('{"train": {"epochs": 1e999}}', "train.epochs: must be a whole number, got inf"),
        ('{"distill": {"alpha": NaN}}', "distill.alpha: must be a finite number, got nan"),
        ('{"model": [1, 2]}', "model: must be a mapping of fields"),
        ("[1, 2]", "config: must be a mapping of sections"),
        ('{"model": {"width": 0.5}', "cannot read a config from it"),
        ("[" * 100_000, "cannot read a config from it"),
        (b"\xff\xfe{}", "cannot read a config from it"),
    ],
)
def test_bad_config_files_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, content, needle):
    path, run_dir = tmp_path / "config.json", tmp_path / "run"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    err = refusal(capsys, ["train", "--config", str(path), "--run-dir", str(run_dir)])
    assert err.startswith(f"error: --config {path}: ") and needle in err, err
    assert not run_dir.exists()


@pytest.mark.parametrize("args", [["--model.width", "nan"], ["--train.epochs", "abc"], ["--unknown-flag"]])
def test_refusals_from_a_real_process_have_no_traceback(tmp_path, args):
    p = cli("train", *TINY, *args, "--run-dir", tmp_path / "run")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "Traceback" not in p.stderr and "╭" not in p.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--data.batch-size", "100000"], "data.batch_size: must be <= 65536"),
        (
            ["--data.batch-size", "2000", "--data.limit-train", "0"],
            "data.batch_size: 2000 is larger than the training set",
        ),
        (["--data.limit-train", "1"], "data.limit_train: 1 training images are fewer than one batch"),
        (["--data.dataset", "folder", "--data.root", "/nonexistent/tssd-tree"], "does not exist"),
    ],
)
def test_data_that_cannot_train_is_refused_before_the_run_folder_is_written(tmp_path, args, needle):
    p = cli("train", *TINY, *args, "--run-dir", tmp_path / "run")
    assert p.returncode == 2 and needle in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "run").exists()


def test_a_loss_that_becomes_nan_ends_the_command_with_one_line(tmp_path):
    """The training process with a loss part made NaN at step 3 (as a diverging run would): exit 2,
    one line naming the step and the part, the run folder marked failed."""
    run_dir = tmp_path / "run"
    script = (
        "import dataclasses, sys\n"
        "import tssd_viz.training.step as t\n"
        "real = t.tssd_loss\n"
        "calls = []\n"
        "def poisoned(*a, **k):\n"
        "    parts = real(*a, **k)\n"
        "    calls.append(1)\n"
        "    if len(calls) < 3:\n"
        "        return parts\n"
        "    nan = float('nan')\n"
        "    return dataclasses.replace(parts, loss_tsd=parts.loss_tsd * nan, loss=parts.loss * nan)\n"
        "t.tssd_loss = poisoned\n"
        "from tssd_viz.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", script, "train", *TINY, "--run-dir", str(run_dir), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert errors == [line for line in p.stderr.splitlines()[-1:]], p.stderr  # the last line, the only error
    assert "the loss_tsd became nan at step 3" in errors[0] and "Traceback" not in p.stderr
    st = RunFolder(run_dir).status()
    assert st["state"] == "failed" and "the loss_tsd became nan at step 3" in st["message"]


def test_missing_dataset_offline_is_actionable(tmp_path):
    env_root = tmp_path / "empty"
    env_root.mkdir()
    p = cli(
        "train",
        "--preset",
        "classroom",
        "--data.root",
        env_root,
        "--data.download",
        "False",
        "--run-dir",
        tmp_path / "run",
    )
    assert p.returncode == 2
    assert "cifar10" in p.stderr.lower() and "--data.dataset digits" in p.stderr
    assert "Traceback" not in p.stderr


def test_existing_run_is_not_overwritten(trained):
    run_dir, _ = trained
    before = (Path(run_dir) / "metrics.jsonl").read_bytes()
    p = cli("train", *TINY, "--run-dir", run_dir)
    assert p.returncode == 2 and "--resume" in p.stderr
    p = cli("train", *TINY, "--distill.alpha", "0.3", "--run-dir", run_dir)
    assert p.returncode == 2 and "different run" in p.stderr
    assert (Path(run_dir) / "metrics.jsonl").read_bytes() == before


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"\x80\x04garbage")
    p = cli("evaluate", "--checkpoint", bad)
    assert p.returncode == 2 and "not a readable tssd-viz checkpoint" in p.stderr
    assert "Traceback" not in p.stderr


def test_help_lists_dotted_fields():
    p = cli("train", "--help")
    assert p.returncode == 0
    for flag in ("--distill.t-student", "--data.root", "--train.time-budget-s", "--model.aux-stage"):
        assert flag in p.stdout


def test_short_run_on_real_cifar10(tmp_path):
    root = os.environ.get("TSSD_CIFAR10_ROOT")
    if not root or not Path(root, "test").is_dir():
        pytest.skip("real CIFAR-10 not on disk: set TSSD_CIFAR10_ROOT to the extracted image-folder tree (CI does)")
    run_dir = tmp_path / "cifar"
    p = cli(
        "train",
        "--preset",
        "classroom",
        "--data.root",
        root,
        "--data.limit-train",
        "4000",
        "--data.limit-test",
        "2000",
        "--train.epochs",
        "2",
        "--run-dir",
        run_dir,
        "--no-progress",
        timeout=900,
    )
    assert p.returncode == 0, p.stderr
    run = RunFolder(run_dir)
    steps = run.metrics("step")
    assert steps and all(r[k] is not None for r in steps for k in ("loss", "loss_task", "loss_tsd", "loss_ssd"))
    acc = run.final_eval()[run.config().distill.t_student]
    print(f"real CIFAR-10, 2 epochs on 4,000 images: test accuracy at T_s = {acc:.3f}")
    assert acc > 0.25  # chance is 0.10


def test_trained_networks_load_and_export_through_the_library(tmp_path):
    """The library's loader gives what the CLI's evaluate prints, and an export drops the weak head."""
    from tssd_viz import evaluate, fit, load_dataset, load_trained, preset
    from tssd_viz.data import Loader
    from tssd_viz.runs.checkpoints import CheckpointError
    from tssd_viz.runs.trained import export_student

    cfg = preset("quick").replace(**{"train.epochs": 1, "data.limit_test": 64, "train.probe_every": 0})
    result = fit(cfg, run_dir=tmp_path / "r")
    trained = load_trained(tmp_path / "r" / "checkpoints" / "last.pt")
    assert trained.cfg == cfg and not trained.is_student and trained.t_eval == cfg.distill.t_teacher
    ds = load_dataset(cfg.data)
    accs = evaluate(trained.model, Loader(ds.test, ds, 256, train=False), trained.t_eval)
    assert dict(enumerate(accs, start=1)) == pytest.approx(result.test_acc)
    kept, plain = export_student(trained, tmp_path / "student.pt")
    student = load_trained(tmp_path / "student.pt")
    assert student.is_student and student.model.weak_head is None and plain < kept
    with pytest.raises(CheckpointError, match="already an exported student"):
        export_student(student, tmp_path / "again.pt")


# -- resuming from what a crash or a hand left behind
@pytest.mark.parametrize(
    "content, needle",
    [
        ("{oops", "not a readable JSON config"),
        ("[1]", "must be a mapping"),
        ('{"train": {"epochs": "3"}}', "train.epochs"),
    ],
)
def test_resume_with_a_bad_config_json_is_one_line_naming_the_file(tmp_path, capsys, content, needle):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(content)
    err = refusal(capsys, ["train", "--resume", str(run_dir)])
    assert str(run_dir / "config.json") in err and needle in err
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json"]  # nothing written


def test_resume_with_a_config_that_does_not_fit_last_pt_is_one_line(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    saved = json.loads((run_dir / "config.json").read_text())
    saved["model"]["width"] = 0.5
    (run_dir / "config.json").write_text(json.dumps(saved))
    (run_dir / "status.json").unlink()
    p = cli("train", "--resume", run_dir, "--no-progress")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "last.pt does not fit the network of" in line and "config.json" in line


def test_a_full_disk_ends_train_and_export_in_one_line_and_keeps_what_was_saved(trained, tmp_path, capsys, monkeypatch):
    from test_train import fill_disk  # ENOSPC on every write under a folder

    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    saved = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    fill_disk(monkeypatch, tmp_path)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # main() would install its handlers in pytest
    for argv in (
        ["train", *TINY, "--run-dir", str(tmp_path / "new"), "--no-progress"],
        ["export", "--run-dir", str(run_dir)],
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and err[-1].startswith(f"error: no space left in {tmp_path}"), err
    monkeypatch.undo()
    assert not (tmp_path / "new").exists()  # a refused run leaves no folder
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == saved


class _Payload:
    """What a hostile checkpoint carries: unpickling it would create the file named by `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _hostile_checkpoint(path, marker):
    torch.save({"format": "tssd-viz/checkpoint/1", "config": {}, "model": _Payload(marker)}, path)


def test_a_pickle_payload_in_a_checkpoint_runs_no_code_cli(tmp_path):
    bad, marker = tmp_path / "best.pt", tmp_path / "pwned"
    _hostile_checkpoint(bad, marker)
    for args in (["evaluate", "--checkpoint", bad], ["export", "--run-dir", tmp_path]):
        if args[0] == "export":
            (tmp_path / "checkpoints").mkdir(exist_ok=True)
            (tmp_path / "checkpoints" / "best.pt").write_bytes(bad.read_bytes())
            (tmp_path / "config.json").write_text(TSSDConfig().to_json())
        p = cli(*args)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert not marker.exists()  # weights_only=True: the payload never ran


def test_a_pickle_payload_in_a_checkpoint_runs_no_code_inspect(tmp_path):
    """The Inspect page loads checkpoints through app/dashboard/inference.load_model."""
    from tssd_viz.runs.checkpoints import CheckpointError

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
    from dashboard.inference import load_model

    bad, marker = tmp_path / "best.pt", tmp_path / "pwned"
    _hostile_checkpoint(bad, marker)
    with pytest.raises(CheckpointError):
        load_model.__wrapped__(str(bad), 0) if hasattr(load_model, "__wrapped__") else load_model(str(bad), 0)
    assert not marker.exists()


# Refusals that argparse, the file system or a sweep option turned into a usage box or a traceback (issue 28).
@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--preset"], "--preset: expected one argument"),
        (["evaluate", "--t", "abc"], "--t: invalid int value: 'abc'"),
        (["evaluate", "--which", "foo"], "--which: invalid choice: 'foo'"),
        (["evaluate", "--checkpoint", "x.pt", "--t", "20000"], "--t must be between 1 and 64 timesteps, got 20000"),
        (["evaluate", "--checkpoint", "x.pt", "--t", "-1"], "--t must be between 1 and 64"),
        (["export"], "the following arguments are required: --run-dir"),
        (["export", "--run-dir", "r", "--which", "foo"], "--which: invalid choice"),
        (["export", "--run-dir", "r", "--bogus"], "unrecognized arguments: --bogus"),
        (["sweep"], "the following arguments are required: --sweep-dir"),
        (["sweep", "--sweep-dir", "s", "--grid", "foo"], "--grid: invalid choice: 'foo'"),
        (["sweep", "--sweep-dir", "s", "--seeds", "-1", "--dry-run"], "--seeds must be between 1 and 1000, got -1"),
        (["sweep", "--sweep-dir", "s", "--seeds", "0", "--dry-run"], "--seeds must be between 1 and 1000, got 0"),
        (["sweep", "--sweep-dir", "s", "--ablation-seeds", "-5", "--dry-run"], "--ablation-seeds must be between 1"),
        (["sweep", "--sweep-dir", "s", "--summarize-only"], "--sweep-dir s: no such folder to summarise"),
        (["sweep", "--sweep-dir", "s", "--only", "nomatch*", "--dry-run"], "--only nomatch*: no planned run"),
    ],
)
def test_usage_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert needle in refusal(capsys, argv)
    assert not (tmp_path / "s").exists()  # --summarize-only on a missing folder does not make it


def test_evaluate_refuses_a_figure_in_a_missing_folder_before_evaluating(trained, capsys):
    run_dir, _ = trained
    line = refusal(
        capsys, ["evaluate", "--run-dir", str(run_dir), "--early-exit", "0.5", "--figure", "/nonexistent/dir/x.html"]
    )
    assert "no folder /nonexistent/dir" in line


def test_sweep_refuses_a_file_as_its_folder_and_a_binary_readme(tmp_path, capsys):
    a_file, binary = tmp_path / "file", tmp_path / "README.md"
    a_file.write_text("x")
    binary.write_bytes(b"\xff\xfe\x00\x80")
    assert "is a file, not a folder" in refusal(capsys, ["sweep", "--sweep-dir", str(a_file), "--summarize-only"])
    line = refusal(capsys, ["sweep", "--sweep-dir", str(tmp_path), "--summarize-only", "--readme", str(binary)])
    assert "cannot read it (not UTF-8 text)" in line


def test_bare_command_prints_usage_on_stderr_exit_2():
    p = cli()
    assert p.returncode == 2 and p.stdout == "" and p.stderr.startswith("usage:")
    p = cli("--help")
    assert p.returncode == 0 and p.stdout.startswith("usage:")


@pytest.mark.parametrize(
    "name,content,needle",
    [("config.json", b"\xff junk", "config.json"), ("cell.json", b"\xff junk", "UnicodeDecodeError")],
)
def test_a_sweep_summary_over_a_damaged_run_folder_is_one_line(tmp_path, capsys, name, content, needle):
    run = RunFolder(tmp_path / "runs" / "x")
    run.prepare(TSSDConfig())
    run.set_status("done", "finished")
    (run.path / "cell.json").write_text("{}")
    (run.path / name).write_bytes(content)
    assert main(["sweep", "--sweep-dir", str(tmp_path), "--summarize-only"]) == 0  # the folder is left out
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"skipped {run.path}: ") and needle in err[0]
