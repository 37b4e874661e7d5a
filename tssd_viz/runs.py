"""Run folders: the interface between a training run and everything that watches it (SPEC §8).

    runs/<run-id>/config.json      the TSSDConfig, as JSON
                  status.json      {"state": queued|running|done|failed|cancelled, "message", "pid", ...}
                  metrics.jsonl    one JSON record per logged step, epoch or evaluation (append-only)
                  probes/          epoch-NNNN.npz snapshots: rasters, traces, per-timestep logits
                  checkpoints/     last.pt, best.pt (written atomically)
                  env.json         versions, device, seed
                  log.txt          the training process's output, when the job manager started it
                  job.json         {"executor": "ray", "address", "job_id"}: the cluster job that runs it (SPEC §11)

This module is the only code that knows these names and formats: the trainer, the job manager, the
app, the figures and the lessons read and write run folders through `RunFolder`, metrics records
through `MetricsTail` and `final_accuracy`, probe snapshots as `ProbeSnapshot`s.

Every file that a reader may see half-written is written to a temporary file and renamed; lines of
metrics.jsonl are appended whole and flushed, so a reader never parses a torn line it keeps.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import StorageError, append_line, atomic_write_bytes, atomic_write_json, storage_error
from .config import ConfigError, TSSDConfig, validate
from .probes import ProbeSnapshot, read_probe

STATES = ("queued", "running", "done", "failed", "cancelled")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


# -- metrics records
def final_accuracy(records: Iterable[Mapping[str, Any]], split: str = "test") -> dict[int, float]:
    """Window n -> accuracy from the eval records of `split`; a later evaluation of a window replaces an earlier one."""
    table = {}
    for r in records:
        if r.get("kind") == "eval" and r.get("split") == split and r.get("t") is not None and r.get("acc") is not None:
            table[int(r["t"])] = r["acc"]
    return table


class MetricsTail:
    """The records of one metrics.jsonl, kept up to date by parsing only what was appended since.

    A line still being written has no newline yet: it is left for the next `refresh()`, so `records`
    never holds a torn line. A file replaced by `truncate_metrics` (a resume) is noticed by its inode
    or a shrunken size and read afresh.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: list[dict[str, Any]] = []
        self.offset = 0  # bytes consumed: always just after a newline
        self.inode: int | None = None

    def refresh(self) -> bool:
        """Read new complete lines; True when records were added (or the file was replaced)."""
        try:
            st_ = os.stat(self.path)
        except FileNotFoundError:
            return False
        replaced = st_.st_ino != self.inode or st_.st_size < self.offset
        if replaced:
            self.records, self.offset, self.inode = [], 0, st_.st_ino
        if st_.st_size == self.offset:
            return replaced
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(st_.st_size - self.offset)
        end = data.rfind(b"\n") + 1  # a line being written has no newline yet: leave it for next time
        for line in data[:end].splitlines():
            try:
                self.records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        self.offset += end
        return end > 0 or replaced


def source_commit() -> dict[str, Any] | None:
    """The git commit of the code that runs, and whether tracked files differ from it (None outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        )
        changed = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(changed.stdout.strip())}


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
        assert state in STATES, state
        record = {"state": state, "message": message, "pid": os.getpid(), "time": time.time(), **extra}
        atomic_write_json(self.status_path, record)

    def append_metric(self, record: dict[str, Any]) -> None:
        append_line(self.metrics_path, json.dumps(record, separators=(",", ":")))  # whole, or not at all

    def truncate_metrics(self, n_lines: int) -> int:
        """Keep the first `n_lines` records (resume: drop records of training being redone)."""
        lines = self.metrics_path.read_text().splitlines(keepends=True) if self.metrics_path.exists() else []
        atomic_write_bytes(self.metrics_path, "".join(lines[:n_lines]).encode())
        return max(0, len(lines) - n_lines)

    def write_env(self, device: str, seed: int, allocator: Mapping[str, Any] | None = None) -> None:
        """env.json: versions, device, seed, machine, and the malloc that ran (`allocator.InUse.to_dict()`)."""
        import torch

        versions = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__}
        for mod in ("torchvision", "snntorch"):
            try:
                versions[mod] = __import__(mod).__version__
            except Exception:  # an optional extra that is not installed
                pass
        from ._version import __version__

        versions["tssd_viz"] = __version__
        atomic_write_json(
            self.env_path,
            {
                "versions": versions,
                "device": device,
                "seed": seed,
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "cuda": torch.cuda.get_device_name() if device.startswith("cuda") else None,
                "source": source_commit(),
                "allocator": dict(allocator) if allocator is not None else None,
            },
        )

    def write_job(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.job_path, record)

    def read_job(self) -> dict[str, Any]:
        """job.json: the cluster job a run was submitted as ({} for a local run, or when unreadable)."""
        return _read_json(self.job_path)

    def env(self) -> dict[str, Any]:
        """env.json ({} when it is missing or unreadable)."""
        return _read_json(self.env_path)

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
            raise ConfigError(where, f"not a readable JSON config ({type(e).__name__}: {_first_line(e)})") from None
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
            raise ConfigError(where, f"not a tssd-viz config ({_first_line(e)})") from None

    def read_status(self) -> dict[str, Any]:
        """status.json exactly as written ({} when absent or unreadable); `status()` interprets it."""
        try:
            return json.loads(self.status_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def status(self) -> dict[str, Any]:
        """status.json, with a run whose process died without saying so reported as failed; without
        status.json, the state its other files show (`derived_status`)."""
        try:
            st = json.loads(self.status_path.read_text())
        except FileNotFoundError:
            return self.derived_status()
        except json.JSONDecodeError:
            return {"state": "failed", "message": "status.json is unreadable"}
        if st.get("state") == "running" and st.get("host", platform.node()) == platform.node():
            pid = st.get("pid")
            if isinstance(pid, int) and not _pid_alive(pid):
                return {
                    **st,
                    "state": "failed",
                    "message": "the training process ended without a final status (killed?); "
                    "its last checkpoint is kept: resume with --resume",
                }
        return st

    def derived_status(self) -> dict[str, Any]:
        """The state of a run without status.json, from what is there. Queued runs always have a
        status.json (the job queue is the set of folders that say "queued"), so none is reported queued:
        eval records at the end of metrics.jsonl -> done; records or a checkpoint -> failed (stopped
        without a final status: resume it); a config alone -> failed (never started).
        """
        if not self.exists():
            return {"state": "missing", "message": ""}
        records = self.metrics()
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
        """A probe snapshot (default: the latest)."""
        if path is None:
            paths = self.probes()
            if not paths:
                raise FileNotFoundError(f"{self.path} has no probe snapshots yet")
            path = paths[-1]
        return read_probe(path)


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON file's contents; {} when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def run_folders(root: str | os.PathLike) -> list[RunFolder]:
    """Every run folder directly under `root` (a folder with a config.json), newest first: by when its
    config was written, then by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [RunFolder(p) for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()]
    return sorted(runs, key=lambda run: (_mtime_ns(run.config_path), run.name), reverse=True)


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
    """Every run folder directly under `root` whose config this version reads, newest first."""
    out = []
    for run in run_folders(root):
        try:
            cfg = run.config()
        except Exception:
            continue
        st = run.status()
        acc = run.final_eval().get(cfg.distill.t_student)
        out.append(
            RunSummary(
                run.path,
                run.name,
                st.get("state", "?"),
                st.get("message", ""),
                cfg.distill.mode,
                cfg.data.dataset,
                cfg.distill.t_student,
                acc,
            )
        )
    return out
