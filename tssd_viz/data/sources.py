"""Which dataset lives where: digits from scikit-learn, CIFAR from disk or torchvision, folders.

CIFAR root resolution, in order: `cfg.root` if given; else `$TSSD_CIFAR10_ROOT` (CIFAR-10's image tree),
`$TSSD_DATA_ROOT/<name>`, and `$TSSD_DATA_ROOT` itself when it is an image tree, for the variables that are
set; else `cache_dir()/<name>`. The first candidate holding data wins (an image-folder
tree, or torchvision's extracted batches); when none does and `download` is true, torchvision
downloads into the first candidate folder that exists, else into the cache.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from torch import Tensor

from ..config import DataConfig, DistillConfig
from .dataset import LABELS, Dataset, DataUnavailable, Split, cache_root, channel_stats, stratified_split
from .events import EVENT_SOURCES, load_event_dataset
from .folders import is_image_tree, load_image_tree

# torchvision's extracted layout: the files whose presence means "already downloaded".
TORCHVISION_FILES = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]),
    "cifar100": ("cifar-100-python", ["train", "test"]),
}


def _candidates(name: str, root: str) -> list[Path]:
    """Folders that may hold `name`, in the order they are tried: `root`; else `$TSSD_CIFAR10_ROOT` (cifar10
    only: the image tree itself), `$TSSD_DATA_ROOT/<name>`, `$TSSD_DATA_ROOT` itself when it is an image tree
    (a folder that is the tree, not one holding `<name>/`), and the cache."""
    if root:
        return [Path(root).expanduser().absolute()]
    found = []
    if name == "cifar10" and os.environ.get("TSSD_CIFAR10_ROOT"):
        found.append(Path(os.environ["TSSD_CIFAR10_ROOT"]).expanduser().absolute())
    env = os.environ.get("TSSD_DATA_ROOT")
    if env:
        found.append(Path(env).expanduser().absolute() / name)
        if name in TORCHVISION_FILES and is_image_tree(Path(env).expanduser()):
            found.append(Path(env).expanduser().absolute())
    return found + [cache_root() / name]


def _has_torchvision_files(name: str, path: Path) -> bool:
    folder, files = TORCHVISION_FILES[name]
    return all((path / folder / f).is_file() for f in files)


def is_available(dataset: str, root: str = "") -> bool:
    """Whether `load_dataset` would find `dataset` on disk, without downloading or decoding anything.

    Args:
        dataset: the config name ("cifar10", ...).
        root: the data root (empty: the cache directory).

    Returns:
        True when it is on disk.
    """
    if dataset == "digits":
        return True  # ships with scikit-learn
    if dataset == "folder":
        return bool(root) and is_image_tree(Path(root).expanduser())
    if dataset in TORCHVISION_FILES:
        return any(is_image_tree(p) or _has_torchvision_files(dataset, p) for p in _candidates(dataset, root))
    if dataset == "event_digits":
        return True  # made here from scikit-learn's digits
    if dataset in EVENT_SOURCES:
        from .tonic_sources import on_disk

        return any(on_disk(EVENT_SOURCES[dataset], p) for p in _candidates(dataset, root))
    return False


def offline_default(prefer: str = "cifar10") -> tuple[DataConfig, str]:
    """`prefer` if it is on disk, else digits.

    Args:
        prefer: the dataset wanted.

    Returns:
        (the data config, a note saying why digits was chosen, "" otherwise).
    """
    if is_available(prefer):
        return DataConfig(dataset=prefer, download=False), ""  # it is on disk: never reach for the network
    if prefer == "folder":
        where = "No image folder was given"
    else:
        where = f"{LABELS.get(prefer, prefer)} was not found in " + ", ".join(map(str, _candidates(prefer, "")))
    return DataConfig(dataset="digits"), f"{where}; using the offline digits dataset (scikit-learn) instead."


def load_dataset(cfg: DataConfig, distill: DistillConfig | None = None) -> Dataset:
    """The dataset `cfg` names, with `limit_train` / `limit_test` applied (the first N of each split).

    Event datasets are binned into frames for the windows of `distill` as `cfg.windowing` says; static
    images ignore it. With `cfg.label_noise`, that fraction of the training labels is flipped
    (`flip_labels`); test labels never are.

    Args:
        cfg: the data section.
        distill: the windows to bin for (default: DistillConfig()'s T_s and T_t).

    Returns:
        The dataset, in memory.

    Raises:
        DataUnavailable: it cannot be had (never a raw I/O or download error).
    """
    ds = _load(cfg, distill)
    if not cfg.label_noise:
        return ds
    train = Split(ds.train.images, flip_labels(ds.train.labels, cfg.label_noise, ds.num_classes), ds.train.windows)
    return dataclasses.replace(ds, train=train)


def flip_labels(labels: Tensor, fraction: float, num_classes: int, seed: int = 0) -> Tensor:
    """Symmetric label noise: round(fraction x N) of the (N,) labels, drawn at random, each replaced by one of
    the other num_classes - 1 classes at random. Seeded (`seed`, default 0): the same flips in every run."""
    gen = torch.Generator().manual_seed(seed)
    n = labels.shape[0]
    picked = torch.randperm(n, generator=gen)[: round(fraction * n)]  # which images get a wrong label
    shift = torch.randint(1, num_classes, (picked.numel(),), generator=gen)  # 1..K-1: never the true class
    out = labels.clone()
    out[picked] = (labels[picked] + shift) % num_classes
    return out


def _load(cfg: DataConfig, distill: DistillConfig | None) -> Dataset:
    """`load_dataset` before label noise."""
    if cfg.dataset in EVENT_SOURCES:
        return load_event_dataset(cfg, distill or DistillConfig(), _candidates(cfg.dataset, cfg.root))
    if cfg.dataset == "digits":
        ds = _load_digits()
    elif cfg.dataset in TORCHVISION_FILES:
        ds = _load_cifar(cfg)
    elif cfg.dataset == "folder":
        if not cfg.root:
            raise DataUnavailable("folder", [], "no folder was given")
        ds = load_image_tree(Path(cfg.root).expanduser().absolute(), "folder")
    else:
        raise DataUnavailable(cfg.dataset, [], f"unknown dataset {cfg.dataset!r}")

    def limit(split: Split, n: int) -> Split:
        return split.subset(slice(0, n)) if n else split

    # mean/std stay those of the full train split: a shorter run normalises like a longer one.
    return Dataset(
        ds.name,
        limit(ds.train, cfg.limit_train),
        limit(ds.test, cfg.limit_test),
        ds.classes,
        ds.mean,
        ds.std,
        ds.pad,
        ds.flip,
        ds.source,
    )


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = torch.from_numpy(d.images * (255 / 16)).round().to(torch.uint8)  # (1797, 8, 8): 0..16 -> 0..255
    images = pixels[:, None]  # (1797, 1, 8, 8)
    labels = torch.from_numpy(d.target).to(torch.int64)
    tr, te = (torch.from_numpy(i) for i in stratified_split(d.target, 0.2))
    train, test = Split(images[tr], labels[tr]), Split(images[te], labels[te])
    mean, std = channel_stats(train.images)
    return Dataset(
        "digits", train, test, tuple(str(i) for i in range(10)), mean, std, pad=1, flip=False, source="scikit-learn"
    )


def _load_cifar(cfg: DataConfig) -> Dataset:
    name, tried = cfg.dataset, _candidates(cfg.dataset, cfg.root)
    for path in tried:
        if is_image_tree(path):
            return load_image_tree(path, name)
        if _has_torchvision_files(name, path):
            return _load_torchvision(name, path, download=False, tried=tried)
    if not cfg.download:
        raise DataUnavailable(name, tried, "it is not on disk and --data.download is false")
    # Download into the first folder that exists (an explicit --data.root or $TSSD_DATA_ROOT/<name>),
    # else into the cache: the last candidate.
    target = next((p for p in tried if p.is_dir()), tried[-1])
    return _load_torchvision(name, target, download=True, tried=tried)


def _load_torchvision(name: str, root: Path, *, download: bool, tried: list[Path]) -> Dataset:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        splits = [cls(str(root), train=train, download=download) for train in (True, False)]
    except Exception as e:  # offline URLError, HTTP errors, a corrupt archive: all mean "not available"
        doing = f"downloading into {root} failed" if download else f"the files in {root} could not be read"
        # `from None`: the one-line cause is in the message; a download traceback helps no student.
        raise DataUnavailable(name, tried, f"{doing} ({type(e).__name__}: {e})") from None
    train, test = (
        Split(
            torch.from_numpy(s.data).permute(0, 3, 1, 2),  # (N, 32, 32, 3) -> (N, 3, 32, 32)
            torch.tensor(s.targets, dtype=torch.int64),
        )
        for s in splits
    )
    # Computed, not the usual constants: on CIFAR-10 they agree (0.4914, 0.4822, 0.4465 / 0.2470, ...).
    mean, std = channel_stats(train.images)
    return Dataset(name, train, test, tuple(splits[0].classes), mean, std, pad=4, flip=True, source=str(root))
