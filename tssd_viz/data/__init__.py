"""Datasets as uint8 tensors in memory, and an airbench-style loader over them (SPEC §8, Data).

Sources of two kinds, one result type (`Dataset`: a train and a test `Split` of (N, C, H, W) uint8 images
or (N, T, C, H, W) uint8 event frames):

- `digits`: scikit-learn's 8x8 digits, offline, the embedded default; a fixed seeded 80/20 split.
- `cifar10` / `cifar100`: an image-folder tree if the resolved folder is one, else torchvision's
  pickled batches (downloaded there once when `download` is true).
- `event_digits`, `nmnist`, `dvs_gesture`, `cifar10_dvs`: event-camera recordings binned into
  (N, T, 2, H, W) frames (training/events.py, tonic_sources.py).
- `folder`: any `train/<class>/*`, `test/<class>/*` tree of jpg/png images, decoded once and cached
  as a tensor file under `cache_dir()/folders/`.

Nothing here raises a raw I/O or download error: a dataset that cannot be had is `DataUnavailable`,
whose message says what was tried and what to do instead.

    dataset.py   result types (Split, Dataset), DataUnavailable, the cache folder, channel statistics
    sources.py   which dataset lives where: load_dataset, is_available, offline_default
    folders.py   image-folder trees: decode once, cache as a tensor file
    loader.py    Loader: shuffling, batched crop and flip, normalisation
    training/events.py    event datasets: event_digits made with tssd_viz.data.dvs, binning with tonic's transforms
    tonic_sources.py  N-MNIST, DVS-Gesture, CIFAR10-DVS through tonic's classes and disk cache
"""

from .dataset import Dataset, DataUnavailable, Split, cache_dir
from .event_frames import frame_transform
from .events import EVENT_SOURCES, event_digits
from .loader import Loader, random_crop
from .sources import is_available, load_dataset, offline_default

__all__ = [
    "EVENT_SOURCES",
    "event_digits",
    "frame_transform",
    "DataUnavailable",
    "Dataset",
    "Loader",
    "Split",
    "cache_dir",
    "is_available",
    "load_dataset",
    "offline_default",
    "random_crop",
]
