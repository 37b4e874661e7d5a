"""Turning what the figures are given (tensors, arrays, metrics records) into plain numpy and lists.

Figures accept torch tensors or numpy arrays; records are the dicts of a run's metrics.jsonl
(SPEC §8), where any key may be missing or None when a mode has no such quantity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

Records = Sequence[Mapping[str, Any]]


def as_numpy(x: Any, name: str, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """x as a numpy array (tensors detached and moved to the CPU); checks its number of dims."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()  # numpy has no bfloat16
        x = x.numpy()
    a = np.asarray(x)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and a.ndim not in allowed:
        shapes = " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(f"{name} should be {shapes}, got shape {a.shape}")
    return a


def first_item(a: np.ndarray) -> np.ndarray:
    """(T, N) stays; (T, B, ...) becomes batch item 0 with its features flattened, (T, N)."""
    if a.ndim == 1:
        return a[:, None]  # (T,) -> (T, 1)
    if a.ndim == 2:
        return a
    return a[:, 0].reshape(a.shape[0], -1)  # (T, B, ...) -> (T, N)


def as_series(values: Mapping[str, Any]) -> tuple[dict[str | None, Mapping[str, Any]], list[str], bool]:
    """{category: value} or {series: {category: value}} -> ({series: {category: value}}, every
    category in first-seen order, whether it was nested). A flat mapping is the one series None."""
    nested = any(isinstance(v, Mapping) for v in values.values())
    series = dict(values) if nested else {None: values}
    categories: list[str] = []
    for s in series.values():
        categories += [c for c in s if c not in categories]
    return series, categories, nested


def as_runs(records_or_runs: Records | Mapping[str, Records]) -> dict[str | None, Records]:
    """One run's records -> {None: records}; a dict of runs stays as it is (label -> records)."""
    if isinstance(records_or_runs, Mapping):
        if "kind" in records_or_runs:
            raise TypeError("got a single metrics record; pass a list of records or a dict of runs")
        return dict(records_or_runs)
    return {None: list(records_or_runs)}


def series(records: Records, key: str, kind: str = "step") -> tuple[list, list]:
    """(steps, values) of `key` over the records of `kind`, skipping records where it is missing/None."""
    steps, values = [], []
    for r in records:
        if r.get("kind") == kind and r.get(key) is not None and r.get("step") is not None:
            steps.append(r["step"])
            values.append(r[key])
    return steps, values


def ema(values: list[float], weight: float) -> list[float]:
    """Exponential moving average for display, as TensorBoard draws it (weight 0 = raw values).

    Debiased so the first points are not dragged towards zero.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smooth should be in [0, 1), got {weight}")
    if weight == 0.0:
        return list(values)
    out, acc = [], 0.0
    for i, v in enumerate(values, start=1):
        acc = weight * acc + (1 - weight) * v
        out.append(acc / (1 - weight**i))
    return out
