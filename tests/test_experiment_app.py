"""The Experiment page with Streamlit's AppTest: build a tiny experiment, run it to its verdict, re-attach to it
from a new session, and cancel a prepared question while it trains. Real runs, through the job queue."""

import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from waiting import wait_for

from tssd_viz import RunFolder
from tssd_viz.stats import paired
from tssd_viz.sweep import experiment as ex
from tssd_viz.sweep.experiment_table import experiment_rows

APP = Path(__file__).resolve().parents[1] / "app" / "main.py"
PAGE = "views/experiment.py"
TINY = "train.epochs=1, data.limit_train=128, data.limit_test=64, model.width=0.25, distill.t_teacher=3"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment-app") / "runs"
    with pytest.MonkeyPatch.context() as env:  # the app reads both; one run at a time, as on a CPU
        env.setenv("TSSD_RUNS_DIR", str(root))
        env.setenv("TSSD_MAX_RUNNING", "1")
        yield root
        for sweep_dir in ex.attach(root):  # never leave a driver or a training process behind
            if ex.driver_pid(sweep_dir) is not None:
                ex.cancel(sweep_dir)
                wait_for(lambda d=sweep_dir: ex.driver_pid(d) is None, 120, "the experiment to stop")


def session(**query) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update(query)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def press_run(at: AppTest, root: Path) -> Path:
    before = {p.name for p in ex.attach(root)}
    at.button(key="exp_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value.startswith("Started ") for s in at.success), [e.value for e in at.error]
    (new,) = [p for p in ex.attach(root) if p.name not in before]
    return new


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


@pytest.fixture(scope="module")
def finished(runs_dir):
    """baseline vs tsd, 3 seeds, built in the sidebar and run to its verdict."""
    at = session()
    at.selectbox(key="exp_question").set_value("custom").run()
    at.selectbox(key="exp_start").set_value("quick").run()
    at.number_input(key="exp_n_arms").set_value(2).run()
    at.text_input(key="exp_shared").set_value(TINY).run()
    assert not at.sidebar.error, [e.value for e in at.sidebar.error]
    sweep_dir = press_run(at, runs_dir)
    exp = ex.load(sweep_dir)
    assert [a.name for a in exp.arms] == ["baseline", "tsd"] and exp.seeds == (0, 1, 2)
    at.run()
    assert "Verdict:** waiting" in texts(at) or "runs done" in texts(at)
    wait_for(lambda: ex.experiment_state(exp, sweep_dir) != "running", 600, "the experiment to finish")
    return at, exp, sweep_dir


def test_a_built_experiment_runs_to_its_verdict(finished):
    at, exp, sweep_dir = finished
    assert ex.experiment_state(exp, sweep_dir) == "finished", (sweep_dir / "sweep.log").read_text()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    rows = experiment_rows(exp, sweep_dir)
    accs = {r["arm"]: r["acc_by_seed"] for r in rows}
    by_hand = paired(accs["tsd"], accs["baseline"])
    page = texts(at)
    assert "**Verdict** (all seeds):" in page
    assert f"`tsd` vs `baseline`: {by_hand.verdict()}." in page
    assert re.search(r"6 of 6 runs done .* verdict [\d.]+ s|6 of 6 runs done .* verdict \d+ min", page), page
    assert any(c.proto.id.endswith("exp_figure") for c in at.get("plotly_chart"))
    table = next(d.value for d in at.dataframe if "arm" in d.value.columns)
    assert list(table["arm"]) == ["baseline", "tsd"] and "training s" in table.columns
    reference = table.iloc[0]  # the reference arm has no difference from itself: "–", never "None"
    assert reference["vs baseline (points)"] == "–" and reference["higher on"] == "–"
    assert table.iloc[1]["vs baseline (points)"] == f"{100 * by_hand.mean:+.1f}"
    assert "None" not in table.to_string()
    at.button(key="exp_export").click().run()
    assert {"summary.md", "table.csv", "figure.html"} <= {p.name for p in sweep_dir.iterdir()}


def test_a_new_session_reattaches_to_the_experiment_in_its_address(finished, runs_dir):
    _, exp, sweep_dir = finished
    again = session(experiment=sweep_dir.name)
    assert again.selectbox(key="experiment").value == sweep_dir.name
    assert "**Verdict** (all seeds):" in texts(again)


def test_a_prepared_question_is_cancelled_as_a_whole(finished, runs_dir):
    at = session()
    at.selectbox(key="exp_question").set_value("digits").run()
    assert "Arms: baseline, tsd, tsd·noKL." in texts(at)
    at.text_input(key="exp_shared").set_value(TINY).run()
    sweep_dir = press_run(at, runs_dir)
    exp = ex.load(sweep_dir)
    first = RunFolder(runs_dir / exp.cells()[0].name)
    wait_for(lambda: first.path.exists() and first.status()["state"] == "running", 120, "the first run to start")
    at.run()
    assert at.selectbox(key="experiment").value == sweep_dir.name  # the session watches what it started
    at.button(key="exp_cancel").click().run()
    wait_for(lambda: ex.driver_pid(sweep_dir) is None, 120, "the driver to stop")
    time.sleep(0.5)
    at.run()
    states = ex.cell_states(exp, sweep_dir)
    assert states[first.name] in ("cancelled", "done") and set(states.values()) <= {"planned", "cancelled", "done"}
    assert sum(s == "done" for s in states.values()) <= 1, states  # nothing started after the cancel
    assert any("stopped" in m.value for m in at.markdown), texts(at)


def test_a_bad_setting_is_refused_before_run(runs_dir):
    at = session()
    at.text_input(key="exp_shared").set_value("train.epochs").run()
    assert any("not name=value" in e.value for e in at.sidebar.error)
    assert at.button(key="exp_run").disabled
