"""Measurement primitives: interleaved step timing, peak memory in a fresh process, classroom runs.

The machine is shared and noisy, so nothing here reports an absolute time as a result: variants
are timed round-robin (A B C A B C ...) within one process and compared by the ratio of their
medians; memory is measured in a fresh process per variant so that one variant's freed blocks do
not hide another's peak.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/run.py` from anywhere
    sys.path.insert(0, str(ROOT))

from bench import nets  # noqa: E402
from tssd_viz.config import TSSDConfig  # noqa: E402
from tssd_viz.snn.losses import tssd_loss, windows  # noqa: E402
from tssd_viz.training import allocator  # noqa: E402
from tssd_viz.training.speed import compile_neurons  # noqa: E402
from tssd_viz.training.step import forward_windows  # noqa: E402


@dataclass(frozen=True)
class Shape:
    """What every variant is measured on."""

    arch: str = "vgg_bench"
    width: float = 1.0
    batch: int = 64
    size: int = 32  # image side in pixels
    T: int = 4


def _batch(shape: Shape, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape.batch, 3, shape.size, shape.size, generator=g)
    y = torch.randint(0, 10, (shape.batch,), generator=g)
    return x.contiguous(memory_format=torch.channels_last), y


def make_step(variant: str, shape: Shape, device: str = "cpu") -> Callable[[], None]:
    """One training step (forward + backward + SGD) of a named variant, as a closure.

    ann: the same net with ReLU, T = 1.  tutorial: snntorch style at T.  ours: tssd_viz at T.
    autograd: tssd_viz with the reference (autograd) neuron loop.  compiled: torch.compile'd loop.
    plain2 / tssd_shared / tssd_continue: the library's own training maths, T_s = 2, T_t = 4.
    s2w2 / w2s2: the strong/weak modes at T_s = 2 (no extra timesteps). `device`: where it runs (bench/gpu_check.py).
    """
    torch.manual_seed(0)
    x, y = (t.to(device) for t in _batch(shape))
    if variant in ("plain2", "tssd_shared", "tssd_continue", "s2w2", "w2s2"):
        return _tssd_step(variant, shape, x, y)
    if variant == "ann":
        model, T = nets.ann(shape.arch, shape.width), 1
    elif variant == "tutorial":
        model, T = nets.TutorialNet(shape.arch, shape.width), shape.T
    else:
        model, T = nets.ours(shape.arch, shape.width), shape.T
        for m in model.modules():
            if variant == "autograd" and hasattr(m, "fused"):
                m.fused = False
        if variant == "compiled":
            compile_neurons(model)
    model = model.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        out = model(x, T)
        logits = out if isinstance(out, torch.Tensor) else out.logits  # (T, B, K)
        loss = F.cross_entropy(logits.mean(0), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _tssd_step(variant: str, shape: Shape, x, y) -> Callable[[], None]:
    cfg = TSSDConfig().replace(**{"model.arch": shape.arch, "model.width": shape.width})
    if variant == "plain2":
        cfg = cfg.replace(**{"distill.mode": "baseline"})
    elif variant == "tssd_continue":
        cfg = cfg.replace(**{"distill.tsd_pass": "continue", "distill.teacher_ce": False})
    elif variant in ("s2w2", "w2s2"):  # the strong/weak modes at T_s = 2 (SPEC §10)
        cfg = cfg.replace(**{"distill.mode": variant[:3]})
    model = nets.ours(shape.arch, shape.width, weak_head=cfg.uses_weak_head)
    model = model.to(x.device, memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        out, teacher = forward_windows(model, x, cfg)
        loss = tssd_loss(windows(out, cfg.distill.t_student, teacher), y, cfg.distill).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def interleaved_medians(
    variants: list[str], shape: Shape, reps: int, warmup: int = 1, device: str = "cpu"
) -> dict[str, float]:
    """Median step seconds of each variant, timed round-robin in this process (on a GPU, to the end of its kernels)."""
    steps = {v: make_step(v, shape, device) for v in variants}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for v in variants:
        for _ in range(warmup):
            steps[v]()
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(reps):
        for v in variants:
            sync()
            t0 = time.perf_counter()
            steps[v]()
            sync()
            times[v].append(time.perf_counter() - t0)
    return {v: statistics.median(ts) for v, ts in times.items()}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    # VmHWM, the high-water mark of this process's own memory map (getrusage's ru_maxrss is not:
    # Linux carries the parent's peak across fork and exec).
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass


def child_main(argv: list[str]) -> None:
    """Entry of a fresh measuring process: `--child memory|medians SPEC_JSON`; prints one JSON line."""
    kind, spec = argv[0], json.loads(argv[1])
    # The malloc a training process of this config runs: the CLI's own re-exec and fit()'s settle().
    choice = spec.get("allocator", "auto")
    allocator.reexec(choice)
    ran = allocator.settle(choice, tune=spec.get("tune", True)).name
    shape = Shape(**spec["shape"])
    if kind == "memory":  # peak resident memory of one step, above what the process held before it
        step = make_step(spec["variant"], shape)
        before = _rss_bytes()
        _reset_peak_rss()
        step()
        print(json.dumps({"activation_bytes": _peak_rss_bytes() - before, "allocator": ran}))
    else:  # "medians": median step seconds of each variant, timed round-robin in this process
        times = interleaved_medians(spec["variants"], shape, spec["reps"], warmup=1)
        print(json.dumps({"medians": times, "allocator": ran}))


def in_fresh_process(kind: str, spec: dict) -> dict:
    """Run `child_main` in a new interpreter, started as the job manager starts a training process (under
    the allocator of `spec["allocator"]`, default auto), and parse its line."""
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "run.py"), "--child", kind, json.dumps(spec)]
    env = allocator.launch_env(spec.get("allocator", "auto"))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cli_allocator(choice: str, run_dir: Path) -> str:
    """The malloc `python -m tssd_viz train --train.allocator CHOICE` chose for itself, as its env.json
    records it: a run of a few digits steps, started with no allocator in its environment."""
    cmd = [sys.executable, "-m", "tssd_viz", "train", "--preset", "quick", "--run-dir", str(run_dir), "--no-progress"]
    cmd += ["--train.allocator", choice, "--train.epochs", "1", "--data.limit-train", "64", "--data.limit-test", "32"]
    cmd += ["--train.probe-every", "0", "--model.width", "0.25"]
    env = allocator.launch_env("glibc")  # no preload: the CLI's own choice is measured
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads((run_dir / "env.json").read_text())["allocator"]["name"]


@dataclass(frozen=True)
class ClassroomResult:
    acc: float  # test accuracy at T_s, 0..1
    steps: int  # optimisation steps done in the budget


def classroom_run(
    mode: str, seed: int, budget_s: float, data: list[str], run_dir: Path, extra: list[str] = ()
) -> ClassroomResult:
    """Train the classroom preset through the CLI for `budget_s` seconds; test accuracy at T_s."""
    cmd = [
        sys.executable,
        "-m",
        "tssd_viz",
        "train",
        "--preset",
        "classroom",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--distill.mode",
        mode,
        "--train.seed",
        str(seed),
        "--train.time-budget-s",
        str(budget_s),
        *data,
        *extra,
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise RuntimeError(f"the classroom run {' '.join(cmd[2:])} failed (exit {done.returncode}):\n{tail}")
    from tssd_viz.runs.folders import RunFolder

    run = RunFolder(run_dir)
    t_student = run.config().distill.t_student
    return ClassroomResult(run.final_eval()[t_student], run.metrics("eval")[-1]["step"])
