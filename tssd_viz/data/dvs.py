"""A small emulated event camera (DVS): pixels that report changes of log intensity as ON/OFF events.

Each pixel remembers the log intensity at its last event, `L_ref`. Whenever the current log
intensity `L` has moved a whole contrast threshold `C` away from it, the pixel emits an event, ON
(p = 1) when it got brighter, OFF (p = 0) when it got darker, and moves `L_ref` by `C` towards `L`;
a change of k thresholds emits k events. Log, not linear, intensity: a real DVS pixel responds to
relative change (contrast), so a dim edge and a bright one of the same contrast fire alike; the
offset `eps` keeps log(0) finite and stands for the sensor's dark current.

Between two rendered frames the log intensity is taken to change linearly, so the k-th crossing
gets the time at which that line meets `L_ref ± k·C`. A still scene emits nothing; real sensors
add a little timing jitter and background activity (noise events), which `emulate` can add too.

Events are tonic-style structured arrays with the fields x, y, t (microseconds), p, sorted by t.
"""

from __future__ import annotations

import numpy as np

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


def log_intensity(video: np.ndarray, eps: float = 0.1) -> np.ndarray:
    """log(I + eps) of intensities in [0, 1]; eps = 0.1 puts a black-to-white edge at ~2.4 log units."""
    return np.log(np.asarray(video, dtype=np.float64) + eps)


def emulate(
    video: np.ndarray,
    times_us: np.ndarray,
    *,
    threshold: float = 0.2,
    eps: float = 0.1,
    jitter_us: float = 0.0,
    noise_hz: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The events a DVS pixel array emits while it watches `video`.

    Args:
        video: (S, H, W) intensities in [0, 1], frame s shown at `times_us[s]`.
        times_us: (S,) increasing, in microseconds.
        threshold: contrast threshold C in log-intensity units.
        eps: added to the intensity before the log, log(I + eps).
        jitter_us: standard deviation of a normal timing jitter added to every event.
        noise_hz: background events per pixel per second, at uniform random times and polarities.
        rng: the random generator (default: a new one).

    Returns:
        A structured array (EVENT_DTYPE) sorted by t, times within [times_us[0], times_us[-1]].

    Raises:
        ValueError: the shapes disagree, or threshold <= 0.
    """
    video = np.asarray(video)
    times = np.asarray(times_us, dtype=np.float64)
    if video.ndim != 3 or times.shape != (video.shape[0],):
        raise ValueError(f"video must be (S, H, W) with one time per frame, got {video.shape} and {times.shape}")
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    rng = rng if rng is not None else np.random.default_rng(0)
    t, x, y, p = _crossings(log_intensity(video, eps), times, threshold)
    if jitter_us > 0:
        t = t + rng.normal(0.0, jitter_us, t.size)
    if noise_hz > 0:
        t, x, y, p = _with_noise((t, x, y, p), video.shape[1:], times, noise_hz, rng)
    events = np.empty(t.size, EVENT_DTYPE)
    events["x"], events["y"], events["p"] = x, y, p
    events["t"] = np.rint(np.clip(t, times[0], times[-1]))
    return events[np.argsort(events["t"], kind="stable")]


def _crossings(log: np.ndarray, times: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
    """(t, x, y, p) of every threshold crossing of the log intensities `log` (S, H, W), each at the time
    where the straight line between two frames meets the crossed level."""
    ref = log[0].copy()  # (H, W) L_ref: the sensor starts adapted to the first frame
    xs, ys, ts, ps = [], [], [], []
    for s in range(1, len(log)):
        prev, cur = log[s - 1], log[s]
        diff = cur - ref
        # (H, W) events per pixel in this interval; the 1e-9 keeps a change of exactly k thresholds at k
        # events after rounding (up k thresholds and back down must give k ON and k OFF events)
        count = np.floor(np.abs(diff) / threshold + 1e-9).astype(np.int64)
        y, x = np.nonzero(count)
        if y.size == 0:
            continue
        n, sign = count[y, x], np.sign(diff[y, x])
        pixel = np.repeat(np.arange(y.size), n)  # (E,) which pixel each event belongs to
        k = np.arange(pixel.size) - np.repeat(np.cumsum(n) - n, n) + 1  # (E,) 1..n within its pixel
        level = ref[y, x][pixel] + sign[pixel] * k * threshold  # the log intensity at the k-th crossing
        a, b = prev[y, x][pixel], cur[y, x][pixel]
        frac = np.clip((level - a) / np.where(b == a, 1.0, b - a), 0.0, 1.0)  # where the line a->b meets it
        ts.append(times[s - 1] + frac * (times[s] - times[s - 1]))
        xs.append(x[pixel])
        ys.append(y[pixel])
        ps.append((sign[pixel] > 0).astype(np.int8))
        ref[y, x] += sign * n * threshold  # |cur - ref| < C again
    t = np.concatenate(ts) if ts else np.zeros(0)
    x, y, p = (np.concatenate(v) if v else np.zeros(0, np.int64) for v in (xs, ys, ps))
    return t, x, y, p


def _with_noise(events, shape, times, noise_hz, rng) -> tuple[np.ndarray, ...]:
    """(t, x, y, p) with background events added: `noise_hz` per pixel per second over the video's span,
    at uniform random times, places and polarities."""
    t, x, y, p = events
    h, w = shape
    m = rng.poisson(noise_hz * h * w * (times[-1] - times[0]) * 1e-6)
    return (
        np.concatenate([t, rng.uniform(times[0], times[-1], m)]),
        np.concatenate([x, rng.integers(0, w, m)]),
        np.concatenate([y, rng.integers(0, h, m)]),
        np.concatenate([p, rng.integers(0, 2, m)]),
    )


def saccade_path(vertices: np.ndarray, steps_per_saccade: int) -> np.ndarray:
    """(S, 2) positions (dy, dx) in pixels visiting `vertices` (V, 2) in order and back to the first,
    `steps_per_saccade` frames per leg, linearly; the first position is repeated nowhere."""
    legs = []
    for a, b in zip(vertices, np.roll(vertices, -1, axis=0)):
        f = np.arange(steps_per_saccade)[:, None] / steps_per_saccade  # (steps, 1) in [0, 1)
        legs.append(a + f * (b - a))
    return np.concatenate(legs + [vertices[:1]])  # (V * steps + 1, 2): ends where it started


def render_moving(image: np.ndarray, shape: tuple[int, int], path: np.ndarray) -> np.ndarray:
    """(S, H, W) frames of `image` (h, w) in [0, 1] placed at the top-left corner of a sensor of `shape`
    (H, W), shifted by each (dy, dx) of `path` (S, 2) with bilinear interpolation; what leaves the sensor
    is lost."""
    from scipy.ndimage import shift

    canvas = np.zeros(shape)
    canvas[: image.shape[0], : image.shape[1]] = image
    return np.stack([shift(canvas, d, order=1, mode="constant", cval=0.0) for d in path]).clip(0.0, 1.0)
