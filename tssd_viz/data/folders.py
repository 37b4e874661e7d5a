"""Image-folder trees (`train/<class>/*.jpg|png`, `test/<class>/*`): decoded once, cached as tensors.

The cache file is `cache_dir()/folders/<hash>.pt`, the hash covering the folder's absolute path and
every image's relative path, size and mtime, so an edited tree misses and is decoded again. It is
written atomically and read with `weights_only=True`; an unreadable one is deleted and rebuilt.

Images are stored class-interleaved (image 0 of every class, then image 1, ...) so that
`limit_train`'s "first N" is a class-balanced subset, not N airplanes.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor

from ..atomic import atomic_write_bytes
from .dataset import Dataset, DataUnavailable, Split, cache_dir, channel_stats, default_pad

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
CACHE_FORMAT = 1  # bump when the cached file's layout changes: old caches then miss
DECODE_CHUNK = 512  # files per batched decode call

Item = tuple[str, int, int, int]  # (path relative to the root, label, size in bytes, mtime in ns)


def is_image_tree(path: Path) -> bool:
    """train/ and test/ folders with at least one class folder (cheap: no image is opened)."""
    train = path / "train"
    return (path / "test").is_dir() and train.is_dir() and any(p.is_dir() for p in train.iterdir())


def load_image_tree(root: Path, name: str) -> Dataset:
    """The tree at `root` as a Dataset called `name`; classes are the train/ folder names, sorted."""
    classes, files = _list_tree(root, name)
    cache = cache_dir() / "folders" / f"{_tree_hash(root, files)}.pt"
    blob = _read_cache(cache)
    if blob is None:
        train, test = (_decode_files(files[s], name, root) for s in ("train", "test"))
        if train.images.shape[1:] != test.images.shape[1:]:
            raise DataUnavailable(
                name,
                [root],
                f"train images are {tuple(train.images.shape[1:])} but test "
                f"images are {tuple(test.images.shape[1:])} (channels, height, width)",
            )
        mean, std = channel_stats(train.images)
        blob = {
            "format": CACHE_FORMAT,
            "classes": classes,
            "mean": list(mean),
            "std": list(std),
            "train_images": train.images,
            "train_labels": train.labels,
            "test_images": test.images,
            "test_labels": test.labels,
        }
        _write_cache(cache, blob)
    train = Split(blob["train_images"], blob["train_labels"])
    h, w = train.images.shape[2:]
    # flip=True: a tree of natural images is assumed; mirrored text or digits would need a switch.
    return Dataset(
        name,
        train,
        Split(blob["test_images"], blob["test_labels"]),
        tuple(blob["classes"]),
        tuple(blob["mean"]),
        tuple(blob["std"]),
        pad=default_pad(h, w),
        flip=True,
        source=str(root),
    )


def _list_tree(root: Path, name: str) -> tuple[list[str], dict[str, list[Item]]]:
    """Class names (sorted) and, per split, its images class-interleaved."""
    if not root.is_dir():
        raise DataUnavailable(name, [root], "the folder does not exist")
    if not is_image_tree(root):
        raise DataUnavailable(name, [root], "it has no train/<class>/ and test/<class>/ folders")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    files: dict[str, list[Item]] = {}
    for split in ("train", "test"):
        extra = sorted(p.name for p in (root / split).iterdir() if p.is_dir() and p.name not in classes)
        if extra:
            raise DataUnavailable(name, [root], f"test/ has classes that train/ lacks: {', '.join(extra)}")
        keyed = []
        for label, cls in enumerate(classes):
            found = _images_in(root / split / cls)
            if split == "train" and not found:
                raise DataUnavailable(name, [root], f"{root / split / cls} holds no .jpg/.png images")
            keyed += [
                ((rank, label), (f"{split}/{cls}/{fname}", label, st.st_size, st.st_mtime_ns))
                for rank, (fname, st) in enumerate(found)
            ]
        if not keyed:
            raise DataUnavailable(name, [root], f"{root / split} holds no .jpg/.png images")
        files[split] = [item for _, item in sorted(keyed, key=lambda k: k[0])]  # interleave the classes
    return classes, files


def _images_in(folder: Path) -> list[tuple[str, os.stat_result]]:
    """Sorted (name, stat) of the images in `folder`; [] when it does not exist (test/ may lack a class)."""
    if not folder.is_dir():
        return []
    # os.scandir and plain strings, not Path objects: listing and stat-ing 60,000 files stays fast.
    with os.scandir(folder) as it:
        return sorted((e.name, e.stat()) for e in it if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)


def _tree_hash(root: Path, files: dict[str, list[Item]]) -> str:
    """Changes when the folder moves or any image is added, removed, resized or touched."""
    h = hashlib.sha256(f"{CACHE_FORMAT}\n{root}\n".encode())
    for items in files.values():
        h.update("".join(f"{rel}\t{label}\t{size}\t{mtime}\n" for rel, label, size, mtime in items).encode())
    return h.hexdigest()[:32]


def _decode_batch(datas: list[Tensor]) -> list[Tensor]:
    """Encoded file bytes (1-D uint8 each) -> (C, H, W) images; JPEG batches go through one call."""
    from torchvision.io import decode_image, decode_jpeg

    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its decoders in favour of torchcodec, which we do not depend on.
        warnings.simplefilter("ignore", DeprecationWarning)
        if all(d[:2].tolist() == [0xFF, 0xD8] for d in datas):  # the JPEG magic number
            return decode_jpeg(datas)
        return [decode_image(d) for d in datas]


def _to_channels(img: Tensor, c: int) -> Tensor:
    """(c0, H, W) -> (c, H, W) uint8: drop alpha, repeat grey to RGB, 16-bit PNG to 8 bit."""
    if img.dtype != torch.uint8:
        img = (img.to(torch.float32) / 257).round().to(torch.uint8)  # 65535 / 257 = 255
    img = img[:3] if img.shape[0] >= 3 else img[:1]
    return img.expand(c, -1, -1) if img.shape[0] != c else img


def _decode_files(items: list[Item], name: str, root: Path) -> Split:
    images: list[Tensor] = []
    for i in range(0, len(items), DECODE_CHUNK):
        chunk = [root / rel for rel, *_ in items[i : i + DECODE_CHUNK]]
        datas = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in chunk]
        try:
            images += _decode_batch(datas)
        except Exception:  # decode one by one to name the culprit
            for p, d in zip(chunk, datas):
                try:
                    _decode_batch([d])
                except Exception as e:
                    raise DataUnavailable(name, [root], f"{p} could not be decoded ({e})") from None
            raise
    c = 3 if any(img.shape[0] >= 3 for img in images) else 1  # any colour image makes the tree RGB
    size = tuple(images[0].shape[1:])
    for (rel, *_), img in zip(items, images):
        if tuple(img.shape[1:]) != size:
            raise DataUnavailable(
                name,
                [root],
                f"all images must share one size, but {items[0][0]} is "
                f"{size[0]}x{size[1]} and {rel} is {img.shape[1]}x{img.shape[2]} (resize them first)",
            )
    stacked = torch.stack([_to_channels(img, c) for img in images])  # (N, C, H, W)
    return Split(stacked, torch.tensor([label for _, label, *_ in items], dtype=torch.int64))


def _read_cache(path: Path) -> dict | None:
    """The cached tensors, or None (no cache file, or an unreadable one, which is deleted)."""
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        Split(blob["train_images"], blob["train_labels"]), Split(blob["test_images"], blob["test_labels"])
        if blob["format"] != CACHE_FORMAT or len(blob["classes"]) <= int(blob["train_labels"].max()):
            raise ValueError("unexpected cache layout")
        return blob
    except Exception as e:  # a torn or foreign file: rebuild rather than crash
        warnings.warn(f"rebuilding the unreadable dataset cache {path} ({type(e).__name__}: {e})", stacklevel=2)
        path.unlink(missing_ok=True)
        return None


def _write_cache(path: Path, blob: dict) -> None:
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())  # a concurrent reader sees no file or the whole file
