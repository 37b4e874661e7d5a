"""Random bytes written into each file of a finished run folder: list_runs, the job queue and `train --resume`
either work or refuse in one line, and the dashboard's pages show no exception."""

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tssd_viz import RunFolder, cli, fit, list_runs, preset
from tssd_viz.jobs.queue import JobManager

FILES = ("status.json", "metrics.jsonl", "config.json", "probes/epoch-0001.npz", "probes/epoch-0000.npz")
# Random bytes, and bytes that are valid JSON of the wrong shape (what a hand or a bad script leaves behind).
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["state", "kind", "t", "x"]), inner),
    max_leaves=8,
)
CONTENT = st.one_of(
    st.binary(max_size=300),
    JSONISH.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"1\n", b"[]\n", b"null\n", b'"x"\n', b'{"kind":"eval","split":"test","t":"x","acc":1}\n']),
)


@pytest.fixture(scope="module")
def done_run(tmp_path_factory) -> RunFolder:
    """A finished run of one short epoch on the offline digits, with its probes and checkpoints."""
    cfg = preset("digits").replace(
        **{
            "model.width": 0.25,
            "data.limit_train": 128,
            "data.limit_test": 64,
            "train.epochs": 1,
            "train.device": "cpu",
            "train.log_every": 1,
        }
    )
    run = RunFolder(tmp_path_factory.mktemp("fuzz") / "done")
    fit(cfg, [], run_dir=run.path)
    assert run.status()["state"] == "done"
    return run


def damaged_copy(done_run: RunFolder, root: Path, name: str, content: bytes, append: bool) -> RunFolder:
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(done_run.path, root / "run")
    path = root / "run" / name
    with open(path, "ab" if append else "wb") as f:
        f.write(content)
    return RunFolder(root / "run")


def one_line(text: str) -> bool:
    return isinstance(text, str) and "\n" not in text.strip() and len(text) < 600


def resume_outcome(run: RunFolder, capsys) -> str:
    """`python -m tssd_viz train --resume RUN`, in this process: "worked" or "refused" (in one line)."""
    try:
        code = cli.main(["train", "--resume", str(run.path), "--no-progress"])
    except SystemExit as e:
        err = capsys.readouterr().err.strip().splitlines()
        assert e.code == 2 and len(err) == 1 and err[0].startswith("error: "), (e.code, err)
        return "refused"
    capsys.readouterr()
    assert code == 0
    return "worked"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(FILES), content=CONTENT, append=st.booleans())
def test_random_bytes_in_a_finished_run_are_read_or_refused_in_one_line(
    done_run, tmp_path, capsys, name, content, append
):
    run = damaged_copy(done_run, tmp_path / "root", name, content, append)
    (row,) = list_runs(run.path.parent)
    assert one_line(row.message)
    event(f"{name}: {row.state}")
    st_ = run.status()
    assert one_line(st_["message"]) and isinstance(st_["state"], str)
    jobs = JobManager(run.path.parent, max_running=1, python="/bin/true")
    jobs.poll()
    assert jobs.queue() == [] and jobs.running() == []
    if run.probes():
        try:
            run.load_probe()
        except Exception as e:  # the one exception allowed is a ProbeError of one line
            assert type(e).__name__ == "ProbeError" and one_line(str(e)), repr(e)
    if os.environ.get("TSSD_FUZZ_RESUME", "1") == "1":
        event(f"resume after {name}: {resume_outcome(run, capsys)}")
