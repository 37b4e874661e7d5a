"""The lessons as files: committed without outputs, and markdown that renders as a lesson.

(Executing them is nbmake's job: `pytest` collects `notebooks/` too, in fast mode.)
"""

import json
import re
from pathlib import Path

import pytest

LESSONS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _cells(path: Path, kind: str) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == kind]


def test_there_are_lessons():
    assert [p.name[:3] for p in LESSONS] == ["01_", "02_", "03_"]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    assert all(c.get("outputs", []) == [] and c.get("execution_count") is None for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_markdown_has_one_title_and_no_commented_out_lines(path):
    # A markdown line "# text" is a top-level heading: the lesson's title and nothing else. (Text
    # pasted from a percent-format script keeps its "# " comment prefix and renders as a wall of titles.)
    markdown = _cells(path, "markdown")
    titles = [line for cell in markdown for line in _outside_code(cell) if re.match(r"#\s", line)]
    assert len(titles) == 1 and markdown[0].startswith(titles[0]), titles[:5]


def _outside_code(cell: str) -> list[str]:
    lines, fenced = [], False
    for line in cell.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines
