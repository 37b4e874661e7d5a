"""Generated sections of a markdown file: the tables between `<!-- name:start -->` and `<!-- name:end -->`
are rewritten from run folders, and everything else in the file stays byte for byte."""

from __future__ import annotations

from pathlib import Path

from .grid import SweepError


def markers(section: str = "results") -> tuple[str, str]:
    """The comment lines that delimit a generated section of a markdown file."""
    return f"<!-- {section}:start -->", f"<!-- {section}:end -->"


START, END = markers()


def rewrite_section(path: Path, body: str, start: str = START, end: str = END) -> None:
    """Replace what lies between the `start` and `end` markers of `path`; the rest stays byte for byte."""
    text = path.read_text()
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise SweepError(f"{path} has no '{start}' ... '{end}' section to rewrite")
    path.write_text(text[: i + len(start)] + "\n" + body.strip("\n") + "\n" + text[j:])
