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
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from tssd_viz import DataConfig, Dataset, Loader, Split, lif_layers, load_dataset, record
from tssd_viz.cli import load_trained

MAX_NEURONS = 256  # per layer, as in the probe snapshots


@dataclass(frozen=True)
class Loaded:
    cfg: object  # TSSDConfig
    model: torch.nn.Module
    classes: tuple[str, ...]
    lock: threading.Lock


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint…")
def load_model(path: str, mtime_ns: int) -> Loaded:
    cfg, model, payload = load_trained(Path(path))
    return Loaded(cfg, model, tuple(payload.get("classes") or ()), threading.Lock())


@st.cache_resource(max_entries=2, show_spinner="Loading the test images…")
def _load_data(data_json: str) -> Dataset:
    return load_dataset(DataConfig(**json.loads(data_json)))


def load_data(data: DataConfig) -> Dataset:
    """The run's dataset, never downloaded from here (a missing one raises DataUnavailable)."""
    return _load_data(json.dumps(dataclasses.asdict(dataclasses.replace(data, download=False)), sort_keys=True))


@dataclass(frozen=True)
class Trace:
    images: np.ndarray  # (1, C, H, W) uint8: the image
    label: int
    logits: np.ndarray  # (T, 1, K) per-timestep logits of the final classifier
    spikes: dict[str, np.ndarray]  # layer -> (T, N) uint8 of N <= MAX_NEURONS sampled neurons
    membrane: dict[str, np.ndarray]  # layer -> (T, N) float32, V(t) after the reset
    rates: dict[str, float]  # layer -> spikes per neuron per timestep, over the whole layer


def trace_image(loaded: Loaded, ds: Dataset, index: int, T: int,
                neurons: dict[str, np.ndarray] | None = None) -> Trace:
    """Run test image `index` for T timesteps; `neurons`: which neurons to keep per layer
    (the probe snapshots' choice, so Inspect shows the neurons the live charts showed)."""
    split = Split(ds.test.images[index:index + 1], ds.test.labels[index:index + 1])
    x, _ = next(iter(Loader(split, ds, 1, train=False)))  # normalised as in training: (1, C, H, W)
    with loaded.lock, torch.no_grad(), record(loaded.model) as rec:
        out = loaded.model(x, T)
    spikes, membrane = {}, {}
    for name in rec.layers:
        s = rec.spikes[name][:, 0].flatten(1)  # (T, 1, ...) -> (T, N)
        idx = neurons.get(name) if neurons else None
        idx = torch.as_tensor(idx) if idx is not None else torch.arange(min(s.shape[1], MAX_NEURONS))
        spikes[name] = s[:, idx].numpy()
        membrane[name] = rec.membrane[name][:, 0].flatten(1)[:, idx].numpy()
    return Trace(split.images.numpy(), int(split.labels[0]), out.logits.float().numpy(), spikes, membrane,
                 dict(rec.firing_rate))


def lif_layer_names(loaded: Loaded) -> list[str]:
    """The network's LIF layers in forward order."""
    return list(lif_layers(loaded.model))
