"""Run a NIR file in another framework: the check that an exported student computes what it did here.

The graph is wired by nirtorch (`nir_to_torch`, a torch.fx module stepped once per timestep with
explicit state), and its layers are built by snntorch's NIR importer (Conv2d, AvgPool2d, Flatten,
Affine): none of this module's model code runs. The neurons are the one part a reader must be told
about: NIR 1.0's LIF resets *to* v_reset, and snntorch's importer always builds `reset_mechanism="zero"`
neurons (SPEC §15). `NIRLIF` simulates a NIR LIF node as its equation says, one forward-Euler step of
length dt per timestep, and follows the reset and firing rule written in the node's metadata (NIR's
own rule, reset to v_reset on v > v_threshold, when there is none).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .folding import fold_batch_norm
from .nir_export import require_nir
from .record import record


class NIRLIF(nn.Module):
    """A NIR LIF node at a fixed step dt, with explicit state: (I(t), v(t-1)) -> (z(t), v(t)).

    tau dv/dt = (v_leak - v) + R I, by forward Euler: v <- (1 - dt/tau) v + (dt R/tau) I + (dt/tau) v_leak;
    z = 1 where v crosses v_threshold; then v <- v - v_threshold (reset "subtract") or v_reset.
    """

    def __init__(self, node, dt: float):
        super().__init__()
        meta = dict(node.metadata or {})
        tau, r = np.asarray(node.tau, np.float64), np.asarray(node.r, np.float64)
        as_t = lambda a: torch.as_tensor(np.asarray(a, np.float64), dtype=torch.float32)  # noqa: E731
        # Coefficients in float64, rounded once: at tau = 2 steps they are exactly 0.5 and 1.
        self.register_buffer("decay", as_t(1 - dt / tau))
        self.register_buffer("gain", as_t(dt * r / tau))
        self.register_buffer("leak", as_t(dt / tau * np.asarray(node.v_leak, np.float64)))
        self.register_buffer("threshold", as_t(node.v_threshold))
        self.register_buffer("v_reset", as_t(node.v_reset))
        self.subtract = _text(meta.get("reset")) == "subtract"
        self.inclusive = _text(meta.get("fires_at")) == "v >= v_threshold"

    def forward(self, current: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v = torch.zeros_like(current) if state is None else state  # v(-1) = 0
        v = self.decay * v + self.gain * current + self.leak  # (B, ...) one Euler step
        z = (v >= self.threshold if self.inclusive else v > self.threshold).to(current.dtype)
        v = v - z * self.threshold if self.subtract else torch.where(z > 0, self.v_reset, v)
        return z, v


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value  # HDF5 may hand strings back as bytes


@dataclass(frozen=True)
class NIRRun:
    logits: Tensor  # (T, B, K) the graph's output at every timestep
    spikes: dict[str, Tensor]  # NIR node name -> (T, B, ...) spikes of that LIF node


class NIRNetwork(nn.Module):
    """A NIR graph as a network called like ours: `net(x, T)` with static images (B, C, H, W), shown at
    every timestep (direct encoding), or frames (T', B, C, H, W), T' >= T."""

    def __init__(self, graph, dt: float):
        super().__init__()
        nir = require_nir()
        import nirtorch
        from snntorch.import_nir import _nir_to_snntorch_module  # snntorch's own per-node conversion

        def snntorch_layer(node) -> nn.Module:
            return _nir_to_snntorch_module(node, init_hidden=True)

        layers = {t: snntorch_layer for t in (nir.Affine, nir.AvgPool2d, nir.Conv2d, nir.Flatten)}
        layers[nir.LIF] = lambda node: NIRLIF(node, dt)
        self.graph = nirtorch.nir_to_torch(graph, layers)
        # nirtorch names modules after the nodes with "." replaced by "_"
        self.lif_names = {k.replace(".", "_"): k for k, n in graph.nodes.items() if isinstance(n, nir.LIF)}

    def forward(self, x: Tensor, T: int) -> NIRRun:
        spikes: dict[str, list[Tensor]] = {name: [] for name in self.lif_names.values()}

        def keep(name: str):
            return lambda _module, _inputs, out: spikes[name].append(out[0].detach())

        modules = dict(self.graph.named_children())
        hooks = [modules[k].register_forward_hook(keep(name)) for k, name in self.lif_names.items()]
        logits, state = [], None
        try:
            for t in range(T):
                out, state = self.graph(x if x.dim() == 4 else x[t], state)  # one timestep, state carried
                logits.append(out)
        finally:
            for h in hooks:
                h.remove()
        return NIRRun(torch.stack(logits), {k: torch.stack(v) for k, v in spikes.items()})


def load_nir(path: str | os.PathLike) -> NIRNetwork:
    """The NIR file at `path` as a runnable network (in eval mode), at the dt the file was written for."""
    nir = require_nir()
    graph = nir.read(path)
    dt = float(np.asarray(graph.metadata.get("dt", 1e-4)))
    return NIRNetwork(graph, dt).eval()


@dataclass(frozen=True)
class NIRAgreement:
    """Our network and its NIR file on the same input: how far apart they are."""

    max_logit_diff: float  # max |logit here - logit there| over (T, B, K)
    mismatches: dict[str, int]  # LIF layer -> spikes that differ, over (T, B, ...)
    ours: dict[str, Tensor]  # LIF layer -> (T, B, ...) uint8 spikes here
    theirs: NIRRun  # the NIR network's run


@torch.no_grad()
def nir_agreement(model: nn.Module, net: NIRNetwork, x: Tensor, T: int) -> NIRAgreement:
    """Run `model` (ours) and `net` (its NIR file, from `load_nir`) on x for T timesteps.

    `model` runs as the file holds it, batch norm folded into the convolutions (the same float32
    weights), so a difference is the file's or the reader's. Folding itself moves a conv's output by
    float rounding, ~1e-7 relative: enough to flip a neuron that sits that close to its threshold (one
    spike in millions, measured on a trained event_digits run; SPEC §15). Every LIF layer of `model`
    must be one the NIR network exposes (its node names are our layer names).
    """
    folded = fold_batch_norm(model)
    with record(folded, membrane=False) as rec:
        ours = folded(x, T).logits  # (T, B, K)
    theirs = net(x, T)
    missing = sorted(set(rec.spikes) - set(theirs.spikes))
    if missing:
        raise KeyError(f"the NIR network has no LIF node named {missing[0]!r}")
    mismatches = {k: int((theirs.spikes[k].to(torch.uint8) != s).sum()) for k, s in rec.spikes.items()}
    return NIRAgreement((ours - theirs.logits).abs().max().item(), mismatches, dict(rec.spikes), theirs)
