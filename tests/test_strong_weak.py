"""The strong/weak modes and early exit (SPEC §10): the loss by hand, which timestep teaches, no gradient
into the teacher, lambda = 0 is the baseline, the T_s >= 2 refusal, and early exit against stepping the
network image by image."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tssd_viz.config import ConfigError, DistillConfig
from tssd_viz.data import load_dataset
from tssd_viz.data.loader import Loader
from tssd_viz.presets import preset
from tssd_viz.snn.losses import Windows, rank_timesteps, strong_weak_loss, sw_pairs, timestep_confidence, tssd_loss
from tssd_viz.snn.models import build_model
from tssd_viz.training.evaluation import Outputs, early_exit, exit_points, teacher_margins
from tssd_viz.training.step import make_optimizer, timestep_signals, train_step
from tssd_viz.validation import validate


def softmax(z, tau=1.0):
    e = [math.exp(v / tau) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


# Timestep 1 is undecided (softmax [0.5, 0.5], confidence 0.5), timestep 2 sure (softmax [0.75, 0.25],
# confidence 0.75): timestep 2 is the strongest, timestep 1 the weakest.
Z1, Z2 = [0.0, 0.0], [math.log(3.0), 0.0]
STEPS = torch.tensor([[Z1], [Z2]])  # (T=2, B=1, K=2)


def test_confidence_and_ranking_by_hand():
    assert timestep_confidence(STEPS).tolist() == pytest.approx([0.5, 0.75])
    assert rank_timesteps(STEPS) == [1, 0]
    # a tie keeps the earlier timestep first
    assert rank_timesteps(torch.zeros(3, 4, 5)) == [0, 1, 2]


def test_s2w_and_w2s_losses_by_hand():
    tau = 2.0
    s2w = tau**2 * kl(softmax(Z2, tau), softmax(Z1, tau))  # the strong timestep 2 teaches timestep 1
    w2s = tau**2 * kl(softmax(Z1, tau), softmax(Z2, tau))
    assert s2w == pytest.approx(0.14532, abs=1e-4) and w2s == pytest.approx(0.14904, abs=1e-4)  # worked on paper
    assert strong_weak_loss(STEPS, "s2w", "pair", tau).item() == pytest.approx(s2w, rel=1e-5)
    assert strong_weak_loss(STEPS, "w2s", "pair", tau).item() == pytest.approx(w2s, rel=1e-5)


def test_cascade_distils_each_adjacent_pair_of_the_ranking():
    # confidences 0.5 (t1), 0.75 (t2), 0.9 (t3): ranking t3, t2, t1
    z3 = [math.log(9.0), 0.0]
    steps = torch.tensor([[Z1], [Z2], [z3]])
    assert rank_timesteps(steps) == [2, 1, 0]
    assert sw_pairs([2, 1, 0], "s2w", "cascade") == [(2, 1), (1, 0)]
    assert sw_pairs([2, 1, 0], "w2s", "cascade") == [(1, 2), (0, 1)]
    assert sw_pairs([2, 1, 0], "s2w", "pair") == [(2, 0)]
    assert sw_pairs([2, 1, 0], "w2s", "pair") == [(0, 2)]
    tau = 2.0
    by_hand = tau**2 * (kl(softmax(z3, tau), softmax(Z2, tau)) + kl(softmax(Z2, tau), softmax(Z1, tau))) / 2
    assert strong_weak_loss(steps, "s2w", "cascade", tau).item() == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("mode,teacher,student", [("s2w", 1, 0), ("w2s", 0, 1)])
def test_no_gradient_reaches_the_teacher_timestep(mode, teacher, student):
    steps = STEPS.clone().requires_grad_(True)
    strong_weak_loss(steps, mode, "pair", 2.0).backward()
    assert torch.count_nonzero(steps.grad[teacher]) == 0
    assert torch.count_nonzero(steps.grad[student]) > 0


def test_total_loss_is_the_mean_windows_ce_plus_lambda_times_l_sw():
    torch.manual_seed(0)
    steps = torch.randn(3, 8, 5)
    y = torch.randint(0, 5, (8,))
    w = Windows(steps.mean(0), None, None, steps)
    cfg = DistillConfig(mode="s2w", t_student=3, sw_weight=0.7, kd_temperature=1.5)
    parts = tssd_loss(w, y, cfg)
    ce = torch.nn.functional.cross_entropy(steps.mean(0), y)
    l_sw = strong_weak_loss(steps, "s2w", "pair", 1.5)
    assert parts.loss.item() == pytest.approx((ce + 0.7 * l_sw).item(), rel=1e-6)
    assert parts.loss_task.item() == pytest.approx(ce.item(), rel=1e-6)
    assert parts.loss_tsd is None and parts.loss_ssd is None and parts.ce_teacher is None
    assert tssd_loss(w, y, DistillConfig(mode="baseline", t_student=3)).loss_sw is None


def test_signals_name_the_strongest_and_weakest_timestep():
    s = timestep_signals(STEPS)
    assert s["confidence_by_timestep"] == pytest.approx([0.5, 0.75])
    assert s["strongest_by_timestep"] == [0.0, 1.0] and s["weakest_by_timestep"] == [1.0, 0.0]


@pytest.mark.parametrize("mode", ["s2w", "w2s"])
def test_lambda_zero_trains_exactly_like_the_baseline(mode):
    ds = load_dataset(preset("quick").data)
    cfgs = {
        m: preset("quick").replace(**{"distill.mode": m, "distill.sw_weight": 0.0, "train.device": "cpu"})
        for m in ("baseline", mode)
    }
    nets = {}
    for m, cfg in cfgs.items():
        torch.manual_seed(0)
        net = build_model(cfg.model, ds.in_channels, ds.num_classes, weak_head=False)
        opt = make_optimizer(net, cfg)
        loader = Loader(ds.train, ds, 32, train=True, augment=False, seed=0)
        for i, (x, y) in enumerate(loader):
            if i == 4:
                break
            train_step(net, opt, x, y, cfg, torch.autocast("cpu", enabled=False), False, i + 1)
        nets[m] = net
    for (name, a), b in zip(nets["baseline"].state_dict().items(), nets[mode].state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("mode", ["s2w", "w2s"])
def test_one_timestep_is_refused(mode):
    cfg = preset("quick").replace(**{"distill.mode": mode, "distill.t_student": 1})
    with pytest.raises(ConfigError, match="distill.t_student: mode .* needs t_student >= 2, got 1"):
        validate(cfg)
    with pytest.raises(ConfigError, match="sw_variant"):
        validate(preset("quick").replace(**{"distill.sw_variant": "ensemble"}))


# -- early exit


def test_exit_points_by_hand():
    # image 0: sure at t1 (right); image 1: unsure at t1 (wrong), sure at t2 (right); image 2: never sure (wrong)
    logits = torch.tensor(
        [
            [[4.0, 0.0], [0.0, 0.1], [0.0, 0.1]],
            [[4.0, 0.0], [8.0, 0.0], [0.1, 0.0]],
        ]
    )  # (T=2, N=3, K=2)
    labels = torch.tensor([0, 0, 0])
    # running means at t2: image 1 -> [4, 0.05] (sure, right); image 2 -> [0.05, 0.05] (tie: argmax class 0, right)
    p_low, p_high = exit_points(logits, labels, [0.5, 0.9])
    # threshold 0.5: every image is "sure" at t1 (max prob >= 0.5 always, K=2): t1 answers, 1 of 3 right
    assert (p_low.acc, p_low.mean_timesteps) == (pytest.approx(1 / 3), pytest.approx(1.0))
    # threshold 0.9: image 0 stops at t1, images 1 and 2 at t2; all three right at their exits
    assert (p_high.acc, p_high.mean_timesteps) == (pytest.approx(1.0), pytest.approx(5 / 3))


def stepping_exit(net, x, y, T, threshold):
    """Independent: each image alone, one more timestep at a time, stopping at the first confident running mean."""
    right, used = 0, 0
    for i in range(x.shape[0]):
        for t in range(1, T + 1):
            running = net(x[i : i + 1], t).logits.mean(0)[0]
            if torch.softmax(running, -1).max() >= threshold or t == T:
                right += int(running.argmax() == y[i])
                used += t
                break
    return right / x.shape[0], used / x.shape[0]


@settings(max_examples=4, deadline=None)
@given(threshold=st.sampled_from([0.3, 0.6, 0.9, 0.99]), T=st.integers(2, 4))
def test_early_exit_equals_stopping_each_image_on_its_own(threshold, T):
    ds = load_dataset(preset("quick").data)
    torch.manual_seed(1)
    net = build_model(preset("quick").model, ds.in_channels, ds.num_classes, weak_head=False).eval()
    x, y = next(iter(Loader(ds.test, ds, 24, train=False)))
    got = early_exit(net, [(x, y)], T, threshold)
    with torch.no_grad():
        acc, mean_t = stepping_exit(net, x, y, T, threshold)
    assert got.acc == pytest.approx(acc) and got.mean_timesteps == pytest.approx(mean_t, abs=1e-5)


def test_teacher_margins_by_mode():
    # 4 images, T=4; per-timestep predictions chosen so each accuracy is known
    labels = torch.tensor([0, 0, 0, 0])
    logits = torch.zeros(4, 4, 2)
    logits[0, :, 0] = torch.tensor([1.0, -1.0, -1.0, -1.0])  # t1: 1/4 right, confidence modest
    logits[1, :, 0] = torch.tensor([5.0, 5.0, 5.0, -5.0])  # t2: 3/4 right, very confident
    logits[2:, :, 0] = 10.0  # t3, t4: all right
    out = Outputs(logits, None, labels)
    # windows n=2: image 3 is wrong (-1 - 5 < 0): 3/4; n=4: all right
    for mode, own in [("tsd", 1.0 - 0.75), ("s2w", 0.75 - 0.25), ("w2s", -(0.75 - 0.25))]:
        cfg = preset("quick").replace(**{"distill.mode": mode})
        assert teacher_margins(out, cfg)["teacher_margin"] == pytest.approx(own)
    assert teacher_margins(out, preset("quick").replace(**{"distill.mode": "baseline"}))["teacher_margin"] is None
