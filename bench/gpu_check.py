"""The GPU check: one prepared script for the day a CUDA machine is at hand (at most about 8 minutes).

    python bench/gpu_check.py                     # writes results/gpu-check.json and prints its summary
    python bench/gpu_check.py --out FILE.json

1. The parts of the toolkit that only run on CUDA, each checked against its CPU/eager counterpart:
   bf16 autocast (a short run trains and its loss stays finite), channels_last (same logits as the default
   layout), the compiled neuron (same logits and gradients as the eager one), and data-parallel training
   with NCCL on every visible GPU (torchrun, against one process: SPEC §11).
2. A classroom epoch at T_s=2, baseline and tssd: CIFAR-10 when it is on disk, else the digits.
3. The benchmark's step ratios (bench/run.py rows 1, 3 and 6) timed on the GPU.

Every check is recorded, failed or not, with what it measured; the file says what produced it. Not yet run on a
GPU at the time of writing: its first results will tell.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench import harness  # noqa: E402
from bench.harness import Shape  # noqa: E402
from tssd_viz import RunFolder, fit, preset  # noqa: E402
from tssd_viz.data import is_available  # noqa: E402
from tssd_viz.snn.models import build_model  # noqa: E402
from tssd_viz.training.speed import compile_neurons  # noqa: E402

DEADLINE_S = 8 * 60  # checks that would start after this are recorded as skipped


def digits(**over):
    """A short digits run on the GPU (seconds)."""
    cfg = preset("quick").replace(**{"train.device": "cuda", "data.limit_test": 256, "train.log_every": 1})
    return cfg.replace(**over) if over else cfg


def check_bf16() -> dict:
    result = fit(digits(**{"train.bf16": True, "train.epochs": 2}))
    acc = result.test_acc[result.cfg.distill.t_student]
    assert acc > 0.5, f"bf16 autocast trained to {acc:.2%} at T_s (the fp32 recipe reaches ~98%)"
    return {"test_acc": acc, "steps": result.steps}


def _net_and_batch(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(preset("classroom").model, 3, 10, weak_head=True).cuda().train()
    x = torch.randn(32, 3, 32, 32, device="cuda")
    return model, x


def check_channels_last() -> dict:
    model, x = _net_and_batch()
    ref = model(x, 4).logits
    model = model.to(memory_format=torch.channels_last)
    out = model(x.contiguous(memory_format=torch.channels_last), 4).logits
    diff = (out - ref).abs().max().item()
    assert diff < 1e-3, f"channels_last logits differ by {diff}"
    return {"max_abs_diff": diff}


def check_compiled_neuron() -> dict:
    model, x = _net_and_batch()
    eager = model(x, 4).logits
    eager.square().mean().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    t0 = time.perf_counter()
    compile_neurons(model)
    compiled = model(x, 4).logits
    compiled.square().mean().backward()
    compile_s = time.perf_counter() - t0
    diff = (compiled - eager).abs().max().item()
    gdiff = max((p.grad - g).abs().max().item() for p, g in zip(model.parameters(), grads))
    assert diff < 1e-3 and gdiff < 1e-2, f"compiled neuron differs: logits {diff}, gradients {gdiff}"
    return {"max_abs_diff": diff, "max_grad_diff": gdiff, "first_step_s": compile_s}


def _cli(args: list[str], nproc: int = 1, timeout: float = 240) -> subprocess.CompletedProcess:
    head = [sys.executable]
    if nproc > 1:
        head += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    cmd = [*head, "-m", "tssd_viz", "train", "--no-progress", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:])} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return done


def check_ddp_nccl() -> dict:
    n = torch.cuda.device_count()
    if n < 2:
        return {"skipped": f"{n} GPU visible: NCCL data parallelism needs two or more"}
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "--preset",
            "quick",
            "--train.device",
            "cuda",
            "--data.batch-size",
            str(16 * n),
            "--train.log-every",
            "1",
        ]
        _cli([*args, "--run-dir", f"{tmp}/one"])
        _cli([*args, "--run-dir", f"{tmp}/all"], nproc=n)
        one, every = RunFolder(f"{tmp}/one"), RunFolder(f"{tmp}/all")
        first = abs(one.metrics("step")[0]["loss"] - every.metrics("step")[0]["loss"])
        acc_one, acc_all = one.final_eval()[2], every.final_eval()[2]
        assert every.status()["state"] == "done" and first < 1e-3, f"first-step loss differs by {first}"
        return {
            "gpus": n,
            "first_step_loss_diff": first,
            "test_acc_1_process": acc_one,
            f"test_acc_{n}_processes": acc_all,
        }


def check_classroom_epoch() -> dict:
    """One epoch of the classroom preset at T_s=2 for baseline and tssd: training seconds from the records."""
    data = [] if is_available("cifar10") else ["--data.dataset", "digits", "--model.arch", "vgg_small"]
    out = {"dataset": "cifar10" if not data else "digits"}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("baseline", "tssd"):
            run = f"{tmp}/{mode}"
            args = ["--preset", "classroom", "--train.device", "cuda", "--train.epochs", "1", "--distill.mode", mode]
            _cli([*args, "--distill.t-student", "2", "--run-dir", run, *data], timeout=300)
            epoch = RunFolder(run).metrics("epoch")[-1]
            out[mode] = {"epoch_s": epoch["epoch_s"], "test_acc": epoch.get("test_acc")}
    out["tssd_over_baseline"] = out["tssd"]["epoch_s"] / out["baseline"]["epoch_s"]
    return out


def check_step_ratios() -> dict:
    shape = Shape()  # the benchmark's full shape: VGG 64-128-M-256-256-M-512-512-M, batch 64, T = 4
    m = harness.interleaved_medians(
        ["ann", "ours", "plain2", "tssd_shared", "tssd_continue", "s2w2"], shape, 20, 3, "cuda"
    )
    return {
        "medians_s": m,
        "1. SNN step T=4 / (4 x ANN step)": m["ours"] / (shape.T * m["ann"]),
        "3. TSSD(4,2) continue / plain T=2": m["tssd_continue"] / m["plain2"],
        "   TSSD(4,2) shared / plain T=2": m["tssd_shared"] / m["plain2"],
        "6. s2w T_s=2 / plain T=2": m["s2w2"] / m["plain2"],
    }


CHECKS: list[tuple[str, Callable[[], dict]]] = [
    ("bf16 autocast", check_bf16),
    ("channels_last", check_channels_last),
    ("compiled neuron", check_compiled_neuron),
    ("DDP with NCCL on every GPU", check_ddp_nccl),
    ("classroom epoch, T_s=2", check_classroom_epoch),
    ("step ratios on CUDA", check_step_ratios),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "gpu-check.json"))
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: no CUDA device is visible; this script checks the GPU paths", file=sys.stderr)
        return 2
    started = time.monotonic()
    report = {
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "host": platform.node(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "checks": {},
    }
    for name, check in CHECKS:
        if time.monotonic() - started > DEADLINE_S:
            report["checks"][name] = {"ok": False, "skipped": "the 8-minute budget was spent"}
            continue
        t0 = time.monotonic()
        try:
            report["checks"][name] = {"ok": True, **check()}
        except Exception as e:
            report["checks"][name] = {"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
        done = report["checks"][name]
        done["seconds"] = round(time.monotonic() - t0, 1)
        print(f"{name:<30} {'ok' if done['ok'] else 'FAILED':<7} {done['seconds']:>6} s", flush=True)
    report["total_s"] = round(time.monotonic() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0 if all(c["ok"] for c in report["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
