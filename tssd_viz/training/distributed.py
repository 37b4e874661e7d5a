"""Data-parallel training under `torchrun` (SPEC §11): the ranks, their agreement, and batch norm over all of them.

`torchrun --nproc-per-node N -m tssd_viz train ...` starts N copies of the CLI with RANK, WORLD_SIZE,
LOCAL_RANK and MASTER_ADDR/PORT in their environment; `fit()` sees them (`Ranks.from_env`) and trains
with DistributedDataParallel: NCCL between GPUs, gloo between CPU processes. Nothing else changes:

- `data.batch_size` stays the *global* batch. Every rank walks the same shuffled order and the same
  crop and flip draws (the loader's stream is a function of seed and epoch alone) and takes its slice
  of each global batch, so an N-process run sees exactly the batches of a 1-process run.
- `train.sync_bn` normalises with the statistics of the global batch (SyncBatchNorm on CUDA; on CPU,
  where PyTorch's SyncBatchNorm refuses to run, `GlooSyncBatchNorm` below): the forward pass of the
  N ranks together is then the 1-process forward pass, batch norm included.
- Every step the ranks all-reduce their step signals (loss parts, accuracies, ...: means over equal
  shards, so their mean is the global batch's), their step time and whether any of them was asked to
  stop: the records, the learning-rate clock and a cancel are the same on every rank.
- Every rank evaluates, probes and decides exactly what rank 0 does (so batch-norm recomputation, a
  collective with sync_bn, happens at the same points everywhere); only rank 0 writes the run folder.
- A rank that dies ends the others at their next collective (its sockets close; a rank that hangs
  ends them after `train.dist_timeout_s`): `RankLost`, one line, and the run is marked failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.nn.functional import all_reduce as all_reduce_with_grad

from ..config import ConfigError, TSSDConfig
from ..runs.checkpoints import first_sentences
from ..snn.losses import rank_by_confidence
from .step import extremes

NOT_REDUCED = ("lr",)  # the same on every rank by construction: averaging it would only add rounding


class RankLost(RuntimeError):
    """Another process of a distributed run died or stopped answering; this one cannot go on."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in a `torchrun` group."""

    rank: int  # 0 .. world - 1; rank 0 writes the run folder
    world: int  # processes in the run, over every machine
    local_rank: int  # index among this machine's processes: its GPU
    backend: str  # "nccl" (CUDA) or "gloo" (CPU)

    @staticmethod
    def from_env(env: dict[str, str] | None = None) -> Ranks | None:
        """The group torchrun describes in the environment, or None for a single process (WORLD_SIZE unset or 1)."""
        env = os.environ if env is None else env
        world = int(env.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return None
        return Ranks(int(env["RANK"]), world, int(env.get("LOCAL_RANK", "0")), "")

    @property
    def writes(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """(index, count) of this rank's slice of every global batch (the loader's `shard`)."""
        return self.rank, self.world

    def start(self, cfg: TSSDConfig, device: torch.device) -> tuple[Ranks, torch.device]:
        """Join the group (a collective: every rank must call it); returns the ranks with their backend and
        this rank's device (its own GPU on CUDA)."""
        batch = cfg.data.batch_size
        if batch % self.world:
            raise ConfigError(
                "data.batch_size",
                f"{batch} is the global batch and must split evenly over the {self.world} processes "
                f"(a multiple of {self.world})",
            )
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(
                backend,
                timeout=timedelta(seconds=cfg.train.dist_timeout_s),
                **({"device_id": device} if backend == "nccl" else {}),
            )
        return Ranks(self.rank, self.world, self.local_rank, backend), device

    def wrap(self, model: nn.Module, sync_bn: bool) -> nn.Module:
        """The network as DDP trains it (gradients averaged over ranks in buckets during backward).
        With sync_bn every rank's buffers are equal already, so they are not broadcast before each step."""
        from torch.nn.parallel import DistributedDataParallel

        on_gpu = next(model.parameters()).device.type == "cuda"
        return DistributedDataParallel(
            model, device_ids=[self.local_rank] if on_gpu else None, broadcast_buffers=not sync_bn
        )

    def agree(self, signals: dict[str, Any], seconds: float, stop: bool) -> tuple[dict[str, Any], float, bool]:
        """All-reduce one step: the mean of every signal over the ranks (each a mean over an equal shard, so
        this is the global batch's mean), the mean step time and whether any rank must stop.

        One collective per step; it is also what notices a rank that is gone."""
        keys, flat = _flatten(signals)
        device = torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")
        vec = torch.tensor([*flat, seconds, float(stop)], dtype=torch.float64, device=device)
        dist.all_reduce(vec)  # SUM
        *sums, stops = vec.tolist()  # one copy off the device
        values = [v / self.world for v in sums]
        out = _unflatten(signals, keys, values[:-1])
        if "confidence_by_timestep" in out:
            out.update(ranking_signals(out["confidence_by_timestep"]))  # of the global batch, not a mean of one-hots
        return out, values[-1], stops > 0

    def explain(self, exc: BaseException) -> BaseException:
        """A collective that failed because a peer is gone, said in one line (`RankLost`); anything else unchanged."""
        if isinstance(exc, RankLost) or not _is_peer_failure(exc):
            return exc
        # gloo and NCCL open with the C++ source line ("[.../pair.cc:545] Read error ..."): the reason is after it
        first = first_sentences(re.sub(r"^\[[^\]]*\]\s*", "", str(exc).strip()), 160) or type(exc).__name__
        return RankLost(
            f"rank {self.rank} of {self.world}: another process of this distributed run is gone or stopped "
            f"answering ({first}); the last checkpoint is kept: resume with torchrun ... train --resume RUN_DIR"
        )

    def finish(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def tell_launcher(message: str) -> None:
    """Write `message` where torchrun looks for a failed rank's reason ($TORCHELASTIC_ERROR_FILE), so its
    failure report quotes it instead of a link to its documentation. Unwritable: the rank's stderr says it."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        with contextlib.suppress(OSError):
            # torchrun's own layout (its `record` writes it): the report shows "py_callstack", here the one line
            info = {"py_callstack": message, "timestamp": str(int(time.time()))}
            Path(path).write_text(json.dumps({"message": {"message": message, "extraInfo": info}}))


def ranking_signals(confidence: list[float]) -> dict[str, list[float]]:
    """The strongest and weakest timestep from per-timestep confidences, ranked as the loss ranks them."""
    return extremes(rank_by_confidence(torch.tensor(confidence)))


def _flatten(signals: dict[str, Any]) -> tuple[list[tuple[str, Any]], list[float]]:
    """The numbers of a step's signals in a fixed order: (key, shape) pairs and the values."""
    keys, flat = [], []
    for k in sorted(signals):
        v = signals[k]
        if v is None or k in NOT_REDUCED:
            continue
        if isinstance(v, dict):
            names = sorted(v)
            keys.append((k, names))
            flat += [float(v[n]) for n in names]
        elif isinstance(v, (list, tuple)):
            keys.append((k, len(v)))
            flat += [float(x) for x in v]
        else:
            keys.append((k, None))
            flat.append(float(v))
    return keys, flat


def _unflatten(signals: dict[str, Any], keys: list[tuple[str, Any]], values: list[float]) -> dict[str, Any]:
    out, i = dict(signals), 0
    for k, shape in keys:
        if shape is None:
            out[k], i = values[i], i + 1
        elif isinstance(shape, list):
            out[k], i = dict(zip(shape, values[i : i + len(shape)])), i + len(shape)
        else:
            out[k], i = values[i : i + shape], i + shape
    return out


def _is_peer_failure(exc: BaseException) -> bool:
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("Connection closed by peer", "Connection reset", "gloo", "NCCL", "timed out", "Timed out")
    )


# -- batch norm over the global batch
class GlooSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the batch of every rank together, on CPU.

    PyTorch's SyncBatchNorm runs on accelerators only; this is the same computation with two differentiable
    all-reduces (the sum, then the sum of squared deviations: two passes, as exact as batch norm's own). The
    backward pass all-reduces the gradients of those sums, which is what makes the N shards' gradient the
    global batch's. Outside training, or in a single process, it is a plain BatchNorm2d."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        shape = (1, -1, 1, 1)
        n = x.numel() // x.shape[1] * dist.get_world_size()  # values per channel over every rank
        mean = all_reduce_with_grad(x.sum((0, 2, 3))) / n  # (C,)
        centred = x - mean.view(shape)
        var = all_reduce_with_grad(centred.square().sum((0, 2, 3))) / n  # (C,) biased: what normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / max(n - 1, 1), m)  # unbiased, as BatchNorm2d keeps
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        return out * self.weight.view(shape) + self.bias.view(shape) if self.affine else out


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` with every BatchNorm2d normalising over all ranks: SyncBatchNorm on CUDA, GlooSyncBatchNorm on CPU.
    Parameters and buffers keep their names, so checkpoints load in a single process as before."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = GlooSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine)
            synced.load_state_dict(child.state_dict())
            setattr(model, name, synced.to(next(child.buffers()).device))
        else:
            sync_batchnorm(child, device)
    return model
