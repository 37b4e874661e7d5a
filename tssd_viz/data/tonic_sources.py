"""N-MNIST, DVS-Gesture and CIFAR10-DVS through tonic's dataset classes (SPEC §12).

Where: the first of the CIFAR candidates (`--data.root`, `$TSSD_DATA_ROOT/<name>`, the cache) that
holds tonic's downloaded archives under `<folder>/<tonic class>/` (e.g. `NMNIST/train.zip` with its
extracted `Train/`); otherwise, with `download`, tonic downloads into the first candidate that exists,
else into the cache. Any failure (offline, a corrupt archive) is one `DataUnavailable`.

Frames are cached per sample by tonic's `DiskCachedDataset`, one folder per (source folder, split,
frame size, number of bins), so each is computed once. Splits: tonic's train/test for N-MNIST and
DVS-Gesture; CIFAR10-DVS has none, so a fixed stratified 90/10 split (seed 0) is made here. A split's
order interleaves the classes, so "the first N" (`limit_train`) is class-balanced.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path

import numpy as np
from torch import Tensor

from ..config import DataConfig
from .dataset import DataUnavailable, cache_dir, stratified_split
from .event_frames import FRAMES_FORMAT, EventSource, Recordings, frame_transform, stack_frames

# The archives tonic looks for first, under <folder>/<tonic class>/: their presence means "downloaded".
ARCHIVES = {
    "NMNIST": ("train.zip", "test.zip"),
    "DVSGesture": ("ibmGestureTrain.tar.gz", "ibmGestureTest.tar.gz"),
    "CIFAR10DVS": ("CIFAR10DVS.zip",),
}
CIFAR10_DVS_TEST_FRACTION = 0.1


def on_disk(source: EventSource, folder: Path) -> bool:
    return all((folder / source.tonic_class / f).is_file() for f in ARCHIVES[source.tonic_class])


class _Binned:
    """A tonic dataset whose recordings come out as frames: what DiskCachedDataset caches."""

    def __init__(self, dataset, transform):
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        events, target = self.dataset[i]
        if not len(events):  # ToFrame cannot bin an empty recording; it is all zeros
            return np.zeros((self.transform.transforms[-1].n_time_bins, 2, 1, 1), np.int16), target
        return self.transform(events), target


def interleaved(indices: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`indices` reordered: the first of every class, then the second of every class, ..."""
    rank = np.zeros(len(indices), np.int64)
    seen: dict[int, int] = {}
    for j, i in enumerate(indices):
        rank[j] = seen.get(int(labels[i]), 0)
        seen[int(labels[i])] = rank[j] + 1
    return indices[np.lexsort((labels[indices], rank))]


def cifar10_dvs_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR10-DVS has no test set: a fixed 90/10 split, stratified by class, seed 0 (the same everywhere);
    the indices in the order the split draws them, which `interleaved` ranks."""
    return stratified_split(labels, CIFAR10_DVS_TEST_FRACTION)


def open_tonic(cfg: DataConfig, source: EventSource, tried: list[Path]) -> tuple[dict[str, Recordings], tuple, str]:
    """({"train": ..., "test": ...}, classes, the folder read) for a tonic dataset; DataUnavailable else."""
    import tonic.datasets

    cls = getattr(tonic.datasets, source.tonic_class)
    folder = next((p for p in tried if on_disk(source, p)), None)
    download = folder is None
    if download and not cfg.download:
        raise DataUnavailable(cfg.dataset, tried, "it is not on disk and --data.download is false")
    folder = folder or next((p for p in tried if p.is_dir()), tried[-1])
    try:
        with contextlib.redirect_stdout(sys.stderr):  # tonic prints its download progress
            if source.tonic_class == "CIFAR10DVS":
                whole = cls(str(folder))
                parts = {"train": whole, "test": whole}
            else:
                parts = {split: cls(str(folder), train=split == "train") for split in ("train", "test")}
    except Exception as e:  # offline URLError, HTTP errors, a corrupt archive: all mean "not available"
        doing = f"downloading into {folder} failed" if download else f"the files in {folder} could not be read"
        raise DataUnavailable(cfg.dataset, tried, f"{doing} ({type(e).__name__}: {e})") from None
    labels = {split: np.asarray(ds.targets, dtype=np.int64) for split, ds in parts.items()}
    if source.tonic_class == "CIFAR10DVS":
        y = labels["train"]
        tr, te = cifar10_dvs_split(y)
        orders = {"train": interleaved(tr, y), "test": interleaved(te, y)}
    else:
        orders = {split: interleaved(np.arange(len(y)), y) for split, y in labels.items()}
    if not all(len(o) for o in orders.values()):
        raise DataUnavailable(cfg.dataset, tried, f"{folder} holds no recordings")
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    cache = cache_dir() / "event-frames" / f"{cfg.dataset}-{key}"
    h, w = source.size

    def frames_of(split: str):
        # CIFAR10-DVS's two splits index one dataset: they share its cache folder.
        name = "all" if source.tonic_class == "CIFAR10DVS" else split

        def frames(idx: np.ndarray, n: int) -> Tensor:
            from tonic import DiskCachedDataset

            binned = _Binned(parts[split], frame_transform(source, n))
            cached = DiskCachedDataset(binned, cache_path=str(cache / f"{name}-{h}x{w}-n{n}-v{FRAMES_FORMAT}"))

            def frame(i: int) -> np.ndarray | None:
                f = np.asarray(cached[int(i)][0])
                return f if f.shape[-2:] == (h, w) else None  # an empty recording: _Binned's 1x1 zeros

            return stack_frames((frame(i) for i in idx), len(idx), n, source.size)

        return frames

    classes = source_classes(parts["train"])
    sets = {split: Recordings(orders[split], labels[split], frames_of(split)) for split in ("train", "test")}
    return sets, classes, str(folder)


def source_classes(dataset) -> tuple[str, ...]:
    """Class names by label: tonic keeps them as a list, or as a name -> label dict (CIFAR10-DVS)."""
    classes = dataset.classes
    if isinstance(classes, dict):
        return tuple(sorted(classes, key=classes.get))
    return tuple(str(c) for c in classes)
