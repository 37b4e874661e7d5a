"""env.json, what produced a run: the versions of the libraries, the device, the seed, the machine, the
malloc that ran and the git commit of the code (`environment`, `source_commit`)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np


def source_commit(package: Path | None = None) -> dict[str, Any] | None:
    """The git commit of the code that runs, and whether the package's tracked files differ from it (None outside a
    git checkout). Only the package counts: a sweep that rewrites result files in its own checkout runs the
    commit's code all the same."""
    here = package or Path(__file__).resolve().parents[1]  # tssd_viz/, not only runs/
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


def environment(device: str, seed: int, allocator: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """env.json's record: versions, device, seed, machine, and the malloc that ran (`allocator.InUse.to_dict()`)."""
    import torch

    versions = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__}
    for mod in ("torchvision", "snntorch"):
        # Read from the installed package's metadata: importing torchvision only to read its version cost a run
        # on event data 1.6 s of its start (measured on 2 cores), and a run that needs it has imported it anyway.
        with contextlib.suppress(PackageNotFoundError):  # an optional extra that is not installed
            versions[mod] = package_version(mod)
    from .._version import __version__

    versions["tssd_viz"] = __version__
    return {
        "versions": versions,
        "device": device,
        "seed": seed,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "source": source_commit(),
        "allocator": dict(allocator) if allocator is not None else None,
    }
