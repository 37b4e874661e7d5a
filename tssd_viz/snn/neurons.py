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
    """The parameters of a LIF neuron (SPEC §1).

    Attributes:
        tau: membrane time constant in timesteps; decay beta = 1 - 1/tau.
        threshold: firing threshold theta.
        surrogate_width: width a of the rectangular surrogate window around the threshold.
        detach_reset: block the gradient through the soft-reset term.
    """

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
    """dS/dH of the rectangular surrogate, elementwise (for plots and tests).

    Args:
        h: membrane potentials H before the reset, any shape.
        threshold: theta.
        width: a; the gradient is 1/a where |H - theta| < a/2.

    Returns:
        dS/dH, the shape of `h`.
    """
    return ((h - threshold).abs() < width / 2).to(h.dtype) / width


def lif_step(current: Tensor, v: Tensor, p: LIFParams) -> tuple[Tensor, Tensor]:
    """One timestep: (I(t), V(t-1)) -> (S(t), V(t)).

    Args:
        current: I(t), any shape.
        v: V(t-1), the shape of `current`.
        p: the neuron's parameters.

    Returns:
        (spikes S(t), membrane V(t) after the reset), each the shape of `current`.
    """
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
    """Reference LIF over time: current (T, ...) -> (spikes (T, ...), membrane (T, ...)).

    Args:
        current: I(t), (T, ...).
        tau: membrane time constant in timesteps.
        threshold: theta.
        surrogate_width: a, of the rectangular surrogate.
        detach_reset: block the gradient through the soft reset.
        v0: V(-1), (...) (zeros by default), so a long window can be run in pieces.

    Returns:
        (spikes (T, ...), membrane (T, ...)); membrane[t] is V(t), the potential after the reset.
    """
    p = LIFParams(tau, threshold, surrogate_width, detach_reset)
    v = torch.zeros_like(current[0]) if v0 is None else v0
    spikes, membrane = [], []
    for t in range(current.shape[0]):
        s, v = lif_step(current[t], v, p)
        spikes.append(s)
        membrane.append(v)
    return torch.stack(spikes), torch.stack(membrane)


def _lif_forward_loop(x: Tensor, v0: Tensor | None, beta: float, theta: float, half_width: float):
    """The forward loop of the fused function; returns spikes, membrane, surrogate windows.

    Written for memory traffic, the cost that dominates on a CPU: H(t) is computed straight into
    membrane[t] and reset there in place, and nothing is allocated inside the loop. The window is
    worked out in float in one scratch step and cast into the saved bool in a plain copy: on a CPU,
    comparisons that write bool run several times slower than float ones (bench/: about 5x).
    """
    spikes = torch.empty_like(x)
    membrane = torch.empty_like(x)
    window = torch.empty_like(x, dtype=torch.bool)  # the layout of x, so that each copy is a straight one
    scratch = torch.empty_like(x[0])
    for t in range(x.shape[0]):
        h = membrane[t]  # (B, ...) view: H(t) is written here, then reset in place into V(t)
        if t == 0 and v0 is None:
            h.copy_(x[0])  # V(-1) = 0
        else:
            torch.add(x[t], membrane[t - 1] if t else v0, alpha=beta, out=h)  # charge
        torch.ge(h, theta, out=spikes[t])  # fire
        torch.sub(h, theta, out=scratch).abs_()  # surrogate window |H - theta| < a/2, as 0/1 floats
        window[t].copy_(torch.lt(scratch, half_width, out=scratch))
        h.sub_(spikes[t], alpha=theta)  # soft reset
    return spikes, membrane, window


class _FusedLIF(torch.autograd.Function):
    """LIF over T with a hand-written backward through time.

    Backward, with gH(t) = dL/dH(t) and dL/dS(t) = gS(t) from the layer above:
        dL/dV(t) = gV(t) = beta * gH(t+1) [+ the membrane output's own gradient]
        gH(t) = (gS(t) - theta * gV(t) * [reset not detached]) * sg(t) + gV(t)
        dL/dI(t) = gH(t),   dL/dV(-1) = beta * gH(0)
    where sg(t) = 1[|H(t) - theta| < a/2] / a is the surrogate. Gradients that nobody sends (the
    membrane output is usually unused) arrive as None rather than as tensors of zeros.
    """

    @staticmethod
    def forward(ctx, x, v0, beta, theta, width, detach_reset):
        spikes, membrane, window = _lif_forward_loop(x, v0, beta, theta, width / 2)
        ctx.save_for_backward(window)
        ctx.consts = (beta, theta, width, detach_reset)
        ctx.mark_non_differentiable(window)
        ctx.set_materialize_grads(False)
        return spikes, membrane, window

    @staticmethod
    def backward(ctx, grad_spikes, grad_membrane, _grad_window):
        (window,) = ctx.saved_tensors
        beta, theta, width, detach_reset = ctx.consts
        ref = grad_spikes if grad_spikes is not None else grad_membrane
        if ref is None:
            return None, None, None, None, None, None
        grad_x = torch.empty_like(ref)
        g_s, mask = torch.empty_like(ref[0]), torch.empty_like(ref[0])  # scratch, reused at every step
        g_next = None  # gH(t+1)
        for t in range(window.shape[0] - 1, -1, -1):
            mask.copy_(window[t])  # the bool window as 0/1 floats: float products run faster than bool ones
            if grad_membrane is None and grad_spikes is not None:
                # The common case, folded into three passes: gV(t) = beta * gH(t+1) stays implicit.
                g = grad_x[t] if g_next is None else g_s
                if g_next is not None and not detach_reset:
                    torch.sub(grad_spikes[t], g_next, alpha=theta * beta, out=g)  # the reset term V = H - theta * S
                    g.mul_(mask)
                else:
                    torch.mul(grad_spikes[t], mask, out=g)
                if width != 1.0:
                    g.mul_(1.0 / width)
                if g_next is not None:
                    torch.add(g, g_next, alpha=beta, out=grad_x[t])
            else:  # the membrane output gets a gradient too (a loss or a probe reads it)
                g_v = torch.zeros_like(ref[0]) if g_next is None else g_next * beta
                if grad_membrane is not None:
                    g_v.add_(grad_membrane[t])
                g = grad_spikes[t] if grad_spikes is not None else torch.zeros_like(g_v)
                if not detach_reset:
                    g = torch.sub(g, g_v, alpha=theta)
                torch.addcmul(g_v, g, mask, value=1.0 / width, out=grad_x[t])
            g_next = grad_x[t]
        grad_v0 = g_next * beta if ctx.needs_input_grad[1] else None
        return grad_x, grad_v0, None, None, None, None


_COMPILED: list = []


def _compiled_multistep():
    """`lif_multistep` under torch.compile, built on first use (compiling costs seconds)."""
    if not _COMPILED:
        _COMPILED.append(torch.compile(lif_multistep))
    return _COMPILED[0]


class LIF(nn.Module):
    """Multi-step LIF layer: current (T, B, ...) -> spikes (T, B, ...).

    The module stores parameters only; the membrane state lives in the call. A recording probe
    (`tssd_viz.snn.record`) reads the membrane through `self.membrane_tap`, an identity that costs
    nothing when no hook is attached.
    """

    def __init__(self, params: LIFParams = LIFParams(), fused: bool = True):
        super().__init__()
        self.params = params
        self.fused = fused
        self.compiled = False  # set by tssd_viz.training.speed.compile_neurons
        self.membrane_tap = nn.Identity()

    def forward(self, current: Tensor, v0: Tensor | None = None) -> Tensor:
        spikes, membrane = self.run(current, v0)
        return spikes

    def run(self, current: Tensor, v0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Like forward, but also returns the membrane (T, B, ...) whose last step continues a run."""
        p = self.params
        if self.compiled:
            spikes, membrane = _compiled_multistep()(
                current, p.tau, p.threshold, p.surrogate_width, p.detach_reset, v0=v0
            )
        elif self.fused and current.dtype in (torch.float32, torch.float64):
            spikes, membrane, _ = _FusedLIF.apply(current, v0, p.beta, p.threshold, p.surrogate_width, p.detach_reset)
        else:  # e.g. bf16 autocast: the reference loop keeps the dtype rules of autograd
            spikes, membrane = lif_multistep(current, p.tau, p.threshold, p.surrogate_width, p.detach_reset, v0=v0)
        membrane = self.membrane_tap(membrane)
        return spikes, membrane

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"tau={p.tau}, threshold={p.threshold}, surrogate_width={p.surrogate_width}, detach_reset={p.detach_reset}"
        )


def snntorch_multistep(
    current: Tensor,
    tau: float = 2.0,
    threshold: float = 1.0,
    surrogate_width: float = 1.0,
    reset_delay: bool = False,
) -> tuple[Tensor, Tensor]:
    """The `Leaky` neuron of snntorch, subtractive reset, over time: an independent implementation to compare with.

    Same decay (beta = 1 - 1/tau), threshold and rectangular surrogate of width a. With
    `reset_delay=False` it is this module's neuron while H < 2 theta (SPEC §1); snntorch's default,
    `reset_delay=True`, lands the reset one step later. The membrane state is passed explicitly, so
    snntorch's class-level registry of hidden states is never touched.

    Args:
        current: I(t), (T, ...).
        tau: membrane time constant in timesteps.
        threshold: theta.
        surrogate_width: a.
        reset_delay: snntorch's flag of that name.

    Returns:
        (spikes (T, ...), membrane (T, ...)), the return order of `lif_multistep`.
    """
    import snntorch as snn  # imported here: only the comparisons need it
    from snntorch import surrogate

    def rect(input_: Tensor, grad_input: Tensor, spikes: Tensor) -> Tensor:  # input_ is H - theta
        return grad_input * (input_.abs() < surrogate_width / 2).to(grad_input.dtype) / surrogate_width

    leaky = snn.Leaky(
        beta=1 - 1 / tau,
        threshold=threshold,
        reset_mechanism="subtract",
        reset_delay=reset_delay,
        spike_grad=surrogate.custom_surrogate(rect),
    )
    mem = torch.zeros_like(current[0])
    spikes, membrane = [], []
    for t in range(current.shape[0]):
        s, mem = leaky(current[t], mem)
        spikes.append(s)
        membrane.append(mem)
    return torch.stack(spikes), torch.stack(membrane)
