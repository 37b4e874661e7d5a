"""The lesson figures draw exactly what they are given; figure_explorer draws at once and redraws on change;
the lessons find every figure at the top, in `tssd_viz.figures`."""

import importlib
import inspect

import numpy as np
import pytest
import torch

import tssd_viz as tv
from tssd_viz.figures import (
    comparison_bars_figure,
    figure_explorer,
    head_predictions_figure,
    image_grid_figure,
    intermittent_neurons,
    network_diagram_figure,
)


@pytest.mark.parametrize("module", ["dashboard", "lessons", "logits", "neuron", "training"])
def test_every_public_figure_function_is_exported_at_the_top(module):
    mod = importlib.import_module(f"tssd_viz.figures.{module}")
    public = [
        name
        for name, f in inspect.getmembers(mod, inspect.isfunction)
        if f.__module__ == mod.__name__ and not name.startswith("_")
    ]
    assert public and all(getattr(tv.figures, name) is getattr(mod, name) for name in public)
    assert set(public) <= set(tv.figures.__all__)


def test_intermittent_neurons_fire_sometimes_and_fill_up_with_the_rest():
    spikes = torch.tensor(
        [
            [1, 0, 0, 1, 1, 0],  # (T=3, N=6): columns 0 and 5 always / never fire
            [1, 1, 0, 0, 1, 0],
            [1, 0, 1, 1, 1, 0],
        ],
        dtype=torch.uint8,
    )
    assert intermittent_neurons(spikes, 3) == [1, 2, 3]
    assert intermittent_neurons(spikes, 5) == [1, 2, 3, 0, 4]  # 4 fires at every step too
    assert intermittent_neurons(spikes[:, [0, 5]], 5) == [0, 1]  # none fires sometimes: the others, in order


def test_image_grid_marks_right_and_wrong_predictions():
    images = torch.zeros(3, 1, 8, 8, dtype=torch.uint8)
    fig = image_grid_figure(images, labels=[0, 1, 2], classes=["a", "b", "c"], predictions=[0, 2, 2])
    assert len(fig.data) == 3 and fig.data[0].z.shape == (8, 8, 3)  # grey drawn as RGB
    titles = [a.text for a in fig.layout.annotations]
    assert "→ a" in titles[0] and "#009E73" in titles[0] and "#D55E00" in titles[1]


def test_image_grid_names_each_image_by_its_index_in_the_split():
    image = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    fig = image_grid_figure(image, labels=[3], classes=[str(k) for k in range(10)], indices=[2])
    assert fig.layout.annotations[0].text == "#2: 3"  # image #2 of the split, not "#0" of the slice
    assert image_grid_figure(torch.zeros(2, 1, 8, 8)).layout.annotations[1].text == "#1"
    with pytest.raises(ValueError):
        image_grid_figure(image, indices=[1, 2])


def test_long_titles_are_wrapped_and_the_top_margin_holds_them():
    # Plotly never wraps a title: in JupyterLab's output area (~950 px) text past ~100 characters is cut off.
    layers = {"stem_lif": (8, 8, 8), "stages.0.blocks.0.lif": (8, 8, 8), "stages.1.blocks.0.lif": (16, 4, 4)}
    long = (
        "aux_stage = 2: the weak head reads stages.1.blocks.0.lif · 170 extra parameters on a network "
        "of 6,866 (untrained weights)"
    )
    fig = network_diagram_figure(layers, input_shape=(1, 8, 8), num_classes=10, tap="stages.1.blocks.0.lif", title=long)
    lines = fig.layout.title.text.split("<br>")
    assert len(lines) == 2 and all(len(line) <= 80 for line in lines)
    assert " ".join(lines).replace(" · ", " ") == long.replace(" · ", " ")  # nothing lost
    assert fig.layout.margin.t == 70 + 22 and fig.layout.height == 400 + 22
    short = comparison_bars_figure({"a": 0.5}, title="a short title")
    assert short.layout.title.text == "a short title" and short.layout.margin.t == 70


def test_network_diagram_puts_the_weak_head_under_its_tap():
    layers = {"stem_lif": (8, 32, 32), "stages.1.blocks.0.lif": (16, 16, 16)}
    fig = network_diagram_figure(layers, input_shape=(3, 32, 32), num_classes=10, tap="stages.1.blocks.0.lif")
    weak = [a for a in fig.layout.annotations if a.text and "weak head" in a.text][0]
    assert weak.x == 2  # image at 0, stem_lif at 1, the tap at 2
    with pytest.raises(ValueError):
        network_diagram_figure(layers, input_shape=(3, 32, 32), num_classes=10, tap="nope")


def test_head_predictions_name_each_output_with_its_guess():
    fig = head_predictions_figure(
        {"final": [0.1, 0.9], "weak": [0.6, 0.4]}, ["cat", "dog"], label=1, roles={"weak": "weak"}
    )
    assert [t.name for t in fig.data] == ["final: dog", "weak: cat"]
    assert np.allclose(fig.data[1].y, [0.6, 0.4])


def test_comparison_bars_flat_and_nested():
    flat = comparison_bars_figure({"baseline": 0.5, "tsd": 0.52})
    assert list(flat.data[0].x) == ["baseline", "tsd"] and list(flat.data[0].y) == [0.5, 0.52]
    nested = comparison_bars_figure({"final": {"a": 0.5, "b": 0.6}, "weak": {"b": 0.3}}, colors={"weak": "#009E73"})
    assert list(nested.data[1].y) == [None, 0.3] and nested.data[1].marker.color == "#009E73"


def test_figure_explorer_draws_now_and_on_change():
    widgets = pytest.importorskip("ipywidgets")
    import plotly.graph_objects as go

    slider = widgets.IntSlider(value=1, min=0, max=5)
    calls = []

    def draw(k):
        calls.append(k)
        return go.Figure(go.Scatter(y=[k]), layout=dict(title=dict(text=f"k={k}")))

    box = figure_explorer(draw, k=slider)
    out = box.children[1]
    assert calls == [1] and out.outputs[0]["data"]["text/plain"] == "<plotly figure: k=1>"
    slider.value = 3
    assert calls == [1, 3] and len(out.outputs) == 1 and "k=3" in out.outputs[0]["data"]["text/plain"]
    with pytest.raises(ZeroDivisionError):
        figure_explorer(lambda k: 1 / 0, k=slider)  # the first drawing raises: a headless run fails


def test_the_tallest_and_the_lowest_bar_keep_room_for_their_labels():
    # Lesson 4's bars of points: +14.8 at the top was drawn without its label (no room above it).
    fig = comparison_bars_figure({"vs baseline": {"a": 14.8, "b": -3.0}, "gap": {"a": 2.0}}, value_format="+.1f")
    low, high = fig.layout.yaxis.range
    assert high >= 14.8 + 0.1 * 17.8 and low <= -3.0 - 0.1 * 17.8
    assert {tr.constraintext for tr in fig.data} == {"none"}  # "+14.8" may be wider than its narrow bar
    stacked = comparison_bars_figure({"x": {"a": 1.0}, "y": {"a": 2.0}}, barmode="stack")
    assert stacked.layout.yaxis.range is None  # stacked labels sit inside their bars


def test_early_exit_labels_thresholds_that_land_on_one_point_once():
    # Lesson 4: 0.9, 0.95 and 0.99 all at the full window (every image ran all 4 timesteps) were three
    # labels stacked at x = 4; they are one label now, and the hover still names each threshold.
    ExitPoint = tv.ExitPoint
    pts = [
        ExitPoint(0.5, 0.90, 1.5),
        ExitPoint(0.9, 0.95, 3.97),
        ExitPoint(0.95, 0.95, 4.0),
        ExitPoint(0.99, 0.95, 4.0),
    ]
    fig = tv.figures.early_exit_figure({"baseline": pts}, full_window=4)
    assert [(a.text, a.x, a.y) for a in fig.layout.annotations] == [("0.5", 1.5, 0.90), ("0.9–0.99", 3.97, 0.95)]
    assert [c[0] for c in fig.data[0].customdata] == [0.5, 0.9, 0.95, 0.99]


def test_image_grid_captions_name_frames_of_a_video_by_their_time():
    # Lesson 5: frames of one video named "#0 … #300" read as image numbers; captions say what they are.
    fig = image_grid_figure(np.zeros((2, 1, 4, 4), np.uint8), captions=["t = 0 ms", "t = 50 ms"])
    assert [a.text for a in fig.layout.annotations] == ["t = 0 ms", "t = 50 ms"]
    with pytest.raises(ValueError, match="2 captions for 3 images"):
        image_grid_figure(np.zeros((3, 1, 4, 4), np.uint8), captions=["a", "b"])


def test_the_cameras_play_buttons_sit_left_of_its_slider():
    # Lesson 5: the slider's handle started under "▶ play" and could not be dragged.
    events = np.zeros(4, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])
    events["t"] = [0, 1000, 2000, 3000]
    fig = tv.figures.camera_figure(events)
    slider, buttons = fig.layout.sliders[0], fig.layout.updatemenus[0]
    assert buttons.x == 0 and buttons.xanchor == "left" and slider.x >= 0.2 and slider.x + slider.len <= 1.0


def test_comparison_bars_draw_the_seed_noise_of_a_difference_and_make_room_for_it():
    # Lesson 04's race: "vs baseline" per row with its 2 SE from the committed seeds; a bar without one
    # (the teacher margin) draws no error bar, and the axis holds every bar's whole error bar.
    values = {"vs baseline": {"tsd": 1.2, "w2s": -0.4}, "teacher margin": {"tsd": 3.0, "w2s": 0.5}}
    fig = comparison_bars_figure(values, value_format="+.1f", errors={"vs baseline": {"tsd": 2.5, "w2s": None}})
    vs, margin = fig.data
    assert list(vs.error_y.array) == [2.5, 0.0] and vs.error_y.visible
    assert margin.error_y.array is None
    low, high = fig.layout.yaxis.range
    assert low <= -0.4 and high >= max(1.2 + 2.5, 3.0)
    assert low <= 1.2 - 2.5  # the lower end of the tsd error bar, below zero
