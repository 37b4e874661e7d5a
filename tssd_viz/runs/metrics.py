"""Reading metrics.jsonl, a run's records (SPEC §8): which records are well-formed, an incremental reader
that never keeps a torn line (`MetricsTail`), and the final accuracy of each window (`final_accuracy`).

`RunFolder` appends and truncates the file; everything that reads its records reads them through here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .unreadable import is_number, json_object

# Fields of a metrics record that readers do arithmetic with: a record where one is not a number is skipped.
_NUMERIC_RECORD = ("step", "epoch", "wall_s", "t")
_STEPPED_KINDS = ("step", "epoch", "eval", "analysis")  # the trainer's records: each says its step


def final_accuracy(records: Iterable[Mapping[str, Any]], split: str = "test") -> dict[int, float]:
    """Window n -> accuracy from the eval records of `split`.

    Args:
        records: metrics records, in the order written.
        split: "test" or "train".

    Returns:
        n -> accuracy as a fraction; a later evaluation of a window replaces an earlier one.
    """
    table = {}
    for r in records:
        if not isinstance(r, Mapping) or r.get("kind") != "eval" or r.get("split") != split:
            continue
        t, acc = r.get("t"), r.get("acc")
        if isinstance(t, int) and not isinstance(t, bool) and t >= 1 and is_number(acc):
            table[t] = acc
    return table


def well_formed(record: Mapping[str, Any]) -> bool:
    """Whether a metrics record can be read: its kind is a string, its step, epoch, wall_s and t numbers, and
    a record of the trainer's kinds has its step (every chart places records by it)."""
    kind = record.get("kind")
    if not isinstance(kind, str) or (kind in _STEPPED_KINDS and "step" not in record):
        return False
    return all(is_number(record[k]) for k in _NUMERIC_RECORD if k in record and record[k] is not None)


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
