"""Figures: pure functions from recorded data (tensors, arrays, metrics records) to plotly figures.

Notebooks and the app draw with the same functions; none of them trains, records or changes its input.

Neurons and layers: `neuron_figure`, `raster_figure`, `membrane_traces_figure`, `firing_rate_figure`.
Outputs over time: `timestep_logits_figure`, `window_agreement_figure`.
Training (from metrics records): `loss_parts_figure`, `accuracy_figure`, `window_heatmap_figure`,
`accuracy_vs_timesteps_figure`, `kl_agreement_figure`.
"""

from .logits import timestep_logits_figure, window_agreement_figure
from .neuron import firing_rate_figure, membrane_traces_figure, neuron_figure, raster_figure
from .style import ROLE_COLORS, RUN_COLORS, RUN_DASHES, TEMPLATE
from .training import (accuracy_figure, accuracy_vs_timesteps_figure, kl_agreement_figure, loss_parts_figure,
                       window_heatmap_figure)

__all__ = [
    "ROLE_COLORS", "RUN_COLORS", "RUN_DASHES", "TEMPLATE", "accuracy_figure", "accuracy_vs_timesteps_figure",
    "firing_rate_figure", "kl_agreement_figure", "loss_parts_figure", "membrane_traces_figure", "neuron_figure",
    "raster_figure", "timestep_logits_figure", "window_agreement_figure", "window_heatmap_figure",
]
