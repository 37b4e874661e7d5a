"""Packaging: pyproject.toml and environment.yml name the same packages; the public API is explicit."""

import inspect
import re
from pathlib import Path

import pytest
import tomllib

import tssd_viz

ROOT = Path(__file__).resolve().parents[1]
# conda names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_ON_PYPI = {"jemalloc"}  # a C library (tssd_viz.training.allocator preloads it)


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_packages() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs += extra
    return {_name(r) for r in reqs}


def environment_packages() -> set[str]:
    names, in_deps = set(), False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if not line.startswith(" "):
            in_deps = line.startswith("dependencies:")
            continue
        m = in_deps and re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+)", line)
        if m and not line.strip().endswith(":"):
            names.add(CONDA_TO_PYPI.get(_name(m.group(1)), _name(m.group(1))))
    return names - {"python", "pip"} - NOT_ON_PYPI


def test_environment_yml_matches_pyproject():
    assert environment_packages() == pyproject_packages()


def test_public_api_is_explicit_and_importable():
    assert len(tssd_viz.__all__) == len(set(tssd_viz.__all__))
    for name in tssd_viz.__all__:
        assert hasattr(tssd_viz, name), name


def _documented(module) -> list[tuple[str, object]]:
    return [(n, o) for n in module.__all__ if inspect.isfunction(o := getattr(module, n)) or inspect.isclass(o)]


@pytest.mark.parametrize("module", [tssd_viz, tssd_viz.figures], ids=lambda m: m.__name__)
def test_public_docstrings_say_what_they_take_and_return(module):
    # Google style (ruff's pydocstyle convention, mkdocstrings' docstring_style): what the API reference renders.
    bad = []
    for name, obj in _documented(module):
        doc = inspect.getdoc(obj) or ""
        if not doc:
            bad.append(f"{name}: no docstring")
        if not inspect.isfunction(obj):
            continue
        if len(doc.splitlines()) > 1 and doc.splitlines()[1]:
            bad.append(f"{name}: a summary longer than one line")
        sig = inspect.signature(obj)
        if [p for p in sig.parameters if p not in ("self", "cls")] and "\nArgs:\n" not in doc:
            bad.append(f"{name}: no Args")
        if sig.return_annotation not in (None, "None") and not re.search(r"\n(Returns|Yields):\n", doc):
            bad.append(f"{name}: no Returns")
    assert bad == []
