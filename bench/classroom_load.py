"""The dashboard under a class: N students, each opening the Train page, submitting a Quick look and watching it.

    python bench/classroom_load.py                     # 20 students, the Quick look as it is (3 epochs)
    python bench/classroom_load.py --students 4 --epochs 1

Every student is a browser session of one app process, driven through Streamlit's own protocol
(`streamlit.testing.v1.AppTest`): they share the app's job manager and runs folder as the sessions of a
served dashboard do. Each opens the app, picks the Quick look, presses Train, and from then on reloads its
page whenever the page's own timer would (`REFRESH_S`, 2 s) until its run is final. The sessions take
turns in one thread; a Streamlit server runs them in threads that share one interpreter lock, so the pages'
work is the same, done in a different order. A reload reruns the whole page, more than the page's
fragment timer does: the latency below is a bound from above.

What it prints: runs done / lost (a submit without a folder, or a folder that never ended done) / run twice
(a folder whose log.txt holds more than one launch, or whose step records repeat a step); and the time from
a step record being written to metrics.jsonl (seen by a thread that reads every run's file every 50 ms) to
the student's page showing it ("K step records"), as p50, p95 and the largest, over every record shown.

Measured on this project's 2-core machine (`python bench/classroom_load.py`: 20 students, the Quick look of
3 epochs, TSSD_MAX_RUNNING=1): 20 runs done, 0 lost, 0 run twice, 457 s in all; record -> page p50 3.4 s,
p95 12.9 s (8.5 s for the records written once every page was open; max 17.9 s; 1,320 records); a page run
0.15 s (median). Twenty pages reloading every 2 s in one thread is more than it keeps up with: each page
comes round every few seconds, and the records written while the class was still opening the app wait longest.

## 60 students on a 16-core machine (not run here: the plan)

- Serve the dashboard as the classroom does (`make serve`, TSSD_SERVE=classroom), one app process, with
  `TSSD_MAX_RUNNING=6`: each Quick look uses `train.threads` cores (set it to 2 for the class), so 6 runs
  keep 12 cores training and leave 4 to the server, the job manager and the pages.
- Drive it with this script on that machine: `python bench/classroom_load.py --students 60 --max-running 6`.
  The invariants stay the test's (every run done, none lost, none twice); what is measured is how long the
  last student waits for a slot (60 runs / 6 slots = 10 rounds of a Quick look) and the p95 latency.
- Expect: training time per round near one Quick look's (CPU bound, 2 threads each); the page latency
  grows with the number of sessions reloading per second (60 / 2 s = 30 page runs a second), which one
  interpreter lock serves on one core: if the p95 passes the 2 s refresh, the pages are the bottleneck,
  and the remedy is more app processes behind one runs folder (the queue's file lock already shares it)
  rather than more training slots. Measure both with --max-running 6 and 4 to see which side saturates.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app" / "main.py"
REFRESH_S = 2.0  # the watched run's fragment timer (app/dashboard/state.py)
FINAL = ("done", "failed", "cancelled")
SHOWN = re.compile(r"(Live|Final) · updated at step \d+ · (\d+) step records")


class RecordClock(threading.Thread):
    """When each step record of every run folder under `root` was first seen on disk (every 50 ms)."""

    def __init__(self, root: Path):
        super().__init__(daemon=True, name="record-clock")
        self.root, self.seen = root, {}  # (run, k) -> monotonic time step record k (1-based) was first read
        self._offsets: dict[str, tuple[int, int]] = {}  # run -> (bytes read, step records counted)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.05):
            for path in self.root.glob("*/metrics.jsonl"):
                self._read(path)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def _read(self, path: Path) -> None:
        run = path.parent.name
        offset, count = self._offsets.get(run, (0, 0))
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        whole = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next look
        now = time.monotonic()
        for line in whole.splitlines():
            try:
                kind = json.loads(line).get("kind")
            except (ValueError, AttributeError):
                continue
            if kind == "step":
                count += 1
                self.seen[(run, count)] = now
        self._offsets[run] = (offset + len(whole), count)


@dataclass
class Student:
    at: object  # the session's AppTest
    run: str  # the run folder its Train press made
    shown: int = 0  # step records its page has shown
    final: bool = False  # its page says "Final"
    reloaded: float = 0.0
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (when written, seconds until shown)
    page_s: list[float] = field(default_factory=list)  # seconds per page run


def folders(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir()} if root.exists() else set()


def open_student(root: Path, epochs: int) -> Student:
    """A new session on the Train page: Quick look, `epochs` epochs (0: as it is), Train."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=120).run()
    before = folders(root)
    at.selectbox(key="cfg_start").set_value("quick").run()
    if epochs:
        at.number_input(key="cfg_epochs").set_value(epochs).run()
    at.button(key="train_button").click().run()
    if at.exception:
        raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")
    made = sorted(folders(root) - before)
    if len(made) != 1:
        raise RuntimeError(f"one Train press made {len(made)} run folders: {made}")
    return Student(at, made[0], reloaded=time.monotonic())


def reload(student: Student, clock: RecordClock) -> None:
    """Rerun the student's page and note how late each newly shown step record is."""
    start = time.monotonic()
    student.at.run()
    now = time.monotonic()
    student.page_s.append(now - start)
    student.reloaded = now
    if student.at.exception:
        raise RuntimeError(f"{student.run}: the page raised {[e.value for e in student.at.exception]}")
    shown = [m for c in student.at.caption if (m := SHOWN.search(c.value))]
    if not shown:
        return
    live, count = shown[0].group(1), int(shown[0].group(2))
    for k in range(student.shown + 1, count + 1):
        written = clock.seen.get((student.run, k))
        if written is not None:  # read by the clock before the page showed it (else the clock was slower)
            student.latencies.append((written, max(0.0, now - written)))
    student.shown = max(student.shown, count)
    student.final = live == "Final"


def watch(students: list[Student], clock: RecordClock, timeout_s: float) -> None:
    """Reload each page when its timer would, until every page shows its run final."""
    deadline = time.monotonic() + timeout_s
    while not all(s.final for s in students):
        if time.monotonic() > deadline:
            late = [s.run for s in students if not s.final]
            raise TimeoutError(f"{len(late)} pages still not final after {timeout_s:.0f} s: {late[:5]}")
        due = [s for s in students if not s.final and time.monotonic() - s.reloaded >= REFRESH_S]
        if not due:
            time.sleep(0.05)
        for s in sorted(due, key=lambda s: s.reloaded):
            reload(s, clock)


def audit(root: Path, students: list[Student]) -> dict[str, list[str]]:
    """Which runs ended done, which were lost, which trained twice (names)."""
    from tssd_viz import RunFolder

    submitted = [s.run for s in students]
    out: dict[str, list[str]] = {"done": [], "lost": [], "twice": [], "strangers": []}
    for name in submitted:
        run = RunFolder(root / name)
        if not run.exists() or run.status().get("state") != "done":
            out["lost"].append(name)
            continue
        out["done"].append(name)
        launches = run.log_path.read_text(errors="replace").count("$ ")
        steps = [r["step"] for r in run.metrics("step")]
        if launches != 1 or any(b <= a for a, b in zip(steps, steps[1:])):
            out["twice"].append(name)
    out["strangers"] = sorted(folders(root) - set(submitted))
    if len(set(submitted)) != len(submitted):
        out["twice"] += sorted({n for n in submitted if submitted.count(n) > 1})
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def classroom(root: Path, students: int, epochs: int, max_running: int, timeout_s: float) -> dict:
    """Run the class; the figures as a dict (what `main` prints)."""
    os.environ.update(TSSD_RUNS_DIR=str(root), TSSD_MAX_RUNNING=str(max_running))
    root.mkdir(parents=True, exist_ok=True)
    clock = RecordClock(root)
    clock.start()
    t0 = time.monotonic()
    try:
        class_ = [open_student(root, epochs) for _ in range(students)]
        opened_s = time.monotonic() - t0
        watch(class_, clock, timeout_s)
    finally:
        clock.stop()
    result = audit(root, class_)
    latencies = [late for s in class_ for _, late in s.latencies]
    # Records written while later students were still opening the app wait for the class to sit down:
    # the steady state is the records written after every page is open.
    steady = [late for s in class_ for written, late in s.latencies if written >= t0 + opened_s]
    pages = [x for s in class_ for x in s.page_s]
    return {
        "students": students,
        "max_running": max_running,
        **{k: len(v) for k, v in result.items()},
        "names": {k: v for k, v in result.items() if v and k != "done"},
        "records_shown": len(latencies),
        "latency_p50_s": percentile(latencies, 0.5),
        "latency_p95_s": percentile(latencies, 0.95),
        "latency_max_s": max(latencies, default=float("nan")),
        "latency_p95_steady_s": percentile(steady, 0.95),
        "page_run_p50_s": percentile(pages, 0.5),
        "open_and_submit_s": opened_s,
        "wall_s": time.monotonic() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=0, help="the Quick look's epochs (0: as it is, 3)")
    ap.add_argument("--max-running", type=int, default=1, help="TSSD_MAX_RUNNING (1: one run at a time)")
    ap.add_argument("--runs-dir", default="", help="default: a new folder under the system's temporary folder")
    ap.add_argument("--timeout-s", type=float, default=3600.0)
    args = ap.parse_args(argv)
    for name, most in (("students", 1000), ("max_running", 64), ("timeout_s", 7 * 86400)):
        value = getattr(args, name)  # nan and inf too, before any session starts
        if not (math.isfinite(value) and 0 < value <= most):
            ap.error(f"--{name.replace('_', '-')} should be a number in (0, {most}], got {value}")
    if args.epochs < 0:
        ap.error(f"--epochs should be 0 (the Quick look's own) or more, got {args.epochs}")
    root = Path(args.runs_dir or tempfile.mkdtemp(prefix="classroom-")) / "runs"
    figures = classroom(root, args.students, args.epochs, args.max_running, args.timeout_s)
    print(json.dumps(figures, indent=1))
    print(
        f"{figures['students']} students, {os.cpu_count()} cores, TSSD_MAX_RUNNING={figures['max_running']}: "
        f"{figures['done']} runs done, {figures['lost']} lost, {figures['twice']} run twice; "
        f"record -> page p50 {figures['latency_p50_s']:.1f} s, p95 {figures['latency_p95_s']:.1f} s "
        f"(max {figures['latency_max_s']:.1f} s, {figures['records_shown']} records; "
        f"p95 {figures['latency_p95_steady_s']:.1f} s once every page is open); "
        f"a page run {figures['page_run_p50_s']:.2f} s (median); {figures['wall_s']:.0f} s in all; runs in {root}"
    )
    return 0 if figures["done"] == figures["students"] and not figures["twice"] else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
