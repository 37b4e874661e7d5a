"""MkDocs hooks: what the site takes from the rest of the repository at build time.

- The lessons: `notebooks/*.ipynb` become pages under `lessons/`. They are committed without outputs, so
  they are executed here in fast mode (TSSD_FAST=1, as the tests run them) into `.cache/docs-lessons/`,
  keyed by the notebook, the package's sources and the committed results they read: a rebuild with
  nothing changed reuses them. `TSSD_DOCS_EXECUTE=0` renders the committed notebooks as they are (no
  outputs; for writing the pages). Plotly figures become HTML drawn by a bundled plotly.js, and the
  figures a lesson shows behind controls (ipywidgets) are shown at the controls' first values: a static
  site has no kernel to redraw them.
- The API reference: one entry per name of `tssd_viz.__all__`, read from the package's `__init__.py`
  (never from its internal modules, which move), grouped below; a name no group lists still appears.
- docs/ARCHITECTURE.md joins the navigation when it exists.
- Links from a page into the repository outside docs/ (a results folder, a notebook) must name a path
  that exists there (a missing one fails the strict build); the results' HTML figures are published with
  the site, other paths are shown as code.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import logging
import os
import posixpath
import re
import sys
import time
from pathlib import Path

import nbformat
import plotly
import plotly.io as pio
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url
from nbclient import NotebookClient

log = logging.getLogger("mkdocs.hooks.tssd_viz")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CACHE = ROOT / ".cache" / "docs-lessons"
PLOTLY_JS = "assets/javascripts/plotly.min.js"
LESSON_TIMEOUT_S = 1200  # one cell; lesson 5's training cell takes about 3 minutes in fast mode on 2 cores
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"

# The API reference's groups, by public name. Names of `__all__` that no group lists go under the last heading.
API_GROUPS: dict[str, list[str]] = {
    "Configuration": [
        "preset", "validate", "TSSDConfig", "ModelConfig", "DistillConfig", "DataConfig", "TrainConfig",
        "ConfigError",
    ],
    "Neurons and networks": [
        "lif_step", "lif_multistep", "LIF", "LIFParams", "rect_surrogate_grad", "snntorch_multistep",
        "build_model", "SpikingNet", "ModelOutput", "count_parameters",
    ],
    "Losses and the timesteps' signals": [
        "tssd_loss", "LossParts", "windows", "Windows", "kd_kl", "agreement", "accuracy_by_window",
        "strong_weak_loss", "sw_pairs", "rank_timesteps", "timestep_confidence",
    ],
    "Data": [
        "load_dataset", "offline_default", "is_available", "cache_dir", "Dataset", "Split", "Loader",
        "DataUnavailable", "event_digits", "saccade_video", "emulate", "frame_transform", "WindowFrames",
    ],
    "Training and its observers": [
        "fit", "evaluate", "FitInfo", "FitResult", "TrainingDiverged", "Observer", "History", "ConsoleProgress",
        "RunWriter", "JobManager",
    ],
    "Evaluation": [
        "collect_outputs", "Outputs", "analysis", "early_exit", "exit_points", "ExitPoint", "teacher_margins",
        "synaptic_operations", "energy_uj", "LayerOps",
    ],
    "Recording": ["record", "Recording", "lif_layers", "snapshot", "ProbeSnapshot", "read_probe"],
    "Run folders, checkpoints and export": [
        "RunFolder", "list_runs", "run_folders", "final_accuracy", "load_checkpoint", "CheckpointError",
        "load_trained", "Trained", "export_student", "export_nir", "NIRExportError", "load_nir", "NIRNetwork",
        "NIRRun", "nir_agreement", "NIRAgreement",
    ],
    "For the lessons": [
        "fast_mode", "lesson_config", "events_config", "lesson_runs_dir", "train_or_read", "check_learned",
        "accuracy", "gradient_norms", "split_windows", "weak_head_tap", "step_milliseconds", "race_rows",
        "runs_summary", "one_seed", "window_sentence", "source_line", "results_dir", "committed_controls",
        "committed_race", "committed_events", "committed_paired", "committed_conclusion", "controls_lines",
        "events_lines", "events_paired", "race_paired",
    ],
    "Figures": ["figures"],
}  # fmt: skip


# -- navigation --------------------------------------------------------------------------------------------


def lessons() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


def on_config(config, **_):
    def section(title: str) -> list:
        return next(item[title] for item in config["nav"] if isinstance(item, dict) and title in item)

    section("Lessons").extend(f"lessons/{p.name}" for p in lessons())
    if (Path(config["docs_dir"]) / "ARCHITECTURE.md").is_file():
        section("Architecture").append({"The package's layers": "ARCHITECTURE.md"})
    return config


# -- files: the lessons, the API reference, plotly.js, the results' figures --------------------------------


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns .ipynb files into pages
def on_files(files: Files, config, **_) -> Files:
    execute = os.environ.get("TSSD_DOCS_EXECUTE", "1") != "0"
    root = CACHE / ("executed" if execute else "plain")  # holds lessons/<name>.ipynb: the page's source
    for path in lessons():
        (executed if execute else plain)(path, root / "lessons" / path.name)
        files.append(File(f"lessons/{path.name}", str(root), config["site_dir"], config["use_directory_urls"]))
    files.append(File.generated(config, "reference.md", content=api_reference()))
    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    files.append(File.generated(config, PLOTLY_JS, abs_src_path=str(bundled)))
    for figure in sorted((ROOT / "results").glob("*/*.html")):
        files.append(File.generated(config, figure.relative_to(ROOT).as_posix(), abs_src_path=str(figure)))
    return files


def plain(path: Path, out: Path) -> None:
    """The committed lesson as it is (no outputs)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file() or out.read_bytes() != path.read_bytes():
        out.write_bytes(path.read_bytes())


def executed(path: Path, out: Path) -> None:
    """The lesson executed in fast mode into `out`, kept while its inputs have not changed."""
    key, stamp = lesson_key(path), out.with_name(out.name + ".key")
    if out.is_file() and stamp.is_file() and stamp.read_text() == key:
        return
    os.environ.setdefault("TSSD_FAST", "1")  # the kernel inherits it
    nb = nbformat.read(path, as_version=4)
    log.info(f"Executing {path.name} (TSSD_FAST={os.environ['TSSD_FAST']}) ...")
    t0 = time.monotonic()
    client = NotebookClient(
        nb,
        timeout=LESSON_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},  # the lessons read ../results from their folder
        store_widget_state=True,
    )
    client.execute()  # a failing cell raises: a lesson that does not run fails the build
    log.info(f"Executed {path.name} in {time.monotonic() - t0:.0f} s")
    static_outputs(nb, path.stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(out)
    stamp.write_text(key)


def lesson_key(path: Path) -> str:
    """A digest of what an executed lesson depends on: itself, the package, the committed results, the mode."""
    h = hashlib.sha256(path.read_bytes())
    for f in sorted((ROOT / "tssd_viz").rglob("*.py")):
        h.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes())
    for f in sorted((ROOT / "results").rglob("*")):  # names and sizes: the run folders are many
        if f.is_file():
            h.update(f"{f.relative_to(ROOT).as_posix()}:{f.stat().st_size}\0".encode())
    h.update(f"TSSD_FAST={os.environ.get('TSSD_FAST', '1')};python={sys.executable}".encode())
    return h.hexdigest()


def static_outputs(nb, stem: str) -> None:
    """Outputs a static page can show: plotly figures as HTML (drawn by the bundled plotly.js), each
    widget replaced by the figures its Output widgets held, and no widget state (it would load a widget
    manager from a CDN)."""
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    count = 0

    def html(data: dict) -> dict:
        nonlocal count
        count += 1
        fig = pio.from_json(json.dumps(data[PLOTLY_MIME]), skip_invalid=True)
        div = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"{stem}-figure-{count}")
        return {"text/html": div, "text/plain": data.get("text/plain", "<plotly figure>")}

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                outputs += [copy.deepcopy(o) for o in widget_outputs(data[WIDGET_VIEW]["model_id"], state)]
            else:
                outputs.append(out)
        for out in outputs:
            if PLOTLY_MIME in out.get("data", {}):
                out["data"] = html(out["data"])
                out.setdefault("metadata", {})
        cell.outputs = outputs
    nb.cells = [nbformat.from_dict(c) for c in nb.cells]


def widget_outputs(model_id: str, state: dict, seen: set | None = None) -> list[dict]:
    """The outputs held by the Output widgets inside widget `model_id` (its children, depth first)."""
    seen = set() if seen is None else seen
    if model_id in seen or model_id not in state:
        return []
    seen.add(model_id)
    model = state[model_id].get("state", {})
    found = list(model.get("outputs", []))
    for child in model.get("children", []):
        if isinstance(child, str) and child.startswith("IPY_MODEL_"):
            found += widget_outputs(child.removeprefix("IPY_MODEL_"), state, seen)
    return found


def api_reference() -> str:
    tree = ast.parse((ROOT / "tssd_viz" / "__init__.py").read_text())
    public = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)
    )
    lines = [
        "# API reference",
        "",
        "The public API: every name `import tssd_viz as tv` exports (`tssd_viz.__all__`), from its docstring. "
        "The lessons and the dashboard use nothing else.",
        "",
    ]
    listed = set()
    groups = {**API_GROUPS, "More": [n for n in public if not any(n in g for g in API_GROUPS.values())]}
    for title, names in groups.items():
        names = [n for n in names if n in public]
        if not names:
            continue
        lines += [f"## {title}", ""]
        for name in names:
            lines += [f"::: tssd_viz.{name}", ""]
            listed.add(name)
    assert listed == set(public), set(public) - listed
    return "\n".join(lines)


# -- links into the repository, and plotly.js where a page draws figures -----------------------------------

LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\(([^)\s]+)\)")


def on_page_markdown(markdown: str, page, config, files: Files, **_) -> str:
    docs = Path(config["docs_dir"]).resolve()
    if page.file.abs_src_path is None or not Path(page.file.abs_src_path).resolve().is_relative_to(docs):
        return markdown
    here = Path(page.file.abs_src_path).resolve().parent

    def repoint(m: re.Match) -> str:
        text, target = m.group(1), m.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:|#|/", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        resolved = (here / path).resolve()
        if resolved.is_relative_to(docs) or not resolved.is_relative_to(ROOT):
            return m.group(0)  # mkdocs checks links inside docs/
        rel = resolved.relative_to(ROOT).as_posix()
        if not resolved.exists():
            log.warning(f"Doc file '{page.file.src_uri}' links to '{target}', which is not in the repository")
            return m.group(0)
        published = files.get_file_from_path(rel)
        if published is not None:
            return f"[{text}]({posixpath.relpath(rel, posixpath.dirname(page.file.src_uri) or '.')})"
        return text if text.strip("`").rstrip("/") == rel else f"{text} (`{rel}`)"

    return LINK.sub(repoint, markdown)


def on_post_page(output: str, page, config, **_) -> str:
    if "plotly-graph-div" not in output:
        return output
    src = get_relative_url(PLOTLY_JS, page.url or "index.html")
    return output.replace("</head>", f'<script src="{src}"></script>\n</head>', 1)
