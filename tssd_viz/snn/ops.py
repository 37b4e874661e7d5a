"""Synaptic operations: the usual estimate of what a spiking network costs on neuromorphic hardware.

A spike that reaches a layer adds one weight to each of its targets: one synaptic operation (SOP,
an accumulate, no multiply). The estimate SNN papers use multiplies a layer's dense multiply-
accumulates (MACs, what the same layer costs in an ordinary network) by the mean of its input at
every timestep, which for binary spikes is the firing rate of the layer below:

    SOPs_l ≈ MACs_l · (mean input of layer l), summed over the T timesteps

A layer that reads the analog image (the stem under direct encoding, computed once and broadcast
over time) does real MACs, once per image. Counted with forward hooks on every conv and linear
layer, so any network built by `build_model` (or any module called as `net(x, T)`) works.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

# 45 nm energy per operation (Horowitz, ISSCC 2014), the figures SNN papers usually quote:
# a 32-bit float addition (one SOP) and a 32-bit float multiply-accumulate.
E_AC_PJ, E_MAC_PJ = 0.9, 4.6


@dataclass(frozen=True)
class LayerOps:
    """One layer's operations per image over one T-step pass.

    Attributes:
        sops: accumulates driven by spikes (or by any non-binary input, scaled by its mean).
        macs: multiply-accumulates on analog input (the stem under direct encoding).
        ann_macs: the same layer in an ordinary network, one pass.
    """

    sops: float  # accumulates driven by spikes (or by any non-binary input, scaled by its mean)
    macs: float  # multiply-accumulates on analog input (the stem under direct encoding)
    ann_macs: float  # the same layer in an ordinary network, one pass

    def __add__(self, other: LayerOps) -> LayerOps:
        return LayerOps(self.sops + other.sops, self.macs + other.macs, self.ann_macs + other.ann_macs)


@torch.no_grad()
def synaptic_operations(net: nn.Module, x: Tensor, T: int, stem: str = "stem") -> dict[str, LayerOps]:
    """Estimated operations per image of `net(x, T)`, per conv/linear layer.

    Args:
        net: the network.
        x: static images (B, C, H, W), direct encoding: layers under `stem` read the image once and
            count as MACs; or event frames (T, B, C, H, W): every layer reads spikes and counts as SOPs.
        T: timesteps.
        stem: the module name whose layers read the image.

    Returns:
        Module name -> its `LayerOps`.

    Raises:
        ValueError: x is neither 4- nor 5-dimensional, or T < 1.
    """
    if x.dim() not in (4, 5):
        raise ValueError(f"x should be images (B, C, H, W) or event frames (T, B, C, H, W), got shape {tuple(x.shape)}")
    if T < 1:
        raise ValueError(f"T should be at least 1 timestep, got {T}")
    static = x.dim() == 4
    images = x.shape[0] if static else x.shape[1]
    ops: dict[str, LayerOps] = {}

    def hook(name: str):
        def count(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            else:
                fan_in = module.in_features
            dense = output.numel() * fan_in / images  # every timestep of this call, per image
            if static and (name == stem or name.startswith(stem + ".")):
                layer = LayerOps(sops=0.0, macs=dense, ann_macs=dense)  # once per image, broadcast over T
            else:
                layer = LayerOps(sops=dense * inputs[0].float().mean().item(), macs=0.0, ann_macs=dense / T)
            ops[name] = ops[name] + layer if name in ops else layer  # a module called twice counts twice

        return count

    hooks = [m.register_forward_hook(hook(n)) for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        net(x, T)
    finally:
        for h in hooks:
            h.remove()
    return ops


def energy_uj(ops: dict[str, LayerOps], e_ac_pj: float = E_AC_PJ, e_mac_pj: float = E_MAC_PJ) -> float:
    """Estimated energy per image in microjoules: SOPs at `e_ac_pj`, MACs at `e_mac_pj`.

    Args:
        ops: per-layer operations (`synaptic_operations`).
        e_ac_pj: picojoules per accumulate.
        e_mac_pj: picojoules per multiply-accumulate.

    Returns:
        Microjoules per image.
    """
    return sum(o.sops * e_ac_pj + o.macs * e_mac_pj for o in ops.values()) * 1e-6
