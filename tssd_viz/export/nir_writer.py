"""The exported student as a NIR graph (Neuromorphic Intermediate Representation, `nir` 1.0), SPEC §15.

NIR is how a trained spiking network leaves its training framework for another one (snntorch, norse,
sinabs, Lava) or for neuromorphic hardware. The student (the weak head dropped) becomes:

    Input (C, H, W) -> Conv2d -> [LIF] -> ... -> AvgPool2d -> ... -> AvgPool2d (global) -> Flatten -> Affine -> Output

Each conv+batch-norm is one Conv2d with the norm folded in (tssd_viz.export.folding, exact in eval mode). The
direct-encoding stem is the first Conv2d: a reader presents the same image at every timestep, which is
what our broadcast computes. The head's global mean is an AvgPool2d over the whole feature map.

The neuron, [LIF] above, is not NIR's `LIF` node: that one resets *to* v_reset, ours subtracts theta
and keeps the overshoot, and NIR has no field for that. Substituting V(t-1) = H(t-1) - theta S(t-1)
into H(t) = beta V(t-1) + I(t) gives

    H(t) = beta H(t-1) + I(t) - beta theta S(t-1)        S(t) = [H(t) >= theta]

a leaky integrator without reset whose state is H, a threshold, and the spikes fed back one step
later through a scale of -beta theta. In NIR's own nodes (three per LIF layer `name`):

    current -> LI "name.charge" -> Threshold "name" -> (next layer)
                     ^                  |
                     +-- Scale "name.reset" (-beta theta) <-+   (a cycle: a reader delays it one step)

`LI` is `tau dv/dt = (v_leak - v) + R I`; one forward-Euler step of length dt gives
v <- (1 - dt/tau) v + (dt R / tau) I, so tau = tau_ours * dt, R = tau_ours (input gain 1), v_leak = 0.
NIR's `Threshold` fires on v > threshold, strictly; ours on H >= theta, so the file holds theta' =
the largest float32 below theta: for a float32 H, H > theta' exactly when H >= theta. The default
dt = 1 writes tau in timesteps. In float32 the subgraph rounds beta H + (I - beta theta S) where ours
rounds beta (H - theta S) + I: the same numbers at the default tau = 2, theta = 1, where every product
is exact; otherwise H can differ in its last bits (SPEC §15 gives the measured size). No node's meaning
depends on metadata.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..atomic import atomic_write_bytes
from ..data import load_dataset
from ..runs.trained import Trained
from ..snn.models import BasicBlock, ConvBNLIF, SpikingNet
from ..snn.neurons import LIF
from .folding import fold_conv_bn

DT = 1.0  # the file's unit of time is one timestep: tau is written in timesteps, a reader steps dt = 1
INSTALL = "NIR export needs the nir extra: pip install 'tssd-viz[nir]' (or: pip install nir nirtorch)"


class NIRExportError(ValueError):
    """One line: the network holds something NIR 1.0 cannot express exactly (named), or nir is missing."""


def require_nir():
    """The `nir` module, or one line saying what to install."""
    try:
        import nir
    except ImportError:
        raise NIRExportError(INSTALL) from None
    return nir


@dataclass
class _Builder:
    """Nodes and edges, in the network's order. The layer methods take and return a (1, C, H, W)
    sample `x` run through the layer, so every node knows its shape as torch computes it."""

    nir: object
    dt: float
    nodes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)

    def add(self, name: str, node, *sources: str) -> str:
        self.nodes[name] = node
        self.edges += [(s, name) for s in sources]
        return name

    def conv(self, name: str, conv_bn: nn.Sequential, x: Tensor, source: str) -> tuple[str, Tensor]:
        conv = fold_conv_bn(conv_bn)
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise NIRExportError(
                f"{name}: NIR's Conv2d pads with zeros only, this conv pads with {conv.padding_mode!r}"
            )
        node = self.nir.Conv2d(
            input_shape=tuple(x.shape[-2:]),
            weight=conv.weight.detach().numpy(),
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias.detach().numpy(),
        )
        with torch.no_grad():
            return self.add(name, node, source), conv(x)

    def lif(self, name: str, lif: LIF, shape: tuple[int, ...], *sources: str) -> str:
        """Our LIF layer as LI "name.charge" -> Threshold "name" -> Scale "name.reset" -> back to the LI;
        returns the Threshold node, the layer's spikes."""
        p, nir = lif.params, self.nir

        def full(value: float, dtype=np.float64) -> np.ndarray:  # one value per neuron, (C, H, W) or (F,)
            return np.full(shape, value, dtype=dtype)

        theta = np.float32(p.threshold)  # our H >= theta compares in float32
        # float64, so tau * dt stays exact and a reader's 1 - dt/tau rounds to our beta
        charge = nir.LI(tau=full(p.tau * self.dt), r=full(p.tau), v_leak=full(0.0))
        # Ours fires on H >= theta, NIR's Threshold on v > threshold: the float32 just below theta.
        below = np.nextafter(theta, np.float32(-np.inf), dtype=np.float32)
        # -beta theta from our float32 beta and theta, rounded once (exact at the default 0.5 * 1)
        reset = np.float64(np.float32(p.beta)) * np.float64(theta)
        self.add(f"{name}.charge", charge, *sources, f"{name}.reset")
        self.add(name, nir.Threshold(threshold=full(below, np.float32)), f"{name}.charge")
        # The cycle charge -> name -> reset -> charge: a discrete reader delays it one step, and at the
        # charge, so that H(t) reads S(t-1) as the equation needs (S(-1) = 0). nirtorch breaks a cycle
        # only at a node with more than one input, and the charge (current + reset) is the only one.
        self.add(f"{name}.reset", nir.Scale(scale=full(-reset, np.float32)), name)
        return name

    def avg_pool(self, name: str, kernel: tuple[int, int], x: Tensor, source: str) -> tuple[str, Tensor]:
        k = np.array(kernel)
        node = self.nir.AvgPool2d(kernel_size=k, stride=k, padding=np.array([0, 0]))
        return self.add(name, node, source), nn.functional.avg_pool2d(x, kernel)

    def affine(self, name: str, linear: nn.Linear, source: str) -> str:
        bias = linear.bias if linear.bias is not None else torch.zeros(linear.out_features)
        weight, bias = linear.weight.detach().cpu().numpy(), bias.detach().cpu().numpy()  # a GPU model's too
        node = self.nir.Affine(weight=weight, bias=bias)
        return self.add(name, node, source)


def _block(g: _Builder, name: str, block: nn.Module, x: Tensor, source: str) -> tuple[str, Tensor]:
    """One ConvBNLIF or BasicBlock of a stage; returns its last spike (Threshold) node and the sample after it."""
    if isinstance(block, ConvBNLIF):
        conv, x = g.conv(f"{name}.conv", block.conv, x, source)
        return g.lif(f"{name}.lif", block.lif, tuple(x.shape[1:]), conv), x
    if isinstance(block, BasicBlock):
        conv1, h = g.conv(f"{name}.conv1", block.conv1, x, source)
        lif1 = g.lif(f"{name}.lif1", block.lif1, tuple(h.shape[1:]), conv1)
        conv2, out = g.conv(f"{name}.conv2", block.conv2, h, lif1)
        shortcut = source  # identity: the block's input spikes add to the current directly
        if not isinstance(block.shortcut, nn.Identity):
            shortcut, _ = g.conv(f"{name}.shortcut", block.shortcut, x, source)
        # Two edges into one node: NIR sums them, as `conv2(h) + shortcut(x)` does.
        return g.lif(f"{name}.lif2", block.lif2, tuple(out.shape[1:]), conv2, shortcut), out
    raise NIRExportError(f"{name}: a {type(block).__name__} block has no NIR mapping")


def student_graph(model: SpikingNet, in_shape: tuple[int, int, int], dt: float = DT):
    """The NIR graph of `model`'s student (in eval mode; its weak head, if any, is left out).

    in_shape: (C, H, W) of one input frame. Node names are the model's module names: the Threshold
    node "stages.0.blocks.0.lif" holds the spikes of our LIF layer of that name (its LI and Scale are
    "stages.0.blocks.0.lif.charge" and ".reset"). dt: how long one of our timesteps is in the file's
    unit of time (tau is written as tau * dt); a reader steps at the same dt.
    """
    nir = require_nir()
    if model.training:
        raise NIRExportError("the model is in train mode: batch norm folds exactly only in eval mode (model.eval())")
    g = _Builder(nir, dt)
    x = torch.zeros(1, *in_shape)  # (1, C, H, W): only its shape matters
    src = g.add("input", nir.Input(input_type=np.array(in_shape)))
    src, x = g.conv("stem", model.stem, x, src)
    src = g.lif("stem_lif", model.stem_lif, tuple(x.shape[1:]), src)
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage.blocks):
            src, x = _block(g, f"stages.{i}.blocks.{j}", block, x, src)
        if stage.pool is not None and x.shape[-1] > 1:  # the model skips pooling a 1-pixel map too
            src, x = g.avg_pool(f"stages.{i}.pool", (2, 2), x, src)
    src, x = g.avg_pool("head.pool", tuple(x.shape[-2:]), x, src)  # the global mean: (C, H, W) -> (C, 1, 1)
    # Negative dims read the same with or without a batch axis in front (a reader adds one).
    src = g.add("head.flatten", nir.Flatten(input_type=np.array(x.shape[1:]), start_dim=-3, end_dim=-1), src)
    head = model.head
    if head.hidden is not None:
        src = g.affine("head.hidden", head.hidden, src)
        src = g.lif("head.lif", head.lif, (head.hidden.out_features,), src)
    src = g.affine("head.fc", head.fc, src)
    g.add("output", nir.Output(output_type=np.array([head.fc.out_features])), src)
    return nir.NIRGraph(nodes=g.nodes, edges=g.edges, metadata={"source": "tssd-viz student", "dt": dt})


def write_nir(model: SpikingNet, in_shape: tuple[int, int, int], out: str | os.PathLike, dt: float = DT) -> Path:
    """Write `model`'s student graph to `out` (HDF5, NIR's file format); returns the path."""
    nir = require_nir()
    buf = io.BytesIO()
    nir.write(buf, student_graph(model, in_shape, dt))
    out = Path(out)
    atomic_write_bytes(out, buf.getvalue())  # a crash or a full disk mid-write leaves no half file
    return out


def export_nir(
    trained: Trained, out: str | os.PathLike, image_size: tuple[int, int] | None = None, dt: float = DT
) -> Path:
    """Write the student of `trained` (a training checkpoint or an exported student) to `out` as NIR.

    Args:
        trained: the network, from `load_trained`.
        out: the .nir file to write.
        image_size: (H, W) of the input; by default read off the run's dataset.
        dt: the timestep the file's LI nodes are written for.

    Returns:
        The path written.

    Raises:
        NIRExportError: nir is missing, or the network holds something NIR 1.0 cannot express exactly.
    """
    require_nir()
    if image_size is None:
        image_size = load_dataset(trained.cfg.data, trained.cfg.distill).image_size
    return write_nir(trained.model, (trained.payload["in_channels"], *image_size), out, dt)
