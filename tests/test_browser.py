"""The dashboard in a real browser: `streamlit run app/main.py` driven by headless Chromium.

Two browser sessions at once: the first trains a tiny run and watches its live charts update; the
second presses Train while the only slot is taken, sees its run queued, and cancels it. Timings go to
test-artifacts/dashboard-timings.json, the final page to test-artifacts/dashboard.png. On the way, what a
new user tripped over: one progress bar and one Cancel while a run trains, "Start from" opening at the
first click after a run, tick labels and eval labels as drawn, and no request leaving the server.
"""

import json
import os
import re
import signal
import statistics
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from waiting import CHROMIUM, CHROMIUM_ARGS, free_port, local_server, wait_for

from tssd_viz import RunFolder

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
VIEWPORT = {"width": 1500, "height": 1000}


@pytest.fixture
def dashboard(tmp_path):
    """`streamlit run app/main.py` on a free localhost port, with its own runs folder."""
    runs, port = tmp_path / "runs", free_port()
    env = {**os.environ, "TSSD_RUNS_DIR": str(runs), "TSSD_MAX_RUNNING": "1", "PYTHONUNBUFFERED": "1"}
    args = [
        "streamlit",
        "run",
        "app/main.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    url = f"http://127.0.0.1:{port}/"
    with local_server(args, url + "_stcore/health", tmp_path / "streamlit.log", cwd=REPO, env=env):
        yield url, runs  # the server stops on exit; runs live in their own sessions
    for p in runs.iterdir() if runs.exists() else []:  # and leave no training process behind
        st = RunFolder(p).status() if p.is_dir() else {}
        if st.get("state") == "running" and isinstance(st.get("pid"), int):
            try:
                os.kill(st["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass


def open_app(browser, url: str, elsewhere: list[str] | None = None) -> Page:
    """A new session on `url`; `elsewhere` collects every request it makes off the app's own server."""
    page = browser.new_context(viewport=VIEWPORT).new_page()  # a context of its own: a session of its own
    if elsewhere is not None:
        page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else elsewhere.append(r.url))
    page.goto(url)
    expect(page.locator(".st-key-train_button button")).to_be_enabled(timeout=90_000)
    return page


def choose(page: Page, key: str, option: str) -> None:
    page.locator(f".st-key-{key}").click()
    page.get_by_role("option", name=option).click()


def settled_input(page: Page, key: str, value: str | None = None):
    """The form field `key`'s input on the page as it stands (with `value`, once it shows it). While a rerun
    redraws the form, the previous run's copy of a field stands beside the new one, marked stale, for
    seconds on a loaded machine; a strict locator then finds two."""
    field = page.locator(f'.st-key-{key}:not([data-stale="true"]) input')
    values = lambda: field.evaluate_all("xs => xs.map(x => x.value)")  # noqa: E731

    wait_for(lambda: len(v := values()) == 1 and v[0] == (value or v[0]), timeout=90, what=f"{key} = {value}")
    return field


# Runs in the page from the click on: every change of the live status line, with the browser's clock and
# how many points the loss chart then holds, whatever the test is doing meanwhile in the other session.
WATCH_LIVE = """() => {
    window.__live = {start: performance.now(), changes: []};
    setInterval(() => {
        const box = document.querySelector('.st-key-live_status');
        const text = box ? box.innerText.trim() : '';
        const log = window.__live.changes;
        if (!text || (log.length && log[log.length - 1].text === text)) return;
        const plot = document.querySelector('.st-key-live_loss .js-plotly-plot');
        const points = plot && plot.data && plot.data.length ? plot.data[0].x.length : null;
        log.push({t: (performance.now() - window.__live.start) / 1000, text, points});
    }, 50);
}"""


# True once the live status line has named two different steps and the loss chart has held two different
# numbers of points (what the test asserts at the end), or once the run is over (the assertions then say why).
LIVE_TWICE = """() => {
    const live = window.__live.changes.filter(c => c.text.startsWith('Live · updated at step'));
    const steps = new Set(live.map(c => c.text.match(/step (\\d+)/)[1]));
    const points = new Set(live.filter(c => c.points).map(c => c.points));
    const over = window.__live.changes.some(c => c.text.startsWith('Final'));
    return (steps.size >= 2 && points.size >= 2) || over;
}"""


# A chart's text labels (scatter text and annotations, such as the eval labels "n=1", ...): how many there
# are, and those that reach beyond its plot area (where plotly clips them) or overprint another label.
LABEL_TROUBLE = """(key) => {
    const plot = document.querySelector(key + ' .js-plotly-plot .nsewdrag').getBoundingClientRect();  // the plot area
    const labels = [...document.querySelectorAll(
        key + ' .js-plotly-plot .textpoint text, ' + key + ' .js-plotly-plot .annotation-text')]
        .map(t => [t.textContent, t.getBoundingClientRect()]).filter(([text, _]) => text.trim());
    const outside = labels.filter(([_, r]) => r.left < plot.left - 1 || r.right > plot.right + 1)
        .map(([text, r]) => `${text}: ${r.left}..${r.right} outside ${plot.left}..${plot.right}`);
    const overlap = (a, b) =>
        a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
    const overprinted = labels.flatMap(([ta, ra], i) => labels.slice(i + 1)
        .filter(([_, rb]) => overlap(ra, rb)).map(([tb, _]) => `${ta} over ${tb}`));
    return {count: labels.length, trouble: outside.concat(overprinted)};
}"""


# Watches, at every change of the page, for a part (a keyed element) that is shown twice at once: the old
# copy of a redrawn chart left standing beside the new one, or a part moved by a note that came and went.
# Hidden copies (the dashboard hides a chart's old copy) do not count. window.__copies lists what was seen.
WATCH_COPIES = """() => {
    window.__copies = [];
    new MutationObserver(() => {
        const seen = {};
        for (const e of document.querySelectorAll('.stElementContainer[class*="st-key-"]')) {
            if (e.offsetParent === null) continue;  // not displayed
            const key = [...e.classList].find(c => c.startsWith('st-key-'));
            seen[key] = (seen[key] || 0) + 1;
        }
        const twice = Object.keys(seen).filter(k => seen[k] > 1);
        if (twice.length && window.__copies.length < 20) window.__copies.push(twice.join(', '));
    }).observe(document.body, {childList: true, subtree: true, attributes: true});
}"""


def test_train_and_watch_in_a_real_browser(dashboard):
    url, runs = dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        elsewhere: list[str] = []  # the dashboard works offline: nothing may be fetched from anywhere else
        one, two = open_app(browser, url, elsewhere), open_app(browser, url)

        choose(one, "cfg_start", "Quick look · digits, seconds")  # whatever the first visit started from
        settled_input(one, "cfg_epochs", "3")
        # Train for 20 s of training time on any machine (all digits, epochs as a cap): long enough to see
        # several refreshes (every 2 s) even when they arrive seconds late on a loaded machine.
        for key, value in (("cfg_limit_train", "0"), ("cfg_epochs", "50"), ("cfg_time_budget_s", "20")):
            field = settled_input(one, key)
            field.fill(value)
            field.press("Enter")
        expect(one.get_by_text(re.compile(r"on digits, 50 epochs or 20 s"))).to_be_visible(timeout=30_000)
        one.locator(".st-key-train_button button").click()
        one.evaluate(WATCH_LIVE)
        one.evaluate(WATCH_COPIES)
        expect(one.get_by_text(re.compile(r"^Submitted "))).to_be_visible(timeout=30_000)
        name_one = sorted(p.name for p in runs.iterdir() if p.is_dir())[0]

        # A second session presses Train while the only slot is taken: its run waits, then is cancelled.
        two.locator(".st-key-train_button button").click()
        expect(two.get_by_text(re.compile(r"queued \(1st in line\)"))).to_be_visible(timeout=30_000)
        name_two = next(p.name for p in runs.iterdir() if p.is_dir() and p.name != name_one)
        two.locator(".st-key-cancel_watched button").locator("visible=true").first.click()
        expect(two.get_by_text("cancelled while queued; it never started")).to_be_visible(timeout=30_000)

        # While it trains, one progress bar and one Cancel: the watched run's (the runs panel leaves it out).
        expect(one.locator(".st-key-live_status").filter(has_text="Live · updated at step")).to_be_visible(
            timeout=60_000
        )
        expect(one.get_by_test_id("stProgress")).to_have_count(1)
        expect(one.get_by_role("button", name=re.compile("Cancel"))).to_have_count(1)

        # Live updates while it trains: waited for as conditions, however late a loaded machine delivers them.
        one.wait_for_function(LIVE_TWICE, timeout=240_000)

        # The first session's live charts, until the run is done (the rerun then replaces the live line).
        final = one.locator(".st-key-live_status").filter(has_text="Final · updated at step")
        expect(final).to_be_visible(timeout=240_000)
        expect(one.locator(".st-key-live_status")).to_have_count(1, timeout=30_000)
        # The first click on "Start from" opens its list, even with the sidebar scrolled down to the fields at
        # its end: the list closes when the sidebar scrolls, so the select box must not need scrolling to.
        one.get_by_test_id("stSidebarContent").evaluate("e => e.scrollTop = e.scrollHeight")
        one.locator(".st-key-cfg_start").click()
        expect(one.get_by_role("option", name="Digits · offline, 8 epochs")).to_be_visible(timeout=5_000)
        one.keyboard.press("Escape")
        assert RunFolder(runs / name_one).status()["state"] == "done", RunFolder(runs / name_one).status()
        assert one.evaluate("window.__copies") == [], "a part of the page stood twice while it refreshed"
        changes = one.evaluate("() => window.__live.changes")
        live = [c for c in changes if c["text"].startswith("Live · updated at step")]
        steps = [int(re.search(r"step (\d+)", c["text"]).group(1)) for c in live]
        counts = {c["points"] for c in live if c["points"]}
        assert len(set(steps)) >= 2, f"the live chart should update at least twice while training: {changes}"
        assert len(counts) >= 2, f"the loss chart's points should grow in the browser: {changes}"
        gaps = [b["t"] - a["t"] for a, b in zip(changes, changes[1:]) if a["text"].startswith(("Live", "No step"))]

        # The cancelled run never started: the limit of one run at a time held.
        st_two = RunFolder(runs / name_two).status()
        assert st_two["state"] == "cancelled" and not (runs / name_two / "log.txt").exists()

        # A new session opened on the run's address re-attaches to it.
        three = browser.new_context(viewport=VIEWPORT).new_page()
        three.goto(url + f"?run={name_one}")
        expect(three.locator(".st-key-live_status")).to_contain_text("Final · updated at step", timeout=90_000)

        one.set_viewport_size({"width": 1500, "height": 4800})
        expect(one.locator(".st-key-live_final .js-plotly-plot")).to_be_visible(timeout=30_000)
        time.sleep(2)  # let plotly lay the charts out at the new size
        one.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        # As drawn: neighbouring percent ticks differ, and the eval labels ("n=1", ...) lie inside their plot,
        # none over another.
        ticks = one.locator(".st-key-live_final .ytick text").evaluate_all("ts => ts.map(t => t.textContent)")
        assert len(ticks) >= 3 and all(a != b for a, b in zip(ticks, ticks[1:])), ticks
        labels = one.evaluate(LABEL_TROUBLE, ".st-key-live_accuracy")
        assert labels["count"] >= 2 and labels["trouble"] == [], labels

        # Every other page, offline too: no request leaves the app's server (the tab icon is ours).
        for path, title in (("compare", "Compare runs"), ("inspect", "Inspect a run"), ("playground", "Neuron")):
            one.goto(url + path)
            expect(one.get_by_role("heading", name=re.compile(title))).to_be_visible(timeout=60_000)
        assert elsewhere == [], elsewhere
        browser.close()

    (ARTIFACTS / "dashboard-timings.json").write_text(
        json.dumps(
            {
                "click_to_first_live_point_s": round(live[0]["t"], 2),
                "refresh_interval_s": {
                    "median": round(statistics.median(gaps), 2),
                    "min": round(min(gaps), 2),
                    "max": round(max(gaps), 2),
                    "n": len(gaps),
                }
                if gaps
                else None,
                "live_updates_seen": len(set(steps)),
                "steps_seen_live": [min(steps), max(steps)],
                "loss_chart_points_seen": [min(counts), max(counts)],
                "second_session": {"run": name_two, "state": st_two["state"], "message": st_two["message"]},
            },
            indent=2,
        )
        + "\n"
    )


def test_a_prepared_experiment_from_click_to_verdict_in_a_real_browser(dashboard):
    """ "Does the temporal teacher help on event data?" with tiny settings (3 arms x 3 seeds, one run at a time):
    the verdict forms in the page; the click-to-verdict time goes to test-artifacts/experiment-timings.json."""
    url, runs = dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        elsewhere: list[str] = []
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else elsewhere.append(r.url))
        page.goto(url + "experiment")
        expect(page.locator(".st-key-exp_run button")).to_be_enabled(timeout=90_000)
        choose(page, "exp_question", "Does the temporal teacher help on event data?")
        expect(page.get_by_text("Arms: baseline, tsd, tsd·noKL.")).to_be_visible(timeout=30_000)
        tiny = page.locator(".st-key-exp_shared input")
        tiny.fill("train.epochs=1, data.limit_train=128, data.limit_test=64, model.width=0.25")
        tiny.press("Enter")
        expect(page.locator(".st-key-exp_run button")).to_be_enabled(timeout=30_000)
        clicked = time.monotonic()
        page.locator(".st-key-exp_run button").click()
        expect(page.get_by_text(re.compile(r"^Started events-"))).to_be_visible(timeout=30_000)
        page.evaluate(WATCH_COPIES)
        # While it runs the verdict box fills seed by seed; at the end it speaks for all seeds.
        verdict = page.locator(".st-key-exp_verdict")
        expect(verdict.filter(has_text="Verdict (all seeds)").first).to_be_visible(timeout=600_000)
        seconds = time.monotonic() - clicked
        # The page redraws once at the end, without Cancel and without its timer. Until that run is over, a part
        # that changed can stand twice: Streamlit keeps the old copy, stale, beside the new one (a changed figure
        # is a new chart) until the run ends. So wait for the quiet page before reading it.
        expect(page.locator(".st-key-exp_cancel")).to_have_count(0, timeout=60_000)
        expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_have_count(1)
        for key in ("exp_verdict", "exp_status", "exp_figure"):
            expect(page.locator(f".st-key-{key}")).to_have_count(1, timeout=30_000)
        expect(verdict).to_contain_text("tsd vs baseline")
        expect(verdict).to_contain_text("the KL term (tsd vs tsd·noKL)")
        status = page.locator(".st-key-exp_status").inner_text()
        assert page.evaluate("window.__copies") == [], "a part of the page stood twice while it refreshed"
        assert "9 of 9 runs done" in status, status
        expect(page.locator(".st-key-exp_figure .js-plotly-plot")).to_be_visible(timeout=30_000)
        ticks = page.locator(".st-key-exp_figure .ytick text").evaluate_all("ts => ts.map(t => t.textContent)")
        assert ticks and all(re.fullmatch(r"\d+%|[−-]?\d+ pt", t) for t in ticks), ticks  # whole points only
        page.set_viewport_size({"width": 1500, "height": 2000})
        time.sleep(2)  # plotly lays the figure out at the new size
        page.screenshot(path=str(ARTIFACTS / "experiment.png"), full_page=True)
        assert elsewhere == [], elsewhere
        text = verdict.inner_text()
        browser.close()
    (ARTIFACTS / "experiment-timings.json").write_text(
        json.dumps(
            {
                "question": "events",
                "tiny": True,
                "click_to_verdict_s": round(seconds, 1),
                "status": status,
                "verdict": text,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
