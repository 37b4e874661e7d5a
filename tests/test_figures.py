"""Figures draw exactly the data they are given; missing quantities give no trace, not a crash.

Expected values are computed here independently (plain loops in numpy) from hand-made inputs.
"""

from __future__ import annotations

import json
from types import MappingProxyType

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import tssd_viz as tv
from tssd_viz.figures import (
    ROLE_COLORS,
    accuracy_figure,
    accuracy_vs_timesteps_figure,
    firing_rate_figure,
    kl_agreement_figure,
    loss_parts_figure,
    membrane_traces_figure,
    neuron_figure,
    raster_figure,
    timestep_logits_figure,
    window_agreement_figure,
    window_heatmap_figure,
)
from tssd_viz.figures.dashboard import firing_rate_history_figure
from tssd_viz.figures.neuron import DODGE


def by_name(fig: go.Figure, name: str):
    found = [tr for tr in fig.data if tr.name == name]
    assert len(found) == 1, f"{len(found)} traces named {name!r} in {[tr.name for tr in fig.data]}"
    return found[0]


def arr(values) -> np.ndarray:
    return np.asarray(values, dtype=float)


def step(s, **kw):
    return {"kind": "step", "step": s, "epoch": 0, "wall_s": 0.1 * s, **kw}


# A tssd run logged at steps 10, 20, 30; one epoch record; final eval lines for windows 1..3.
TSSD = [
    step(
        10,
        loss=2.0,
        loss_task=1.8,
        loss_tsd=0.15,
        loss_ssd=0.05,
        acc_student=0.2,
        acc_teacher=0.25,
        acc_weak=0.1,
        agreement=0.5,
        kl=0.4,
        acc_by_window=[0.1, 0.2],
        firing_rate={"a": 0.1},
    ),
    step(
        20,
        loss=1.5,
        loss_task=1.3,
        loss_tsd=0.12,
        loss_ssd=0.08,
        acc_student=0.4,
        acc_teacher=0.45,
        acc_weak=0.3,
        agreement=0.6,
        kl=0.3,
        acc_by_window=[0.3, 0.4, 0.5],
        firing_rate={"a": 0.1},
    ),
    {
        "kind": "epoch",
        "step": 20,
        "epoch": 1,
        "wall_s": 2.0,
        "loss": 1.7,
        "acc_student": 0.3,
        "acc_teacher": 0.35,
        "acc_weak": 0.2,
        "test_acc": 0.33,
    },
    step(
        30,
        loss=1.0,
        loss_task=0.9,
        loss_tsd=0.07,
        loss_ssd=0.03,
        acc_student=0.6,
        acc_teacher=0.65,
        acc_weak=0.5,
        agreement=0.8,
        kl=0.2,
        acc_by_window=[0.5, 0.6, 0.7],
        firing_rate={"a": 0.1},
    ),
    {"kind": "eval", "step": 30, "epoch": 1, "wall_s": 3.0, "split": "test", "t": 1, "acc": 0.5},
    {"kind": "eval", "step": 30, "epoch": 1, "wall_s": 3.0, "split": "test", "t": 2, "acc": 0.6},
    {"kind": "eval", "step": 30, "epoch": 1, "wall_s": 3.0, "split": "test", "t": 3, "acc": 0.7},
    {"kind": "eval", "step": 30, "epoch": 1, "wall_s": 3.0, "split": "val", "t": 3, "acc": 0.99},
]
# A baseline run: no teacher, no weak head, so those parts are None or absent.
BASELINE = [
    step(
        10,
        loss=2.1,
        loss_task=2.1,
        loss_tsd=None,
        loss_ssd=None,
        acc_student=0.15,
        acc_teacher=None,
        acc_weak=None,
        agreement=None,
        kl=None,
        acc_by_window=[0.15, 0.2],
    ),
    step(20, loss=1.9, loss_task=1.9, acc_student=0.25),
]


# --- neurons and layers -------------------------------------------------------------------------


def test_neuron_figure_draws_current_membrane_spikes_and_threshold():
    current = torch.tensor([0.6, 0.6, 2.5, 0.0, 1.2])
    membrane = np.array([0.6, 0.9, 0.95, 0.475, 0.6375])
    spikes = np.array([0, 0, 1, 0, 1])
    delayed = (np.array([0.6, 0.9, 2.95, 0.475, 1.6]), np.array([0, 0, 1, 0, 0]))
    label = "snntorch, reset_delay=True"  # reports its potential before a reset that lands one step later
    fig = neuron_figure(current, membrane, spikes, 0.8, label="soft", compare={label: delayed})
    np.testing.assert_allclose(arr(by_name(fig, "input current I(t)").y), current.numpy())
    # Where it spiked, the line rises to H(t) = V(t) + θ and drops to V(t) at the same t: a sawtooth.
    soft = by_name(fig, "potential: soft")
    np.testing.assert_allclose(arr(soft.y), [0.6, 0.9, 1.75, 0.95, 0.475, 1.4375, 0.6375])
    np.testing.assert_array_equal(arr(soft.x), [0, 1, 2, 2, 3, 4, 4])
    np.testing.assert_allclose(arr(by_name(fig, "spikes on the potential: soft").y), [1.75, 1.4375])  # H at a spike
    np.testing.assert_allclose(arr(by_name(fig, f"potential: {label}").y), delayed[0])  # drawn as given
    np.testing.assert_array_equal(arr(by_name(fig, "spikes: soft").x), [2, 4])
    np.testing.assert_array_equal(arr(by_name(fig, f"spikes: {label}").x), [2])
    thresholds = [tr for tr in fig.data if tr.name == "threshold θ = 0.8"]
    assert len(thresholds) == 2  # one per membrane row
    assert all(list(tr.y) == [0.8, 0.8] and tr.line.dash == "dash" for tr in thresholds)
    assert thresholds[0].line.color == ROLE_COLORS["threshold"]


def test_a_neuron_that_fires_at_every_step_is_seen_reaching_its_threshold():
    # I = 1.5, θ = 1, τ = 2: H = 1.5, 1.75, 1.875, ... fires every step while V stays below θ. Drawn as V only,
    # the neuron never seemed to reach θ; its line now touches H at every spike.
    spikes, membrane = tv.lif_multistep(torch.full((6,), 1.5), tau=2.0, threshold=1.0)
    assert spikes.all() and (membrane < 1.0).all()
    stars = by_name(
        neuron_figure(torch.full((6,), 1.5), membrane, spikes, 1.0),
        "spikes on the potential: soft reset (tssd-viz LIF)",
    )
    assert len(stars.x) == 6 and min(stars.y) >= 1.0


def test_neuron_figure_wraps_a_long_title():
    # Lesson 01 names every variant in the title; plotly never wraps, so the end was cut off.
    title = (
        "spikes per timestep: ours (soft reset): 0.52 · snntorch, reset_delay=True (its default): 0.43 · "
        "snntorch, reset_delay=False: 0.52"
    )
    fig = neuron_figure(np.ones(4), np.zeros(4), np.zeros(4), 1.0, title=title)
    lines = fig.layout.title.text.split("<br>")
    assert len(lines) == 3 and max(map(len, lines)) <= 80 and " · ".join(lines) == title
    assert fig.layout.margin.t >= neuron_figure(np.ones(4), np.zeros(4), np.zeros(4), 1.0).layout.margin.t + 2 * 22


def test_neuron_figure_rejects_a_batch():
    with pytest.raises(ValueError, match="current should be 1-D"):
        neuron_figure(np.zeros((4, 2)), np.zeros(4), np.zeros(4), 1.0)


def test_raster_is_one_trace_at_the_nonzero_spikes():
    spikes = np.zeros((3, 5), dtype=np.uint8)
    spikes[0, 1] = spikes[0, 4] = spikes[2, 0] = spikes[2, 1] = 1
    fig = raster_figure(torch.from_numpy(spikes))
    assert len(fig.data) == 1
    np.testing.assert_array_equal(arr(fig.data[0].x), [0, 0, 2, 2])
    np.testing.assert_array_equal(arr(fig.data[0].y), [1, 4, 0, 1])
    assert fig.layout.xaxis.dtick == 1  # whole timesteps only


def test_raster_takes_batch_item_zero_flattened_and_caps_neurons():
    spikes = np.zeros((2, 3, 2, 2))  # (T, B, C, W)
    spikes[1, 0, 1, 1] = 1  # item 0, feature 3
    spikes[0, 1, 0, 0] = 1  # item 1: not drawn
    fig = raster_figure(spikes)
    assert (list(fig.data[0].x), list(fig.data[0].y)) == ([1], [3])
    assert len(raster_figure(spikes, max_neurons=3).data[0].x) == 0


def test_membrane_traces_draw_the_soft_reset_as_a_sawtooth():
    # Worked by hand, θ = 1, β = 0.5 (τ = 2): H(t) = 0.5·V(t-1) + I(t), a spike when H ≥ 1, V = H - S.
    # Neuron 0, I = 0.8: H = 0.8, 1.2, 0.9, 1.25 -> S = 0, 1, 0, 1 -> V = 0.8, 0.2, 0.9, 0.25.
    # Neuron 1, I = 0.3: never fires, V = H = 0.3, 0.45, 0.525, 0.5625.
    v = np.array([[0.8, 0.3], [0.2, 0.45], [0.9, 0.525], [0.25, 0.5625]])  # (T, n)
    s = np.array([[0, 0], [1, 0], [0, 0], [1, 0]])
    spikes, membrane = tv.lif_multistep(torch.tensor([[0.8, 0.3]] * 4), tau=2.0, threshold=1.0)
    np.testing.assert_allclose(membrane.numpy(), v, rtol=1e-6)  # the library's neuron agrees with the hand
    np.testing.assert_array_equal(spikes.numpy(), s)
    fig = membrane_traces_figure(membrane, spikes, threshold=1.0, neuron_ids=[0, 1])
    fired, quiet = by_name(fig, "neuron 0"), by_name(fig, "neuron 1")
    # Neuron 0 rises to H(t) and drops straight down by θ to V(t) at the same t (shifted aside by DODGE).
    assert [c[0] for c in fired.customdata] == [0, 1, 1, 2, 3, 3]
    np.testing.assert_allclose(arr(fired.y), [0.8, 1.2, 0.2, 0.9, 1.25, 0.25], rtol=1e-6)
    np.testing.assert_allclose(arr(fired.x), np.array([0, 1, 1, 2, 3, 3]) - DODGE / 2)
    assert [c[1] for c in fired.customdata][1:3] == ["H(t), before the reset", "V(t), after the reset"]
    np.testing.assert_allclose(arr(quiet.y), v[:, 1], rtol=1e-6)
    np.testing.assert_allclose(arr(quiet.x), np.arange(4) + DODGE / 2)
    # The spikes sit on their own neuron's trace, at H(t), in its colour; the quiet neuron has none.
    stars = by_name(fig, "spikes of neuron 0")
    np.testing.assert_allclose(arr(stars.y), [1.2, 1.25], rtol=1e-6)
    assert list(stars.customdata) == [1, 3] and stars.marker.symbol == "star"
    assert stars.marker.color == fired.line.color != quiet.line.color
    assert len(by_name(fig, "spikes of neuron 1").x) == 0
    assert list(fired.marker.size) == [6, 0, 6, 6, 0, 6]  # dots on V(t); the star marks H(t)
    assert list(by_name(fig, "threshold θ = 1").y) == [1.0, 1.0]
    assert "soft reset" in fig.layout.title.subtitle.text
    with pytest.raises(ValueError, match="same shape"):
        membrane_traces_figure(v, s[:, :1])


def test_membrane_traces_accept_the_lessons_call_and_a_batch():
    # Lesson 01: membrane_traces_figure(membrane, spikes, threshold=..., neuron_ids=ids, title=...), tensors.
    v = torch.tensor([[0.5, 0.0], [0.25, 1.5]])  # (T, n): neuron 1 crosses θ = 1 at t = 1 with H = 2.5
    s = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    fig = membrane_traces_figure(v, s, threshold=1.0, neuron_ids=[1], title="layer x: five neurons")
    assert fig.layout.title.text == "layer x: five neurons"
    np.testing.assert_allclose(arr(by_name(fig, "neuron 1").y), [0.0, 2.5, 1.5])
    batch = torch.stack([v, v * 0], dim=1)  # (T, B, n): batch item 0 is drawn
    np.testing.assert_allclose(
        arr(membrane_traces_figure(batch, torch.stack([s, s], 1), neuron_ids=[1]).data[0].y), [0.0, 2.5, 1.5]
    )


def test_membrane_traces_without_spikes_or_threshold():
    fig = membrane_traces_figure(np.zeros(6), threshold=None)
    assert [tr.name for tr in fig.data] == ["neuron 0"]
    assert not fig.layout.title.subtitle.text  # no spikes: no key to the stars
    # Spikes but no threshold: H cannot be derived, so each spike is marked on V(t).
    fig = membrane_traces_figure(np.array([0.5, 0.1, 0.6]), np.array([0, 1, 0]), threshold=None)
    assert list(fig.data[0].y) == [0.5, 0.1, 0.6] and list(fig.data[1].y) == [0.1]


def test_firing_rate_bars_in_layer_order_and_grouped_by_run():
    fig = firing_rate_figure({"conv1": 0.2, "conv2": 0.05, "fc": 0.01})
    assert len(fig.data) == 1
    assert list(fig.data[0].x) == ["conv1", "conv2", "fc"] and list(fig.data[0].y) == [0.2, 0.05, 0.01]
    fig = firing_rate_figure({"tssd": {"conv1": 0.2, "conv2": 0.1}, "baseline": {"conv1": 0.3, "fc": 0.02}})
    assert [tr.name for tr in fig.data] == ["tssd", "baseline"] and fig.layout.barmode == "group"
    assert list(fig.data[0].x) == ["conv1", "conv2", "fc"]
    assert list(fig.data[0].y) == [0.2, 0.1, None] and list(fig.data[1].y) == [0.3, None, 0.02]


def test_firing_rate_axis_title_is_short_enough_for_a_short_chart():
    # In one line (44 characters, ~300 px) it was longer than a 450 px chart's plot is tall, and ran into
    # the figure title.
    for fig in (firing_rate_figure({"a": 0.1}), firing_rate_history_figure([])):
        lines = fig.layout.yaxis.title.text.split("<br>")
        assert lines[0] == "firing rate" and max(map(len, lines)) <= 32


# --- outputs over time --------------------------------------------------------------------------


def softmax_of_window_mean(z: np.ndarray, n: int) -> np.ndarray:
    m = z[:n].sum(0) / n
    e = np.exp(m - m.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_timestep_logits_heatmap_and_running_prediction():
    z = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5], [-1.0, 3.0, 0.0], [0.0, 2.0, 1.0]])  # (T=4, K=3)
    fig = timestep_logits_figure(torch.tensor(z), ["cat", "dog", "ship"], t_student=2, label=1)
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap) and list(heat.y) == ["cat", "dog", "ship"]
    np.testing.assert_allclose(arr(heat.z), z.T)
    expected = np.stack([softmax_of_window_mean(z, n) for n in range(1, 5)])  # (T, K)
    for k, name in enumerate(["cat", "dog (true label)", "ship"]):
        tr = by_name(fig, name)
        assert list(tr.x) == [1, 2, 3, 4]
        np.testing.assert_allclose(arr(tr.y), expected[:, k], rtol=1e-12)
    assert by_name(fig, "dog (true label)").line.width > by_name(fig, "cat").line.width
    marks = {s.x0: s.line.color for s in fig.layout.shapes if s.xref == "x2"}
    assert marks == {2: ROLE_COLORS["student"], 4: ROLE_COLORS["teacher"]}
    texts = [a.text for a in fig.layout.annotations]
    assert "student (T_s = 2): cat" in texts and "teacher (T_t = 4): dog" in texts


def test_timestep_logits_many_classes_shows_top_five_and_the_label():
    z = np.tile(np.arange(20.0), (3, 1))  # class 19 most probable
    fig = timestep_logits_figure(z, None, t_student=1, label=0)
    names = [tr.name for tr in fig.data[1:]]
    assert names == ["class 0 (true label)"] + [f"class {k}" for k in range(15, 20)]
    with pytest.raises(ValueError, match="t_student"):
        timestep_logits_figure(z, None, t_student=4)


def test_window_agreement_matches_an_independent_computation():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 16, 4)) * 2  # (T, B, K)
    fig = window_agreement_figure(z, t_student=2)
    p_T = np.stack([softmax_of_window_mean(z[:, b], 5) for b in range(16)])  # (B, K)
    agree, kl = [], []
    for n in range(1, 6):
        p_n = np.stack([softmax_of_window_mean(z[:, b], n) for b in range(16)])
        agree.append(np.mean(p_n.argmax(-1) == p_T.argmax(-1)))
        kl.append(np.mean([sum(p_T[b, k] * np.log(p_T[b, k] / p_n[b, k]) for k in range(4)) for b in range(16)]))
    np.testing.assert_allclose(arr(by_name(fig, "agreement with window T").y), agree)
    kl_trace = by_name(fig, "KL(window T ‖ window n)")
    np.testing.assert_allclose(arr(kl_trace.y), kl, atol=1e-12)
    assert kl_trace.yaxis == "y2" and kl[-1] == pytest.approx(0) and agree[-1] == 1


# --- training curves ----------------------------------------------------------------------------


def test_loss_parts_one_run():
    fig = loss_parts_figure(TSSD)
    assert len(fig.data) == 4  # the epoch record is not a step
    tsd = by_name(fig, "TSD loss (teacher → student)")
    assert list(tsd.x) == [10, 20, 30] and list(tsd.y) == [0.15, 0.12, 0.07]
    assert tsd.line.color == ROLE_COLORS["teacher"]


def test_loss_parts_skips_missing_parts_and_overlays_runs():
    fig = loss_parts_figure(BASELINE)
    assert sorted(tr.name for tr in fig.data) == ["task loss (cross-entropy terms)", "total loss"]
    fig = loss_parts_figure({"tssd": TSSD, "baseline": BASELINE})
    assert len(fig.data) == 4 + 2  # one trace per run per quantity present
    a, b = by_name(fig, "total loss · tssd"), by_name(fig, "total loss · baseline")
    assert a.line.color == b.line.color and a.line.dash != b.line.dash


def test_loss_parts_smoothing_is_a_debiased_ema():
    fig = loss_parts_figure(TSSD, smooth=0.5)
    raw, expected, acc = [2.0, 1.5, 1.0], [], 0.0
    for i, v in enumerate(raw, start=1):
        acc = 0.5 * acc + 0.5 * v
        expected.append(acc / (1 - 0.5**i))
    np.testing.assert_allclose(arr(by_name(fig, "total loss").y), expected)
    with pytest.raises(ValueError, match="smooth"):
        loss_parts_figure(TSSD, smooth=1.0)


def test_accuracy_lines_epoch_points_and_eval_points():
    fig = accuracy_figure(TSSD)
    student = by_name(fig, "student (window T_s)")
    assert list(student.x) == [10, 20, 30] and list(student.y) == [0.2, 0.4, 0.6]
    assert list(by_name(fig, "weak head, epoch mean").y) == [0.2]
    assert list(by_name(fig, "test (window T_s)").y) == [0.33]
    evals = by_name(fig, "test, eval (window n)")
    assert list(evals.y) == [0.5, 0.6, 0.7] and [c[1] for c in evals.customdata] == [1, 2, 3]  # val split left out
    base = accuracy_figure(BASELINE)
    assert [tr.name for tr in base.data] == ["student (window T_s)"]
    runs = accuracy_figure({"tssd": TSSD, "baseline": BASELINE})
    assert len(runs.data) == len(fig.data) + 1


def test_window_heatmap_pads_ragged_windows():
    fig = window_heatmap_figure(TSSD + [step(40, acc_by_window=None)], t_student=2)
    heat = fig.data[0]
    assert list(heat.x) == [10, 20, 30] and list(heat.y) == [1, 2, 3]
    assert [list(row) for row in heat.z] == [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6], [None, 0.5, 0.7]]
    assert (fig.layout.shapes[0].y0, fig.layout.shapes[0].y1) == (1.5, 2.5)


def test_accuracy_vs_timesteps_from_records_and_tables():
    fig = accuracy_vs_timesteps_figure({"tssd": TSSD, "table": {"1": 0.4, "3": 0.8, "2": 0.6}, "none": BASELINE})
    assert [tr.name for tr in fig.data] == ["tssd", "table"]
    assert list(fig.data[0].x) == [1, 2, 3] and list(fig.data[0].y) == [0.5, 0.6, 0.7]
    assert list(fig.data[1].x) == [1, 2, 3] and list(fig.data[1].y) == [0.4, 0.6, 0.8]


def plotly_tick_format(axis, dtick: float) -> str:
    """The format plotly.js gives the ticks of a linear axis at step `dtick`: the first tickformatstop whose
    dtickrange holds it (both ends inclusive, None open), else the axis's tickformat."""
    for stop in axis.tickformatstops or ():
        lo, hi = stop.dtickrange
        if (lo is None or lo <= dtick) and (hi is None or dtick <= hi):
            return stop.value
    return axis.tickformat


def tick_labels(axis, start: float, dtick: float, n: int = 6) -> list[str]:
    fmt = plotly_tick_format(axis, dtick)  # a d3 format such as ".1%", which Python's format reads the same
    return [format(start + k * dtick, fmt) for k in range(n)]


def test_percent_ticks_never_repeat_a_label():
    narrow = accuracy_vs_timesteps_figure({"quick": {1: 0.1003, 2: 0.1011, 3: 0.1050, 4: 0.1081}})
    axis = narrow.layout.yaxis
    # The axis: 10.0% to 10.8%, where plotly steps by 0.2% and ".0%" read "10%, 10%, 10%, 11%".
    assert tick_labels(axis, 0.100, 0.002, 5) == ["10.0%", "10.2%", "10.4%", "10.6%", "10.8%"]
    assert tick_labels(axis, 0.9810, 0.0005, 4) == ["98.10%", "98.15%", "98.20%", "98.25%"]  # six "98%" before
    assert tick_labels(axis, 0.0, 0.2, 3) == ["0%", "20%", "40%"]  # whole percents keep no decimals
    # Plotly's steps are 1, 2 or 5 times a power of ten: at every one of them neighbours differ.
    for dtick in [m * 10.0**e for e in range(-5, 0) for m in (1, 2, 5)]:
        for start in (0.1, 0.5, 0.98):
            labels = tick_labels(axis, start, dtick)
            assert len(set(labels)) == len(labels), (dtick, labels)
    # Every percent axis of the training and output figures formats its ticks the same way.
    z = np.random.default_rng(2).normal(size=(3, 4, 5))
    logits = timestep_logits_figure(z[:, 0], None, t_student=1)
    axes = [
        accuracy_figure(TSSD).layout.yaxis,
        kl_agreement_figure(TSSD).layout.yaxis,
        window_heatmap_figure(TSSD).data[0].colorbar,
        logits.layout.yaxis2,
        window_agreement_figure(z).layout.yaxis,
    ]
    for axis in axes:
        assert plotly_tick_format(axis, 0.002) == ".1%" and plotly_tick_format(axis, 0.1) == ".0%"


def test_eval_labels_have_room_at_the_right_edge_and_do_not_pile_up():
    fig = accuracy_figure(TSSD)  # evaluations of windows 1..3 at step 30, the last step; steps start at 10
    lo, hi = fig.layout.xaxis.range
    assert hi >= 30 + 0.1 * (30 - 10) and lo < 10  # room right of the last step for "n=1" (was clipped)
    evals = by_name(fig, "test, eval (window n)")
    # All three were measured at step 30: each window gets its own column right of it, n = 1 first, labelled
    # once above its highest marker, so that "n=1", "n=2", "n=3" stand side by side instead of on top of each
    # other; the hover keeps the step.
    assert 30 < evals.x[0] < evals.x[1] < evals.x[2] <= hi and [c[0] for c in evals.customdata] == [30, 30, 30]
    labels = {a.text: (a.x, a.y) for a in fig.layout.annotations if a.text.startswith("n=")}
    assert labels == {f"n={n}": (evals.x[n - 1], evals.y[n - 1]) for n in (1, 2, 3)}
    runs = accuracy_figure({"tssd": TSSD, "tsd": TSSD})  # two runs: one column per window, one label each
    first, second = [tr for tr in runs.data if tr.name and tr.name.startswith("test, eval")]
    assert list(first.x) == list(second.x)
    assert sorted(a.text for a in runs.layout.annotations if a.text.startswith("n=")) == ["n=1", "n=2", "n=3"]
    assert accuracy_figure(BASELINE).layout.xaxis.range is None  # no evaluation: plotly's own range


def test_long_legends_go_under_the_plot_instead_of_scrolling():
    one = loss_parts_figure(TSSD)
    assert one.layout.legend.orientation is None  # 4 entries: beside the plot
    modes = {"baseline": BASELINE, "tsd": TSSD, "ssd": TSSD, "tssd": TSSD}  # lesson 03: 2 + 4 + 4 + 4 entries
    many = loss_parts_figure(modes)
    assert len(many.data) == 14 and many.layout.legend.orientation == "h"
    assert many.layout.legend.yanchor == "top" and many.layout.legend.y < 0
    assert many.layout.height >= 450 + 20 * 14  # the plot keeps its height; the legend gets its own
    assert accuracy_figure(modes).layout.legend.orientation == "h"
    # Two axes: beside the plot, a legend would sit on the right axis's title; it always goes under.
    assert kl_agreement_figure(TSSD).layout.legend.orientation == "h"


def test_kl_agreement_two_axes_and_runs():
    fig = kl_agreement_figure(TSSD)
    assert list(by_name(fig, "agreement (teacher vs student)").y) == [0.5, 0.6, 0.8]
    kl = by_name(fig, "KL(teacher ‖ student)")
    assert list(kl.y) == [0.4, 0.3, 0.2] and kl.yaxis == "y2"
    fig = kl_agreement_figure({"tssd": TSSD, "baseline": BASELINE})
    assert len(fig.data) == 2  # the baseline has no teacher


def test_training_figures_tolerate_empty_and_sparse_records():
    sparse = [
        MappingProxyType({"kind": "step", "step": 1, "epoch": 0, "wall_s": 0.0}),
        {"kind": "eval", "step": 1, "epoch": 0, "wall_s": 0.0, "split": "test", "t": 1, "acc": None},
    ]
    for records in ([], sparse):
        for build in (loss_parts_figure, accuracy_figure, window_heatmap_figure, kl_agreement_figure):
            fig = build(records)
            assert len(fig.data) == 0 and "recorded yet" in fig.layout.annotations[0].text
        assert len(accuracy_vs_timesteps_figure({"run": records}).data) == 0
    with pytest.raises(TypeError, match="single metrics record"):
        loss_parts_figure(TSSD[0])


def test_every_figure_is_json_serialisable():
    z = np.random.default_rng(1).normal(size=(4, 3, 5)).astype(np.float32)
    figs = [
        neuron_figure(np.ones(4), np.zeros(4), np.zeros(4), 1.0, compare={"v": (np.ones(4), np.ones(4))}),
        raster_figure(np.eye(4)),
        membrane_traces_figure(np.eye(4), np.eye(4)),
        firing_rate_figure({"a": 0.1}),
        timestep_logits_figure(torch.from_numpy(z[:, 0]).bfloat16(), list("abcde"), t_student=2, label="c"),
        window_agreement_figure(z),
        loss_parts_figure({"a": TSSD, "b": BASELINE}),
        accuracy_figure(TSSD),
        window_heatmap_figure(TSSD),
        accuracy_vs_timesteps_figure({"a": TSSD}),
        kl_agreement_figure(TSSD),
    ]
    for fig in figs:
        assert isinstance(fig, go.Figure)
        assert json.loads(fig.to_json())["data"]


# Readable at a glance (issue 24): no label on another, percent axes that neither zoom a single test image
# into a cliff nor run past 0 % or 100 %.
MIN_LABEL_GAP = 0.05  # of the y range between two labels' centres: about 15 px on a 300 px plot


def label_heights(fig: go.Figure, prefix: str = "") -> list[float]:
    """The y of every arrowed label's text (its point is at a.y), in the order drawn."""
    return [a.ay for a in fig.layout.annotations if a.showarrow and a.text.startswith(prefix)]


def assert_apart(heights: list[float], y_range) -> None:
    span = y_range[1] - y_range[0]
    pairs = [(a, b) for i, a in enumerate(heights) for b in heights[i + 1 :]]
    assert len(heights) >= 2 and all(abs(a - b) >= MIN_LABEL_GAP * span for a, b in pairs), heights


def assert_percent_axis(y_range, min_span: float = 0.05) -> None:
    low, high = y_range
    assert 0.0 <= low < high <= 1.0 and high - low >= min_span - 1e-9, y_range


def test_window_labels_stand_apart_when_every_window_scores_the_same():
    # Every digits run: n=1..n=4 all near 98 % at the last step stacked into one smudge at the right edge.
    records = [step(s, acc_student=0.9) for s in range(10, 110, 10)]
    records += [{"kind": "eval", "split": "test", "step": 100, "t": n, "acc": 0.98} for n in (1, 2, 3, 4)]
    fig = accuracy_figure(records)
    labels = sorted((a.x, a.ay) for a in fig.layout.annotations if a.text.startswith("n="))
    span = fig.layout.yaxis.range[1] - fig.layout.yaxis.range[0]
    # Neighbouring columns' labels stand apart in height; every other column shares one, so the labels stay
    # near their markers (eight windows no longer make a ladder down to 40 %).
    assert all(abs(a[1] - b[1]) >= MIN_LABEL_GAP * span for a, b in zip(labels, labels[1:])), labels
    assert len({round(h, 6) for _, h in labels}) == 2
    assert all(0.98 - 3 * MIN_LABEL_GAP * span < h < 0.98 for _, h in labels)  # below the markers, near them
    assert_percent_axis(fig.layout.yaxis.range)


def test_early_exit_labels_never_overlap_and_its_axis_stays_a_percent_axis():
    # The lesson-04 s2w run: 0.5 at 99.2 %, and 0.8, 0.9, 0.95 a few hundredths of a timestep apart at 99.7 %.
    close = [(0.5, 0.9917, 1.014), (0.8, 0.9972, 1.072), (0.9, 0.9972, 1.114), (0.95, 0.9972, 1.192)]
    points = [dict(threshold=t, acc=a, mean_timesteps=m) for t, a, m in close]
    fig = tv.figures.early_exit_figure({"s2w": points}, full_window=4)
    assert [a.text for a in fig.layout.annotations] == ["0.5", "0.8–0.9", "0.95"]  # 0.8, 0.9: one place
    assert_apart(label_heights(fig), fig.layout.yaxis.range)
    assert_percent_axis(fig.layout.yaxis.range)
    # A CIFAR run: every threshold at 59 % after the whole window; the axis ran from -50 % to 150 %.
    cifar = [dict(threshold=t, acc=0.59, mean_timesteps=2.0) for t in (0.5, 0.8, 0.9, 0.95)]
    two = tv.figures.early_exit_figure({"cifar": cifar, "other": [dict(cifar[0], acc=0.6)]}, full_window=2)
    assert sorted(a.text for a in two.layout.annotations) == ["0.5", "0.5–0.95"]
    assert_apart(label_heights(two), two.layout.yaxis.range)
    assert_percent_axis(two.layout.yaxis.range)
    low, high = two.layout.yaxis.range
    assert low <= 0.59 and high >= 0.6 and high - low <= 0.2  # zoomed, but whole points around the data


def test_each_timestep_alone_marks_the_most_and_least_accurate_timestep_of_the_student_window():
    # As on a digits run: the most confident timestep (the record's "strongest", t = 2) is not the most
    # accurate; the marks follow the accuracy the chart shows, and the hover gives the confidence.
    record = dict(
        t=3,
        acc_by_timestep=[0.9806, 0.9778, 0.9806, 0.9700],  # t = 4 lies beyond the student window
        confidence_by_timestep=[0.95, 0.97, 0.96, 0.9],
        strongest=2,
        weakest=1,
    )
    fig = tv.figures.timestep_accuracy_figure({"s2w": record})
    most, least = by_name(fig, "most accurate timestep"), by_name(fig, "least accurate timestep")
    assert list(most.x) == [1, 3] and list(most.y) == [0.9806, 0.9806]  # a tie: both marked
    assert list(least.x) == [2] and list(least.y) == [0.9778]
    assert fig.data[0].customdata[1][0] == "97.0%" and "confidence" in fig.data[0].hovertemplate
    assert not fig.layout.annotations and all(tr.cliponaxis is False for tr in fig.data)  # nothing to clip
    assert_percent_axis(fig.layout.yaxis.range)
    flat = tv.figures.timestep_accuracy_figure({"flat": dict(acc_by_timestep=[0.5, 0.5])})
    assert len(flat.data) == 3 and not flat.data[1].x  # all equal: nothing is most or least


def test_percent_axes_show_at_least_five_points_and_stay_inside_0_to_100():
    one_image = {"a": {1: 0.9806, 2: 0.9806}, "b": {1: 0.9778, 2: 0.9806}}  # 1 test image of 360 apart
    assert_percent_axis(accuracy_vs_timesteps_figure(one_image).layout.yaxis.range)
    assert_percent_axis(accuracy_vs_timesteps_figure({"top": {1: 1.0, 2: 1.0}}).layout.yaxis.range)
    conf = [step(s, confidence_by_timestep=[0.97, 0.971]) for s in (10, 20)]
    assert_percent_axis(tv.figures.timestep_confidence_figure(conf).layout.yaxis.range)
    assert list(accuracy_figure(TSSD).layout.yaxis.range) == [0.0, 1.0]
    assert list(kl_agreement_figure(TSSD).layout.yaxis.range) == [0.0, 1.0]
    logits = torch.randn(4, 6, 3)
    assert list(window_agreement_figure(logits).layout.yaxis.range) == [0, 1]
    assert tv.figures.style.percent_range([]) == [0.0, 1.0]
    assert_percent_axis(tv.figures.style.percent_range([0.0]))  # slid up from below 0 %


def test_student_and_teacher_guesses_are_written_on_lines_of_their_own():
    # Inspect: "student (T_s = 2): ship" overprinted "teacher (T_t = 4): ship".
    for t_student in (2, 3):
        fig = timestep_logits_figure(torch.randn(4, 10), [f"c{k}" for k in range(10)], t_student=t_student)
        marks = {a.text.split(" ")[0]: a for a in fig.layout.annotations if "): " in a.text}
        assert set(marks) == {"student", "teacher"} and marks["student"].y - marks["teacher"].y >= 0.08
        assert marks["teacher"].xanchor == "right" and marks["teacher"].yanchor == "top"
        assert list(fig.layout.yaxis2.range) == [0, 1]
