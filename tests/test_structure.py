"""The folder tree is the architecture (STYLE 9, 13, 16): sub-packages in layers, each importing only the
layers below it; no import cycles; no module importing another's private names; files and functions that
fit on a screen. Read from the source with `ast`, so a lazy import inside a function counts too."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tssd_viz"

# Lowest first; a module may import its own layer and the ones below (docs/ARCHITECTURE.md draws them).
LAYERS = [
    {"_version", "archs", "atomic", "config", "presets", "stats", "validation"},  # plain data, small helpers
    {"snn"},  # the spiking network: neurons, backbones, losses, recording
    {"data"},  # datasets, loaders, event cameras
    {"runs"},  # run folders, checkpoints, trained networks
    {"training"},  # fit() and its step, evaluation, observers, data-parallel training
    {"jobs", "export"},  # the job queue; NIR export
    {"figures"},  # plotly figures from recorded data and run folders
    {"sweep"},  # grids of runs and their tables
    {"lessons", "lesson_measures", "lesson_results"},  # the lessons' helpers
    {"cli", "__main__", "__init__"},  # the command line and the public API
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}
MAX_FILE_LINES, MAX_FUNCTION_LINES = 330, 60


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 2 else parts)


MODULES = {_module(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(the tssd_viz module imported, the names taken from it) for every import in the file."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, []) if sub in MODULES else (target, [alias.name]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return [(t, names) for t, names in found if t in MODULES]


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_sits_in_a_layer():
    assert {_unit(m) for m in MODULES} <= set(LAYER), {_unit(m) for m in MODULES} - set(LAYER)


def test_each_layer_imports_only_the_layers_below():
    upward = [(m, t) for m, deps in GRAPH.items() for t, _ in deps if LAYER[_unit(t)] > LAYER[_unit(m)]]
    assert not upward, upward


def test_no_import_cycles():
    edges = {m: {t for t, _ in deps if t != m and not MODULES[t].name == "__init__.py"} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t) :] + [t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_no_module_imports_another_modules_private_names():
    private = [
        (m, t, n)
        for m, deps in GRAPH.items()
        for t, names in deps
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not private, private


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "app").rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_files_and_functions_fit_on_a_screen(path):
    text = path.read_text()
    lines = len(text.splitlines())
    assert lines <= MAX_FILE_LINES, f"{lines} lines: split it by concept"
    long = [
        (n.name, n.end_lineno - n.lineno + 1)
        for n in ast.walk(ast.parse(text))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long
