"""Leaky integrate-and-fire neurons with soft reset (SPEC §1), time-major.

For one neuron, with input current I(t) and V(-1) = 0:

    H(t) = beta * V(t-1) + I(t)          beta = 1 - 1/tau  (no 1/tau factor on the input)
    S(t) = 1 if H(t) >= theta else 0
    V(t) = H(t) - theta * S(t)           soft reset: subtract the threshold, in the same step

The spike is a step function, so training uses a surrogate gradient, a rectangle of width a:
dS/dH = (1/a) * 1[|H - theta| < a/2].

Two implementations of the same maths live here:
- `lif_multistep`, the reference: a readable loop of `lif_step`, differentiated by autograd.
- `LIF`, the module the models use: the same loop in a `torch.autograd.Function` with a
  hand-written backward. Autograd would keep H, S and the surrogate mask of every step plus the
  graph's intermediates; the fused version keeps one byte per neuron and step (the surrogate window
  as a bool) plus the spikes it returns anyway, which roughly halves activation memory and runs
  faster (see bench/). Tests pin it to the reference, gradients included.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class LIFParams:
    tau: float = 2.0
    threshold: float = 1.0
    surrogate_width: float = 1.0
    detach_reset: bool = False

    @property
    def beta(self) -> float:
        return 1.0 - 1.0 / self.tau


class RectSpike(torch.autograd.Function):
    """Heaviside spike H >= theta forward; rectangular surrogate of width a backward."""

    @staticmethod
    def forward(ctx, h: Tensor, threshold: float, width: float) -> Tensor:
        ctx.save_for_backward(h)
        ctx.threshold, ctx.width = threshold, width
        return (h >= threshold).to(h.dtype)

    @staticmethod
    def backward(ctx, grad_s: Tensor):
        (h,) = ctx.saved_tensors
        window = (h - ctx.threshold).abs() < ctx.width / 2
        return grad_s * window.to(grad_s.dtype) / ctx.width, None, None


def rect_surrogate_grad(h: Tensor, threshold: float = 1.0, width: float = 1.0) -> Tensor:
    """dS/dH of the rectangular surrogate, elementwise (for plots and tests)."""
    return ((h - threshold).abs() < width / 2).to(h.dtype) / width


def lif_step(current: Tensor, v: Tensor, p: LIFParams) -> tuple[Tensor, Tensor]:
    """One timestep: (I(t), V(t-1)) -> (S(t), V(t))."""
    h = p.beta * v + current  # charge
    s = RectSpike.apply(h, p.threshold, p.surrogate_width)  # fire
    reset = s.detach() if p.detach_reset else s
    return s, h - p.threshold * reset  # soft reset in the same step


def lif_multistep(
    current: Tensor,
    tau: float = 2.0,
    threshold: float = 1.0,
    surrogate_width: float = 1.0,
    detach_reset: bool = False,
    v0: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Reference LIF over time. current (T, ...) -> (spikes (T, ...), membrane (T, ...)).

    membrane[t] is V(t), the potential after the reset. `v0` is V(-1) (zeros by default), so a
    long window can be run in pieces.
    """
    p = LIFParams(tau, threshold, surrogate_width, detach_reset)
    v = torch.zeros_like(current[0]) if v0 is None else v0
    spikes, membrane = [], []
    for t in range(current.shape[0]):
        s, v = lif_step(current[t], v, p)
        spikes.append(s)
        membrane.append(v)
    return torch.stack(spikes), torch.stack(membrane)


def _lif_forward_loop(x: Tensor, v: Tensor, beta: float, theta: float, half_width: float):
    """The forward loop shared by the fused function; returns spikes, membrane, surrogate windows."""
    spikes = torch.empty_like(x)
    membrane = torch.empty_like(x)
    window = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    for t in range(x.shape[0]):
        h = x[t] + beta * v  # (B, ...)
        torch.ge(h, theta, out=spikes[t])
        torch.lt((h - theta).abs_(), half_width, out=window[t])
        v = h.sub_(spikes[t], alpha=theta)  # soft reset, in place on the fresh h
        membrane[t] = v
    return spikes, membrane, window


class _FusedLIF(torch.autograd.Function):
    """LIF over T with a hand-written backward through time.

    Backward, for dL/dS(t) = gS, dL/dV(t) = gV (from V(t)'s use at t+1 and the membrane output):
        dL/dH(t) = (gS - theta * gV * [reset not detached]) * sg(t) + gV
        dL/dI(t) = dL/dH(t),   dL/dV(t-1) += beta * dL/dH(t)
    where sg(t) = 1[|H(t) - theta| < a/2] / a is the surrogate.
    """

    @staticmethod
    def forward(ctx, x, v0, beta, theta, width, detach_reset):
        spikes, membrane, window = _lif_forward_loop(x, v0, beta, theta, width / 2)
        ctx.save_for_backward(window)
        ctx.consts = (beta, theta, width, detach_reset)
        ctx.mark_non_differentiable(window)
        return spikes, membrane, window

    @staticmethod
    def backward(ctx, grad_spikes, grad_membrane, _grad_window):
        (window,) = ctx.saved_tensors
        beta, theta, width, detach_reset = ctx.consts
        T = window.shape[0]
        ref = grad_spikes if grad_spikes is not None else grad_membrane
        grad_x = torch.empty_like(ref)
        g_v = torch.zeros_like(ref[0])  # dL/dV(t) flowing back from step t+1
        for t in range(T - 1, -1, -1):
            if grad_membrane is not None:
                g_v = g_v + grad_membrane[t]
            g_s = grad_spikes[t] if grad_spikes is not None else torch.zeros_like(g_v)
            if not detach_reset:
                g_s = g_s - theta * g_v
            g_h = torch.addcmul(g_v, g_s, window[t], value=1.0 / width)
            grad_x[t] = g_h
            g_v = beta * g_h
        return grad_x, g_v, None, None, None, None


class LIF(nn.Module):
    """Multi-step LIF layer: current (T, B, ...) -> spikes (T, B, ...).

    The module stores parameters only; the membrane state lives in the call. A recording probe
    (`tssd_viz.record`) reads the membrane through `self.membrane_tap`, an identity that costs
    nothing when no hook is attached.
    """

    def __init__(self, params: LIFParams = LIFParams(), fused: bool = True):
        super().__init__()
        self.params = params
        self.fused = fused
        self.membrane_tap = nn.Identity()

    def forward(self, current: Tensor, v0: Tensor | None = None) -> Tensor:
        spikes, membrane = self.run(current, v0)
        return spikes

    def run(self, current: Tensor, v0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Like forward, but also returns the membrane (T, B, ...) whose last step continues a run."""
        p = self.params
        v = torch.zeros_like(current[0]) if v0 is None else v0
        if self.fused and current.dtype in (torch.float32, torch.float64):
            spikes, membrane, _ = _FusedLIF.apply(
                current, v, p.beta, p.threshold, p.surrogate_width, p.detach_reset
            )
        else:  # e.g. bf16 autocast: the reference loop keeps the dtype rules of autograd
            spikes, membrane = lif_multistep(
                current, p.tau, p.threshold, p.surrogate_width, p.detach_reset, v0=v
            )
        membrane = self.membrane_tap(membrane)
        return spikes, membrane

    def extra_repr(self) -> str:
        p = self.params
        return f"tau={p.tau}, threshold={p.threshold}, surrogate_width={p.surrogate_width}, detach_reset={p.detach_reset}"
