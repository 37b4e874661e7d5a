"""The networks the benchmark compares, all the same layers with the same weights' shapes.

- `ours`: tssd_viz's SpikingNet (fused LIF, first conv once, time folded into the batch).
- `ann`: the same network with ReLU in place of every LIF, run once (T = 1): the hardware limit
  of a T-step SNN is T times its step.
- `tutorial`: the snntorch-tutorial style, the whole network called once per timestep with
  `snn.Leaky(init_hidden=True)` (same neuron: subtract reset in the same step, rectangular
  surrogate; batch norm sees one timestep's batch at a time).
"""

from __future__ import annotations

import copy

import snntorch as snn
import torch
from snntorch import surrogate, utils
from torch import Tensor, nn

from tssd_viz.config import ModelConfig
from tssd_viz.snn.models import VGG_SPECS, SpikingNet, build_model
from tssd_viz.snn.neurons import LIF


class ReLUNeuron(nn.Module):
    """Stands in for a LIF layer: same call signature, no time, no state."""

    def forward(self, current: Tensor, v0: Tensor | None = None) -> Tensor:
        return torch.relu(current)


def ours(arch: str, width: float, num_classes: int = 10, weak_head: bool = False) -> SpikingNet:
    return build_model(ModelConfig(arch=arch, width=width), 3, num_classes, weak_head=weak_head)


def ann(arch: str, width: float, num_classes: int = 10) -> SpikingNet:
    net = copy.deepcopy(ours(arch, width, num_classes))
    for _, module in list(net.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LIF):
                setattr(module, child_name, ReLUNeuron())
    return net  # call with T=1


def _rect(width: float = 1.0):
    def rect(input_, grad_input, spikes):  # input_ is H - theta
        return grad_input * (input_.abs() < width / 2).to(grad_input.dtype) / width

    return surrogate.custom_surrogate(rect)


class TutorialNet(nn.Module):
    """snntorch-tutorial style: one call of the whole network per timestep, hidden state in the
    neurons (`init_hidden=True`), reset with `utils.reset` before each sample."""

    def __init__(self, arch: str, width: float, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for stage in VGG_SPECS[arch]:
            for c in stage:
                c = max(4, int(round(c * width)))
                layers += [
                    nn.Conv2d(cin, c, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    snn.Leaky(
                        beta=0.5,
                        threshold=1.0,
                        reset_mechanism="subtract",
                        reset_delay=False,
                        spike_grad=_rect(),
                        init_hidden=True,
                    ),
                ]
                cin = c
            layers.append(nn.AvgPool2d(2))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, T: int) -> Tensor:
        utils.reset(self.net)
        return torch.stack([self.net(x) for _ in range(T)])  # (T, B, K)
