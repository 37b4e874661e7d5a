"""Spiking backbones: shapes, causality over time, direct encoding, weak head, carried state."""

import pytest
import torch

from tssd_viz.config import ModelConfig
from tssd_viz.snn.models import build_model, count_parameters, num_stages
from tssd_viz.snn.record import lif_layers, record


@pytest.mark.parametrize("arch,width", [("vgg_small", 1.0), ("resnet19", 0.125), ("vgg11", 0.125)])
def test_output_shapes_and_weak_head(arch, width):
    torch.manual_seed(0)
    m = build_model(ModelConfig(arch=arch, width=width), 3, 10, weak_head=True)
    out = m(torch.randn(2, 3, 32, 32), T=3)
    assert out.logits.shape == (3, 2, 10) and out.weak_logits.shape == (3, 2, 10)
    plain = build_model(ModelConfig(arch=arch, width=width), 3, 10, weak_head=False)
    assert plain(torch.randn(2, 3, 32, 32), T=2).weak_logits is None
    # the weak head is the only difference: GAP + one linear layer
    extra = count_parameters(m) - count_parameters(plain)
    assert extra == m.weak_head.weight.numel() + m.weak_head.bias.numel()


@pytest.mark.parametrize("arch", ["vgg_small", "resnet19"])
def test_eval_first_ts_steps_of_a_tt_run_equal_a_ts_run(arch):
    torch.manual_seed(1)
    m = build_model(ModelConfig(arch=arch, width=0.125 if arch == "resnet19" else 1.0), 3, 10, True).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        long, short = m(x, T=5), m(x, T=2)
    assert torch.equal(long.logits[:2], short.logits)
    assert torch.equal(long.weak_logits[:2], short.weak_logits)


def test_direct_encoding_equals_explicit_frames_in_train_mode():
    # Computing the first conv+norm once and broadcasting equals feeding T identical frames,
    # batch-norm statistics included.
    torch.manual_seed(2)
    m = build_model(ModelConfig(), 1, 10, True).train()
    x = torch.randn(4, 1, 8, 8)
    a = m(x, T=3).logits
    b = m(x.unsqueeze(0).expand(3, -1, -1, -1, -1).contiguous(), T=3).logits
    assert torch.allclose(a, b, atol=1e-5)


def test_carried_state_continues_a_run():
    torch.manual_seed(3)
    m = build_model(ModelConfig(), 3, 10, False).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        full = m(x, T=5).logits
        first = m(x, T=2, keep_state=True)
        rest = m(x, T=3, state=first.state)
    assert set(first.state) == set(lif_layers(m))
    assert torch.allclose(torch.cat([first.logits, rest.logits]), full, atol=1e-6)


def test_small_inputs_and_one_channel():
    m = build_model(ModelConfig(width=0.5), 1, 10, True)
    assert m(torch.randn(5, 1, 8, 8), T=2).logits.shape == (2, 5, 10)


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(4)
    m = build_model(ModelConfig(), 3, 10, True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a = m(x, T=2).logits
        m2 = m.to(memory_format=torch.channels_last)
        b = m2(x.contiguous(memory_format=torch.channels_last), T=2).logits
    assert torch.allclose(a, b, atol=1e-4)


def test_weak_head_reads_the_chosen_stage():
    for aux in range(1, num_stages("vgg_small")):
        m = build_model(ModelConfig(aux_stage=aux), 3, 10, True)
        in_features = m.weak_head.in_features
        with record(m, spikes=True, membrane=False) as rec:
            m(torch.randn(1, 3, 32, 32), T=1)
        last_lif = [n for n in rec.spikes if n.startswith(f"stages.{aux - 1}.")][-1]
        assert rec.spikes[last_lif].shape[2] == in_features


def test_record_probe_removes_its_hooks():
    m = build_model(ModelConfig(), 3, 10, False)
    with record(m, layers=["stem_lif"]) as rec:
        m(torch.randn(2, 3, 32, 32), T=3)
    assert rec.spikes["stem_lif"].shape == (3, 2, 32, 32, 32) and rec.spikes["stem_lif"].dtype == torch.uint8
    assert rec.membrane["stem_lif"].shape == (3, 2, 32, 32, 32)
    assert rec.firing_rate["stem_lif"] == pytest.approx(rec.spikes["stem_lif"].float().mean().item())
    assert all(not lif._forward_hooks and not lif.membrane_tap._forward_hooks for lif in lif_layers(m).values())
    with pytest.raises(KeyError, match="stem_lif"):
        with record(m, layers=["nope"]):
            pass


def test_recorded_membrane_is_the_lif_reference():
    from tssd_viz.snn.neurons import lif_multistep

    torch.manual_seed(5)
    m = build_model(ModelConfig(), 3, 10, False).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad(), record(m, layers=["stem_lif"]) as rec:
        m(x, T=4)
        current = m.stem(x).unsqueeze(0).expand(4, -1, -1, -1, -1)
    s, v = lif_multistep(current)
    assert torch.equal(rec.spikes["stem_lif"], s.to(torch.uint8))
    assert torch.allclose(rec.membrane["stem_lif"], v, atol=1e-6)
