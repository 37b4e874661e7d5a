"""The LIF neuron of SPEC §1: hand-worked numbers, the fused module against the reference, and
snntorch's Leaky as an independent implementation (where it is the same neuron, and where not)."""

import pytest
import torch

from tssd_viz.snn.neurons import LIF, LIFParams, lif_multistep, rect_surrogate_grad, snntorch_multistep


def snntorch_leaky(tau=2.0, threshold=1.0, width=1.0, reset_delay=False):
    """snntorch's Leaky, as the library's comparison neuron runs it (spikes, membrane = run(current))."""
    return lambda current: snntorch_multistep(current, tau, threshold, width, reset_delay)


def run_snntorch(leaky, current):
    return leaky(current)


def test_golden_constant_input():
    # I = 0.8, beta = 0.5, theta = 1, worked by hand:
    # t=0: H=0.8 -> V=0.8;  t=1: H=0.4+0.8=1.2 spike, V=0.2;  t=2: H=0.1+0.8=0.9, V=0.9
    # t=3: H=0.45+0.8=1.25 spike, V=0.25;  t=4: H=0.925, V=0.925;  t=5: H=1.2625 spike, V=0.2625
    current = torch.full((6, 1), 0.8, dtype=torch.float64)
    spikes, membrane = lif_multistep(current)
    assert spikes[:, 0].tolist() == [0, 1, 0, 1, 0, 1]
    assert membrane[:, 0].tolist() == pytest.approx([0.8, 0.2, 0.9, 0.25, 0.925, 0.2625])


def test_threshold_fires_at_equality_and_tau_changes_decay():
    spikes, membrane = lif_multistep(torch.tensor([[1.0], [0.0]]))
    assert spikes[0, 0] == 1 and membrane[0, 0] == 0.0  # H >= theta fires, exactly at theta
    _, m = lif_multistep(torch.tensor([[0.5], [0.0]], dtype=torch.float64), tau=4.0)
    assert m[1, 0].item() == pytest.approx(0.5 * 0.75)  # beta = 1 - 1/tau


def test_surrogate_is_a_rectangle_of_width_a():
    h = torch.tensor([0.0, 0.49, 0.51, 1.0, 1.49, 1.51, 2.0])
    g = rect_surrogate_grad(h, threshold=1.0, width=1.0)
    assert g.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    g2 = rect_surrogate_grad(h, threshold=1.0, width=0.5)
    assert g2.tolist() == [0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0]
    # and autograd through the reference neuron uses exactly that window
    x = h.clone().requires_grad_()
    s, _ = lif_multistep(x.view(1, -1))
    s.sum().backward()
    assert x.grad.tolist() == g.tolist()


@pytest.mark.parametrize("detach_reset", [False, True])
def test_fused_module_matches_reference(detach_reset):
    torch.manual_seed(0)
    current = torch.randn(8, 4, 3, 5, dtype=torch.float64) * 1.5
    a, b = current.clone().requires_grad_(), current.clone().requires_grad_()
    s_ref, m_ref = lif_multistep(a, detach_reset=detach_reset, tau=3.0, surrogate_width=0.7)
    s, m = LIF(LIFParams(tau=3.0, surrogate_width=0.7, detach_reset=detach_reset)).run(b)
    assert torch.equal(s, s_ref) and torch.allclose(m, m_ref)
    ws, wm = torch.randn_like(s), torch.randn_like(m)
    ((s_ref * ws).sum() + (m_ref * wm).sum()).backward()
    ((s * ws).sum() + (m * wm).sum()).backward()
    assert torch.allclose(a.grad, b.grad)
    assert a.grad.abs().sum() > 0


def test_detach_reset_changes_gradients_not_values():
    torch.manual_seed(1)
    x = torch.randn(6, 50, dtype=torch.float64) + 0.8
    grads = []
    for dr in (False, True):
        xi = x.clone().requires_grad_()
        s, m = lif_multistep(xi, detach_reset=dr)
        s.sum().backward()
        grads.append((s.detach(), xi.grad))
    assert torch.equal(grads[0][0], grads[1][0])
    assert not torch.allclose(grads[0][1], grads[1][1])


def test_v0_continues_a_run_in_pieces():
    torch.manual_seed(2)
    x = torch.rand(7, 10) * 1.5
    s_full, m_full = lif_multistep(x)
    s1, m1 = lif_multistep(x[:3])
    s2, m2 = LIF().run(x[3:], v0=m1[-1])
    assert torch.equal(torch.cat([s1, s2]), s_full) and torch.allclose(torch.cat([m1, m2]), m_full)


def test_equals_snntorch_leaky_without_reset_delay_in_the_weak_input_regime():
    # While H < 2*theta (so V after a reset stays below theta) the two are the same neuron.
    torch.manual_seed(3)
    current = torch.rand(10, 32, 16, dtype=torch.float64) * 1.4 - 0.5  # H <= 0.5 + 0.9 < 2
    a, b = current.clone().requires_grad_(), current.clone().requires_grad_()
    s, m = LIF().run(a)
    s_snn, m_snn = run_snntorch(snntorch_leaky(), b)
    assert s.sum() > 0
    assert torch.equal(s, s_snn)
    assert torch.allclose(m, m_snn)
    w = torch.randn_like(s)
    (s * w).sum().backward()
    (s_snn * w).sum().backward()
    assert torch.allclose(a.grad, b.grad)


def test_differs_from_snntorch_under_strong_input():
    # I = [2.5, 0.5]: t=0 H=2.5 spike, V=1.5 (still above theta). t=1: H=0.75+0.5=1.25 -> we spike
    # (V=0.25); snntorch subtracts theta again before deciding (1.25-1 < 1): no spike, mem 1.25.
    current = torch.tensor([[2.5], [0.5]], dtype=torch.float64)
    s, m = lif_multistep(current)
    s_snn, m_snn = run_snntorch(snntorch_leaky(), current)
    assert s[:, 0].tolist() == [1, 1] and m[:, 0].tolist() == pytest.approx([1.5, 0.25])
    assert s_snn[:, 0].tolist() == [1, 0] and m_snn[:, 0].tolist() == pytest.approx([1.5, 1.25])


def test_snntorch_default_reset_delay_is_another_neuron():
    # reset_delay=True: the spike at t=1 is not subtracted until t=2, and then undamped.
    current = torch.full((3, 1), 0.8, dtype=torch.float64)
    _, m = lif_multistep(current)
    s_snn, m_snn = run_snntorch(snntorch_leaky(reset_delay=True), current)
    assert m[:, 0].tolist() == pytest.approx([0.8, 0.2, 0.9])
    assert s_snn[1, 0] == 1
    assert m_snn[:, 0].tolist() == pytest.approx([0.8, 1.2, 0.5 * 1.2 + 0.8 - 1.0])


def test_module_keeps_no_state_between_calls():
    lif = LIF()
    x = torch.rand(4, 3, 5) * 2
    assert torch.equal(lif(x), lif(x))
    assert not any(torch.is_tensor(v) for v in vars(lif).values())


@pytest.mark.parametrize("outputs", ["spikes", "membrane", "both"])
@pytest.mark.parametrize("detach_reset,width", [(False, 1.0), (True, 1.0), (False, 0.6)])
def test_fused_backward_paths_match_reference_with_v0(outputs, detach_reset, width):
    # Each of the hand-written backward's paths: spikes only (the common, folded path), membrane
    # only, both; with a carried-in V(-1) that needs its own gradient.
    torch.manual_seed(6)
    current = torch.randn(5, 3, 7, dtype=torch.float64) * 1.5
    v0 = torch.randn(3, 7, dtype=torch.float64)
    a, b = current.clone().requires_grad_(), current.clone().requires_grad_()
    va, vb = v0.clone().requires_grad_(), v0.clone().requires_grad_()
    ref = lif_multistep(a, surrogate_width=width, detach_reset=detach_reset, v0=va)
    got = LIF(LIFParams(surrogate_width=width, detach_reset=detach_reset)).run(b, v0=vb)
    ws, wm = torch.randn_like(current), torch.randn_like(current)

    def loss(s, m):
        return {"spikes": (s * ws).sum(), "membrane": (m * wm).sum(), "both": (s * ws).sum() + (m * wm).sum()}[outputs]

    loss(*ref).backward()
    loss(*got).backward()
    assert torch.allclose(a.grad, b.grad) and torch.allclose(va.grad, vb.grad)


def test_fused_module_runs_under_bf16_autocast_with_the_reference_loop():
    # bf16 (GPU path) falls back to the autograd loop; on CPU the same code runs under autocast.
    torch.manual_seed(7)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(3, 2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        current = conv(x.flatten(0, 1)).unflatten(0, (3, 2))  # (T, B, C, H, W) in bf16
        s = LIF().run(current)[0]
    assert current.dtype == torch.bfloat16 and s.dtype == torch.bfloat16
    s_ref, _ = lif_multistep(current.float())
    agree = (s.float() == s_ref).float().mean().item()
    assert agree > 0.97  # bf16 rounding moves a few neurons across the threshold, no more
    s.float().sum().backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


def test_fused_module_matches_reference_on_channels_last_float32():
    # The layout a conv net hands the neuron: a (T*B, C, H, W) channels_last activation viewed as
    # (T, B, C, H, W). The saved window and the scratch steps follow that layout.
    torch.manual_seed(3)
    flat = (torch.randn(4 * 2, 5, 6, 7) * 1.5).contiguous(memory_format=torch.channels_last)
    a = flat.view(4, 2, 5, 6, 7).detach().requires_grad_()
    b = flat.view(4, 2, 5, 6, 7).detach().requires_grad_()
    assert not b.is_contiguous()
    s_ref, m_ref = lif_multistep(a)
    s, m = LIF().run(b)
    torch.testing.assert_close(s, s_ref)
    torch.testing.assert_close(m, m_ref)
    w = torch.randn_like(s)
    (s_ref * w).sum().backward()
    (s * w).sum().backward()
    torch.testing.assert_close(b.grad, a.grad)
