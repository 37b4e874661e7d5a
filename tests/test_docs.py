"""The documentation site: it builds in strict mode (a broken link, a missing anchor, page or reference fails),
every public name has its entry in the API reference, and in Chromium a lesson's figures draw with nothing
fetched from elsewhere (the built site served on 127.0.0.1). The results tables of its pages and README's
summary are what the commands printed under them write, byte for byte; README stays a front door.

The build executes the lessons in fast mode (docs/hooks.py), or reuses their executed copies in
.cache/docs-lessons/ while the lessons, the package and the committed results are unchanged.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from waiting import CHROMIUM, CHROMIUM_ARGS, free_port, local_server  # tests/waiting.py

import tssd_viz

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "TSSD_FAST": "1", "NO_MKDOCS_2_WARNING": "1"}
    env.pop("TSSD_DOCS_EXECUTE", None)  # the lessons with their outputs
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-5000:]
    assert not re.search(r"^WARNING\s+-", build.stderr, re.M), build.stderr[-5000:]  # strict fails on these too
    return out


@pytest.mark.timeout(1500)  # from a clean clone it executes every lesson (lesson 5 alone: ~3 min on 2 cores)
def test_the_site_builds_strict_with_every_page(site):
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    expected = {"index.html", "dashboard.html", "SPEC.html", "method.html", "reference.html", "changelog.html"}
    expected |= {f"lessons/{p.stem}.html" for p in LESSONS}
    assert expected <= pages, expected - pages
    for lesson in LESSONS:  # executed: the outputs are there
        html = (site / "lessons" / f"{lesson.stem}.html").read_text()
        assert "jp-OutputArea-output" in html, lesson.name


def test_the_api_reference_has_every_public_name(site):
    html = (site / "reference.html").read_text()
    ids = set(re.findall(r'id="(tssd_viz\.[\w.]+)"', html))
    missing = [name for name in tssd_viz.__all__ if f"tssd_viz.{name}" not in ids]
    assert missing == []


DRAWN_JS = "() => [...document.querySelectorAll('.js-plotly-plot')].map(p => !!p.querySelector('.main-svg'))"


def test_a_lessons_figures_draw_in_chromium_with_nothing_fetched_elsewhere(site, tmp_path):
    from playwright.sync_api import sync_playwright

    lesson = f"lessons/{LESSONS[0].stem}.html"
    figures = (site / lesson).read_text().count('class="plotly-graph-div"')
    assert figures >= 5, figures
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = ["http.server", "--bind", "127.0.0.1", "--directory", str(site), str(port)]
    elsewhere, errors = [], []
    with local_server(server, url, tmp_path / "http.log", cwd=ROOT, env=dict(os.environ)), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: r.url.startswith((url, "data:", "blob:")) or elsewhere.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + lesson)
        page.wait_for_function(
            "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n", arg=figures, timeout=60_000
        )
        drawn = page.evaluate(DRAWN_JS)
        browser.close()
    assert len(drawn) == figures and all(drawn)
    assert errors == [] and elsewhere == [], (errors, elsewhere)


# (page, section, sweep folder): each generated section and the run folders it is rebuilt from.
SECTIONS = [
    ("README.md", "controls-summary", "results/controls-event-digits"),
    ("docs/results/index.md", "controls", "results/controls-event-digits"),
    ("docs/results/index.md", "race-controls", "results/cifar10-race-controls"),
    ("docs/results/cifar10.md", "results", "results/cifar10-classroom"),
    ("docs/results/cifar10.md", "race", "results/cifar10-race"),
    ("docs/results/events.md", "events-results", "results/event-digits"),
]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The committed results and the pages, copied: the commands rewrite summaries and figures beside the runs."""
    copy = tmp_path_factory.mktemp("checkout")
    shutil.copytree(ROOT / "results", copy / "results")
    for page in {page for page, _, _ in SECTIONS}:
        (copy / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / page, copy / page)
    return copy


@pytest.mark.parametrize("page, section, sweep", SECTIONS, ids=lambda v: str(v).replace("/", "-"))
def test_a_generated_section_is_its_printed_command_byte_for_byte(checkout, page, section, sweep):
    options = f"--sweep-dir {sweep} --readme {page}" + ("" if section == "results" else f" --readme-section {section}")
    assert f"python -m tssd_viz sweep --summarize-only {options}`" in (ROOT / page).read_text()  # said under it
    run = subprocess.run(
        [sys.executable, "-m", "tssd_viz", "sweep", "--summarize-only", *options.split()],
        cwd=checkout,  # from the root of a checkout, as the page says
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (checkout / page).read_text() == (ROOT / page).read_text()


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    summary = text[text.index("<!-- controls-summary:start -->") : text.index("<!-- controls-summary:end -->")]
    assert re.search(r"\d+ seeds per arm\. Code: tssd-viz [\d.]+ \(commit [0-9a-f]{12}\)", summary)  # what made it
    assert "make run    # set up (.venv) and serve the dashboard" in text and "make test   # set up (.venv)" in text
    links = re.findall(r"\]\(([^)#\s]+)[^)]*\)", text)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert len(local) >= 10 and [link for link in local if not (ROOT / link).exists()] == []
