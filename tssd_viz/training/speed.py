"""Speed helpers: keep the CPU allocator from returning activation memory to the kernel, and
optionally compile the neuron time loop.

Why the allocator matters: a training step of a spiking network allocates and frees the same
multi-megabyte activation blocks (T x an ANN's) every step. glibc's malloc serves blocks above
its mmap threshold with fresh `mmap` calls and trims the heap top after each free, so every step
page-faults its activations in again (hundreds of thousands of faults, seconds of kernel time per
step at T >= 4 on a 2-core CPU). `tune_allocator()` tells glibc, through `mallopt`, to serve every
block from its heap and never trim it: freed blocks are reused by the next step. No preload, no
environment variable; it changes nothing on other C libraries (it reports that it did nothing).
bench/run.py measures the effect against default glibc and against jemalloc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_NEVER_TRIM = 2**31 - 1  # bytes of free heap top glibc may keep before trimming (int, ~2 GiB)

_tuned = False


def tune_allocator() -> bool:
    """Make glibc keep freed memory for reuse (no mmap per block, no heap trimming).

    Returns True when the setting is in place (glibc on Linux), False where it does not apply.
    Idempotent; affects the whole process. Memory that was peak once stays reserved by the process
    (its resident size does not shrink after a step), which is what a training loop wants.
    """
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and friends have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # M_MMAP_MAX = 0: large blocks come from the heap (reusable) instead of one mmap each.
    # M_TRIM_THRESHOLD = max: never give the heap top back to the kernel after a free.
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1
    _tuned = ok
    return ok


def compile_neurons(model: torch.nn.Module) -> int:
    """Switch every LIF layer of `model` to a `torch.compile`d time loop; returns how many.

    The compiled loop is the reference `lif_multistep` (autograd through the steps), which the
    compiler fuses into a few kernels per layer; the hand-written fused function is left alone
    because the compiler cannot see inside its backward (compiling it was slower in bench/).
    The first step pays the compile time (tens of seconds on a CPU).
    """
    from ..snn.neurons import LIF

    n = 0
    for module in model.modules():
        if isinstance(module, LIF):
            module.compiled = True
            n += 1
    return n
