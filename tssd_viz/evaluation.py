"""What a trained network does, measured without training it: accuracy of every window, batch-norm
statistics that match the weights, and the probe snapshot of rasters, traces and logits.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .models import SpikingNet


@torch.no_grad()
def evaluate(model: SpikingNet, loader: Iterable, T: int, device: torch.device | None = None) -> list[float]:
    """Test accuracy of every window n = 1..T, from one T-step pass per batch (eval mode)."""
    was_training = model.training
    model.eval()
    correct, total = torch.zeros(T), 0
    for x, y in loader:
        if device is not None:
            x, y = x.to(device), y.to(device)
        logits = model(x, T).logits.float()  # (T, B, K)
        running = logits.cumsum(0).argmax(-1)  # argmax of a cumulative sum = argmax of the mean
        correct += (running == y).sum(1).cpu().float()
        total += y.shape[0]
    model.train(was_training)
    return (correct / max(total, 1)).tolist()


@torch.no_grad()
def recompute_bn_stats(model: SpikingNet, batches: Iterable, T: int, device: torch.device | None = None) -> int:
    """Replace every batch-norm layer's running mean and variance by their exact average over `batches`.

    Why: eval-mode batch norm normalises with running averages (momentum 0.1), which describe the
    weights of the last ~10-20 steps. Early in training the weights move faster than that average
    follows, so a short run evaluated with them can sit at chance while its training batches are
    mostly right. Re-estimating the statistics with the current weights ("precise BN") makes the
    evaluation describe the network that is being evaluated. Runs the train-mode forward at `T`
    timesteps without gradients; weights and optimizer are untouched. Returns the batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    was_training, momenta = model.training, [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over every batch seen since the reset
    model.train()
    used = 0
    try:
        for x, _ in batches:
            if device is not None:
                x = x.to(device)
            model(x, T)
            used += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return used
