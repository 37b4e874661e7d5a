"""A trained network on one test image, for Inspect: load once per checkpoint, one forward pass per choice.

The network runs in eval mode on the CPU of the app process (the GPUs are for training runs) under
the library's scoped `record` probe. Models are shared by every session, so a lock keeps two
sessions from recording the same model at once.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from tssd_viz import (
    DataConfig,
    Dataset,
    DistillConfig,
    Loader,
    Split,
    lif_layers,
    load_dataset,
    load_trained,
    snapshot,
)

MAX_NEURONS = 256  # per layer, as in the probe snapshots


@dataclass(frozen=True)
class Loaded:
    cfg: object  # TSSDConfig
    model: torch.nn.Module
    classes: tuple[str, ...]
    lock: threading.Lock


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint…")
def load_model(path: str, mtime_ns: int) -> Loaded:
    trained = load_trained(path)
    return Loaded(trained.cfg, trained.model, trained.classes, threading.Lock())


@st.cache_resource(max_entries=2, show_spinner="Loading the test images…")
def _load_data(data_json: str, distill_json: str) -> Dataset:
    return load_dataset(DataConfig(**json.loads(data_json)), DistillConfig(**json.loads(distill_json)))


def load_data(data: DataConfig, distill: DistillConfig) -> Dataset:
    """The run's dataset, never downloaded from here (a missing one raises DataUnavailable); event
    recordings binned for the run's windows (`distill`)."""
    data_json = json.dumps(dataclasses.asdict(dataclasses.replace(data, download=False)), sort_keys=True)
    return _load_data(data_json, json.dumps(dataclasses.asdict(distill), sort_keys=True))


@dataclass(frozen=True)
class Trace:
    images: np.ndarray  # (1, C, H, W) uint8: the image, or (1, T, 2, H, W) event frames
    label: int
    logits: np.ndarray  # (T, 1, K) per-timestep logits of the final classifier
    spikes: dict[str, np.ndarray]  # layer -> (T, N) uint8 of N <= MAX_NEURONS sampled neurons
    membrane: dict[str, np.ndarray]  # layer -> (T, N) float32, V(t) after the reset
    rates: dict[str, float]  # layer -> spikes per neuron per timestep, over the whole layer


def trace_image(loaded: Loaded, ds: Dataset, index: int, T: int, neurons: dict[str, np.ndarray] | None = None) -> Trace:
    """Run test image `index` for T timesteps; `neurons`: which neurons to keep per layer
    (the probe snapshots' choice, so Inspect shows the neurons the live charts showed)."""
    split = Split(ds.test.view(T)[index : index + 1], ds.test.labels[index : index + 1])
    x, _ = next(iter(Loader(split, ds, 1, train=False)))  # normalised as in training: (1, C, H, W) or (T, 1, ...)
    with loaded.lock:
        snap = snapshot(
            loaded.model, x, T, images=split.images, labels=split.labels, max_neurons=MAX_NEURONS, neurons=neurons
        )
    return Trace(
        snap.images,
        int(snap.labels[0]),
        snap.logits,
        {k: v[:, 0] for k, v in snap.spikes.items()},  # (T, 1, N) -> (T, N)
        {k: v[:, 0] for k, v in snap.membrane.items()},
        snap.rate,
    )


def lif_layer_names(loaded: Loaded) -> list[str]:
    """The network's LIF layers in forward order."""
    return list(lif_layers(loaded.model))
