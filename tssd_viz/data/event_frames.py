"""From event recordings to the frames a network gets, the part every event source shares (SPEC §12).

An `EventSource` says what a camera's recordings are (its sensor, the frame size, whether a flip keeps the
label, tonic's class for it); `frame_transform` is tonic's `Downsample` to the frame size, then `ToFrame`
into n time bins, polarity as 2 channels; `stack_frames` and `to_frames` turn recordings into (N, n, 2, H, W)
uint8 event counts (clipped at 255). A split's `Recordings` say which samples it holds and how to bin them,
and `binned_split` bins them into the `Split` a dataset holds, one binning per window or T_t frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .dataset import Split

FRAMES_FORMAT = 1  # bump when the cached frames change: old caches then miss


@dataclass(frozen=True)
class EventSource:
    sensor: tuple[int, int]  # (W, H) of the camera, pixels
    size: tuple[int, int]  # (H, W) of the frames after Downsample
    flip: bool  # whether a horizontal flip keeps the label
    tonic_class: str  # "" for event_digits, which is made here


def frame_transform(source: EventSource, n_bins: int):
    """Tonic's Downsample (when the frames are smaller than the sensor) then ToFrame into n_bins time bins.

    Tonic's bins are (t_last - t_first) // n_bins long, so the events at the very last timestamp fall
    outside them.

    Args:
        source: the event dataset's sensor and frame size.
        n_bins: frames per recording.

    Returns:
        (tonic.transforms.Compose): a recording -> (n_bins, 2, H, W) counts.
    """
    from tonic.transforms import Compose, Downsample, ToFrame

    (w, h), (fh, fw) = source.sensor, source.size
    steps = [] if (fh, fw) == (h, w) else [Downsample(sensor_size=(w, h, 2), target_size=(fw, fh))]
    return Compose(steps + [ToFrame(sensor_size=(fw, fh, 2), n_time_bins=n_bins)])


def stack_frames(frames: Iterable[np.ndarray | None], n: int, n_bins: int, size: tuple[int, int]) -> Tensor:
    """(n, n_bins, 2, H, W) uint8 of n recordings' (n_bins, 2, H, W) counts, clipped at 255; None (an empty
    recording, which tonic cannot bin) stays all zeros."""
    out = torch.zeros(n, n_bins, 2, *size, dtype=torch.uint8)
    for i, f in enumerate(frames):
        if f is not None:
            out[i] = torch.from_numpy(np.clip(f, 0, 255).astype(np.uint8))
    return out


def to_frames(recordings: Sequence[np.ndarray], source: EventSource, n_bins: int) -> Tensor:
    """(N, n_bins, 2, H, W) uint8 frames of N recordings, through `frame_transform`."""
    transform = frame_transform(source, n_bins)
    frames = (transform(events) if len(events) else None for events in recordings)
    return stack_frames(frames, len(recordings), n_bins, source.size)


@dataclass(frozen=True, eq=False)
class Recordings:
    """One split of an event dataset before binning: which samples it holds and how to bin them.

    `order`: the split's sample indices in the order "the first N" (`limit_train`) takes them;
    `labels`: the label of every sample index; `frames(idx, n)`: (len(idx), n, 2, H, W) uint8."""

    order: np.ndarray
    labels: np.ndarray
    frames: Callable[[np.ndarray, int], Tensor]


def binned_split(rec: Recordings, limit: int, windows: tuple[int, ...], t_teacher: int) -> Split:
    """The first `limit` recordings of `rec` (all of them for 0) binned: one binning per window of `windows`,
    one after the other on the time axis, or T_t frames when `windows` is () (fixed_window)."""
    idx = rec.order[:limit] if limit else rec.order
    if windows:  # one binning per window, one after the other: (N, sum(windows), 2, H, W)
        images = torch.cat([rec.frames(idx, n) for n in windows], dim=1)
    else:  # fixed_window: T_t frames of duration / T_t each, (N, T_t, 2, H, W)
        images = rec.frames(idx, t_teacher)
    return Split(images, torch.from_numpy(rec.labels[idx]).to(torch.int64), windows)
