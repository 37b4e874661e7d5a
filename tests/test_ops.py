"""Synaptic-operation estimates: golden numbers by hand on a toy, spike counting on a real network."""

import pytest
import torch
from torch import nn

import tssd_viz as tv
from tssd_viz.snn.ops import LayerOps, energy_uj, synaptic_operations


class Toy(nn.Module):
    """A 1x1 stem whose two channels spike where the pixel is > 0 and < 0, then a linear readout."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 1, bias=False)
        self.stem.weight.data = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x, T):
        if x.dim() == 4:  # direct encoding: the stem once, broadcast over time
            s = (self.stem(x) > 0).float().unsqueeze(0).expand(T, -1, -1, -1, -1)
        else:
            s = (self.stem(x.flatten(0, 1)) > 0).float().unflatten(0, (T, x.shape[1]))
        return self.fc(s.flatten(2))  # (T, B, 8) -> (T, B, 3)


IMAGES = torch.tensor(
    [
        [[[1.0, 2.0], [-1.0, 0.0]]],  # 3 spikes: two > 0 on channel 0, one < 0 on channel 1
        [[[1.0, 1.0], [1.0, 1.0]]],
    ]
)  # 4 spikes, all on channel 0


def test_golden_numbers_of_a_toy_by_hand():
    ops = synaptic_operations(Toy(), IMAGES, T=3)
    # stem: 2 channels x 2 x 2 outputs, 1 input each: 8 MACs per image, once (not per timestep).
    assert ops["stem"] == LayerOps(sops=0.0, macs=8.0, ann_macs=8.0)
    # fc: 3.5 spikes per image and step on average, each adds to 3 outputs, for 3 steps: 31.5 SOPs;
    # an ordinary network's fc does 8 x 3 = 24 MACs.
    assert ops["fc"].sops == pytest.approx(31.5) and ops["fc"].macs == 0 and ops["fc"].ann_macs == 24
    assert energy_uj(ops) == pytest.approx((31.5 * 0.9 + 8 * 4.6) * 1e-6)


def test_event_frames_make_every_layer_read_spikes():
    frames = (torch.rand(3, 2, 1, 2, 2) < 0.5).float()  # (T, B, C, H, W) binary events
    ops = synaptic_operations(Toy(), frames, T=3)
    # stem: 2 outputs per input pixel at each of the 3 steps, driven by the events that are there.
    assert ops["stem"].macs == 0 and ops["stem"].sops == pytest.approx(2 * frames.sum().item() / 2)


def test_nonsense_input_is_refused_clearly():
    with pytest.raises(ValueError, match=r"images \(B, C, H, W\) or event frames"):
        synaptic_operations(Toy(), IMAGES[0], T=3)  # one image without its batch dim
    with pytest.raises(ValueError, match="at least 1 timestep"):
        synaptic_operations(Toy(), IMAGES, T=0)


def test_sops_equal_spikes_times_fan_out_on_a_real_network():
    # Independent count: a 3x3 'same' conv sends each input spike to out_channels x 9 targets
    # (ignoring the border), so SOPs = input spikes x out_channels x 9, per image. (After average
    # pooling an input is a fraction of a spike, and counts as that fraction.)
    torch.manual_seed(0)
    net = tv.build_model(tv.ModelConfig(arch="vgg_small", width=0.25), 3, 10, weak_head=True).train()
    x, T = torch.randn(4, 3, 16, 16), 3
    seen, hooks = {}, []
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d) and not name.startswith("stem"):
            assert m.stride == (1, 1) and m.padding == (1, 1) and m.kernel_size == (3, 3)
            hooks.append(
                m.register_forward_hook(
                    lambda mod, inp, out, name=name: seen.__setitem__(
                        name, inp[0].sum().item() * mod.out_channels * 9 / 4
                    )
                )
            )
    with torch.no_grad():
        net(x, T)
    for h in hooks:
        h.remove()
    ops = synaptic_operations(net, x, T)
    assert seen and all(ops[name].sops == pytest.approx(count, rel=1e-5) for name, count in seen.items())
    assert 0 < sum(o.sops for o in ops.values()) < sum(o.ann_macs for o in ops.values()) * T
    assert "weak_head" in ops and not any(m._forward_hooks for m in net.modules())  # hooks removed
