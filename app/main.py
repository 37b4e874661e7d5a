"""tssd-viz dashboard: `streamlit run app/main.py`.

Train runs of TSSD and watch the distillation signals live, compare runs, inspect a trained network
on one image, play with one LIF neuron, and ask whether a teacher helps with a controlled experiment
(arms x seeds). Runs train in separate processes of the CLI, queued by a job manager that every browser
session shares; the pages only read run folders.

Environment:
    TSSD_RUNS_DIR     where run folders live (default ./runs); any run folder there is listed
    TSSD_MAX_RUNNING  how many runs train at once (default: one per GPU, one on a CPU machine)
    TSSD_DATA_ROOT    where CIFAR is looked for first (DIR/cifar10); see the README's Data section
    TSSD_SERVE        "classroom" (make serve): Inspect opens run folders inside the runs folder only
    TSSD_EXECUTOR     "local" (default: child processes) or "ray" (jobs of the Ray cluster at RAY_ADDRESS;
                      the runs folder must then be on a filesystem every node sees)
"""

from pathlib import Path

import streamlit as st
from dashboard import live, state

from tssd_viz import ConfigError

# The tab icon is a file of ours: a Material icon name would be fetched from a font server, which fails offline.
st.set_page_config(
    page_title="tssd-viz · an SNN teaching itself",
    page_icon=str(Path(__file__).parent / "icon.svg"),
    layout="wide",
    initial_sidebar_state="expanded",
)
state.init_session()
st.html("""<style>
  [data-testid="stSidebar"] { min-width: 340px; }
  /* "Start from" stays in view: a select box's list closes when the sidebar scrolls, so a click that
     first had to scroll back up to it only focused it. */
  [data-testid="stSidebar"] .st-key-cfg_start { position: sticky; top: 0; z-index: 2; padding-bottom: 0.5rem;
                                               background: var(--st-secondary-background-color, #f0f2f6); }
  [data-testid="stAppDeployButton"] { display: none; }
  .block-container { padding-top: 2.5rem; }
</style>""")
st.html(f"<style>{live.CHART_BOX_STYLE}</style>")

pages = [
    st.Page("views/train.py", title="Train and watch", icon=":material/monitoring:", default=True),
    st.Page("views/compare.py", title="Compare runs", icon=":material/compare_arrows:"),
    st.Page("views/inspect.py", title="Inspect a run", icon=":material/biotech:"),
    st.Page("views/playground.py", title="Neuron playground", icon=":material/tune:"),
    st.Page("views/experiment.py", title="Experiment", icon=":material/science:"),
]
page = st.navigation(pages)
try:
    state.job_manager()  # start the shared queue (idempotent): runs submitted anywhere start from here
except ConfigError as e:  # TSSD_EXECUTOR / RAY_ADDRESS unusable: one line, not a traceback
    st.error(f"The job queue cannot start: {e}")
    st.stop()
page.run()
