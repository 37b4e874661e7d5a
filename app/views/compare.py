"""Compare runs: two or more runs on the same charts, their settings side by side, accuracy by window."""

from __future__ import annotations

import streamlit as st
from dashboard import live, reading, state

from tssd_viz import figures
from tssd_viz.figures.dashboard import firing_rate_history_figure
from tssd_viz.runs.metrics import final_accuracy

COLUMN_HELP = {
    "teacher margin": "Accuracy of the run's teacher minus its student's at the end of training, in points ("
    "tsd/tssd: window T_t − T_s; ssd: final output − weak head; s2w: strongest − weakest timestep; w2s: the "
    "reverse). Distillation can only pass on what the teacher knows more.",
    "train − test": "Accuracy at T_s on training images minus on test images, in points: how much the run "
    "over-fits. A distillation loss regularises, which pays where this is large.",
}


def _points(fraction: float | None) -> str:
    """A difference in points, signed; "–" where the run has none (never "None")."""
    return "–" if fraction is None else f"{100 * fraction:+.1f} points"


def differing_settings(rows: list[reading.RunRow]) -> list[dict]:
    """The config fields whose values differ between the runs: what the comparison is about."""
    flat = []
    for r in rows:
        d = r.cfg.to_dict()
        flat.append({f"{section}.{k}": v for section, fields in d.items() for k, v in fields.items()})
    keys = [k for k in flat[0] if len({repr(f.get(k)) for f in flat}) > 1]
    return [{"setting": k, **{r.name: str(f.get(k)) for r, f in zip(rows, flat)}} for k in keys]


def accuracy_table(rows: list[reading.RunRow], recs: dict[str, list[dict]]) -> list[dict]:
    width = max(r.cfg.distill.t_teacher for r in rows)
    table = []
    for r in rows:
        final = final_accuracy(recs[r.name])
        t_s = r.cfg.distill.t_student
        end = reading.last_of(recs[r.name], "analysis") or {}
        train_acc = final_accuracy(recs[r.name], "train").get(t_s)
        table.append(
            {
                "run": r.name,
                "mode": r.cfg.distill.mode,
                "state": r.state,
                "T_s": t_s,
                "at T_s": live.percent(final.get(t_s)),
                # what its teacher knew more than its student; how much it over-fits (SPEC §10)
                "teacher margin": _points(end.get("teacher_margin")),
                "train − test": _points(train_acc - final[t_s] if train_acc is not None and t_s in final else None),
                **{f"n = {n}": live.percent(final.get(n)) for n in range(1, width + 1)},
            }
        )
    return table


def comparison(names: list[str]) -> None:
    """The charts and tables; a fragment that refreshes while any of the runs still trains."""
    by_name = {r.name: r for r in reading.run_rows(state.runs_root())}
    rows = [by_name[n] for n in names if n in by_name and by_name[n].cfg is not None]
    recs = {r.name: reading.records(r.run) for r in rows}
    shown = {name: reading.thin(rs, 800) for name, rs in recs.items()}
    version = tuple((n, len(rs)) for n, rs in recs.items())
    t_students = {r.cfg.distill.t_student for r in rows}
    t_s = t_students.pop() if len(t_students) == 1 else None
    tables(rows, recs)
    training_curves(shown, version, t_s)
    timestep_submodels(recs, shown, version, t_s)
    window_heatmaps(rows, recs, shown)


def tables(rows: list[reading.RunRow], recs: dict[str, list[dict]]) -> None:
    """Accuracy of every window per run, and the settings the runs differ in."""
    st.markdown("##### Test accuracy of every window n (the first n timesteps)")
    table = accuracy_table(rows, recs)
    st.dataframe(  # text cells: a window a run has no evaluation of reads "–"
        table,
        hide_index=True,
        key="compare_table",
        column_config={k: st.column_config.TextColumn(help=COLUMN_HELP[k]) for k in ("teacher margin", "train − test")},
    )
    diff = differing_settings(rows)
    if diff:
        with st.expander(f"Settings that differ ({len(diff)})", expanded=True):
            st.dataframe(diff, hide_index=True)
    else:
        st.caption("These runs have identical settings (a repeat, or different only in when they ran).")


def training_curves(shown: dict[str, list[dict]], version: tuple, t_s: int | None) -> None:
    """Accuracy by window, and the training curves (smoothed as the slider says) of every run overlaid."""
    c1, c2 = st.columns(2)
    with c1:
        live.chart(
            live.figure("cmp_windows", version, lambda: figures.accuracy_vs_timesteps_figure(shown, t_student=t_s)),
            "compare_windows",
            True,
        )
    with c2:
        live.chart(live.figure("cmp_acc", version, lambda: figures.accuracy_figure(shown)), "compare_accuracy", True)
    smooth = st.slider("Smoothing of the training curves", 0.0, 0.95, 0.6, 0.05, key="compare_smooth")
    c1, c2 = st.columns(2)
    with c1:
        live.chart(
            live.figure("cmp_loss", (version, smooth), lambda: figures.loss_parts_figure(shown, smooth=smooth)),
            "compare_loss",
            True,
        )
    with c2:
        live.chart(live.figure("cmp_kl", version, lambda: figures.kl_agreement_figure(shown)), "compare_kl", True)
    live.chart(live.figure("cmp_rates", version, lambda: firing_rate_history_figure(shown)), "compare_rates", True)


def timestep_submodels(recs: dict, shown: dict, version: tuple, t_s: int | None) -> None:
    """Each timestep's confidence and early exit, for runs that record them."""
    ends = {n: reading.last_of(rs, "analysis") for n, rs in recs.items()}
    ends = {n: a for n, a in ends.items() if a}
    if not (ends or any(r.get("confidence_by_timestep") for rs in shown.values() for r in rs[-1:])):
        return
    st.markdown("##### The timesteps of the student window as sub-models")
    c1, c2 = st.columns(2)
    with c1:
        live.chart(
            live.figure("cmp_conf", version, lambda: figures.timestep_confidence_figure(shown)),
            "compare_confidence",
            True,
        )
    with c2:
        if ends:
            exits = {n: a.get("early_exit") or [] for n, a in ends.items()}
            live.chart(
                live.figure("cmp_exit", version, lambda: figures.early_exit_figure(exits, full_window=t_s)),
                "compare_exit",
                True,
            )


def window_heatmaps(rows: list[reading.RunRow], recs: dict, shown: dict) -> None:
    """Each window's accuracy over training, for the first three runs."""
    st.markdown("##### Accuracy of each window over training")
    for col, r in zip(st.columns(min(len(rows), 3)), rows[:3]):
        with col:
            live.chart(
                live.figure(
                    f"cmp_heat_{r.name}",
                    (r.name, len(recs[r.name])),
                    lambda r=r: figures.window_heatmap_figure(
                        shown[r.name], t_student=r.cfg.distill.t_student, title=r.name
                    ),
                ),
                f"compare_heat_{r.name}",
            )


st.title("Compare runs")
st.caption(
    "Overlay runs on the same charts, e.g. the baseline and TSSD from the same seed: a quantity keeps its "
    "colour, each run gets its own dash."
)
rows = [r for r in reading.run_rows(state.runs_root()) if r.cfg is not None and r.state != "queued"]
if len(rows) < 2:
    st.info(
        "Comparing needs at least two runs that have started. On *Train and watch*, tick "
        "“Also train the baseline twin” to get a TSSD run and its baseline from the same seed.",
        icon=":material/compare_arrows:",
    )
else:
    names = [r.name for r in rows]
    if "compare_runs" not in st.session_state:  # first visit: the two newest finished runs, else the newest
        done = [r.name for r in rows if r.state == "done"]
        st.session_state.compare_runs = (done + [n for n in names if n not in done])[:2]
    else:  # runs deleted since stay out; an empty choice stays empty (the user removed them)
        st.session_state.compare_runs = [n for n in st.session_state.compare_runs if n in names]
    labels = {r.name: r.label() for r in rows}
    chosen = st.multiselect(
        "Runs",
        names,
        key="compare_runs",
        format_func=lambda n: labels.get(n, n),
        max_selections=len(figures.RUN_DASHES),
    )
    if len(chosen) < 2:
        st.info("Pick at least two runs.")
    else:
        active = any(r.active for r in rows if r.name in chosen)
        st.fragment(run_every=state.RUNS_REFRESH_S if active else None)(comparison)(chosen)
