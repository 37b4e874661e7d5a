"""tssd_viz.data.dvs: the emulated event camera, against hand-worked events."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tssd_viz.data.dvs import EVENT_DTYPE, emulate, log_intensity, render_moving, saccade_path


def bar_video(steps: int, start: int = 5, width: int = 3, size: int = 20) -> np.ndarray:
    """(steps, size, size) frames of a white bar `width` columns wide on black, moving right 1 px a frame."""
    video = np.zeros((steps, size, size))
    for s in range(steps):
        video[s, :, start + s : start + s + width] = 1.0
    return video


@given(st.integers(0, 2**31 - 1), st.integers(2, 8))
@settings(max_examples=20, deadline=None)
def test_a_still_scene_emits_nothing(seed, steps):
    image = np.random.default_rng(seed).random((12, 9))
    video = np.repeat(image[None], steps, axis=0)
    assert len(emulate(video, np.arange(steps) * 1000.0, threshold=0.1)) == 0


def test_a_brighter_bar_moving_right_emits_on_ahead_and_off_behind():
    steps, threshold = 5, 0.3
    events = emulate(bar_video(steps), np.arange(steps) * 1000.0, threshold=threshold)
    # Black to white is log(1.1) - log(0.1) = 2.398 log units: 7 thresholds of 0.3, and back down 7.
    per_edge = math.floor((math.log(1.1) - math.log(0.1)) / threshold)
    assert per_edge == 7
    for s in range(1, steps):  # between frame s-1 and s the bar moved from column 5+s-1 to 5+s
        during = events[(events["t"] > (s - 1) * 1000) & (events["t"] <= s * 1000)]
        on, off = during[during["p"] == 1], during[during["p"] == 0]
        assert set(on["x"]) == {5 + s + 2}  # the column the front edge entered: ahead of the bar
        assert set(off["x"]) == {5 + s - 1}  # the column the back edge left: behind it
        assert len(on) == len(off) == 20 * per_edge  # every row of the column, 7 events each


def test_crossing_times_follow_the_log_intensity_line():
    """One pixel from black to white between t = 0 and 1000 us: the k-th event when the line reaches k·C."""
    video = np.array([[[0.0]], [[1.0]]])
    events = emulate(video, np.array([0.0, 1000.0]), threshold=0.3)
    span = math.log(1.1) - math.log(0.1)
    expected = [round(1000 * k * 0.3 / span) for k in range(1, 8)]
    assert events["t"].tolist() == expected and set(events["p"]) == {1}
    assert events.dtype == EVENT_DTYPE and events.dtype.names == ("x", "y", "t", "p")


def test_up_and_back_down_gives_as_many_off_as_on_events():
    video = np.array([[[0.0]], [[1.0]], [[0.0]]])
    events = emulate(video, np.array([0.0, 1000.0, 2000.0]), threshold=0.3)
    assert (events["p"] == 1).sum() == (events["p"] == 0).sum() == 7
    assert (events["t"][events["p"] == 1] <= 1000).all() and (events["t"][events["p"] == 0] > 1000).all()


def test_contrast_not_brightness_sets_the_event_count():
    """A DVS pixel sees relative change: with eps small, 0.1 -> 0.2 fires like 0.4 -> 0.8."""
    times = np.array([0.0, 1000.0])
    dim = emulate(np.array([[[0.1]], [[0.2]]]), times, threshold=0.1, eps=1e-6)
    bright = emulate(np.array([[[0.4]], [[0.8]]]), times, threshold=0.1, eps=1e-6)
    assert len(dim) == len(bright) == math.floor(math.log(2) / 0.1)


def test_noise_and_jitter_are_seeded_sorted_and_in_range():
    video = bar_video(6)
    times = np.linspace(0, 1e6, 6)  # one second
    a, b = (emulate(video, times, jitter_us=2000, noise_hz=50, rng=np.random.default_rng(3)) for _ in range(2))
    assert np.array_equal(a, b)
    assert (np.diff(a["t"]) >= 0).all() and a["t"].min() >= 0 and a["t"].max() <= 1e6
    clean = emulate(video, times)
    noise = len(a) - len(clean)  # jitter moves events, noise adds them: 50 Hz x 400 pixels x 1 s = 20,000
    assert abs(noise - 20_000) < 5 * math.sqrt(20_000)
    assert set(np.unique(a["p"])) == {0, 1} and a["x"].max() < 20 and a["y"].max() < 20


def test_saccade_path_visits_the_vertices_and_returns():
    vertices = np.array([[0.0, 0.0], [6.0, 3.0], [0.0, 6.0]])
    path = saccade_path(vertices, 4)
    assert path.shape == (13, 2)
    assert np.allclose(path[[0, 4, 8, 12]], vertices[[0, 1, 2, 0]])
    assert np.allclose(path[2], [3.0, 1.5])  # halfway along the first leg


def test_render_moving_shifts_the_image_and_loses_what_leaves():
    image = np.zeros((3, 3))
    image[1, 1] = 1.0
    frames = render_moving(image, (5, 6), np.array([[0.0, 0.0], [2.0, 1.0], [0.0, 0.5]]))
    assert frames.shape == (3, 5, 6)
    assert frames[0, 1, 1] == 1.0 and frames[1, 3, 2] == pytest.approx(1.0)
    assert frames[2, 1, 1] == pytest.approx(0.5) and frames[2, 1, 2] == pytest.approx(0.5)  # bilinear half-step
    gone = render_moving(image, (5, 6), np.array([[0.0, 9.0]]))
    assert gone.sum() == 0.0


def test_log_intensity_keeps_black_finite():
    assert np.isfinite(log_intensity(np.zeros(3))).all()
    with pytest.raises(ValueError, match="threshold"):
        emulate(np.zeros((2, 1, 1)), np.array([0.0, 1.0]), threshold=0)
