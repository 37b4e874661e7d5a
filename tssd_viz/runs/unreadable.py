"""What a reader says of a run file it cannot use, in one line, instead of a traceback (SPEC §8).

Run files are written by other processes and may be half-written, damaged or foreign: `json_object`
parses one into a JSON object or says in a few words why it is none, `read_json` is the same with {} for
any file it cannot read, `is_number` decides which values a reader may do arithmetic with, `shown` prints
a value short, and `first_line` is an exception said in one line, the form every refusal here takes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def is_number(value: Any) -> bool:
    """A finite JSON number that a float holds (a bool is no number here, nor an int of 400 digits)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) < 2**63
    return isinstance(value, float) and math.isfinite(value)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def shown(value: Any, limit: int = 40) -> str:
    """`repr(value)`, cut to `limit` characters."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_object(data: bytes, what: str) -> tuple[dict[str, Any] | None, str]:
    """`data` parsed as a JSON object, or (None, why not in a few words naming `what`)."""
    try:
        value = json.loads(data)
    except UnicodeDecodeError:
        return None, f"{what} is not text (binary data)"
    except (ValueError, RecursionError) as e:
        return None, f"{what} is not JSON ({first_line(e)[:80]})"
    if not isinstance(value, dict):
        return None, f"{what} holds {type(value).__name__ if value is not None else 'null'}, not a JSON object"
    return value, ""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file's object; {} when it is missing, unreadable or not a JSON object."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    return json_object(data, path.name)[0] or {}
