"""Run folders: the interface between a training run and everything that watches it (SPEC §8).

    runs/<run-id>/config.json      the TSSDConfig, as JSON
                  status.json      {"state": queued|running|done|failed|cancelled, "message", "pid", ...}
                  metrics.jsonl    one JSON record per logged step, epoch or evaluation (append-only)
                  probes/          epoch-NNNN.npz snapshots: rasters, traces, per-timestep logits
                  checkpoints/     last.pt, best.pt (written atomically)
                  env.json         versions, device, seed
                  log.txt          the training process's output, when the job manager started it
                  job.json         {"executor": "ray", "address", "job_id"}: the cluster job that runs it (SPEC §11)

This package is the only code that knows these names and formats: the trainer, the job manager, the
app, the figures and the lessons read and write run folders through `RunFolder`, metrics records
through `MetricsTail` and `final_accuracy` (runs/metrics.py), probe snapshots as `ProbeSnapshot`s.
What status.json says is runs/status.py's, what env.json says runs/environment.py's, the listing of a
root's runs runs/listing.py's, and what a reader says of a file it cannot read runs/unreadable.py's.

Every file that a reader may see half-written is written to a temporary file and renamed; lines of
metrics.jsonl are appended whole and flushed, so a reader never parses a torn line it keeps.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import StorageError, append_line, atomic_write_bytes, atomic_write_json, storage_error
from ..config import ConfigError, TSSDConfig
from ..snn.probes import ProbeSnapshot, read_probe
from ..validation import validate
from .environment import environment
from .metrics import MetricsTail, final_accuracy
from .status import UNREADABLE, checked_alive, parse_status, status_record
from .unreadable import first_line, read_json


class RunFolder:
    """A run folder on disk. Cheap to construct; every accessor reads the files afresh."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # -- paths
    config_path = property(lambda self: self.path / "config.json")
    status_path = property(lambda self: self.path / "status.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    env_path = property(lambda self: self.path / "env.json")
    log_path = property(lambda self: self.path / "log.txt")
    job_path = property(lambda self: self.path / "job.json")
    probes_dir = property(lambda self: self.path / "probes")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")

    def checkpoint_path(self, which: str = "last") -> Path:
        """checkpoints/last.pt (written after every epoch) or checkpoints/best.pt (best test accuracy at T_s)."""
        return self.checkpoints_dir / f"{which}.pt"

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        return self.config_path.exists()

    # -- writing
    def prepare(self, cfg: TSSDConfig, *, resume: bool = False) -> None:
        """Make the folder ready for `cfg`; refuse to overwrite a different or finished run."""
        if self.exists():
            saved = self.config()
            if saved.to_dict() != cfg.to_dict():
                raise ConfigError("run_dir", f"{self.path} already holds a different run; choose another --run-dir")
            has_metrics = self.metrics_path.exists() and self.metrics_path.stat().st_size > 0
            if has_metrics and not resume:
                raise ConfigError(
                    "run_dir",
                    f"{self.path} already holds this run's results; use --resume {self.path} or another --run-dir",
                )
        made = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.config_path, (cfg.to_json() + "\n").encode())
        except OSError as e:  # e.g. a read-only parent: said in one line like a refused write
            raise storage_error(self.config_path, e) from None
        except StorageError:
            if made:
                shutil.rmtree(self.path, ignore_errors=True)  # a refused run leaves no empty folder behind
            raise

    def set_status(self, state: str, message: str = "", **extra: Any) -> None:
        """status.json; with the pid (this process's unless given) goes its start time, so that a reader can
        tell the run's process from another one that later gets the same pid."""
        atomic_write_json(self.status_path, status_record(state, message, **extra))

    def append_metric(self, record: dict[str, Any]) -> None:
        append_line(self.metrics_path, json.dumps(record, separators=(",", ":")))  # whole, or not at all

    def truncate_metrics(self, n_lines: int) -> int:
        """Keep the first `n_lines` records (resume: drop records of training being redone)."""
        try:
            lines = self.metrics_path.read_bytes().splitlines(keepends=True)  # bytes: junk lines count as lines
        except FileNotFoundError:
            lines = []
        except OSError as e:
            raise storage_error(self.metrics_path, e) from None
        atomic_write_bytes(self.metrics_path, b"".join(lines[:n_lines]))
        return max(0, len(lines) - n_lines)

    def write_env(self, device: str, seed: int, allocator: Mapping[str, Any] | None = None) -> None:
        """env.json: versions, device, seed, machine, and the malloc that ran (`allocator.InUse.to_dict()`)."""
        atomic_write_json(self.env_path, environment(device, seed, allocator))

    def write_job(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.job_path, record)

    def read_job(self) -> dict[str, Any]:
        """job.json: the cluster job a run was submitted as ({} for a local run, or when unreadable)."""
        return read_json(self.job_path)

    def env(self) -> dict[str, Any]:
        """env.json ({} when it is missing or unreadable)."""
        return read_json(self.env_path)

    def write_probe(self, name: str, probe: ProbeSnapshot | Mapping[str, np.ndarray]) -> Path:
        """probes/{name}.npz, from a snapshot or from its arrays by .npz key (as the trainer emits them)."""
        arrays = ProbeSnapshot.of(probe).to_arrays()
        unknown = set(probe) - set(arrays) if not isinstance(probe, ProbeSnapshot) else set()
        if unknown:
            raise ValueError(f"probe arrays {sorted(unknown)} have no place in a ProbeSnapshot")
        path = self.probes_dir / f"{name}.npz"
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
        return path

    # -- reading
    def config(self) -> TSSDConfig:
        """The run's config, validated; a missing, unreadable or invalid config.json is a `ConfigError` naming it."""
        where = str(self.config_path)
        try:
            saved = json.loads(self.config_path.read_text())
        except FileNotFoundError:
            raise ConfigError(where, "no such file: not a run folder") from None
        except (OSError, ValueError, RecursionError) as e:  # ValueError: not JSON, or not UTF-8
            raise ConfigError(where, f"not a readable JSON config ({type(e).__name__}: {first_line(e)})") from None
        # A config written before train.bn_stats existed was evaluated with PyTorch's running averages; one
        # written before train.bn_augment recomputed them on unaugmented images.
        if isinstance(saved, dict) and isinstance(saved.get("train"), dict):
            saved["train"].setdefault("bn_stats", "running")
            saved["train"].setdefault("bn_augment", False)
        try:
            return validate(TSSDConfig.from_dict(saved))
        except ConfigError as e:
            raise ConfigError(where, str(e)) from None
        except (TypeError, ValueError) as e:  # a field that is no field of the section
            raise ConfigError(where, f"not a tssd-viz config ({first_line(e)})") from None

    def read_status(self) -> dict[str, Any]:
        """status.json as written ({} when absent, unreadable or not a JSON object); `status()` interprets it."""
        return read_json(self.status_path)

    def status(self) -> dict[str, Any]:
        """status.json, with a run whose process died without saying so reported as failed; without
        status.json, the state its other files show (`derived_status`). A status.json that cannot be read
        (not JSON, not an object, no known state) is state "unreadable", its message one line saying why;
        fields of the wrong type are dropped (a "time" that is not a number, a "host" that is not a string)."""
        try:
            st, why = parse_status(self.status_path.read_bytes())
        except FileNotFoundError:
            return self.derived_status()
        except OSError as e:
            st, why = None, f"status.json cannot be read ({e.strerror or type(e).__name__})"
        if st is None:  # waiting, training or finished, it cannot say: not started again, not overwritten
            return {"state": UNREADABLE, "message": f"{self.name}/{why}; the job queue leaves it alone (delete it)"}
        return checked_alive(st, self.path)

    def derived_status(self) -> dict[str, Any]:
        """The state of a run without status.json, from what is there. Queued runs always have a
        status.json (the job queue is the set of folders that say "queued"), so none is reported queued:
        eval records at the end of metrics.jsonl -> done; records or a checkpoint -> failed (stopped
        without a final status: resume it); a config alone -> failed (never started).
        """
        if not self.exists():
            return {"state": "missing", "message": ""}
        try:
            records = self.metrics()
        except OSError as e:
            return {"state": UNREADABLE, "message": f"{self.name}/metrics.jsonl cannot be read ({e.strerror})"}
        if records and records[-1].get("kind") == "eval":
            return {"state": "done", "message": "finished (status.json is missing: read from metrics.jsonl)"}
        if records or self.checkpoint_path("last").exists():
            return {
                "state": "failed",
                "message": "stopped without a final status (status.json is missing); "
                "its last checkpoint is kept: resume with --resume",
            }
        return {"state": "failed", "message": "status.json is missing and the run left no records: it never started"}

    def tail(self) -> MetricsTail:
        """An incremental reader of metrics.jsonl: call `refresh()`, then read `records`."""
        return MetricsTail(self.metrics_path)

    def metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Records of metrics.jsonl (optionally of one kind); a torn last line is skipped."""
        tail = self.tail()
        tail.refresh()
        return [r for r in tail.records if kind is None or r.get("kind") == kind]

    def final_eval(self, split: str = "test") -> dict[int, float]:
        """Window -> accuracy from the last eval records of `split`."""
        return final_accuracy(self.metrics("eval"), split)

    def log_tail(self, lines: int = 1, sep: str = " / ") -> str:
        """The last non-empty lines of log.txt, joined by `sep` ("" when there is none)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return sep.join(kept[-lines:])

    def probes(self) -> list[Path]:
        return sorted(self.probes_dir.glob("*.npz")) if self.probes_dir.exists() else []

    def load_probe(self, path: str | os.PathLike | None = None) -> ProbeSnapshot:
        """A probe snapshot (default: the latest); a file that is not one is a `ProbeError` of one line."""
        if path is None:
            paths = self.probes()
            if not paths:
                raise FileNotFoundError(f"{self.path} has no probe snapshots yet")
            path = paths[-1]
        return read_probe(path)
