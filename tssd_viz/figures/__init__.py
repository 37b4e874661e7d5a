"""Figures: pure functions from recorded data (tensors, arrays, metrics records) to plotly figures.

Notebooks and the app draw with the same functions; none of them trains, records or changes its input.
Everything is importable from here (`tv.figures.raster_figure`); the modules split them by what they show.

Neurons and layers: `neuron_figure`, `raster_figure`, `membrane_traces_figure`, `firing_rate_figure`;
which neurons to trace: `busiest_neurons`, `intermittent_neurons`.
Outputs over time: `timestep_logits_figure`, `window_agreement_figure`.
Training (from metrics records): `loss_parts_figure`, `accuracy_figure`, `window_heatmap_figure`,
`accuracy_vs_timesteps_figure`, `kl_agreement_figure`, `firing_rate_history_figure`.
Timesteps as sub-models (SPEC §10): `timestep_confidence_figure`, `strong_weak_strip_figure`,
`timestep_accuracy_figure`, `early_exit_figure`.
Images, the network and comparisons: `image_grid_figure`, `probe_batch_figure`, `network_diagram_figure`,
`head_predictions_figure`, `comparison_bars_figure`.
Event cameras: `camera_figure` (events over the sensor, with a time slider), `event_frames_figure` (the
T frames after binning), `pixel_events_figure` (one pixel's log intensity and events), `events_rgb`
(event counts as pictures).
A controlled experiment (arms x seeds, paired against a reference arm): `experiment_figure`.
Controls that redraw a figure in a notebook: `figure_explorer`.
"""

from .dashboard import busiest_neurons, firing_rate_history_figure, probe_batch_figure
from .events import camera_figure, event_frames_figure, events_rgb, pixel_events_figure
from .experiment import experiment_figure
from .lessons import (
    comparison_bars_figure,
    figure_explorer,
    head_predictions_figure,
    image_grid_figure,
    intermittent_neurons,
)
from .logits import timestep_logits_figure, window_agreement_figure
from .network import network_diagram_figure
from .neuron import firing_rate_figure, membrane_traces_figure, neuron_figure, raster_figure
from .style import ROLE_COLORS, RUN_COLORS, RUN_DASHES, TEMPLATE
from .timesteps import (
    early_exit_figure,
    strong_weak_strip_figure,
    timestep_accuracy_figure,
    timestep_confidence_figure,
)
from .training import (
    accuracy_figure,
    accuracy_vs_timesteps_figure,
    kl_agreement_figure,
    loss_parts_figure,
    window_heatmap_figure,
)

__all__ = [
    "ROLE_COLORS",
    "RUN_COLORS",
    "RUN_DASHES",
    "TEMPLATE",
    "accuracy_figure",
    "accuracy_vs_timesteps_figure",
    "busiest_neurons",
    "camera_figure",
    "event_frames_figure",
    "experiment_figure",
    "events_rgb",
    "comparison_bars_figure",
    "early_exit_figure",
    "figure_explorer",
    "firing_rate_figure",
    "firing_rate_history_figure",
    "head_predictions_figure",
    "image_grid_figure",
    "intermittent_neurons",
    "kl_agreement_figure",
    "loss_parts_figure",
    "membrane_traces_figure",
    "network_diagram_figure",
    "pixel_events_figure",
    "neuron_figure",
    "probe_batch_figure",
    "raster_figure",
    "strong_weak_strip_figure",
    "timestep_accuracy_figure",
    "timestep_confidence_figure",
    "timestep_logits_figure",
    "window_agreement_figure",
    "window_heatmap_figure",
]
