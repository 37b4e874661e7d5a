"""Which grid a sweep is: its cells, and the table its run folders are summarised into.

The grids with tables of their own (`events`: sweep/events.py; `controls`: sweep/controls.py) and the
CIFAR grids (sweep/grid.py, sweep/summary.py) meet here, so that none of those modules imports another
one's table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import TSSDConfig
from .controls import RACE_CONTROL_ARMS, control_cells
from .controls_table import write_controls_summary
from .events import event_cells, write_events_summary
from .grid import Cell, expand_grid
from .summary import write_summary as write_cifar_summary


def expand(
    grid: str, base: TSSDConfig, *, seeds: int = 3, ablation_seeds: int = 1, budget_s: float | None = None
) -> list[Cell]:
    """The grid's cells in the order they run (see `grid.expand_grid`, `event_cells`, `control_cells`)."""
    if grid == "events":
        return event_cells(base, seeds)
    if grid == "controls":
        return control_cells(base, seeds)
    if grid == "race-controls":  # the race's T_s = 2 arms and their controls, one regime: the base config
        return control_cells(base, seeds, RACE_CONTROL_ARMS, {"ref": ("T_s = 2", {})})
    return expand_grid(grid, base, seeds=seeds, ablation_seeds=ablation_seeds, budget_s=budget_s)


def grid_of(sweep_dir: Path) -> str | None:
    """The grid named in `<sweep-dir>/sweep.json` (None without a readable manifest)."""
    try:
        manifest = json.loads((sweep_dir / "sweep.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("grid") if isinstance(manifest, dict) else None


def write_summary(
    sweep_dir: Path, readme: Path | None = None, png: bool = True, section: str = "results"
) -> dict[str, Any]:
    """Rebuild the sweep's summary from `<sweep-dir>/runs` with its grid's table; rewrite `readme`'s `section`."""
    grid = grid_of(sweep_dir)
    if grid == "events":
        return write_events_summary(sweep_dir, readme, section)
    if grid in ("controls", "race-controls"):
        return write_controls_summary(sweep_dir, readme, section)
    if grid == "experiment":  # an Experiment page's folder (sweep/experiment.py)
        from .experiment_table import write_experiment_summary

        return write_experiment_summary(sweep_dir, readme, section)
    return write_cifar_summary(sweep_dir, readme, png=png, section=section)
