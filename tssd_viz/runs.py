"""Run folders: the interface between a training run and everything that watches it (SPEC §8).

    runs/<run-id>/config.json      the TSSDConfig, as JSON
                  status.json      {"state": queued|running|done|failed|cancelled, "message", "pid", ...}
                  metrics.jsonl    one JSON record per logged step, epoch or evaluation (append-only)
                  probes/          epoch-NNNN.npz snapshots: rasters, traces, per-timestep logits
                  checkpoints/     last.pt, best.pt (written atomically)
                  env.json         versions, device, seed

Every file that a reader may see half-written is written to a temporary file and renamed; lines of
metrics.jsonl are appended whole and flushed, so a reader never parses a torn line it keeps.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import ConfigError, TSSDConfig

STATES = ("queued", "running", "done", "failed", "cancelled")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunFolder:
    """A run folder on disk. Cheap to construct; every accessor reads the files afresh."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # -- paths
    config_path = property(lambda self: self.path / "config.json")
    status_path = property(lambda self: self.path / "status.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    env_path = property(lambda self: self.path / "env.json")
    probes_dir = property(lambda self: self.path / "probes")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")

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
                    "run_dir", f"{self.path} already holds this run's results; use --resume {self.path} or another --run-dir"
                )
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.config_path, (cfg.to_json() + "\n").encode())

    def set_status(self, state: str, message: str = "", **extra: Any) -> None:
        assert state in STATES, state
        record = {"state": state, "message": message, "pid": os.getpid(), "time": time.time(), **extra}
        atomic_write_json(self.status_path, record)

    def append_metric(self, record: dict[str, Any]) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
            f.flush()

    def truncate_metrics(self, n_lines: int) -> int:
        """Keep the first `n_lines` records (resume: drop records of training being redone)."""
        lines = self.metrics_path.read_text().splitlines(keepends=True) if self.metrics_path.exists() else []
        atomic_write_bytes(self.metrics_path, "".join(lines[:n_lines]).encode())
        return max(0, len(lines) - n_lines)

    def write_env(self, device: str, seed: int) -> None:
        import torch

        versions = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__}
        for mod in ("torchvision", "snntorch"):
            try:
                versions[mod] = __import__(mod).__version__
            except Exception:  # an optional extra that is not installed
                pass
        from ._version import __version__

        versions["tssd_viz"] = __version__
        atomic_write_json(self.env_path, {
            "versions": versions, "device": device, "seed": seed, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        })

    def write_probe(self, name: str, arrays: dict[str, np.ndarray]) -> Path:
        path = self.probes_dir / f"{name}.npz"
        self.probes_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.probes_dir, prefix=f".{name}.", suffix=".npz")
        os.close(fd)
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
        return path

    # -- reading
    def config(self) -> TSSDConfig:
        saved = json.loads(self.config_path.read_text())
        # A config written before train.bn_stats existed was evaluated with PyTorch's running averages.
        if isinstance(saved.get("train"), dict):
            saved["train"].setdefault("bn_stats", "running")
        return TSSDConfig.from_dict(saved)

    def status(self) -> dict[str, Any]:
        """status.json, with a run whose process died without saying so reported as failed."""
        try:
            st = json.loads(self.status_path.read_text())
        except FileNotFoundError:
            return {"state": "queued" if self.exists() else "missing", "message": ""}
        except json.JSONDecodeError:
            return {"state": "failed", "message": "status.json is unreadable"}
        if st.get("state") == "running" and st.get("host", platform.node()) == platform.node():
            pid = st.get("pid")
            if isinstance(pid, int) and not _pid_alive(pid):
                return {**st, "state": "failed",
                        "message": "the training process ended without a final status (killed?); "
                                   "its last checkpoint is kept: resume with --resume"}
        return st

    def metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Records of metrics.jsonl (optionally of one kind); a torn last line is skipped."""
        if not self.metrics_path.exists():
            return []
        out = []
        with open(self.metrics_path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # being written right now
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if kind is None or rec.get("kind") == kind:
                    out.append(rec)
        return out

    def final_eval(self, split: str = "test") -> dict[int, float]:
        """Window -> accuracy from the last eval records of `split`."""
        return {r["t"]: r["acc"] for r in self.metrics("eval") if r.get("split") == split}

    def probes(self) -> list[Path]:
        return sorted(self.probes_dir.glob("*.npz")) if self.probes_dir.exists() else []

    def load_probe(self, path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
        """A probe snapshot (default: the latest) as a dict of arrays."""
        paths = self.probes()
        if path is None:
            if not paths:
                raise FileNotFoundError(f"{self.path} has no probe snapshots yet")
            path = paths[-1]
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


@dataclass(frozen=True)
class RunSummary:
    path: Path
    name: str
    state: str
    message: str
    mode: str
    dataset: str
    t_student: int
    acc_student: float | None  # final test accuracy at T_s, when evaluated


def list_runs(root: str | os.PathLike) -> list[RunSummary]:
    """Every run folder directly under `root`, newest first."""
    root = Path(root)
    if not root.exists():
        return []
    out = []
    for p in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        run = RunFolder(p)
        if not run.exists():
            continue
        try:
            cfg = run.config()
        except Exception:
            continue
        st = run.status()
        acc = run.final_eval().get(cfg.distill.t_student)
        out.append(RunSummary(p, p.name, st.get("state", "?"), st.get("message", ""), cfg.distill.mode,
                              cfg.data.dataset, cfg.distill.t_student, acc))
    return out
