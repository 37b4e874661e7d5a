"""The speed-and-memory benchmark: one command, one table of ratios measured in the same run.

    python bench/run.py                 # full: VGG 64-128-M-256-256-M-512-512-M, batch 64, T = 4,
                                        #       then the 120-second classroom runs (3 seeds each)
    python bench/run.py --no-classroom  # the step/memory/allocator rows only (a few minutes)
    python bench/run.py --quick         # tiny shapes, seconds (the test suite's smoke test)

Every row is a ratio of two things measured in this run, because the machine may be shared and
absolute times are not comparable between runs. The last lines say what produced the table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench import harness  # noqa: E402
from bench.harness import Shape  # noqa: E402
from tssd_viz.config import ALLOCATORS  # noqa: E402

NAME = 70  # the measure column's width: the longest row name
FULL, QUICK = Shape(), Shape(arch="vgg_small", width=0.25, batch=8, size=16, T=4)


class Table:
    """A markdown table, printed row by row as results arrive (fixed-width, paste-ready)."""

    def __init__(self):
        self.rows: list[tuple[str, str, str, str]] = []
        self.notes: list[str] = []  # printed after the table: what produced it
        print(f"| {'measure':<{NAME}} | {'measured':>9} | {'target':>8} | {'met':<3} |", flush=True)
        print(f"|{'-' * (NAME + 2)}|{'-' * 11}|{'-' * 10}|{'-' * 5}|", flush=True)

    def row(self, name: str, value: float, target: str = "", fmt: str = "{:.2f}x") -> None:
        met = ""
        if target:
            op, bound = target[:2], float(target[2:].rstrip("x%"))
            met = "yes" if (value <= bound if op == "<=" else value >= bound) else "no"
        text = fmt.format(value)
        self.rows.append((name, text, target, met))
        print(f"| {name:<{NAME}} | {text:>9} | {target:>8} | {met:<3} |", flush=True)


def medians(shape: Shape, variants: list[str], reps: int, allocator: str = "auto", tune: bool = True) -> dict:
    """Median step seconds of `variants`, timed round-robin in a fresh process that holds only them, under
    `allocator` (train.allocator; auto, the default path, unless a row says otherwise)."""
    spec = {"variants": variants, "shape": vars(shape), "reps": reps, "allocator": allocator, "tune": tune}
    return harness.in_fresh_process("medians", spec)["medians"]


def step_rows(table: Table, shape: Shape, reps: int, compiled: bool) -> None:
    """Each comparison in a process of its own that holds only the variants it compares, as a training
    process holds one network: variants sharing a process disturb each other's caches and heap (in one
    seven-variant process the fused step measured up to 9% slower against the same ANN)."""
    m = medians(shape, ["ann", "ours"], reps)
    limit = shape.T * m["ann"]
    table.row(f"1. SNN step T={shape.T} / ({shape.T} x ANN step, channels_last)", m["ours"] / limit, "<=1.10x")
    m = medians(shape, ["tutorial", "ours"], reps)
    table.row("2. snntorch-tutorial step / ours, same allocator", m["tutorial"] / m["ours"], ">=1.30x")
    as_shipped_row(table, shape, reps)
    m = medians(shape, ["ann", "tutorial"], reps)
    table.row(f"   snntorch-tutorial step / ({shape.T} x ANN step)", m["tutorial"] / (shape.T * m["ann"]))
    m = medians(shape, ["autograd", "ours"] + ["compiled"] * compiled, reps)
    table.row("   autograd-loop LIF step / fused LIF step", m["autograd"] / m["ours"])
    if compiled:
        table.row("   torch.compile'd autograd LIF step / fused LIF step", m["compiled"] / m["ours"])
    m = medians(shape, ["plain2", "tssd_shared", "tssd_continue"], reps)
    table.row("3. TSSD(4,2) step, tsd_pass=continue / plain T=2 step", m["tssd_continue"] / m["plain2"], "<=1.50x")
    table.row("   TSSD(4,2) step, tsd_pass=shared (default) / plain T=2", m["tssd_shared"] / m["plain2"])
    m = medians(shape, ["plain2", "s2w2", "w2s2"], max(reps, 3 * reps))  # a 5% target: more repetitions
    table.row("6. s2w step, T_s=2 / plain T=2 step (no extra timesteps)", m["s2w2"] / m["plain2"], "<=1.05x")
    table.row("   w2s step, T_s=2 / plain T=2 step", m["w2s2"] / m["plain2"], "<=1.05x")


def as_shipped_row(table: Table, shape: Shape, reps: int, rounds: int = 2) -> None:
    """Target 2 as a user meets it: the tutorial code under glibc's defaults against tssd_viz with
    its default allocator tuning. A process has one allocator, so each side runs in fresh processes,
    alternated (A B A B) so that both see the machine of each moment; the ratio of the medians."""
    seconds: dict[str, list[float]] = {"tutorial": [], "ours": []}
    for _ in range(rounds):
        for variant, malloc, tune in (("tutorial", "glibc", False), ("ours", "auto", True)):
            seconds[variant].append(medians(shape, [variant], reps, malloc, tune)[variant])
    ratio = statistics.median(seconds["tutorial"]) / statistics.median(seconds["ours"])
    table.row("2. as shipped: tutorial, glibc defaults / ours, default allocator", ratio, ">=1.30x")


def memory_rows(table: Table, shape: Shape) -> None:
    """What one step keeps, each variant in a fresh process under the same malloc: glibc's defaults,
    which hand large blocks back to the kernel when freed, so the peak is what the step held and not
    what an allocator kept for the next step. The default allocator's peak follows, for reference."""
    mem = {}
    for v in ("tutorial", "ours", "ann"):  # one fresh process each
        spec = {"variant": v, "shape": vars(shape), "allocator": "glibc", "tune": False}
        mem[v] = harness.in_fresh_process("memory", spec)["activation_bytes"]
    table.row(f"4. activation memory T={shape.T}, ours / snntorch-tutorial", mem["ours"] / mem["tutorial"], "<=0.50x")
    for v in ("tutorial", "ours", "ann"):
        table.row(f"   peak RSS above the model, {v}", mem[v] / 2**30, fmt="{:.2f} GB")
    got = harness.in_fresh_process("memory", {"variant": "ours", "shape": vars(shape)})
    table.row(
        f"   same, ours under the default allocator ({got['allocator']})",
        got["activation_bytes"] / 2**30,
        fmt="{:.2f} GB",
    )


def allocator_rows(table: Table, shape: Shape, reps: int, choices: tuple[str, ...] = ALLOCATORS) -> None:
    """Ours / (T x ANN) under each malloc that `python -m tssd_viz train` runs on this machine, by what
    its env.json records for each train.allocator, and glibc's defaults for reference; each in a process
    of its own (a process has one malloc), started the way a training process starts."""
    m = medians(shape, ["ann", "ours"], reps, "glibc", tune=False)
    table.row(
        f"   allocator glibc, defaults (tune_allocator off), step / {shape.T} x ANN", m["ours"] / (shape.T * m["ann"])
    )
    ran_by: dict[str, list[str]] = {}  # what ran -> the train.allocator values that ran it
    with tempfile.TemporaryDirectory() as tmp:
        for choice in choices:
            ran_by.setdefault(harness.cli_allocator(choice, Path(tmp) / choice), []).append(choice)
    for ran, asked in ran_by.items():
        spec = {"variants": ["ann", "ours"], "shape": vars(shape), "reps": reps, "allocator": asked[0]}
        got = harness.in_fresh_process("medians", spec)
        if got["allocator"] != ran:
            raise RuntimeError(f"train.allocator {asked[0]}: train ran {ran}, the bench's process {got['allocator']}")
        name = "glibc, tuned" if ran == "glibc" else ran
        table.row(
            f"   allocator {name} (train.allocator {'/'.join(asked)}), step / {shape.T} x ANN",
            got["medians"]["ours"] / (shape.T * got["medians"]["ann"]),
            "<=1.10x" if "auto" in asked else "",  # the default path
        )


def classroom_rows(table: Table, seeds: list[int], budget_s: float, quick: bool, with_continue: bool) -> None:
    if quick:  # the digits preset stands in: the same code path in seconds
        data = ["--data.dataset", "digits", "--model.width", "0.25", "--data.batch-size", "64"]
    else:
        root = next(
            (
                p
                for p in (harness.ROOT / ".data" / "cifar10", harness.ROOT.parent / "shared" / "data" / "cifar10")
                if p.exists()
            ),
            None,
        )
        if root is None:
            print("(classroom rows skipped: no CIFAR-10 folder at .data/cifar10)")
            return
        data = ["--data.root", str(root)]  # the preset as it is: CIFAR-10, all 50,000 training images
    modes = [("tssd", []), ("baseline", [])]
    if with_continue:
        modes.append(("tssd", ["--distill.tsd-pass", "continue", "--distill.teacher-ce", "False"]))
    with tempfile.TemporaryDirectory() as tmp:
        got: dict[int, list[harness.ClassroomResult]] = {i: [] for i in range(len(modes))}
        for seed in seeds:  # seeds outermost: the modes share the machine's state of each moment
            for i, (mode, extra) in enumerate(modes):
                run_dir = Path(tmp) / f"{i}-{seed}"
                got[i].append(harness.classroom_run(mode, seed, budget_s, data, run_dir, extra))
        # The malloc the CLI chose for itself (train.allocator = auto), as the first run recorded it.
        ran = json.loads((Path(tmp) / f"0-{seeds[0]}" / "env.json").read_text())["allocator"]["name"]
    label = f"{int(budget_s)} s, {len(seeds)} seed{'s' * (len(seeds) > 1)}"
    table.notes.append(f"classroom runs: train.allocator = auto ran {ran} (their env.json)")
    names = ["TSSD(4,2)", "baseline", "TSSD continue"]
    for i, results in got.items():  # the spread and each seed, for the row's mean
        accs = [100 * r.acc for r in results]
        spread = f" ± {statistics.stdev(accs):.1f}" if len(accs) > 1 else ""
        each = ", ".join(f"seed {s}: {a:.1f}% in {r.steps} steps" for s, a, r in zip(seeds, accs, results))
        table.notes.append(f"classroom {names[i]}: {statistics.mean(accs):.1f}{spread}% (std over seeds); {each}")
    means = [statistics.mean(r.acc for r in got[i]) for i in range(len(modes))]
    table.row(f"5. classroom preset, TSSD(4,2), test acc at T_s=2 ({label})", 100 * means[0], ">=70%", fmt="{:.1f}%")
    table.row("   same preset and budget, baseline (plain T_s=2 training)", 100 * means[1], fmt="{:.1f}%")
    if with_continue:
        table.row("   same, TSSD with tsd_pass=continue, teacher_ce=false", 100 * means[2], fmt="{:.1f}%")


def describe(shape: Shape, started: float, load_before: float) -> None:
    cpu = (
        next(
            (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
            platform.processor(),
        )
        if os.path.exists("/proc/cpuinfo")
        else platform.processor()
    )
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(
        f"\nnet {shape.arch} width {shape.width}, batch {shape.batch}, {shape.size}x{shape.size}, T={shape.T}; "
        f"device cpu ({cpu}, {torch.get_num_threads()} threads), GPU: {device}; torch {torch.__version__}, "
        f"python {platform.python_version()}; {time.time() - started:.0f} s; load average "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (above {os.cpu_count()}: the "
        f"machine was shared and the ratios are less reliable)"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        harness.child_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny shapes, seconds (smoke test)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions per variant (median)")
    ap.add_argument("--no-classroom", action="store_true", help="skip the 120-second classroom runs")
    ap.add_argument("--classroom-only", action="store_true", help="only the classroom rows")
    ap.add_argument("--continue-accuracy", action="store_true", help="also run TSSD with tsd_pass=continue")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--budget-s", type=float, default=None)
    ap.add_argument("--compile", action="store_true", help="add a torch.compile'd neuron row (slow first step)")
    args = ap.parse_args(argv)
    for name in ("reps", "seeds", "budget_s"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):  # nan and inf too, before any row runs
            ap.error(f"--{name.replace('_', '-')} should be a positive finite number, got {value}")
    started, load_before = time.time(), os.getloadavg()[0]
    shape = QUICK if args.quick else FULL
    reps = args.reps or (2 if args.quick else 4)
    table = Table()
    if not args.classroom_only:
        step_rows(table, shape, reps, args.compile)
        memory_rows(table, shape)
        # --quick: the default path and glibc only (each choice costs a short training run).
        allocator_rows(table, shape, min(reps, 2), ("auto", "glibc") if args.quick else ALLOCATORS)
    if not args.no_classroom:
        seeds = list(range(args.seeds or (1 if args.quick else 3)))
        classroom_rows(
            table, seeds, args.budget_s or (2.0 if args.quick else 120.0), args.quick, args.continue_accuracy
        )
    describe(shape, started, load_before)
    for note in table.notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
