"""The dashboard's pages for the site (docs/images/*.png): `python docs/screenshots.py RUNS_DIR [PAGE ...]`.

Serves the dashboard on 127.0.0.1:8690 over RUNS_DIR (offline, as `make run`), opens each page in headless
Chromium and saves it 1120 px wide in 256 colours. RUNS_DIR should hold two finished runs to compare and
inspect (the pictures have `--preset quick`, baseline and tssd, seed 0). The experiment page runs the prepared
question "Does the temporal teacher help on event data?" with `train.epochs=2` (9 runs: minutes) unless the
runs folder already has one ("experiment-view" shows the newest).
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from waiting import CHROMIUM, CHROMIUM_ARGS, wait_for  # noqa: E402

PORT, WIDTH = 8690, 1120
PAGES = {"compare": ("compare", 1000), "inspect": ("inspect", 1500), "neuron": ("playground", 1000)}


def healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(url + "_stcore/health", timeout=2).status == 200
    except OSError:
        return False


def save(page, raw: Path, out: Path) -> None:
    page.screenshot(path=str(raw))
    img = Image.open(raw).convert("RGB")
    img = img.resize((WIDTH, round(img.height * WIDTH / img.width)), Image.LANCZOS)
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
    print(out.name, out.stat().st_size, "bytes")


def main(runs: Path, wanted: list[str]) -> None:
    out_dir, url = ROOT / "docs" / "images", f"http://127.0.0.1:{PORT}/"
    out_dir.mkdir(exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true"]
        + ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
        + ["--server.address", "127.0.0.1", "--server.port", str(PORT)],
        cwd=ROOT,
        env={**os.environ, "TSSD_RUNS_DIR": str(runs)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: healthy(url), 120, "the dashboard")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            raw = runs / "screenshot.png"
            for name in wanted:
                if name in PAGES:
                    path, height = PAGES[name]
                    page.set_viewport_size({"width": 1400, "height": height})
                    page.goto(url + path)
                    page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
                else:  # experiment, experiment-view
                    page.set_viewport_size({"width": 1400, "height": 1650})
                    page.goto(url + "experiment")
                    if name == "experiment":
                        page.locator(".st-key-exp_run button").wait_for(timeout=90_000)
                        page.locator(".st-key-exp_shared input").fill("train.epochs=2")
                        page.locator(".st-key-exp_shared input").press("Enter")
                        time.sleep(3)
                        page.locator(".st-key-exp_run button").click()
                    verdict = page.locator(".st-key-exp_verdict").filter(has_text="Verdict (all seeds)")
                    verdict.first.wait_for(timeout=1_800_000)
                    name = "experiment"
                time.sleep(8)  # plotly lays the figures out
                save(page, raw, out_dir / f"{name}.png")
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), sys.argv[2:] or ["compare", "inspect", "neuron", "experiment"])
