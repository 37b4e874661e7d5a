"""The result types every source returns, the error every source raises, and what they share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

LABELS = {
    "digits": "Digits",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "folder": "The image folder",
    "event_digits": "Event digits",
    "nmnist": "N-MNIST",
    "dvs_gesture": "DVS-Gesture",
    "cifar10_dvs": "CIFAR10-DVS",
}
EVENT_NAMES = ("event_digits", "nmnist", "dvs_gesture", "cifar10_dvs")


class DataUnavailable(RuntimeError):
    """A dataset cannot be read or fetched. The message is one paragraph: what, where, what to do.

    Attributes:
        dataset: the config name ("cifar10", ...).
        tried: the folders looked at, in order.
    """

    def __init__(self, dataset: str, tried: list[Path] | tuple[Path, ...], reason: str):
        self.dataset, self.tried = dataset, tuple(tried)
        paths = ", ".join(str(p) for p in self.tried) or "(no path)"
        if dataset in EVENT_NAMES:
            todo = "Pass --data.root PATH (holding tonic's download) or use --data.dataset event_digits (offline)."
        else:
            todo = (
                "Pass --data.root PATH (a torchvision download folder or an image-folder tree "
                "train/<class>/*, test/<class>/*) or use --data.dataset digits (offline)."
            )
        super().__init__(
            f"{LABELS.get(dataset, dataset)} (--data.dataset {dataset}) is not available: {reason}. "
            f"Paths tried: {paths}. {todo}"
        )


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field has no single truth value
class Split:
    """One split of a dataset, in memory.

    Attributes:
        images: (N, C, H, W) uint8 images, or (N, T, C, H, W) uint8 event frames (counts); contiguous.
        labels: (N,) int64.
        windows: event frames binned once per window: the T axis holds these binnings in turn.
    """

    images: Tensor  # (N, C, H, W) uint8 images, or (N, T, C, H, W) uint8 event frames (counts); contiguous
    labels: Tensor  # (N,) int64
    windows: tuple[int, ...] = ()  # event frames binned once per window: the T axis holds these binnings in turn

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim not in (4, 5):
            raise ValueError(
                "images must be (N, C, H, W) or (N, T, C, H, W) uint8, "
                f"got {tuple(self.images.shape)} {self.images.dtype}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be ({self.images.shape[0]},), got {tuple(self.labels.shape)}")
        if self.windows and (self.images.ndim != 5 or sum(self.windows) != self.images.shape[1]):
            raise ValueError(f"windows {self.windows} do not add up to the frames' T axis {tuple(self.images.shape)}")
        object.__setattr__(self, "images", self.images.contiguous())
        object.__setattr__(self, "labels", self.labels.to(torch.int64))
        object.__setattr__(self, "windows", tuple(self.windows))

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def is_events(self) -> bool:
        return self.images.ndim == 5

    def view(self, T: int) -> Tensor:
        """What a T-step window sees.

        Args:
            T: the window.

        Returns:
            The (N, C, H, W) images, or (N, T, C, H, W) event frames (the first T frames of one binning,
            or the binning into T frames when there is one per window).

        Raises:
            ValueError: the frames were not binned for T.
        """
        if not self.is_events:
            return self.images
        if not self.windows:
            if T > self.images.shape[1]:
                raise ValueError(f"these recordings were binned into {self.images.shape[1]} frames, not {T}")
            return self.images[:, :T]
        if T not in self.windows:
            raise ValueError(f"these recordings were binned for windows of {self.windows} timesteps, not {T}")
        start = sum(self.windows[: self.windows.index(T)])
        return self.images[:, start : start + T]

    def subset(self, idx: Tensor | slice) -> Split:
        """The same split restricted to `idx` (a slice or indices), binnings kept."""
        return Split(self.images[idx], self.labels[idx], self.windows)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset in memory: both splits and what a loader and a run record need of it.

    Attributes:
        name: "digits", "cifar10", "cifar100", "folder", ...
        train: the training split.
        test: the test split.
        classes: class names; index = label.
        mean: per channel, pixel values in [0, 1], computed on the full train split.
        std: per channel, likewise.
        pad: random-crop zero padding in pixels.
        flip: whether a horizontal flip keeps the label (not for digits: a mirrored 3 is no digit).
        source: where it was read from (a path or "scikit-learn"), for run records.
    """

    name: str  # "digits", "cifar10", "cifar100", "folder"
    train: Split
    test: Split
    classes: tuple[str, ...]  # index = label
    mean: tuple[float, ...]  # per channel, pixel values in [0, 1], computed on the full train split
    std: tuple[float, ...]
    pad: int  # random-crop zero padding in pixels
    flip: bool  # whether a horizontal flip keeps the label (not for digits: a mirrored 3 is no digit)
    source: str  # where it was read from (a path or "scikit-learn"), for run records

    @property
    def in_channels(self) -> int:
        return self.train.images.shape[-3]

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return tuple(self.train.images.shape[-2:])  # type: ignore[return-value]

    @property
    def is_events(self) -> bool:
        """Event-camera frames, (T, B, 2, H, W) per batch, rather than static images."""
        return self.train.is_events

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def cache_root() -> Path:
    """$TSSD_CACHE or ~/.cache/tssd-viz, not created (for looking only)."""
    return Path(os.environ.get("TSSD_CACHE") or Path.home() / ".cache" / "tssd-viz").expanduser().absolute()


def cache_dir() -> Path:
    """Where datasets are kept: $TSSD_CACHE or ~/.cache/tssd-viz, created on demand.

    Returns:
        The folder.
    """
    path = cache_root()
    path.mkdir(parents=True, exist_ok=True)
    return path


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (N, C, H, W) uint8 images, in [0, 1] pixel units."""
    c = images.shape[1]
    s, s2 = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
    for chunk in images.split(1024):  # float64 in chunks: all of CIFAR-10 at once would be 1.2 GB
        x = chunk.to(torch.float64) / 255
        s += x.sum((0, 2, 3))
        s2 += x.square().sum((0, 2, 3))
    n = images.numel() // c
    mean = s / n
    std = (s2 / n - mean.square()).clamp_min(1e-12).sqrt()  # E[x^2] - E[x]^2 is exact enough in float64
    return tuple(mean.tolist()), tuple(std.tolist())


def stratified_split(labels: np.ndarray, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) of a fixed split stratified by class, seed 0: the same on every
    machine and every run; the indices in the order the split draws them."""
    from sklearn.model_selection import train_test_split

    tr, te = train_test_split(np.arange(len(labels)), test_size=test_size, random_state=0, stratify=labels)
    return tr, te


def default_pad(h: int, w: int) -> int:
    """Random-crop padding: 4 px for 32x32 (the CIFAR standard), 1 px for 8x8 digits, 1/8 of the side."""
    return max(1, min(h, w) // 8)
