"""TSSD losses (SPEC §4-6): parts by mode, detached teachers, temperature scaling, a hand total."""

import math

import pytest
import torch
import torch.nn.functional as F

from tssd_viz.config import DistillConfig
from tssd_viz.snn.losses import Windows, accuracy_by_window, kd_kl, tssd_loss, windows
from tssd_viz.snn.models import ModelOutput


def test_kl_is_zero_when_student_equals_teacher():
    z = torch.randn(5, 7)
    assert kd_kl(z, z.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_kl(z, z + 3.0, 2.0).item() == pytest.approx(0.0, abs=1e-6)  # softmax ignores shifts


def test_kl_by_hand_with_temperature_squared():
    t, s, tau = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]]), 2.0
    p = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]  # softmax(t / 2)
    q = [math.exp(0) / (1 + math.exp(0.5)), math.exp(0.5) / (1 + math.exp(0.5))]  # softmax(s / 2)
    by_hand = tau**2 * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    assert kd_kl(t, s, tau).item() == pytest.approx(by_hand, rel=1e-5)


def test_temperature_softens_and_scales():
    torch.manual_seed(0)
    t, s = torch.randn(64, 10) * 3, torch.randn(64, 10) * 3
    kl1 = kd_kl(t, s, 1.0).item()
    kl_big = kd_kl(t, s, 100.0).item()
    # For large tau, tau^2 KL -> mean squared difference of centred logits / 2K (Hinton et al.).
    tc, sc = t - t.mean(-1, keepdim=True), s - s.mean(-1, keepdim=True)
    limit = ((tc - sc) ** 2).sum(-1).mean().item() / (2 * 10)
    assert kl_big == pytest.approx(limit, rel=0.02)
    assert kl1 != pytest.approx(kl_big, rel=0.05)


def logits(T=4, B=6, K=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, K, generator=g, requires_grad=True)


def test_windows_from_one_shared_pass():
    z, wz = logits(), logits(seed=1)
    w = windows(ModelOutput(z, wz), t_student=2)
    assert torch.allclose(w.student, z[:2].mean(0))
    assert torch.allclose(w.teacher, z.mean(0))
    assert torch.allclose(w.weak, wz[:2].mean(0))
    assert windows(ModelOutput(z[:2], None), t_student=2).teacher is None


@pytest.mark.parametrize(
    "mode,present",
    [
        ("baseline", set()),
        ("tsd", {"ce_teacher", "loss_tsd"}),
        ("ssd", {"ce_weak", "loss_ssd"}),
        ("tssd", {"ce_teacher", "loss_tsd", "ce_weak", "loss_ssd"}),
    ],
)
def test_terms_by_mode(mode, present):
    z, wz = logits(), logits(seed=1)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    parts = tssd_loss(windows(ModelOutput(z, wz), 2), y, DistillConfig(mode=mode))
    optional = {"ce_teacher", "loss_tsd", "ce_weak", "loss_ssd"}
    assert {k for k in optional if getattr(parts, k) is not None} == present
    floats = parts.as_floats()
    assert floats["ce_student"] is not None and all(floats[k] is None for k in optional - present)


def test_total_by_hand_on_a_tiny_example():
    z, wz = logits(T=4, B=3, K=3), logits(T=4, B=3, K=3, seed=5)
    y = torch.tensor([2, 0, 1])
    cfg = DistillConfig(mode="tssd", t_student=2, t_teacher=4, alpha=0.7, beta=1.3, kd_temperature=3.0)
    parts = tssd_loss(windows(ModelOutput(z, wz), 2), y, cfg, label_smoothing=0.1)
    zs, zt, w = z[:2].mean(0), z.mean(0), wz[:2].mean(0)

    def ce(a):
        return F.cross_entropy(a, y, label_smoothing=0.1)

    def kl(p_logits, q_logits):  # written out: sum p (log p - log q), batch mean, times tau^2
        p, q = F.softmax(p_logits / 3, -1), F.softmax(q_logits / 3, -1)
        return 9 * (p * (p.log() - q.log())).sum(-1).mean()

    total = ce(zs) + ce(zt) + ce(w) + 0.7 * kl(zt, zs) + 1.3 * kl(zs, w)
    assert parts.loss.item() == pytest.approx(total.item(), rel=1e-5)
    assert parts.loss_task.item() == pytest.approx((ce(zs) + ce(zt) + ce(w)).item(), rel=1e-5)


def test_switches_drop_terms():
    z, wz, y = logits(), logits(seed=1), torch.zeros(6, dtype=torch.long)
    cfg = DistillConfig(mode="tssd", teacher_ce=False, weak_ce=False)
    parts = tssd_loss(windows(ModelOutput(z, wz), 2), y, cfg)
    assert parts.ce_teacher is None and parts.ce_weak is None
    assert parts.loss_task.item() == pytest.approx(parts.ce_student.item())


def test_detached_teacher_gets_no_gradient_from_the_kl():
    zs = torch.randn(4, 5, requires_grad=True)
    zt = torch.randn(4, 5, requires_grad=True)
    y = torch.zeros(4, dtype=torch.long)
    cfg = DistillConfig(mode="tsd", teacher_ce=False)
    tssd_loss(Windows(zs, zt, None), y, cfg).loss.backward()
    assert zt.grad is None and zs.grad.abs().sum() > 0
    zt2 = torch.randn(4, 5, requires_grad=True)
    tssd_loss(
        Windows(zs, zt2, None), y, DistillConfig(mode="tsd", teacher_ce=False, detach_teacher=False)
    ).loss.backward()
    assert zt2.grad is not None and zt2.grad.abs().sum() > 0


def test_weak_heads_teacher_is_always_detached():
    zs = torch.randn(4, 5, requires_grad=True)
    w = torch.randn(4, 5, requires_grad=True)
    y = torch.zeros(4, dtype=torch.long)
    parts = tssd_loss(Windows(zs, None, w), y, DistillConfig(mode="ssd", weak_ce=False))
    (g,) = torch.autograd.grad(parts.loss_ssd, zs, allow_unused=True)
    assert g is None


def test_ssd_teacher_choice_picks_the_window():
    z, wz, y = logits(), logits(seed=1), torch.zeros(6, dtype=torch.long)
    win = windows(ModelOutput(z, wz), 2)
    a = tssd_loss(win, y, DistillConfig(mode="tssd", ssd_teacher="student")).loss_ssd
    b = tssd_loss(win, y, DistillConfig(mode="tssd", ssd_teacher="teacher")).loss_ssd
    assert a.item() == pytest.approx(kd_kl(win.student, win.weak, 2.0).item())
    assert b.item() == pytest.approx(kd_kl(win.teacher, win.weak, 2.0).item())


def test_missing_windows_are_explained():
    y = torch.zeros(6, dtype=torch.long)
    with pytest.raises(ValueError, match="teacher window"):
        tssd_loss(Windows(torch.randn(6, 5), None, None), y, DistillConfig(mode="tsd"))
    with pytest.raises(ValueError, match="weak head"):
        tssd_loss(Windows(torch.randn(6, 5), None, None), y, DistillConfig(mode="ssd"))


def test_accuracy_by_window():
    # one image, class 0 wins at t=0, class 1 dominates from t=1 on
    z = torch.tensor([[[3.0, 0.0]], [[0.0, 2.0]], [[0.0, 5.0]]])  # (T=3, B=1, K=2)
    assert accuracy_by_window(z, torch.tensor([0])) == [1.0, 1.0, 0.0]  # mean at n=2: (1.5, 1.0)
    assert accuracy_by_window(z, torch.tensor([1])) == [0.0, 0.0, 1.0]
