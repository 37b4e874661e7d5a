"""Batch norm folded into the layer before it, for export.

In eval mode a batch norm is a fixed affine map per channel,

    bn(z) = gamma * (z - mean) / sqrt(var + eps) + beta = s * z + (beta - s * mean),   s = gamma / sqrt(var + eps)

so bn(conv(x)) = conv'(x) with W' = s * W (per output channel) and b' = s * (b - mean) + beta: the same
function with one layer fewer, which is what a format without a batch-norm primitive (NIR) needs.
The arithmetic runs in float64 and is rounded once, so the folded layer differs from conv + bn by a
float32 rounding (~1e-7 relative), not by an approximation. In train mode the statistics are those of
the batch, and no fixed layer can compute them: folding refuses.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


def fold_bn(weight: Tensor, bias: Tensor | None, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """(weight, bias) of the conv or linear layer that computes bn(layer(x)) in eval mode.

    weight: (C_out, ...) of a conv (C_out, C_in, kH, kW) or linear (C_out, C_in); bias (C_out,) or None.
    """
    if bn.training:
        raise ValueError("batch norm in train mode normalises with the batch's statistics: put the model in eval mode")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("batch norm without running statistics (track_running_stats=False) cannot be folded")
    w64 = weight.detach().double()
    b64 = torch.zeros(w64.shape[0], dtype=torch.float64) if bias is None else bias.detach().double()
    gamma = bn.weight.detach().double() if bn.affine else torch.ones_like(b64)
    beta = bn.bias.detach().double() if bn.affine else torch.zeros_like(b64)
    scale = gamma / torch.sqrt(bn.running_var.double() + bn.eps)  # (C_out,)
    folded_w = w64 * scale.reshape(-1, *([1] * (w64.dim() - 1)))  # scale each output channel
    folded_b = scale * (b64 - bn.running_mean.double()) + beta
    return folded_w.to(weight.dtype), folded_b.to(weight.dtype)


def fold_conv_bn(seq: nn.Sequential) -> nn.Conv2d:
    """A new Conv2d equal to `Sequential(conv, bn)` in eval mode (the model's `conv_bn` blocks)."""
    conv, bn = seq[0], seq[1]
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d) or len(seq) != 2:
        raise ValueError(f"expected Sequential(Conv2d, BatchNorm2d), got {seq}")
    folded = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    )
    w, b = fold_bn(conv.weight, conv.bias, bn)
    with torch.no_grad():
        folded.weight.copy_(w)
        folded.bias.copy_(b)
    return folded.eval()


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """A copy of `model` in eval mode where every `Sequential(Conv2d, BatchNorm2d)` is one folded Conv2d
    (the norm's place kept by an Identity): the network as an export writes it, same float32 weights."""
    folded = copy.deepcopy(model).eval()
    for m in list(folded.modules()):
        if isinstance(m, nn.Sequential) and len(m) == 2 and isinstance(m[1], nn.BatchNorm2d):
            m[0], m[1] = fold_conv_bn(m), nn.Identity()
    return folded
