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
import math
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

from ..atomic import StorageError, append_line, atomic_write_bytes, atomic_write_json, storage_error
from ..config import ConfigError, TSSDConfig
from ..snn.probes import ProbeSnapshot, read_probe
from ..validation import validate
from .processes import is_training_process, process_start

STATES = ("queued", "running", "done", "failed", "cancelled")
UNREADABLE = "unreadable"  # what status() says of a folder whose status.json cannot be read; never written
# Fields of status.json that readers do arithmetic with: a value of another type is dropped on reading.
_NUMERIC_STATUS = ("time", "started", "total_steps", "steps", "exit_code", "gpu", "proc_start")
# Fields of a metrics record that readers do arithmetic with: a record where one is not a number is skipped.
_NUMERIC_RECORD = ("step", "epoch", "wall_s", "t")
_STEPPED_KINDS = ("step", "epoch", "eval", "analysis")  # the trainer's records: each says its step


def _is_number(value: Any) -> bool:
    """A finite JSON number that a float holds (a bool is no number here, nor an int of 400 digits)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) < 2**63
    return isinstance(value, float) and math.isfinite(value)


def json_object(data: bytes, what: str) -> tuple[dict[str, Any] | None, str]:
    """`data` parsed as a JSON object, or (None, why not in a few words naming `what`)."""
    try:
        value = json.loads(data)
    except UnicodeDecodeError:
        return None, f"{what} is not text (binary data)"
    except (ValueError, RecursionError) as e:
        return None, f"{what} is not JSON ({_first_line(e)[:80]})"
    if not isinstance(value, dict):
        return None, f"{what} holds {type(value).__name__ if value is not None else 'null'}, not a JSON object"
    return value, ""


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # gone, or not ours to look at
        return 0


# -- metrics records
def final_accuracy(records: Iterable[Mapping[str, Any]], split: str = "test") -> dict[int, float]:
    """Window n -> accuracy from the eval records of `split`; a later evaluation of a window replaces an earlier one."""
    table = {}
    for r in records:
        if not isinstance(r, Mapping) or r.get("kind") != "eval" or r.get("split") != split:
            continue
        t, acc = r.get("t"), r.get("acc")
        if isinstance(t, int) and not isinstance(t, bool) and t >= 1 and _is_number(acc):
            table[t] = acc
    return table


def well_formed(record: Mapping[str, Any]) -> bool:
    """Whether a metrics record can be read: its kind is a string, its step, epoch, wall_s and t numbers, and
    a record of the trainer's kinds has its step (every chart places records by it)."""
    kind = record.get("kind")
    if not isinstance(kind, str) or (kind in _STEPPED_KINDS and "step" not in record):
        return False
    return all(_is_number(record[k]) for k in _NUMERIC_RECORD if k in record and record[k] is not None)


class MetricsTail:
    """The records of one metrics.jsonl, kept up to date by parsing only what was appended since.

    A line still being written has no newline yet: it is left for the next `refresh()`, so `records`
    never holds a torn line. A line that is not a well-formed record (not JSON, not an object, a step that
    is not a number) is skipped and counted in `skipped`. A file replaced by `truncate_metrics` (a resume)
    is noticed by its inode or a shrunken size and read afresh.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: list[dict[str, Any]] = []
        self.skipped = 0  # complete lines that are not well-formed records (junk written into the file)
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
            self.records, self.skipped, self.offset, self.inode = [], 0, 0, st_.st_ino
        if st_.st_size == self.offset:
            return replaced
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(st_.st_size - self.offset)
        end = data.rfind(b"\n") + 1  # a line being written has no newline yet: leave it for next time
        for line in data[:end].splitlines():
            record, _ = json_object(line, "line")
            if record is not None and well_formed(record):
                self.records.append(record)
            else:
                self.skipped += 1
        self.offset += end
        return end > 0 or replaced


def source_commit(package: Path | None = None) -> dict[str, Any] | None:
    """The git commit of the code that runs, and whether the package's tracked files differ from it (None outside a
    git checkout). Only the package counts: a sweep that rewrites result files in its own checkout runs the
    commit's code all the same."""
    here = package or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        )
        changed = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
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
        """status.json; with the pid (this process's unless given) goes its start time, so that a reader can
        tell the run's process from another one that later gets the same pid."""
        assert state in STATES, state
        record = {"state": state, "message": message, "pid": os.getpid(), "time": time.time(), **extra}
        pid = record["pid"]
        record["proc_start"] = process_start(pid) if isinstance(pid, int) else None
        atomic_write_json(self.status_path, record)

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
        import torch

        versions = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__}
        for mod in ("torchvision", "snntorch"):
            try:
                versions[mod] = __import__(mod).__version__
            except Exception:  # an optional extra that is not installed
                pass
        from .._version import __version__

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
        """status.json as written ({} when absent, unreadable or not a JSON object); `status()` interprets it."""
        return _read_json(self.status_path)

    def status(self) -> dict[str, Any]:
        """status.json, with a run whose process died without saying so reported as failed; without
        status.json, the state its other files show (`derived_status`). A status.json that cannot be read
        (not JSON, not an object, no known state) is state "unreadable", its message one line saying why;
        fields of the wrong type are dropped (a "time" that is not a number, a "host" that is not a string)."""
        try:
            st, why = json_object(self.status_path.read_bytes(), "status.json")
        except FileNotFoundError:
            return self.derived_status()
        except OSError as e:
            st, why = None, f"status.json cannot be read ({e.strerror or type(e).__name__})"
        if st is not None and st.get("state") not in STATES:
            st, why = None, f"status.json says state {_shown(st.get('state'))}, not one of {', '.join(STATES)}"
        if st is None:  # waiting, training or finished, it cannot say: not started again, not overwritten
            return {"state": UNREADABLE, "message": f"{self.name}/{why}; the job queue leaves it alone (delete it)"}
        st = _sane_status(st)
        if st["state"] == "running" and st.get("host", platform.node()) == platform.node():
            # No pid: a cluster job (watched through the cluster). A pid: it must be this run's process.
            if st.get("pid") is not None and not is_training_process(st, self.path.absolute()):
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
        return load_probe(path)


load_probe = read_probe  # the name the dashboard reads probe files by; the checks live in probes.read_probe


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON file's object; {} when it is missing, unreadable or not a JSON object."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    return json_object(data, path.name)[0] or {}


def _sane_status(st: dict[str, Any]) -> dict[str, Any]:
    """A status record whose fields have the types its readers expect: ill-typed known fields are dropped."""
    out = {k: v for k, v in st.items() if k not in _NUMERIC_STATUS or _is_number(v)}
    out["message"] = st["message"] if isinstance(st.get("message"), str) else ""
    if not isinstance(out.get("host", ""), str):
        out.pop("host")
    return out


def _shown(value: Any, limit: int = 40) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def run_folders(root: str | os.PathLike) -> list[RunFolder]:
    """Every run folder directly under `root` (a folder with a config.json), newest first: by when its
    config was written, then by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [RunFolder(p) for p in root.iterdir() if p.is_dir() and _has_config(p)]
    return sorted(runs, key=lambda run: (_mtime_ns(run.config_path), run.name), reverse=True)


def _has_config(folder: Path) -> bool:
    try:
        return (folder / "config.json").exists()
    except OSError:  # a folder we may not look into: listed, and read as unreadable (never a traceback)
        return True


@dataclass(frozen=True)
class RunSummary:
    path: Path
    name: str
    state: str
    message: str
    mode: str  # "" for an unreadable folder
    dataset: str
    t_student: int  # 0 for an unreadable folder
    acc_student: float | None  # final test accuracy at T_s, when evaluated


def list_runs(root: str | os.PathLike) -> list[RunSummary]:
    """Every run folder directly under `root`, newest first; one whose config this version cannot read is
    listed as "unreadable", its message one line naming the file and why."""
    out = []
    for run in run_folders(root):
        try:
            cfg = run.config()
            st = run.status()
            acc = run.final_eval().get(cfg.distill.t_student)
        except Exception as e:  # one folder that cannot be read never hides the others
            why = str(e) if isinstance(e, ConfigError) else f"{run.path}: {type(e).__name__}: {_first_line(e)[:120]}"
            out.append(RunSummary(run.path, run.name, UNREADABLE, why, "", "", 0, None))
            continue
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
