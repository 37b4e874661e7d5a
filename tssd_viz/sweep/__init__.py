"""Sweeps: a named grid of runs, trained into ordinary run folders and summarised from them.

The site's results tables (docs/results/) come from here, never from typing: `python -m tssd_viz sweep` expands a
grid into a deterministic list of cells (run name, TSSDConfig), trains each one in its own
subprocess (`python -m tssd_viz train`, so that one crash or leak cannot take the sweep down), and
rebuilds the tables from whatever run folders exist. A sweep folder:

    <sweep-dir>/sweep.json                    what produced it: grid, base config, seeds, command line
               runs/<name>/                   a run folder (SPEC §8) + cell.json (its place in the grid)
                                              + train.log; checkpoints deleted once done
               sweep.log                      one line per event
               summary.md, summary.json       the tables, rebuilt from runs/ at any time
               accuracy_vs_timesteps.html     (+ .png when kaleido can render)

Names encode the cell: `tssd-ts2-tt4-s0-epochs`, `tssd-ts1-tt2-alpha0.5-s0-epochs`,
`baseline-ts1-tt2-s1-time`. A finished run (status done) is skipped, so running the same command
again resumes a sweep; a stopped run continues from its last checkpoint, one without a checkpoint
starts over.

The package: `grid` (which runs), `runner` (training them), `records` (reading them back), `summary`
and `tables` (the CIFAR grids' tables), `sections` (the generated sections of a page), `events`
(the event-camera grid and its table), `arms` and `controls` (arms beside their controls: the no-KL
twin and the equal-time baseline, per regime, compared through `tssd_viz.stats`), `plan` (which grid
a sweep is, its cells and its table), `experiment` (a question asked with arms and seeds: the dashboard's
Experiment page), `queued` (its driver: the runner with each run waiting its turn in the job queue) and
`experiment_table` (its table, verdicts and figure).
"""

from .arms import Arm, ArmError, parse_arms, twin
from .controls import CONTROL_ARMS, REGIMES, control_cells, summarize_controls
from .controls_table import render_controls
from .events import EVENTS_SECTION, event_cells, render_events, summarize_events
from .experiment import QUESTIONS, Experiment, Question, make_arms, make_experiment, prepared
from .experiment_table import write_experiment_summary
from .grid import (
    ABLATION_TS,
    ABLATIONS,
    CLASSROOM_MODES,
    EPOCH_CAP_FACTOR,
    GRIDS,
    SWEEP_DEFAULTS,
    TEST_SIZES,
    TRAIN_SIZES,
    Cell,
    SweepError,
    cell_name,
    select,
)
from .plan import expand, grid_of, write_summary
from .records import calibrated_cost, collect, mean_std, measured_budget
from .runner import (
    DEFAULT_COST_S,
    Log,
    estimate_seconds,
    plan_text,
    run_cell,
    run_sweep,
    start_background,
    write_manifest,
)
from .sections import END, START, markers, rewrite_section
from .summary import accuracy_figure, render_markdown, summarize

__all__ = [
    "QUESTIONS",
    "Experiment",
    "Question",
    "make_arms",
    "make_experiment",
    "prepared",
    "write_experiment_summary",
    "CONTROL_ARMS",
    "REGIMES",
    "Arm",
    "ArmError",
    "control_cells",
    "grid_of",
    "parse_arms",
    "render_controls",
    "summarize_controls",
    "twin",
    "ABLATION_TS",
    "ABLATIONS",
    "CLASSROOM_MODES",
    "DEFAULT_COST_S",
    "END",
    "EVENTS_SECTION",
    "EPOCH_CAP_FACTOR",
    "GRIDS",
    "START",
    "SWEEP_DEFAULTS",
    "TEST_SIZES",
    "TRAIN_SIZES",
    "Cell",
    "Log",
    "SweepError",
    "accuracy_figure",
    "calibrated_cost",
    "cell_name",
    "collect",
    "estimate_seconds",
    "event_cells",
    "expand",
    "mean_std",
    "markers",
    "measured_budget",
    "plan_text",
    "render_events",
    "render_markdown",
    "rewrite_section",
    "run_cell",
    "run_sweep",
    "select",
    "start_background",
    "summarize",
    "summarize_events",
    "write_manifest",
    "write_summary",
]
