"""airbench-style loading: a plain iterator over uint8 tensors already in memory, batched augmentation."""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..snn.frames import WindowFrames
from .dataset import Dataset, Split


def _epoch_seed(seed: int, epoch: int) -> int:
    # A hash, not seed + epoch: (seed=0, epoch=1) and (seed=1, epoch=0) must not share a stream.
    return int.from_bytes(hashlib.sha256(f"{seed}:{epoch}".encode()).digest()[:8], "little") >> 1


def random_crop(images: Tensor, pad: int, dy: Tensor, dx: Tensor) -> Tensor:
    """Crop (B, C, H, W) images out of their zero-padded versions at per-image offsets dy, dx (B,).

    Offsets lie in [0, 2 pad]; (pad, pad) returns the image unchanged. Two gathers, no loop.
    """
    b, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))  # (B, C, H + 2p, W + 2p), zero = a black pixel
    rows = dy[:, None] + torch.arange(h, device=images.device)  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=images.device)  # (B, W)
    out = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * pad))  # (B, C, H, W + 2p)
    return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))  # (B, C, H, W)


class Loader:
    """airbench-style: a plain iterator over tensors already in memory, batched augmentation on tensors.

    Yields (x, y): x (B, C, H, W) float32 normalised with the dataset's mean/std, y (B,) int64, both on
    `device`. Images stay uint8 in memory and become float one batch at a time. Event frames come out
    time-major, x (T, B, C, H, W); a split binned once per window (`Split.windows`) yields a
    `WindowFrames` holding each binning, scaled to counts per frame of the finest binning.

    A training loader (`train=True`) shuffles and, with `augment`, crops at random from the image
    zero-padded by `dataset.pad` pixels and flips horizontally when `dataset.flip`. Order and
    augmentation are a pure function of (seed, epoch), so a resumed run sees the same batches; it
    drops the last partial batch by default. A test loader keeps the order, never augments and
    yields every image, the last partial batch too.

    `shard=(i, n)` (data-parallel training, SPEC §11) yields slice i of n of every batch, with the crops and
    flips the whole batch would get: n loaders together yield exactly the batches of one.
    """

    def __init__(
        self,
        split: Split,
        dataset: Dataset,
        batch_size: int,
        *,
        train: bool,
        augment: bool = True,
        seed: int = 0,
        device: str | torch.device = "cpu",
        channels_last: bool = False,
        drop_last: bool | None = None,
        shard: tuple[int, int] = (0, 1),
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if batch_size % shard[1] or not 0 <= shard[0] < shard[1]:
            raise ValueError(f"shard {shard} does not split batches of {batch_size} evenly")
        self.device = torch.device(device)
        self.images = split.images.to(self.device)  # (N, C, H, W) or (N, T, C, H, W) uint8, moved once
        self.windows = split.windows
        self.labels = split.labels.to(self.device)  # (N,)
        self.dataset, self.batch_size, self.train, self.seed = dataset, batch_size, train, seed
        self.augment = train and augment
        self.channels_last = channels_last
        self.drop_last = train if drop_last is None else drop_last
        self.shard = shard
        self.epoch = 0
        # Normalise in pixel units: (x - 255 mean) / (255 std) == (x / 255 - mean) / std, one op fewer.
        per_channel = (1, -1, 1, 1) if self.images.ndim == 4 else (1, 1, -1, 1, 1)  # (1, C, 1, 1) or (1, 1, C, 1, 1)
        self._shift = torch.tensor(dataset.mean, device=self.device).mul(255).view(per_channel)
        self._scale = torch.tensor(dataset.std, device=self.device).mul(255).reciprocal().view(per_channel)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n, p = self.images.shape[0], self.dataset.pad
        # Every random draw happens on the CPU, up front: batches do not depend on the device or on
        # how many batches a resumed run skips.
        gen = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        order = torch.randperm(n, generator=gen) if self.train else torch.arange(n)
        dy, dx = torch.randint(0, 2 * p + 1, (2, n), generator=gen)  # crop offsets, per batch position
        flip = torch.randint(0, 2, (n,), generator=gen).bool() & self.dataset.flip
        part = self.batch_size // self.shard[1]  # images per shard of a whole batch
        for i in range(len(self)):
            start = i * self.batch_size + self.shard[0] * part
            sl = slice(start, min(start + part, n))  # draws are per position in the order: a shard gets its own
            idx = order[sl].to(self.device)
            x = self.images[idx]  # (B, C, H, W) uint8, or (B, T, C, H, W) frames
            if self.augment:
                frames = x.shape
                x = x.flatten(1, -3)  # (B, C', H, W): every frame of a recording gets the same crop and flip
                if p:
                    x = random_crop(x, p, dy[sl].to(self.device), dx[sl].to(self.device))
                x = torch.where(flip[sl].to(self.device)[:, None, None, None], x.flip(3), x).view(frames)
            x = (x.float() - self._shift) * self._scale  # (B, C, H, W) or (B, T, C, H, W) float32
            if x.ndim == 5:
                yield self._time_major(x), self.labels[idx]
                continue
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]

    def _time_major(self, x: Tensor) -> Tensor | WindowFrames:
        """(B, T, C, H, W) -> (T, B, C, H, W); split into its binnings when there is one per window."""
        x = x.transpose(0, 1).contiguous()  # (T, B, C, H, W): the model folds T and B
        if not self.windows:
            return x
        # Each binning scaled by n / (the finest binning's n): counts per finest-frame duration, so a 2-frame
        # and a 4-frame binning of a recording are on one scale.
        top = max(self.windows)
        return WindowFrames({n: f * (n / top) for n, f in zip(self.windows, x.split(self.windows))})
