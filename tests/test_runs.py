"""runs.py: the one reader and writer of run folders (metrics records, status, listing)."""

import json
import os
import subprocess
import sys


from tssd_viz import History, RunFolder, preset
from tssd_viz.runs import MetricsTail, final_accuracy, run_folders


def evals(*rows, split="test"):
    return [{"kind": "eval", "split": split, "step": 8, "epoch": 2, "wall_s": 1.0, "t": t, "acc": a} for t, a in rows]


# -- final accuracy from eval records
def test_final_accuracy_reads_the_test_evals_only():
    recs = [{"kind": "step", "step": 1, "t": 1, "acc": 0.1}, *evals((1, 0.5), (2, 0.75)),
            *evals((1, 0.9), split="train"), {"kind": "epoch", "step": 8, "split": "test", "t": 2, "acc": 0.2}]
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


# -- status and the runs folder
def test_read_status_is_the_file_status_interprets_it(tmp_path):
    run = RunFolder(tmp_path / "r")
    run.prepare(preset("digits"))
    assert run.read_status() == {} and run.status()["state"] == "queued"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run.set_status("running", "training", pid=int(dead.stdout))
    assert run.read_status()["state"] == "running"  # as written
    assert run.status()["state"] == "failed"  # its process is gone
    run.status_path.write_text("{")
    assert run.read_status() == {} and run.status()["state"] == "failed"


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
