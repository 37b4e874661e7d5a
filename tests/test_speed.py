"""Speed helpers and the benchmark harness: the allocator switch, compiled neurons, bench/ smoke test."""

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tssd_viz.snn.neurons import LIF, lif_multistep
from tssd_viz.training import allocator
from tssd_viz.training.speed import compile_neurons, tune_allocator

ROOT = Path(__file__).resolve().parent.parent


def test_tune_allocator_is_idempotent_and_harmless():
    first = tune_allocator()
    assert tune_allocator() == first
    if sys.platform.startswith("linux") and os.path.exists("/lib/x86_64-linux-gnu/libc.so.6"):
        assert first  # glibc: the setting is in place
    x = torch.randn(64, 1024, 1024)  # 256 MB, served from the heap now; still plain memory
    assert torch.isfinite(x.sum())


def test_compiled_neurons_match_the_reference_gradients_included():
    torch.manual_seed(0)
    lif = LIF()
    assert compile_neurons(torch.nn.Sequential(lif)) == 1 and lif.compiled
    x = torch.randn(4, 8, 5, dtype=torch.float64) * 1.5
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    s, m = lif.run(a)
    s_ref, m_ref = lif_multistep(b)
    assert torch.equal(s, s_ref) and torch.allclose(m, m_ref)
    w = torch.randn_like(s)
    (s * w).sum().backward()
    (s_ref * w).sum().backward()
    assert torch.allclose(a.grad, b.grad)


def _bench(*args: str) -> str:
    """What `python bench/run.py ARGS` prints."""
    cmd = [sys.executable, str(ROOT / "bench" / "run.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout


def test_bench_quick_prints_every_table_row():
    # The harness end to end on tiny shapes: the same code as `python bench/run.py`, in seconds.
    out = _bench("--quick", "--no-classroom", "--reps", "1")
    for row in (
        "1. SNN step T=4 / (4 x ANN step",
        "2. snntorch-tutorial step / ours, same allocator",
        "2. as shipped: tutorial",
        "3. TSSD(4,2) step, tsd_pass=continue",
        "4. activation memory T=4",
        "6. s2w step, T_s=2 / plain T=2 step",
        "w2s step, T_s=2 / plain T=2 step",
    ):
        line = next(text for text in out.splitlines() if row in text)
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1].endswith("x") and float(cells[1][:-1]) > 0 and cells[3] in ("yes", "no")
    # A row per malloc that `python -m tssd_viz train` ran; the default path's (auto) carries the target.
    rows = [line for line in out.splitlines() if "   allocator " in line]
    assert "allocator glibc, defaults" in rows[0] and any("train.allocator glibc" in r for r in rows)
    default = next(r for r in rows if "train.allocator auto" in r)
    assert ("allocator jemalloc" in default) == (allocator.find("jemalloc") is not None) and "<=1.10x" in default
    # Row 4 compares under glibc's defaults; the default allocator's peak is said apart, naming it.
    default_mem = next(line for line in out.splitlines() if "same, ours under the default allocator" in line)
    ran = "jemalloc" if allocator.find("jemalloc") else "tcmalloc" if allocator.find("tcmalloc") else "glibc"
    assert f"({ran})" in default_mem and default_mem.split("|")[2].strip().endswith("GB")
    assert "device cpu" in out


def test_bench_classroom_rows_report_each_seed_and_the_spread():
    # The classroom part on the digits stand-in: each mode's row is the mean of the seeds its note lists.
    out = _bench("--quick", "--classroom-only", "--seeds", "2")
    rows = {"TSSD(4,2)": "5. classroom preset, TSSD(4,2)", "baseline": "same preset and budget, baseline"}
    for name, row in rows.items():
        shown = float(next(line for line in out.splitlines() if row in line).split("|")[2].strip().rstrip("%"))
        note = next(line for line in out.splitlines() if line.startswith(f"classroom {name}: "))
        seeds = re.findall(r"seed (\d+): ([\d.]+)% in (\d+) steps", note)
        assert [s for s, _, _ in seeds] == ["0", "1"] and all(int(n) > 0 for _, _, n in seeds)
        accs = [float(a) for _, a, _ in seeds]
        assert abs(shown - statistics.mean(accs)) <= 0.06  # each printed to one decimal
        spread = float(re.search(r"± ([\d.]+)%", note).group(1))
        assert abs(spread - statistics.stdev(accs)) <= 0.06


def _grads(cfg, x, y):
    from tssd_viz.snn.losses import tssd_loss, windows
    from tssd_viz.snn.models import build_model
    from tssd_viz.training.step import forward_windows

    torch.manual_seed(0)
    model = build_model(cfg.model, 3, 10, weak_head=cfg.uses_weak_head)
    for m in model.modules():  # running statistics = this batch's, so that deep layers spike
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    with torch.no_grad():
        model(x, cfg.distill.t_teacher)
    model.eval()  # BN: running statistics from here on
    out, teacher = forward_windows(model, x, cfg)
    parts = tssd_loss(windows(out, cfg.distill.t_student, teacher), y, cfg.distill)
    parts.loss.backward()
    return parts, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_continue_pass_gives_the_shared_pass_gradients_where_the_maths_is_the_same():
    # With the teacher detached and no teacher CE, nothing needs a gradient through the teacher's
    # extra steps, so running them without a graph (tsd_pass="continue") changes no gradient. In
    # eval mode the two passes are the same maths exactly (in train mode, batch norm's statistics
    # over the T x B fold differ between a T_s and a T_t pass).
    from tssd_viz import TSSDConfig

    base = TSSDConfig().replace(**{"model.width": 0.25, "distill.teacher_ce": False})
    torch.manual_seed(1)
    x, y = torch.randn(6, 3, 16, 16) * 2, torch.randint(0, 10, (6,))
    shared_parts, shared = _grads(base, x, y)
    cont_parts, cont = _grads(base.replace(**{"distill.tsd_pass": "continue"}), x, y)
    assert set(shared) == set(cont) and len(shared) > 10
    for n in shared:
        assert torch.allclose(shared[n], cont[n], atol=1e-6, rtol=1e-5), n
    for k in ("loss", "loss_tsd", "loss_ssd", "ce_student"):
        assert getattr(cont_parts, k).item() == pytest.approx(getattr(shared_parts, k).item(), rel=1e-5)
    assert shared_parts.loss_tsd.item() > 0  # the teacher's extra steps did change the target


@pytest.mark.parametrize("bad", [["--budget-s", "nan"], ["--budget-s", "inf"], ["--seeds", "0"], ["--reps", "-2"]])
def test_bench_refuses_nonsense_before_measuring(bad):
    # Refused by the argument check, before any row runs: exit 2 and one error line naming the flag.
    cmd = [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", *bad]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    value = float(bad[1]) if bad[0] == "--budget-s" else int(bad[1])
    expected = f"run.py: error: {bad[0]} should be a positive finite number, got {value}"
    assert done.stderr.strip().splitlines()[-1] == expected
