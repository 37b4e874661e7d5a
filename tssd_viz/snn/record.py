"""Recording probes: spikes, membrane potentials and firing rates of chosen LIF layers.

    with record(model, layers=["stages.0.blocks.0.lif"]) as rec:
        model(images, T=4)
    rec.spikes["stages.0.blocks.0.lif"]   # (T, B, C, H, W) uint8, on the CPU

The probe is scoped: forward hooks are attached on entry and removed on exit, so a model outside
the `with` block runs exactly as before and keeps no recording state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .neurons import LIF


@dataclass
class Recording:
    """What one forward pass did, per layer name. Each new forward inside the scope overwrites it.

    Attributes:
        spikes: layer -> (T, B, ...) uint8 spikes, on the CPU.
        membrane: layer -> (T, B, ...) float32 V(t) after the reset, on the CPU.
        firing_rate: layer -> spikes per neuron per timestep.
    """

    spikes: dict[str, Tensor] = field(default_factory=dict)  # (T, B, ...) uint8, CPU
    membrane: dict[str, Tensor] = field(default_factory=dict)  # (T, B, ...) float32, CPU: V(t) after reset
    firing_rate: dict[str, float] = field(default_factory=dict)  # spikes per neuron per timestep

    @property
    def layers(self) -> list[str]:
        return list(self.firing_rate)


def lif_layers(model: nn.Module) -> dict[str, LIF]:
    """Every LIF layer of `model`, in forward order, by its module name.

    Args:
        model: any module.

    Returns:
        Module name -> LIF layer.
    """
    return {name: m for name, m in model.named_modules() if isinstance(m, LIF)}


@contextmanager
def record(
    model: nn.Module,
    layers: Iterable[str] | None = None,
    *,
    spikes: bool = True,
    membrane: bool = True,
    max_batch: int | None = None,
) -> Iterator[Recording]:
    """Record the LIF layers named in `layers` (default: all) during the forward passes in scope.

    Use as `with record(model) as rec:`; the hooks are removed on exit.

    Args:
        model: the network.
        layers: LIF layer names (`lif_layers`); None records all.
        spikes: keep the spike tensors (False keeps only firing rates: one reduction per layer).
        membrane: keep the membrane tensors.
        max_batch: keep only the first images of the batch in the stored tensors.

    Yields:
        The `Recording`, filled by each forward pass.

    Raises:
        KeyError: a name in `layers` is not a LIF layer of `model`.
    """
    available = lif_layers(model)
    names = list(available) if layers is None else list(layers)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise KeyError(f"no LIF layer named {unknown[0]!r}; layers: {', '.join(available)}")

    rec = Recording()
    keep = slice(None) if max_batch is None else slice(0, max_batch)
    handles = []

    def on_spikes(name: str):
        def hook(_module, _inputs, out: Tensor) -> None:
            rec.firing_rate[name] = float(out.detach().float().mean())
            if spikes:
                rec.spikes[name] = out.detach()[:, keep].to("cpu", copy=True).to(torch.uint8)

        return hook

    def on_membrane(name: str):
        def hook(_module, _inputs, out: Tensor) -> None:
            rec.membrane[name] = out.detach()[:, keep].float().to("cpu", copy=True)

        return hook

    try:
        for name in names:
            handles.append(available[name].register_forward_hook(on_spikes(name)))
            if membrane:
                handles.append(available[name].membrane_tap.register_forward_hook(on_membrane(name)))
        yield rec
    finally:
        for h in handles:
            h.remove()
