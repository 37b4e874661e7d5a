"""Training: one `fit()` that reads top to bottom and emits events to observers (SPEC §8).

The trainer owns the model, the optimizer and the loop (`Training`, loop.py); observers (in-memory
history, console, run-folder writer, dashboard) only listen. Everything that can refuse a run is checked
here, before its folder is written: a refusal writes nothing.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable

import torch

from ..config import ConfigError, TSSDConfig
from ..data import Dataset, load_dataset
from ..data.events import frame_windows
from ..runs.folders import RunFolder
from ..validation import validate
from . import allocator
from .distributed import Ranks
from .events import FitResult
from .loop import Training
from .observers import Observer, RunWriter

__all__ = ["check_sizes", "fit", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device", "cuda was asked for but no CUDA device is available; use auto or cpu")
    return torch.device(name)


def fit(
    cfg: TSSDConfig,
    observers: Iterable[Observer] = (),
    *,
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    dataset: Dataset | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FitResult:
    """Train `cfg` (validated here) with `observers` listening; one rank of it under torchrun (SPEC §11).

    Args:
        run_dir: the run folder to write (rank 0 alone writes it), or None.
        resume: continue `run_dir` from its last.pt.
        dataset: the dataset, when already loaded (default: `load_dataset(cfg.data, cfg.distill)`).
        should_stop: polled between steps; True stops the run as "cancelled".

    Returns:
        The trained network and its test accuracy per window (a `ConfigError` when cfg misfits the device or data).
    """
    validate(cfg)
    tc = cfg.train
    device = resolve_device(tc.device)
    ranks = Ranks.from_env()
    if ranks is not None:
        ranks, device = ranks.start(cfg, device)  # joins the group: every rank gets here or the run ends
        observers = observers if ranks.writes else ()
    if tc.bf16 and device.type != "cuda":
        raise ConfigError("train.bf16", f"bf16 autocast needs a CUDA device; this run uses {device.type}")
    if tc.threads:
        torch.set_num_threads(tc.threads)
    # speed: activations are reused instead of page-faulted in every step (jemalloc, or glibc tuned)
    malloc = allocator.settle(tc.allocator, tune=tc.tune_allocator and device.type == "cpu")
    # Everything that can refuse the run comes before its folder is written: a refusal writes nothing.
    ds = dataset if dataset is not None else load_dataset(cfg.data, cfg.distill)
    check_sizes(cfg, ds)
    run = RunFolder(run_dir) if run_dir is not None else None
    writes = run is not None and (ranks is None or ranks.writes)  # the other ranks only read last.pt to resume
    if writes:
        run.prepare(cfg, resume=resume)
    observers = list(observers) + ([RunWriter(run)] if writes else [])
    if writes and not resume:  # a folder without status.json reads as never started (runs/folders.py)
        run.set_status("running", "starting: building the network", host=platform.node())

    def emit(event: str, *args) -> None:
        for o in observers:
            getattr(o, event)(*args)

    try:
        result = Training(cfg, device, ds, run, emit, should_stop, ranks).run(resume, malloc)
    except BaseException as exc:
        said = ranks.explain(exc) if ranks is not None else exc  # a lost rank, in one line
        emit("on_error", said)
        if said is exc:
            raise
        raise said from exc
    if ranks is not None:
        ranks.finish()  # only after a clean end: tearing down a group whose peer is gone can itself hang
    return result


def check_sizes(cfg: TSSDConfig, ds: Dataset) -> None:
    """Refuse a training set smaller than one batch: no step could run (the loader drops partial batches)."""
    if ds.is_events and (ds.train.windows, ds.test.windows) != frame_windows(cfg.data, cfg.distill):
        raise ConfigError(
            "data.windowing", "the dataset was binned for other windows: load_dataset(cfg.data, cfg.distill) bins it"
        )
    frames = ds.test.images.shape[1]
    if ds.is_events and not ds.test.windows and frames < cfg.distill.t_teacher:
        raise ConfigError("distill.t_teacher", f"the recordings were binned into {frames} frames, fewer than T_t")
    n, batch = len(ds.train.labels), cfg.data.batch_size
    if n >= batch:
        return
    if cfg.data.limit_train and cfg.data.limit_train < batch:
        raise ConfigError("data.limit_train", f"{n} training images are fewer than one batch (data.batch_size {batch})")
    raise ConfigError("data.batch_size", f"{batch} is larger than the training set ({n} images)")
