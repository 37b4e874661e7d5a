"""Run folders damaged by hand, a crash or a prankster: every reader answers, or says in one line what it cannot read.

A folder that cannot be read is listed as "unreadable" with the file and the reason; the others keep working,
and the job queue never stalls on someone else's folder."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tssd_viz import RunFolder, list_runs, preset
from tssd_viz.jobs.queue import JobManager
from tssd_viz.runs.metrics import final_accuracy
from tssd_viz.snn.probes import ProbeError, read_probe

JUNK = [b"\xff\xfe\x00binary\x80", b"[]", b'"x"', b"null", b"1", b"{", b'{"state": 5}', b'{"state": ["done"]}']
BAD_LINES = [b"1", b"[]", b"null", b'"x"', b"\xff\x80", b'{"kind": 5}', b'{"kind": "step", "step": "x"}']
BAD_LINES += [b'{"kind": "eval"}', b'{"kind": "step", "step": 1e999}']


def eval_records(*rows, split="test"):
    return [{"kind": "eval", "split": split, "step": 8, "epoch": 2, "wall_s": 1.0, "t": t, "acc": a} for t, a in rows]


def finished(root, name="r"):
    """A finished run folder written by hand: config, step/epoch/eval records, status done."""
    run = RunFolder(root / name)
    run.prepare(preset("quick"))
    for rec in [{"kind": "step", "step": 1, "wall_s": 0.1}, {"kind": "epoch", "step": 44}, *eval_records((1, 0.5))]:
        run.append_metric(rec)
    run.set_status("done", "finished", steps=44)
    return run


def one_line(text):
    return isinstance(text, str) and "\n" not in text and len(text) < 400


@pytest.mark.parametrize("junk", JUNK)
def test_a_status_json_that_is_not_a_status_is_unreadable_in_one_line(tmp_path, junk):
    run = finished(tmp_path)
    run.status_path.write_bytes(junk)
    assert run.read_status() == ({} if not junk.startswith(b"{") or junk == b"{" else json.loads(junk))
    st = run.status()
    assert st["state"] == "unreadable" and one_line(st["message"]) and "status.json" in st["message"]
    rows = list_runs(tmp_path)
    assert [(r.name, r.state) for r in rows] == [("r", "unreadable")]


@pytest.mark.parametrize("line", BAD_LINES)
def test_metrics_lines_that_are_not_records_are_skipped(tmp_path, line):
    run = finished(tmp_path)
    with open(run.metrics_path, "ab") as f:
        f.write(line + b"\n")
    run.status_path.unlink()  # the state is then read from the records
    assert run.final_eval() == {1: 0.5}
    assert all(isinstance(r, dict) for r in run.metrics())
    assert run.status()["state"] in ("done", "failed")
    assert run.tail().refresh() and list_runs(tmp_path)[0].state in ("done", "failed")
    assert run.truncate_metrics(3) == 1  # junk lines are lines: the count the trainer keeps stays right


def test_eval_records_with_a_window_or_accuracy_of_the_wrong_type_are_left_out(tmp_path):
    recs = [*eval_records((1, 0.5), ("x", 0.7), (2.5, 0.7), (True, 0.7), (2, "high"), (3, [1])), "not a record"]
    assert final_accuracy(recs) == {1: 0.5}
    run = finished(tmp_path)
    run.append_metric({"kind": "eval", "split": "test", "t": "x", "acc": 0.9})
    assert run.final_eval() == {1: 0.5} and list_runs(tmp_path)[0].state == "done"


def test_status_fields_of_the_wrong_type_are_dropped(tmp_path):
    run = finished(tmp_path)
    run.status_path.write_text(json.dumps({"state": "done", "message": 5, "time": "yesterday", "total_steps": [1]}))
    st = run.status()
    assert st["state"] == "done" and st["message"] == "" and "time" not in st and "total_steps" not in st


def test_binary_junk_in_the_metrics_is_truncated_as_bytes(tmp_path):
    run = finished(tmp_path)
    run.metrics_path.write_bytes(b"\xff\xfe\n" + b'{"kind":"step","step":1}\n')
    assert run.truncate_metrics(1) == 1 and run.metrics_path.read_bytes() == b"\xff\xfe\n"


@pytest.mark.parametrize("junk", [b"\xff\x00", b"[]", b"null", b'{"model": {"colour": 1}}', b'{"model": 5}'])
def test_a_folder_whose_config_cannot_be_read_is_listed_unreadable_and_the_others_kept(tmp_path, junk):
    good, bad = finished(tmp_path, "good"), finished(tmp_path, "bad")
    bad.config_path.write_bytes(junk)
    rows = {r.name: r for r in list_runs(tmp_path)}
    assert rows["good"].state == "done" and rows["good"].acc_student is None
    assert rows["bad"].state == "unreadable" and one_line(rows["bad"].message) and "config.json" in rows["bad"].message
    assert good.status()["state"] == "done"


def test_a_running_status_naming_a_pid_of_another_process_is_not_running(tmp_path):
    run = finished(tmp_path)
    run.set_status("running", "training")  # this process: alive, and the one it names
    assert run.status()["state"] == "running"
    for pid in (1, -1, 0, 2**40, True):  # pid 1 lives, but trains nothing; -1 and 0 are process groups
        run.status_path.write_text(json.dumps({"state": "running", "message": "", "pid": pid}))
        assert run.status()["state"] == "failed", pid
    record = run.read_status()
    run.set_status("running", "training")
    record = run.read_status()
    run.status_path.write_text(json.dumps({**record, "proc_start": record["proc_start"] + 1}))  # a reused pid
    assert run.status()["state"] == "failed"


def test_a_status_written_without_a_start_time_is_running_while_its_command_names_the_run(tmp_path):
    run = finished(tmp_path, "the-run")
    code = "import sys, time; time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(run.path)])
    try:
        run.status_path.write_text(json.dumps({"state": "running", "message": "", "pid": proc.pid}))
        assert run.status()["state"] == "running"
        other = subprocess.Popen([sys.executable, "-c", code, "elsewhere"])
        try:
            run.status_path.write_text(json.dumps({"state": "running", "message": "", "pid": other.pid}))
            assert run.status()["state"] == "failed"
        finally:
            other.kill()
            other.wait()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    "change",
    [
        {"step": np.arange(3)},
        {"rate:stem_lif": np.arange(4.0)},
        {"logits": np.zeros(3)},
        {"classes": np.array("0")},
        {"logits": np.array([["a"]] * 2)},
    ],
)
def test_a_probe_with_arrays_of_the_wrong_shape_is_refused_in_one_line(tmp_path, change):
    run = RunFolder(tmp_path)
    rng = np.random.default_rng(0)
    arrays = {
        "images": np.zeros((2, 1, 8, 8), np.uint8),
        "labels": np.array([3, 1]),
        "classes": np.array(tuple("0123456789")),
        "logits": rng.normal(size=(4, 2, 10)).astype(np.float32),
        "step": np.array(44),
        "epoch": np.array(1),
        "spikes:stem_lif": np.zeros((4, 2, 5), np.uint8),
        "membrane:stem_lif": np.zeros((4, 2, 5), np.float32),
        "rate:stem_lif": np.array(0.1),
    }
    run.probes_dir.mkdir()
    np.savez(run.probes_dir / "epoch-0001.npz", **{**arrays, **change})
    for read in (run.load_probe, lambda: read_probe(run.probes_dir / "epoch-0001.npz")):  # the reader itself too
        with pytest.raises(ProbeError) as err:
            read()
        assert one_line(str(err.value)) and "epoch-0001.npz" in str(err.value)


def fake_jobs(tmp_path):
    """A job manager whose "training process" is /bin/true: the queue's logic without any training."""
    return JobManager(tmp_path, max_running=1, python="/bin/true")


@pytest.mark.parametrize(
    "damage",
    [
        ("config.json", b"\xff garbage"),
        ("config.json", b'{"model": {"colour": 1}}'),
        ("config.json", b'{"model": {"tau": 0.5}}'),
        ("status.json", b'{"state": "queued", "time": "yesterday"}'),
        ("status.json", b'{"state": "queued", "time": [1]}'),
        ("status.json", b"[]"),
    ],
)
def test_the_queue_never_stalls_on_a_damaged_queued_folder(tmp_path, damage):
    jobs = fake_jobs(tmp_path)
    bad = RunFolder(tmp_path / "bad")
    bad.prepare(preset("quick"))
    bad.set_status("queued", "waiting", time=0.0)
    name, content = damage
    (bad.path / name).write_bytes(content)
    run = jobs.submit(preset("quick"), "good")  # must not raise
    jobs.wait(run, timeout=30)
    assert "status 0" in run.status()["message"]  # /bin/true ran for it: the queue went on
    assert bad.status()["state"] in ("failed", "queued", "unreadable")
    assert one_line(bad.status()["message"])
    jobs.poll()  # and every later poll too


def test_a_running_status_with_pid_1_does_not_hold_the_only_slot(tmp_path):
    jobs = fake_jobs(tmp_path)
    squatter = RunFolder(tmp_path / "squatter")
    squatter.prepare(preset("quick"))
    squatter.status_path.write_text(json.dumps({"state": "running", "message": "", "pid": 1, "time": 0}))
    run = jobs.submit(preset("quick"), "good")
    assert jobs.running() != [squatter] and jobs.wait(run, timeout=30)["state"] == "failed"
    assert "status 0" in run.status()["message"]


def test_a_queued_folder_whose_log_is_a_folder_is_failed_and_the_queue_goes_on(tmp_path):
    jobs = fake_jobs(tmp_path)
    bad = RunFolder(tmp_path / "bad")
    bad.prepare(preset("quick"))
    bad.set_status("queued", "waiting", time=0.0)
    bad.log_path.mkdir()  # not a file the job manager can append the run's output to
    run = jobs.submit(preset("quick"), "good")
    jobs.wait(run, timeout=30)
    assert "status 0" in run.status()["message"]
    st = bad.status()
    assert st["state"] == "failed" and "log.txt" in st["message"] and one_line(st["message"])


def test_a_folder_that_may_not_be_looked_into_is_listed_unreadable(tmp_path, monkeypatch):
    import pathlib

    finished(tmp_path, "good"), finished(tmp_path, "locked")
    real_exists, real_stat, real_read = pathlib.Path.exists, pathlib.Path.stat, pathlib.Path.read_bytes

    def refuse(real):
        def call(self, *a, **k):
            if "locked" in str(self) and str(self) != str(tmp_path / "locked"):
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *a, **k)

        return call

    monkeypatch.setattr(pathlib.Path, "exists", refuse(real_exists))
    monkeypatch.setattr(pathlib.Path, "stat", refuse(real_stat))
    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse(real_read))
    rows = {r.name: r for r in list_runs(tmp_path)}
    assert rows["good"].state == "done" and rows["locked"].state == "unreadable" and one_line(rows["locked"].message)
    jobs = fake_jobs(tmp_path)
    assert jobs.queue() == [] and jobs.poll() == []


@pytest.mark.parametrize("junk", [b"\xff\xfe\x00binary\x80", b"[]", b"null", b'{"state": "waiting"}'])
def test_a_queued_folder_whose_status_turned_to_junk_is_left_alone_and_says_so(tmp_path, junk):
    """Its status cannot say whether it waited, trained or finished: starting it could train it twice, and
    rewriting it could overwrite a run. So the queue skips it, never touches it, and the list says so in one line."""
    jobs = fake_jobs(tmp_path)
    bad = RunFolder(tmp_path / "bad")
    bad.prepare(preset("quick"))
    bad.set_status("queued", "waiting", time=0.0)
    bad.status_path.write_bytes(junk)
    runs = [jobs.submit(preset("quick"), f"good-{i}") for i in range(2)]
    for run in runs:
        assert "status 0" in jobs.wait(run, timeout=30)["message"]  # the queue went on, twice
    assert jobs.poll() == [] and bad.status_path.read_bytes() == junk and not bad.log_path.exists()
    (row,) = [r for r in list_runs(tmp_path) if r.name == "bad"]
    assert row.state == "unreadable" and one_line(row.message) and row.message == bad.status()["message"]
    assert "bad/status.json" in row.message and "the job queue leaves it alone" in row.message
