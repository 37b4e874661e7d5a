"""Probe snapshots: what a network does on a fixed batch, recorded and sampled, one typed value.

`snapshot()` runs the network in eval mode on a batch and keeps, per LIF layer, the spikes and
membrane potentials of a fixed random sample of neurons (the same ones at every snapshot, so a
raster can be compared across training), the layer's firing rate and the per-timestep logits. The
trainer takes one after every epoch, the dashboard of any checkpoint, the lessons of their own nets.
`ProbeSnapshot` is also the probe file format of a run folder (probes/epoch-NNNN.npz).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .record import record


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class ProbeSnapshot:
    """The fixed probe batch (P images, K classes) run in eval mode for T timesteps, at one point of training.

    On disk an .npz with the keys "images", "labels", "classes", "logits", "step", "epoch", optionally
    "weak_logits", and per recorded LIF layer "spikes:{layer}", "membrane:{layer}", "rate:{layer}" and
    "neurons:{layer}". `probe["spikes:stem_lif"]` reads an array by that key.

    Attributes:
        images: (P, C, H, W) what a figure shows (or (P, T, 2, H, W) event frames).
        labels: (P,) class indices.
        classes: the K class names.
        logits: (T, P, K) per-timestep logits.
        step: the training step it was taken at.
        epoch: the epoch it was taken at.
        spikes: layer -> (T, P, n) spikes of the sampled neurons.
        membrane: layer -> (T, P, n) V(t) of the sampled neurons.
        rate: layer -> firing rate of the whole layer (spikes per neuron per timestep).
        neurons: layer -> (n,) indices of the sampled neurons in the flattened layer.
        weak_logits: (T, P, K) of the weak head, or None.
    """

    images: np.ndarray  # (P, C, H, W) uint8
    labels: np.ndarray  # (P,) int64
    classes: tuple[str, ...]  # K class names
    logits: np.ndarray  # (T, P, K) per-timestep logits of the final classifier
    step: int  # training steps done when it was taken (0: before the first)
    epoch: int
    spikes: dict[str, np.ndarray]  # layer -> (T, P, N) uint8 of N sampled neurons, layers in forward order
    membrane: dict[str, np.ndarray]  # layer -> (T, P, N) float32, V(t) after the reset
    rate: dict[str, float]  # layer -> spikes per neuron per timestep, over the whole layer
    neurons: dict[str, np.ndarray]  # layer -> (N,) the sampled neurons' indices in the flattened layer
    weak_logits: np.ndarray | None = None  # (T, P, K) of the weak head, None without one

    @property
    def layers(self) -> list[str]:
        """The recorded LIF layers, in forward order."""
        return list(self.spikes)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays under their .npz keys."""
        arrays = {
            "images": self.images,
            "labels": self.labels,
            "classes": np.array(self.classes),
            "logits": self.logits,
            "step": np.array(self.step),
            "epoch": np.array(self.epoch),
        }
        if self.weak_logits is not None:
            arrays["weak_logits"] = self.weak_logits
        for layer in self.layers:
            arrays[f"spikes:{layer}"] = self.spikes[layer]
            arrays[f"membrane:{layer}"] = self.membrane[layer]
            if layer in self.neurons:
                arrays[f"neurons:{layer}"] = self.neurons[layer]
            arrays[f"rate:{layer}"] = np.array(self.rate[layer])
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ProbeSnapshot:
        """From the .npz keys (keys this version does not know are ignored; "neurons:" may be missing)."""
        try:
            layers = [k.split(":", 1)[1] for k in arrays if k.startswith("spikes:")]
            return cls(
                images=arrays["images"],
                labels=arrays["labels"],
                classes=tuple(str(c) for c in arrays["classes"]),
                logits=arrays["logits"],
                step=int(arrays["step"]),
                epoch=int(arrays["epoch"]),
                spikes={layer: arrays[f"spikes:{layer}"] for layer in layers},
                membrane={layer: arrays[f"membrane:{layer}"] for layer in layers},
                rate={layer: float(arrays[f"rate:{layer}"]) for layer in layers},
                neurons={layer: arrays[f"neurons:{layer}"] for layer in layers if f"neurons:{layer}" in arrays},
                weak_logits=arrays["weak_logits"] if "weak_logits" in arrays else None,
            )
        except KeyError as e:
            raise ValueError(f"not a probe snapshot: no array {e.args[0]!r}") from None

    @classmethod
    def of(cls, probe: ProbeSnapshot | Mapping[str, np.ndarray]) -> ProbeSnapshot:
        """`probe` itself, or the snapshot its arrays (by .npz key) describe."""
        return probe if isinstance(probe, ProbeSnapshot) else cls.from_arrays(probe)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.to_arrays()[key]


class ProbeError(ValueError):
    """A probe file that is not a snapshot this version reads: one line naming the file."""


def read_probe(path: str | os.PathLike) -> ProbeSnapshot:
    """A probe snapshot file (.npz), checked.

    Pickled (object) arrays are never loaded: unpickling a file can run code.

    Args:
        path: the .npz file.

    Returns:
        The snapshot.

    Raises:
        ProbeError: one line naming the file, for anything else: a snapshot whose arrays have the wrong
            shapes or types (a vector where the step or a rate belongs) included.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            probe = ProbeSnapshot.from_arrays({k: z[k] for k in z.files})
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ProbeError(
                f"{path}: refused: it holds pickled data (object arrays), which a probe snapshot never has"
            ) from None
        raise ProbeError(f"{path}: not a probe snapshot ({_first_line(e)})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ProbeError(f"{path}: not a readable probe snapshot ({type(e).__name__}: {_first_line(e)})") from None
    except (TypeError, IndexError, KeyError, RecursionError) as e:  # e.g. int() of a vector
        raise ProbeError(f"{path}: not a probe snapshot ({type(e).__name__}: {_first_line(e)})") from None
    if not _shapes_agree(probe):
        raise ProbeError(f"{path}: not a probe snapshot (its arrays do not have the shapes of one)")
    return probe


def _shapes_agree(probe: ProbeSnapshot) -> bool:
    """Logits (T, P, K), labels (P,) in range(K), spikes and membrane (T, P, N), all of them numbers."""
    arrays = [probe.images, probe.labels, probe.logits, *probe.spikes.values(), *probe.membrane.values()]
    if any(a.dtype.kind not in "biuf" for a in arrays) or probe.logits.ndim != 3:
        return False  # numbers (or bools), never strings
    T, P, K = probe.logits.shape
    if probe.labels.shape != (P,) or (probe.classes and len(probe.classes) != K):
        return False
    if P and (probe.labels.dtype.kind not in "iu" or probe.labels.min() < 0 or probe.labels.max() >= K):
        return False
    return all(
        s.ndim == 3 and s.shape[:2] == (T, P) and probe.membrane[k].shape == s.shape for k, s in probe.spikes.items()
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:120] if text else type(e).__name__


@torch.no_grad()
def snapshot(
    model: torch.nn.Module,
    x: Tensor,
    T: int,
    *,
    labels: Tensor | np.ndarray | None = None,
    images: Tensor | np.ndarray | None = None,
    classes: Sequence[str] = (),
    max_neurons: int = 256,
    layers: Sequence[str] | None = None,
    neurons: Mapping[str, np.ndarray] | None = None,
    step: int = 0,
    epoch: int = 0,
) -> ProbeSnapshot:
    """Run `model` on `x` for T timesteps in eval mode (restored afterwards) and record it at `step`, `epoch`.

    Args:
        x: (P, C, H, W) normalised images or (T, P, C, H, W) frames; labels (P,), classes the K names.
        images: (P, C, H, W) what a figure shows (default: x).
        max_neurons: neurons per LIF layer, sampled with a fixed generator: every snapshot shows the same.
        layers: the LIF layers to record (default: all).
        neurons: layer -> indices in the flattened layer (e.g. an earlier snapshot's), instead of sampling.

    Returns:
        The snapshot, arrays on the CPU.
    """
    was_training = model.training
    model.eval()
    try:
        with record(model, layers=layers) as rec:
            out = model(x, T)
    finally:
        model.train(was_training)
    gen = torch.Generator().manual_seed(0)  # the same neurons at every snapshot
    spikes, membrane, chosen = {}, {}, {}
    for name in rec.layers:
        s = rec.spikes[name].flatten(2)  # (T, P, ...) -> (T, P, N)
        idx = torch.randperm(s.shape[2], generator=gen)[:max_neurons].sort().values  # drawn always: same stream
        if neurons is not None and name in neurons:
            idx = torch.as_tensor(np.asarray(neurons[name]), dtype=torch.long)
        spikes[name] = s[:, :, idx].numpy()
        membrane[name] = rec.membrane[name].flatten(2)[:, :, idx].numpy()
        chosen[name] = idx.numpy()
    shown = x if images is None else images
    return ProbeSnapshot(
        images=shown.cpu().numpy() if isinstance(shown, Tensor) else np.asarray(shown),
        labels=(
            labels.cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels if labels is not None else [])
        ),
        classes=tuple(str(c) for c in classes),
        logits=out.logits.float().cpu().numpy(),
        step=step,
        epoch=epoch,
        spikes=spikes,
        membrane=membrane,
        rate=dict(rec.firing_rate),
        neurons=chosen,
        weak_logits=None if out.weak_logits is None else out.weak_logits.float().cpu().numpy(),
    )
