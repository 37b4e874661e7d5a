"""tssd_viz.figures.events: what the camera sees and the frames the network gets, from hand-made events."""

import numpy as np
import plotly.io as pio
import pytest
import torch

from tssd_viz import figures
from tssd_viz.data.dvs import EVENT_DTYPE
from tssd_viz.figures.events import POLARITY_COLORS


def recording() -> np.ndarray:
    """Six events: ON at x = 0..2 in the first 10 ms, OFF at x = 3..5 in the last 10 ms of 30 ms."""
    ev = np.zeros(6, EVENT_DTYPE)
    ev["x"] = [0, 1, 2, 3, 4, 5]
    ev["y"] = [1, 1, 1, 2, 2, 2]
    ev["t"] = [0, 4000, 9000, 21000, 25000, 30000]
    ev["p"] = [1, 1, 1, 0, 0, 0]
    return ev


def test_camera_figure_steps_through_time_slices_with_plotly_frames():
    fig = figures.camera_figure(recording(), sensor=(8, 4), slices=3)
    assert len(fig.frames) == 3 and len(fig.layout.sliders[0].steps) == 3
    first, middle, last = ({t.name: t for t in frame.data} for frame in fig.frames)
    assert list(first["ON"].x) == [0, 1, 2] and list(first["OFF"].x) == []
    assert list(middle["ON"].x) == [] and list(middle["OFF"].x) == []
    assert list(last["OFF"].x) == [3, 4, 5] and list(last["OFF"].y) == [2, 2, 2]  # the last event is in the last slice
    assert first["ON"].marker.color == POLARITY_COLORS["ON"] and last["OFF"].marker.color == POLARITY_COLORS["OFF"]
    assert [s.label for s in fig.layout.sliders[0].steps] == ["0–10 ms", "10–20 ms", "20–30 ms"]
    assert list(fig.layout.yaxis.range) == [3.5, -0.5]  # y grows downwards, as in an image
    assert "6 events in 30 ms" in fig.layout.title.text
    pio.to_json(fig)  # serialisable: the app and the notebooks send it to the browser


def test_camera_figure_refuses_plain_arrays():
    with pytest.raises(ValueError, match="x, y, t, p"):
        figures.camera_figure(np.zeros((4, 4)))


def test_event_frames_figure_draws_on_minus_off_per_timestep():
    frames = np.zeros((3, 2, 4, 5), np.uint8)
    frames[0, 1, 2, 3] = 2  # two ON events
    frames[2, 0, 1, 1] = 1  # one OFF event
    fig = figures.event_frames_figure(torch.from_numpy(frames))
    assert [t.type for t in fig.data] == ["heatmap"] * 3
    assert np.asarray(fig.data[0].z)[2, 3] == 2 and np.asarray(fig.data[2].z)[1, 1] == -1
    assert np.asarray(fig.data[1].z).sum() == 0
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (-2, 2)
    assert [a.text for a in fig.layout.annotations] == ["t = 1<br>2", "t = 2<br>0", "t = 3<br>1"]
    assert "number of events" in fig.layout.title.text  # what the second line of each panel's title counts
    with pytest.raises(ValueError, match=r"\(T, 2, H, W\)"):
        figures.event_frames_figure(np.zeros((3, 1, 4, 5)))


def test_events_rgb_colours_on_and_off_by_their_share_of_the_peak():
    frames = np.zeros((1, 2, 2, 2, 2), np.uint8)  # (N, T, 2, H, W)
    frames[0, 0, 1, 0, 0] = 2  # ON at (0, 0) in frame 0
    frames[0, 1, 1, 0, 0] = 2  # ... and again in frame 1: 4 in all, the peak
    frames[0, 1, 0, 1, 1] = 1  # OFF at (1, 1): a quarter of the peak
    rgb = figures.events_rgb(frames)
    assert rgb.shape == (1, 3, 2, 2) and rgb.dtype == np.uint8
    assert rgb[0, :, 0, 0].tolist() == [230, 159, 0]  # full orange
    assert rgb[0, :, 1, 1].tolist() == [22, 45, 58]  # a quarter of sky blue (86, 180, 233), rounded
    assert rgb[0, :, 0, 1].tolist() == [0, 0, 0]


def test_image_grid_draws_event_frames_as_pictures():
    frames = np.zeros((2, 4, 2, 6, 6), np.uint8)
    frames[:, :, 1, 3, 3] = 1
    fig = figures.image_grid_figure(frames, labels=[0, 1], classes=["a", "b"])
    assert len(fig.data) == 2 and np.asarray(fig.data[0].z).shape == (6, 6, 3)
    assert np.asarray(fig.data[0].z)[3, 3].tolist() == [230, 159, 0]


def test_event_frame_titles_fit_their_panels():
    # "t = 1 · 1,380 events" ran into the next panel's title with eight panels side by side; a page-wide
    # figure (about 1,000 px) gives each of T panels 1000 / T px, some 7 px a character of 11 px text.
    for T in (4, 8, 16):
        frames = np.full((T, 2, 34, 34), 30, np.uint16)  # 69,360 events a frame: the widest count we draw
        fig = figures.event_frames_figure(frames, first=1)
        budget = 1000 / T / 7
        lines = [line for a in fig.layout.annotations for line in a.text.split("<br>")]
        assert len(lines) == 2 * T and max(map(len, lines)) <= max(budget, 6), (T, lines)
