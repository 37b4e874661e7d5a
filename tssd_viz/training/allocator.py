"""Which malloc a training process runs: jemalloc, else tcmalloc, when installed; glibc otherwise.

Why: a training step of a spiking network frees and allocates the same multi-megabyte activation
blocks T times an ANN's every step. jemalloc (with decay off) keeps them for the next step; glibc
returns them to the kernel and faults them in again, unless `speed.tune_allocator()` tells it not to.
bench/run.py measures SNN step / (T x ANN step) under each malloc `python -m tssd_viz train` runs
(README's speed table, a 2-core Xeon: 1.19x under glibc's defaults, 1.03-1.08x tuned, under jemalloc
or under tcmalloc; on an EPYC, with an earlier neuron loop, jemalloc led the tuned glibc by 9%).

A process cannot change its malloc once it runs, so the choice is made where a process starts:

- `launch_env(choice)`: the environment that starts a child under `choice` (`LD_PRELOAD` plus the
  allocator's settings). The job manager and the sweep start `python -m tssd_viz train` with it.
- `reexec(choice)`: `python -m tssd_viz train` started any other way (a shell, torchrun) runs its own
  command line again, with the same pid, under that environment, once, before it trains.
- `execute(argv)`: a command started under the allocator: `make lab` starts JupyterLab so, whose
  kernels (where the lessons train) inherit it.
- `settle(choice, tune)`: in the training process, what runs: glibc gets `tune_allocator()`; the
  result names the allocator for the console line and env.json.

torch.backends.xeon.run_cpu preloads an allocator too, but it looks only for the unversioned
`libjemalloc.so` outside the multiarch folders (Debian's libjemalloc2 ships
`/usr/lib/x86_64-linux-gnu/libjemalloc.so.2`), and it runs the program as a child process (the job
manager signals the pid it started); hence the re-exec here. Linux only: elsewhere the system's
malloc runs and nothing is preloaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from .speed import tune_allocator

FAST = ("jemalloc", "tcmalloc")  # auto takes the first one installed (config.ALLOCATORS: every choice)
# Library names (ctypes.util.find_library's, without lib and .so), in order of preference.
_LIBRARIES = {"jemalloc": ("jemalloc",), "tcmalloc": ("tcmalloc", "tcmalloc_minimal")}
# Each allocator's settings, set in the environment unless the user set them already.
SETTINGS = {
    # Decay off: freed pages stay with the process for the next step instead of going back to the kernel.
    "jemalloc": {"MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"},
    # Never return freed memory to the kernel; no stderr report for every allocation above 1 GiB.
    "tcmalloc": {"TCMALLOC_RELEASE_RATE": "0", "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(2**40)},
}
INSTALL = "sudo apt-get install libjemalloc2 (conda: conda install -c conda-forge jemalloc)"
TRIED = "TSSD_ALLOCATOR_REEXEC"  # set for the re-executed process: re-exec at most once


@dataclass(frozen=True)
class Library:
    """An allocator installed on this machine."""

    name: str  # jemalloc | tcmalloc
    path: str  # what LD_PRELOAD gets: a file path, or a soname the dynamic linker finds


@dataclass(frozen=True)
class InUse:
    """The malloc this process runs, and why: what the console line says and env.json records."""

    name: str  # jemalloc | tcmalloc | glibc | system (another C library, or not Linux)
    library: str  # the file malloc comes from
    asked: str  # train.allocator
    tuned: bool  # glibc: tune_allocator()'s settings are in place
    settings: dict[str, str]  # the allocator's settings as the environment holds them
    note: str  # what to do for a faster one ("" when the fastest found runs)

    def line(self) -> str:
        """One line for the console."""
        what = f"{self.name} ({self.library})" if self.name in FAST else self.name
        what += " + tune_allocator" if self.tuned else ""
        return f"allocator: {what}" + (f"; {self.note}" if self.note else "")

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "note"}


@functools.cache  # asked by the re-exec, settle() and the note of one process: ldconfig runs once per name
def find(name: str) -> Library | None:
    """`name` (jemalloc or tcmalloc) if installed: in this Python's prefix (conda, a venv) first, then
    wherever the dynamic linker finds libraries (ldconfig's cache: Debian's multiarch folders)."""
    prefixes = dict.fromkeys(p for p in (sys.prefix, os.environ.get("CONDA_PREFIX")) if p)
    for lib in _LIBRARIES[name]:
        for prefix in prefixes:
            found = sorted(Path(prefix, "lib").glob(f"lib{lib}.so*"))
            if found:
                return Library(name, str(found[0]))
        soname = ctypes.util.find_library(lib)
        if soname:
            return Library(name, soname)
    return None


def wanted(choice: str) -> Library | None:
    """The library `choice` preloads on this machine; None: glibc (asked for, nothing installed, not Linux)."""
    if choice == "glibc" or not sys.platform.startswith("linux"):
        return None
    names = FAST if choice == "auto" else (choice,)
    return next((lib for lib in map(find, names) if lib is not None), None)


def malloc_library() -> str:
    """The file this process's `malloc` comes from, by the dynamic linker's own answer (dladdr)."""

    class DlInfo(ctypes.Structure):
        _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p), ("sname", ctypes.c_char_p)]
        _fields_ += [("saddr", ctypes.c_void_p)]

    here = ctypes.CDLL(None)
    dladdr = getattr(here, "dladdr", None) or ctypes.CDLL(ctypes.util.find_library("dl")).dladdr  # glibc < 2.34
    info = DlInfo()
    if not dladdr(ctypes.cast(here.malloc, ctypes.c_void_p), ctypes.byref(info)) or not info.fname:
        return "unknown"
    return os.fsdecode(info.fname)


def running() -> str:
    """jemalloc, tcmalloc, glibc or system: the malloc of this process."""
    base = Path(malloc_library()).name
    return next((n for n in FAST if n in base), "glibc" if base.startswith("libc.so") else "system")


def launch_env(choice: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) for a child that should run `choice`: LD_PRELOAD starts with its
    library and holds no other allocator; its settings are added unless `env` has them already."""
    env = dict(os.environ if env is None else env)
    lib = wanted(choice)
    # LD_PRELOAD is a list separated by colons or spaces (ld.so(8)).
    kept = [p for p in env.get("LD_PRELOAD", "").replace(" ", ":").split(":") if p and not _is_allocator(p)]
    preload = ([lib.path] if lib else []) + kept
    if preload:
        env["LD_PRELOAD"] = ":".join(preload)
    else:
        env.pop("LD_PRELOAD", None)
    for key, value in SETTINGS.get(lib.name if lib else "", {}).items():
        env.setdefault(key, value)
    return env


def _is_allocator(path: str) -> bool:
    return any(n in Path(path).name for n in FAST)


def reexec(choice: str) -> None:
    """Run this process's command line again (same pid, `os.execve`) under `choice` when it runs another
    malloc; return when nothing is to change. At most once: the re-executed process keeps what runs."""
    if os.environ.pop(TRIED, None) or not sys.platform.startswith("linux"):
        return  # popped: the training process's own children may choose again
    lib = wanted(choice)
    if (lib.name if lib else "glibc") == running():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**launch_env(choice), TRIED: "1"})


def execute(argv: list[str], choice: str = "auto") -> NoReturn:
    """Replace this process with the command `argv` under `choice` (`make lab`: JupyterLab, whose kernels,
    where the lessons train, inherit its environment)."""
    lib = wanted(choice)
    said = f"{lib.name} ({lib.path})" if lib else f"glibc; {_note(choice, 'glibc', None)}"
    print(f"allocator for {Path(argv[0]).name} and what it starts: {said}", file=sys.stderr, flush=True)
    os.execvpe(argv[0], argv, launch_env(choice))


def settle(choice: str, tune: bool) -> InUse:
    """What this process runs for a run asking `choice`; glibc gets `tune_allocator()` when `tune`."""
    name, lib = running(), wanted(choice)
    tuned = name == "glibc" and tune and tune_allocator()
    settings = {k: os.environ[k] for k in SETTINGS.get(name, {}) if k in os.environ}
    return InUse(name, malloc_library(), choice, tuned, settings, _note(choice, name, lib))


def _note(choice: str, name: str, lib: Library | None) -> str:
    """How to get the faster allocator, when this process runs another."""
    if lib is not None and lib.name == name:
        return ""
    if choice == "glibc":
        return "train.allocator = glibc; auto takes jemalloc when installed"
    if not sys.platform.startswith("linux"):
        return "jemalloc is preloaded on Linux only"
    if lib is not None:
        if lib.path in os.environ.get("LD_PRELOAD", ""):  # asked for, yet malloc is glibc's
            return f"{lib.path} could not be preloaded (see the dynamic linker's message above)"
        return (
            f"{lib.name} is installed but this process started without it: train with `python -m tssd_viz train`, "
            f"or start Jupyter with `make lab` (LD_PRELOAD={lib.path})"
        )
    if choice == "auto":
        return f"jemalloc is faster: {INSTALL}"
    return f"{choice} is not installed ({INSTALL})"
