"""Train and watch: the sidebar builds a config, Train queues it, the charts follow the run live."""

from __future__ import annotations

import streamlit as st
from dashboard import config_form, live, probe_batch, reading, starts, state

from tssd_viz import ConfigError, TSSDConfig
from tssd_viz.atomic import StorageError


def train(cfg: TSSDConfig | None, error: str | None, twin: bool, name: str) -> None:
    """The Train button's callback (it runs before the page, so it may choose the watched run)."""
    if cfg is None:
        state.flash("error", f"Not started: {error}")
        return
    jobs = state.job_manager()
    name = name.strip() or None
    try:
        runs = [jobs.submit(cfg, name)]
        if twin and cfg.distill.mode != "baseline":
            twin_cfg = cfg.replace(**{"distill.mode": "baseline"})
            runs.append(jobs.submit(twin_cfg, f"{name}-baseline" if name else None))
    except (ConfigError, StorageError) as e:
        state.flash("error", f"Not started: {e}")
        return
    st.session_state.my_runs += [r.name for r in runs]
    watch(runs[0].name)
    states = ", ".join(f"{r.name} ({r.status()['state']})" for r in runs)
    state.flash("success", f"Submitted {states}. Runs start in order, {jobs.max_running} at a time.")


def watch(name: str | None = None) -> None:
    """Watch run `name` (default: the one just picked); the address keeps it, so a reload re-attaches."""
    if name is not None:
        st.session_state.run = name
    st.query_params["run"] = st.session_state.run


def runs_panel() -> None:
    """Active runs other than the watched one, with their progress and a Cancel button; every run in a table."""
    rows = reading.run_rows(state.runs_root())
    jobs = state.job_manager()
    running = sum(r.state == "running" for r in rows)
    queued = sum(r.state == "queued" for r in rows)
    st.caption(
        f"{running} running · {queued} queued · at most {jobs.max_running} at a time · "
        f"runs folder `{state.runs_root()}` · {jobs.executor.label}"
    )
    mine = set(state.my_runs())
    # The watched run has its own progress bar and Cancel below, refreshed more often: one of each.
    for row in [r for r in rows if r.active and r.name != st.session_state.get("run")]:
        recs = reading.records(row.run)
        prog = reading.progress(row.status, recs, row.cfg)
        text, color, icon = reading.STATE_BADGES[row.state]
        c1, c2, c3, c4 = st.columns([3, 4, 1, 1], vertical_alignment="center")
        c1.markdown(f"**{row.name}**" + (" · yours" if row.name in mine else ""))
        c1.badge(text, color=color, icon=icon)
        c2.progress(prog.fraction, text=prog.text)
        if c3.button("Watch", key=f"watch_{row.name}"):
            # A button in a fragment reruns only the fragment, and the "Watching" box is the page's: the page
            # picks the run up on a whole rerun, before it draws that box.
            st.session_state.watch_next = row.name
            st.rerun(scope="app")
        with c4:
            live.cancel_button(row.name, f"cancel_{row.name}")
    if rows:
        with st.expander(f"All runs ({len(rows)})"):
            st.dataframe(run_table(rows), hide_index=True)


def run_table(rows: list[reading.RunRow]) -> list[dict]:
    """Every run, one row each, as text: a value a run does not have reads "–", never "None"."""
    table = []
    for r in rows:
        c = r.cfg
        final = reading.final_of(r)
        table.append(
            {
                "run": r.name,
                "state": r.state,
                "mode": c.distill.mode if c else "–",
                "dataset": c.data.dataset if c else "–",
                "T_s": str(c.distill.t_student) if c else "–",
                "T_t": str(c.distill.t_teacher) if c else "–",
                "seed": str(c.train.seed) if c else "–",
                "test accuracy at T_s": test_cell(r, final),
                "message": r.message or "–",
            }
        )
    return table


def test_cell(row: reading.RunRow, final: dict[int, float]) -> str:
    """The run's final test accuracy at T_s; without one (cancelled, or still training), its last
    evaluation during training, saying which epoch; else "–"."""
    if row.cfg is None:
        return "–"
    if row.cfg.distill.t_student in final:
        return live.percent(final[row.cfg.distill.t_student])
    tested = reading.last_tested_of(row)
    return f"{live.percent(tested[1])} (after epoch {tested[0]})" if tested else "–"


def train_controls(form: config_form.FormResult) -> None:
    """What Train will do (or why it cannot), a run name, the baseline twin, and the Train button."""
    if form.error:
        st.error(form.error, icon=":material/block:")
    else:
        st.caption(form.summary)
        kind, text = starts.cost_note(form.cfg, state.runs_root())
        if kind == "warning":  # e.g. a GPU recipe on a CPU: said before Train, not after an hour
            st.warning(text, icon=":material/timer:")
        else:
            st.caption(f":material/timer: {text}")
    st.text_input(
        "Run name (optional)", key="run_name", placeholder="a dated name is chosen for you", persist_state="session"
    )
    st.checkbox(
        "Also train the baseline twin (same seed), to compare",
        key="train_twin",
        persist_state="session",
        disabled=form.cfg is not None and form.cfg.distill.mode == "baseline",
    )
    st.button(
        "Train",
        key="train_button",
        type="primary",
        icon=":material/play_arrow:",
        width="stretch",
        disabled=form.cfg is None,
        on_click=train,
        args=(form.cfg, form.error, st.session_state.get("train_twin", False), st.session_state.get("run_name", "")),
    )


# Train sits right under the starting point, above the fields it sums up: pick a start, press Train, no
# scrolling (and "Start from" itself stays at the top of the sidebar, see main.py).
starts.start_picker()
controls = st.sidebar.container()
form = config_form.config_sidebar()
with controls:
    train_controls(form)

st.title("Train and watch")
st.caption(
    "Pick settings in the sidebar and press **Train**. The run trains in its own process; the charts "
    "follow its run folder every two seconds. Closing this tab stops nothing."
)
state.show_flash()
rows = reading.run_rows(state.runs_root())
names = [r.name for r in rows]
if st.session_state.get("watch_next") in names:  # Watch was pressed in the runs panel
    watch(st.session_state.pop("watch_next"))
elif names and st.session_state.get("run") not in names:  # a new session: the address's run, else the newest active
    mine = [n for n in state.my_runs() if n in names]
    active = [r.name for r in rows if r.active]
    asked = st.query_params.get("run")
    st.session_state.run = asked if asked in names else (mine[-1:] or active or names)[0]
st.fragment(run_every=state.RUNS_REFRESH_S)(runs_panel)()  # knows the watched run, so it leaves that one out

if not rows:
    st.info(
        "No runs yet. The **Quick look** starting point trains in seconds on the offline digits.",
        icon=":material/rocket_launch:",
    )
else:
    labels = {r.name: r.label() for r in rows}
    st.selectbox(
        "Watching", names, key="run", format_func=lambda n: labels.get(n, n), on_change=watch, persist_state="session"
    )
    row = next(r for r in rows if r.name == st.session_state.run)
    st.divider()
    st.fragment(run_every=state.REFRESH_S if row.active else None)(live.run_panel)(row.name, row.active)
    st.fragment(run_every=state.PROBE_REFRESH_S if row.active else None)(probe_batch.probe_panel)(row.name)
