"""runs/folders.py: the one reader and writer of run folders (metrics records, status, probe snapshots, listing)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tssd_viz import History, RunFolder, preset
from tssd_viz.config import ConfigError
from tssd_viz.runs.listing import run_folders
from tssd_viz.runs.metrics import MetricsTail, final_accuracy
from tssd_viz.snn.probes import ProbeError, ProbeSnapshot, read_probe


def evals(*rows, split="test"):
    return [{"kind": "eval", "split": split, "step": 8, "epoch": 2, "wall_s": 1.0, "t": t, "acc": a} for t, a in rows]


# -- final accuracy from eval records
def test_final_accuracy_reads_the_test_evals_only():
    recs = [
        {"kind": "step", "step": 1, "t": 1, "acc": 0.1},
        *evals((1, 0.5), (2, 0.75)),
        *evals((1, 0.9), split="train"),
        {"kind": "epoch", "step": 8, "split": "test", "t": 2, "acc": 0.2},
    ]
    assert final_accuracy(recs) == {1: 0.5, 2: 0.75}
    assert final_accuracy(recs, "train") == {1: 0.9}
    assert final_accuracy([]) == {}


def test_final_accuracy_a_later_evaluation_of_a_window_wins():
    recs = [*evals((1, 0.25), (2, 0.5)), *evals((2, 0.625)), *evals((3, None))]  # a window without accuracy is left out
    assert final_accuracy(recs) == {1: 0.25, 2: 0.625}


def test_run_folder_and_history_agree_on_final_accuracy(tmp_path):
    run, hist = RunFolder(tmp_path / "r"), History()
    run.path.mkdir()
    for rec in evals((1, 0.5), (2, 0.75)) + evals((2, 0.875)):
        run.append_metric(rec)
        hist.after_eval(rec)
    assert run.final_eval() == hist.final_eval() == {1: 0.5, 2: 0.875}


# -- metrics.jsonl, read incrementally
def test_tail_never_returns_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert not tail.refresh() and tail.records == []  # no file yet
    path.write_bytes(b'{"kind":"step","step":1}\n{"kind":"step","st')  # the second line is being written
    assert tail.refresh()
    assert tail.records == [{"kind": "step", "step": 1}]
    assert not tail.refresh()  # nothing new: the half line stays unread
    with open(path, "ab") as f:
        f.write(b'ep":2}\n')
    assert tail.refresh()
    assert tail.records == [{"kind": "step", "step": 1}, {"kind": "step", "step": 2}]
    assert RunFolder(tmp_path).metrics("step") == tail.records


def test_tail_parses_only_what_was_appended(tmp_path):
    run = RunFolder(tmp_path)
    run.append_metric({"kind": "step", "step": 1})
    tail = run.tail()
    tail.refresh()
    first = tail.records[0]
    run.append_metric({"kind": "eval", "step": 1, "split": "test", "t": 1, "acc": 0.5})
    assert tail.refresh()
    assert tail.records[0] is first and len(tail.records) == 2  # the first record was not parsed again
    assert tail.offset == run.metrics_path.stat().st_size


def test_tail_reads_afresh_a_file_replaced_by_a_resume(tmp_path):
    run = RunFolder(tmp_path)
    for step in (1, 2, 3):
        run.append_metric({"kind": "step", "step": step})
    tail = run.tail()
    tail.refresh()
    assert run.truncate_metrics(1) == 2  # resume from the first record: two are dropped
    run.append_metric({"kind": "step", "step": 2, "redone": True})
    assert tail.refresh()
    assert tail.records == [{"kind": "step", "step": 1}, {"kind": "step", "step": 2, "redone": True}]


def test_metrics_skips_a_torn_last_line_and_filters_by_kind(tmp_path):
    run = RunFolder(tmp_path)
    assert run.metrics() == []
    run.metrics_path.write_text('{"kind":"step","step":1}\nnot json\n{"kind":"epoch","step":1}\n{"kind":"ev')
    assert run.metrics() == [{"kind": "step", "step": 1}, {"kind": "epoch", "step": 1}]
    assert run.metrics("epoch") == [{"kind": "epoch", "step": 1}]


# -- probe snapshots
def trainer_arrays(weak=True):
    """What the trainer emits for a probe batch of P=3 images, T=4, K=10, two layers of N=5 and 2 neurons."""
    rng = np.random.default_rng(0)
    arrays = {
        "images": rng.integers(0, 255, (3, 1, 8, 8), dtype=np.uint8),
        "labels": np.array([3, 1, 4]),
        "classes": np.array(tuple("0123456789")),
        "logits": rng.normal(size=(4, 3, 10)).astype(np.float32),
        "step": np.array(44),
        "epoch": np.array(1),
    }
    if weak:
        arrays["weak_logits"] = rng.normal(size=(4, 3, 10)).astype(np.float32)
    for name, n, rate in (("stem_lif", 5, 0.125), ("stages.0.lif", 2, 0.25)):
        arrays[f"spikes:{name}"] = rng.integers(0, 2, (4, 3, n), dtype=np.uint8)
        arrays[f"membrane:{name}"] = rng.normal(size=(4, 3, n)).astype(np.float32)
        arrays[f"neurons:{name}"] = np.arange(n) * 3
        arrays[f"rate:{name}"] = np.array(rate)
    return arrays


def test_probe_written_from_trainer_arrays_keeps_every_npz_key(tmp_path):
    arrays = trainer_arrays()
    path = RunFolder(tmp_path).write_probe("epoch-0001", arrays)
    assert path == tmp_path / "probes" / "epoch-0001.npz"
    with np.load(path, allow_pickle=False) as z:
        assert z.files == list(arrays)  # the same keys, in the same order
        for k, a in arrays.items():
            assert z[k].dtype == a.dtype
            np.testing.assert_array_equal(z[k], a)


def test_probe_snapshot_round_trip(tmp_path):
    run, arrays = RunFolder(tmp_path), trainer_arrays()
    run.write_probe("epoch-0000", arrays)
    run.write_probe("epoch-0001", arrays)
    probe = run.load_probe()  # the latest
    assert isinstance(probe, ProbeSnapshot)
    assert probe.step == 44 and probe.epoch == 1 and probe.classes == tuple("0123456789")
    assert probe.layers == ["stem_lif", "stages.0.lif"]  # forward order, as recorded
    assert probe.rate == {"stem_lif": 0.125, "stages.0.lif": 0.25}
    assert probe.spikes["stem_lif"].shape == (4, 3, 5) and probe.membrane["stages.0.lif"].shape == (4, 3, 2)
    np.testing.assert_array_equal(probe.neurons["stem_lif"], [0, 3, 6, 9, 12])
    np.testing.assert_array_equal(probe.labels, [3, 1, 4])
    np.testing.assert_array_equal(probe.weak_logits, arrays["weak_logits"])
    np.testing.assert_array_equal(probe["spikes:stem_lif"], arrays["spikes:stem_lif"])  # by its .npz key
    # A snapshot written as such reads back the same
    again = read_probe(run.write_probe("copy", probe))
    for k, a in probe.to_arrays().items():
        np.testing.assert_array_equal(again[k], a)


def test_probe_without_weak_head_or_sampled_neurons(tmp_path):
    arrays = {k: a for k, a in trainer_arrays(weak=False).items() if not k.startswith("neurons:")}
    probe = read_probe(RunFolder(tmp_path).write_probe("p", arrays))
    assert probe.weak_logits is None and probe.neurons == {} and probe.layers == ["stem_lif", "stages.0.lif"]


def test_probe_keys_out_of_the_format_are_refused(tmp_path):
    run = RunFolder(tmp_path)
    with pytest.raises(ValueError, match="extra"):
        run.write_probe("p", {**trainer_arrays(), "extra": np.zeros(2)})
    with pytest.raises(ValueError, match="membrane:stem_lif"):
        run.write_probe("p", {k: a for k, a in trainer_arrays().items() if k != "membrane:stem_lif"})
    assert run.probes() == []
    with pytest.raises(FileNotFoundError):
        run.load_probe()


def test_history_keeps_probe_snapshots():
    hist = History()
    hist.on_probe("epoch-0000", trainer_arrays())
    assert hist.probes["epoch-0000"].layers == ["stem_lif", "stages.0.lif"]


# -- status and the runs folder
def test_read_status_is_the_file_status_interprets_it(tmp_path):
    run = RunFolder(tmp_path / "r")
    run.prepare(preset("digits"))
    assert run.read_status() == {} and run.status()["state"] == "failed"  # a config alone: never started
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run.set_status("running", "training", pid=int(dead.stdout))
    assert run.read_status()["state"] == "running"  # as written
    assert run.status()["state"] == "failed"  # its process is gone
    run.status_path.write_text("{")
    assert run.read_status() == {} and run.status()["state"] == "unreadable"  # said so, never a traceback


def test_run_folders_newest_config_first(tmp_path):
    cfg = preset("digits")
    for i, name in enumerate(["b", "a", "c"]):
        RunFolder(tmp_path / name).prepare(cfg)
        os.utime(tmp_path / name / "config.json", ns=(10**18 + i * 10**9,) * 2)
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert [r.name for r in run_folders(tmp_path)] == ["c", "a", "b"]
    assert run_folders(tmp_path / "missing") == []


def test_log_tail(tmp_path):
    run = RunFolder(tmp_path)
    assert run.log_tail() == ""
    run.log_path.write_text("$ python -m tssd_viz train\n\nloading\nTraceback\n  ValueError: x\n\n")
    assert run.log_tail() == "ValueError: x"
    assert run.log_tail(2, sep="\n") == "Traceback\nValueError: x"


def test_status_json_written_atomically_and_read_raw(tmp_path):
    run = RunFolder(tmp_path)
    run.set_status("done", "finished", steps=3)
    assert json.loads(run.status_path.read_text()) == run.read_status()
    assert run.read_status()["steps"] == 3


# -- reading what a crash or a hand left behind
@pytest.mark.parametrize(
    "content, needle",
    [
        ("{not json", "not a readable JSON config"),
        ("[1, 2]", "must be a mapping"),
        ('{"train": {"epochs": "3"}}', "train.epochs"),
        ('{"model": {"width": null}}', "model.width"),
        ('{"model": {"colour": 1}}', "unknown field"),
        (b"\xff\xfe", "not a readable JSON config"),
    ],
)
def test_a_bad_config_json_is_one_config_error_naming_the_file(tmp_path, content, needle):
    run = RunFolder(tmp_path / "r")
    run.path.mkdir()
    if isinstance(content, bytes):
        run.config_path.write_bytes(content)
    else:
        run.config_path.write_text(content)
    with pytest.raises(ConfigError) as err:
        run.config()
    assert str(err.value).startswith(str(run.config_path)) and needle in str(err.value)
    assert "\n" not in str(err.value)


def finished(tmp_path):
    run = RunFolder(tmp_path / "r")
    run.prepare(preset("quick"))
    for rec in [{"kind": "step", "step": 1}, {"kind": "epoch", "step": 44}, *evals((1, 0.5), (2, 0.75))]:
        run.append_metric(rec)
    run.checkpoints_dir.mkdir()
    run.checkpoint_path("last").write_bytes(b"weights")
    return run


def test_without_status_json_the_state_is_read_from_what_is_there(tmp_path):
    run = finished(tmp_path)
    assert run.status()["state"] == "done"  # eval records at the end
    run.truncate_metrics(2)  # killed before the final evaluation, with a checkpoint
    st = run.status()
    assert st["state"] == "failed" and "--resume" in st["message"]
    run.truncate_metrics(0)
    run.checkpoint_path("last").unlink()
    st = run.status()
    assert st["state"] == "failed" and "never started" in st["message"]  # never "queued": the queue has status.json
    assert RunFolder(tmp_path / "nothing").status()["state"] == "missing"


def test_a_probe_holding_an_object_array_is_refused_in_one_line(tmp_path):
    path = tmp_path / "epoch-0001.npz"
    np.savez(path, images=np.array([{"a": 1}, None], dtype=object), labels=np.zeros(2))
    with pytest.raises(ProbeError) as err:
        read_probe(path)
    assert str(err.value).startswith(str(path)) and "pickled" in str(err.value) and "\n" not in str(err.value)
    path.write_bytes(b"not a zip")
    with pytest.raises(ProbeError, match="refused|not a"):
        read_probe(path)


def test_source_commit_is_dirty_only_when_the_package_differs(tmp_path):
    import subprocess

    from tssd_viz.runs.environment import source_commit

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "pkg").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "pkg" / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "table.md").write_text("old\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (tmp_path / "results" / "table.md").unlink()  # a sweep rewriting results in its checkout: same code
    assert source_commit(tmp_path / "pkg")["dirty"] is False
    (tmp_path / "pkg" / "code.py").write_text("x = 2\n")
    assert source_commit(tmp_path / "pkg")["dirty"] is True
