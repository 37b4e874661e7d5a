"""Run a NIR file in another framework: the check that an exported student computes what it did here.

The graph is wired and stepped by nirtorch (`nir_to_torch`: a torch.fx module called once per timestep
with explicit state; an edge that closes a cycle carries its source's output from the step before).
Each node is a module that computes NIR 1.0's published equation for its type and nothing else:

    Conv2d, AvgPool2d, Flatten   as torch computes them (nirtorch's own mappings for the last two)
    Affine      y = W x + b
    LI          tau dv/dt = (v_leak - v) + R I, one forward-Euler step of length dt:
                v <- (1 - dt/tau) v + (dt R / tau) I + (dt / tau) v_leak
    Threshold   z = 1 if v > threshold else 0
    Scale       y = s x

None of tssd_viz's model code runs, and no node's metadata is read. Our neuron is in the file as an
LI, a Threshold and a Scale in a cycle (SPEC §15); the reader knows nothing of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..snn.record import record
from .folding import fold_batch_norm
from .nir_writer import DT, require_nir


def _f32(a) -> Tensor:
    return torch.as_tensor(np.asarray(a, np.float64), dtype=torch.float32)


class NIRLI(nn.Module):
    """A NIR LI node stepped at dt, with explicit state: (I(t), v(t-1)) -> (v(t), v(t)), v(-1) = 0."""

    def __init__(self, node, dt: float):
        super().__init__()
        tau, r = np.asarray(node.tau, np.float64), np.asarray(node.r, np.float64)
        # The coefficients in float64, rounded once: at tau = 2 steps they are exactly 0.5 and 1.
        self.register_buffer("decay", _f32(1 - dt / tau))
        self.register_buffer("gain", _f32(dt * r / tau))
        self.register_buffer("leak", _f32(dt / tau * np.asarray(node.v_leak, np.float64)))

    def forward(self, current: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v = torch.zeros_like(current) if state is None else state
        v = self.decay * v + self.gain * current + self.leak  # (B, ...)
        return v, v


class NIRThreshold(nn.Module):
    """A NIR Threshold node: the Heaviside step, 1 where v > threshold (strictly)."""

    def __init__(self, node):
        super().__init__()
        self.register_buffer("threshold", _f32(node.threshold))

    def forward(self, v: Tensor) -> Tensor:
        return (v > self.threshold).to(v.dtype)


class NIRScale(nn.Module):
    """A NIR Scale node: y = s x, elementwise."""

    def __init__(self, node):
        super().__init__()
        self.register_buffer("scale", _f32(node.scale))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * x


def _affine(node) -> nn.Linear:
    """NIR's Affine, y = W x + b; nirtorch 2.6's own mapping sets `weight.bias`, leaving the bias at random."""
    w, b = torch.as_tensor(node.weight), torch.as_tensor(node.bias)
    layer = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(b)
    return layer


def _conv2d(node) -> nn.Conv2d:
    """NIR's Conv2d (zero padding); nirtorch 2.6's own mapping swaps in_channels and out_channels."""
    w = torch.as_tensor(node.weight)  # (C_out, C_in / groups, kH, kW)
    groups = int(node.groups)
    conv = nn.Conv2d(
        w.shape[1] * groups,
        w.shape[0],
        tuple(w.shape[-2:]),
        groups=groups,
        stride=tuple(int(s) for s in np.atleast_1d(node.stride)),
        padding=tuple(int(p) for p in np.atleast_1d(node.padding)),
        dilation=tuple(int(d) for d in np.atleast_1d(node.dilation)),
    )
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(torch.as_tensor(node.bias))
    return conv


@dataclass(frozen=True)
class NIRRun:
    """What a NIR network did over T timesteps.

    Attributes:
        logits: (T, B, K) the graph's output at every timestep.
        spikes: Threshold node name (our LIF layer's) -> (T, B, ...) its spikes.
    """

    logits: Tensor  # (T, B, K) the graph's output at every timestep
    spikes: dict[str, Tensor]  # Threshold node name (our LIF layer's) -> (T, B, ...) its spikes


def node_map(dt: float = DT) -> dict:
    """NIR node type -> the module computing its equation, for `nirtorch.nir_to_torch` (AvgPool2d and
    Flatten: nirtorch's defaults)."""
    nir = require_nir()
    return {
        nir.Affine: _affine,
        nir.Conv2d: _conv2d,
        nir.LI: lambda node: NIRLI(node, dt),
        nir.Threshold: NIRThreshold,
        nir.Scale: NIRScale,
    }


class NIRNetwork(nn.Module):
    """A NIR graph as a network called like ours: `net(x, T)`.

    `x` is static images (B, C, H, W), shown at every timestep (direct encoding), or frames
    (T', B, C, H, W), T' >= T; the call returns a `NIRRun`.
    """

    def __init__(self, graph, dt: float = DT):
        super().__init__()
        nir = require_nir()
        import nirtorch

        self.graph = nirtorch.nir_to_torch(graph, node_map(dt))
        # Every Threshold node's output is spikes: ours name them after our LIF layer. nirtorch names
        # modules after the nodes with "." replaced by "_".
        self.spike_nodes = {k.replace(".", "_"): k for k, n in graph.nodes.items() if isinstance(n, nir.Threshold)}

    def forward(self, x: Tensor, T: int) -> NIRRun:
        spikes: dict[str, list[Tensor]] = {name: [] for name in self.spike_nodes.values()}

        def keep(name: str):
            return lambda _module, _inputs, out: spikes[name].append(out.detach())

        modules = dict(self.graph.named_children())
        hooks = [modules[k].register_forward_hook(keep(name)) for k, name in self.spike_nodes.items()]
        logits, state = [], None
        try:
            for t in range(T):
                out, state = self.graph(x if x.dim() == 4 else x[t], state)  # one timestep, state carried
                logits.append(out)
        finally:
            for h in hooks:
                h.remove()
        return NIRRun(torch.stack(logits), {k: torch.stack(v) for k, v in spikes.items()})


def load_nir(path: str | os.PathLike, dt: float = DT) -> NIRNetwork:
    """The NIR file at `path` as a runnable network (in eval mode), its LI nodes stepped at `dt`.

    dt is the reader's choice, as in any NIR simulator: one timestep of ours is dt = 1 in a file written
    with the default `export_nir(..., dt=1.0)` (the file's metadata records it, for people; no node's
    meaning depends on metadata).

    Args:
        path: the .nir file.
        dt: the simulation step.

    Returns:
        The network.
    """
    nir = require_nir()
    return NIRNetwork(nir.read(path), dt).eval()


@dataclass(frozen=True)
class NIRAgreement:
    """Our network and its NIR file on the same input: how far apart they are.

    Attributes:
        max_logit_diff: max |logit here - logit there| over (T, B, K).
        mismatches: LIF layer -> spikes that differ, over (T, B, ...).
        ours: LIF layer -> (T, B, ...) uint8 spikes here.
        theirs: the NIR network's run.
    """

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
    spike in millions, measured on a trained event_digits run; SPEC §15).

    Args:
        model: our network, in eval mode.
        net: the same network read from its NIR file.
        x: static images (B, C, H, W) or frames (T', B, C, H, W), T' >= T.
        T: timesteps.

    Returns:
        Both runs and their differences.

    Raises:
        KeyError: a LIF layer of `model` is not exposed by the NIR network (its node names are our layer names).
    """
    folded = fold_batch_norm(model)
    with record(folded, membrane=False) as rec:
        ours = folded(x, T).logits  # (T, B, K)
    theirs = net(x, T)
    missing = sorted(set(rec.spikes) - set(theirs.spikes))
    if missing:
        raise KeyError(f"the NIR network has no Threshold node (spikes) named {missing[0]!r}")
    mismatches = {k: int((theirs.spikes[k].to(torch.uint8) != s).sum()) for k, s in rec.spikes.items()}
    return NIRAgreement((ours - theirs.logits).abs().max().item(), mismatches, dict(rec.spikes), theirs)
