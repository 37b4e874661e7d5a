"""The TSSD losses (SPEC §4-6), as pure functions that return every part by name.

With z(t) the per-timestep logits, the student is the window of the first T_s steps, the teacher
the window of T_t steps, both of the same network: z_S = mean_{t<T_s} z(t), z_T = mean_{t<T_t} z(t).
w is the weak head's output over the student window, z_F the final output that teaches it.

    L_tsd = tau^2 * KL( softmax(z_T / tau) || softmax(z_S / tau) )
    L_ssd = tau^2 * KL( softmax(z_F / tau) || softmax(w / tau) )
    L     = CE(z_S, y) [+ CE(z_T, y)] [+ CE(w, y)] + alpha * L_tsd + beta * L_ssd

The tau^2 factor keeps the gradient of the soft targets on the scale of the hard-label loss as
tau changes (Hinton et al. 2015). Which terms appear depends on the mode: baseline has CE(z_S) only,
tsd adds the teacher, ssd the weak head, tssd both.

The strong/weak modes (SPEC §10) distil inside the T_s window itself: each timestep's output z(t),
t < T_s, is a sub-model; its confidence is the batch mean of its largest softmax probability (no
labels). s2w: the most confident timestep teaches the least confident one; w2s: the reverse.

    L_sw  = tau^2 * KL( softmax(z(t_teacher) / tau) || softmax(z(t_student) / tau) ),  teacher detached
    L     = CE(z_S, y) + lambda * L_sw
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import DistillConfig
from .models import ModelOutput


@dataclass(frozen=True)
class Windows:
    """The outputs the losses read, each (B, K).

    Attributes:
        student: z_S (B, K), the mean of the first T_s per-step logits.
        teacher: z_T (B, K), the mean over T_t steps; None when the pass was only T_s long.
        weak: w (B, K), the weak head over the student window; None without one.
        steps: z(t) for t < T_s, (T_s, B, K): the student window's timesteps, each a sub-model.
    """

    student: Tensor  # z_S, mean of the first T_s per-step logits
    teacher: Tensor | None  # z_T, mean over T_t steps (None when the pass was only T_s long)
    weak: Tensor | None  # w, the weak head over the student window
    steps: Tensor | None = None  # z(t) for t < T_s, (T_s, B, K): the student window's timesteps, each a sub-model


def windows(out: ModelOutput, t_student: int, teacher_out: ModelOutput | None = None) -> Windows:
    """Windows from one shared pass, or from a student pass plus a separate teacher pass.

    Args:
        out: the pass the student window is read from; its logits are (T, B, K), T >= t_student.
        t_student: T_s, the student window.
        teacher_out: a separate teacher pass (logits (T_t, B, K)); None reads the teacher off `out`.

    Returns:
        The `Windows`, each (B, K), and the student window's steps (T_s, B, K).
    """
    student = out.logits[:t_student].mean(0)  # (T, B, K) -> (B, K)
    source = teacher_out if teacher_out is not None else out
    long_enough = source.logits.shape[0] > t_student or teacher_out is not None
    teacher = source.logits.mean(0) if long_enough else None
    weak = out.weak_logits[:t_student].mean(0) if out.weak_logits is not None else None
    return Windows(student, teacher, weak, out.logits[:t_student])


def kd_kl(teacher_logits: Tensor, student_logits: Tensor, temperature: float) -> Tensor:
    """tau^2 * KL(softmax(teacher/tau) || softmax(student/tau)), mean over the batch.

    Gradients flow into both arguments; the caller decides what is a fixed target.

    Args:
        teacher_logits: (B, K).
        student_logits: (B, K).
        temperature: tau, the softmax temperature.

    Returns:
        A scalar tensor.
    """
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
    return temperature**2 * kl


def _as_target(logits: Tensor, detach: bool) -> Tensor:
    # The one place where a teacher becomes a fixed target. Detached, the teacher is not pulled
    # towards the student: the KL only moves the student (and, in the shared pass, the weights it
    # shares with the teacher through the student's own path). The weak head's teacher is always
    # detached: a weak learner must not drag the final output down to its level (SPEC §5).
    return logits.detach() if detach else logits


def timestep_confidence(steps: Tensor) -> Tensor:
    """Confidence of each timestep: the batch mean of its largest softmax probability.

    Args:
        steps: per-timestep logits (T, B, K).

    Returns:
        (T,) confidences in [1/K, 1].
    """
    return F.softmax(steps.detach().float(), dim=-1).amax(-1).mean(-1)


def rank_timesteps(steps: Tensor) -> list[int]:
    """Timestep indices (0-based) from the most to the least confident; a tie keeps the earlier one first.

    Args:
        steps: per-timestep logits (T, B, K).

    Returns:
        The T indices, most confident first.
    """
    return rank_by_confidence(timestep_confidence(steps))


def rank_by_confidence(confidence: Tensor) -> list[int]:
    """`rank_timesteps` from confidences already computed, (T,) -> indices, most confident first."""
    return torch.sort(confidence, descending=True, stable=True).indices.tolist()


def sw_pairs(order: list[int], mode: str, variant: str) -> list[tuple[int, int]]:
    """(teacher, student) timestep pairs of a strong/weak mode, from the confidence ranking `order`.

    Args:
        order: timestep indices, most confident first (`rank_timesteps`).
        mode: "s2w" or "w2s".
        variant: pair: s2w -> (strongest, weakest), w2s -> (weakest, strongest). cascade: each adjacent
            pair of the ranking, the stronger teaching in s2w and the weaker in w2s.

    Returns:
        The (teacher, student) index pairs.
    """
    links = [(order[0], order[-1])] if variant == "pair" else list(zip(order[:-1], order[1:]))
    return links if mode == "s2w" else [(b, a) for a, b in links]


def strong_weak_loss(steps: Tensor, mode: str, variant: str, temperature: float) -> Tensor:
    """L_sw of SPEC §10: the mean over `sw_pairs` of tau^2 KL(teacher timestep || student timestep).

    The teacher timestep is detached: no gradient reaches it through this term.

    Args:
        steps: the student window's per-timestep logits (T_s, B, K).
        mode: "s2w" or "w2s".
        variant: "pair" or "cascade" (see `sw_pairs`).
        temperature: tau, the softmax temperature.

    Returns:
        A scalar tensor.
    """
    pairs = sw_pairs(rank_timesteps(steps), mode, variant)
    kls = [kd_kl(steps[t].detach(), steps[s], temperature) for t, s in pairs]
    return torch.stack(kls).mean()


@dataclass(frozen=True)
class LossParts:
    """The total loss of one step and each of its parts, each a scalar tensor (None where the mode has no such term).

    Attributes:
        loss: the total that is backpropagated.
        loss_task: sum of the cross-entropy terms present.
        ce_student: cross-entropy of the student window.
        ce_teacher: cross-entropy of the teacher window.
        ce_weak: cross-entropy of the weak head.
        loss_tsd: temporal distillation, KL(teacher || student).
        loss_ssd: spatial distillation, KL(final output (student or teacher window) || weak head).
        loss_sw: the strong/weak term of SPEC §10.
    """

    loss: Tensor  # the total that is backpropagated
    loss_task: Tensor  # sum of the cross-entropy terms present
    ce_student: Tensor
    ce_teacher: Tensor | None
    ce_weak: Tensor | None
    loss_tsd: Tensor | None
    loss_ssd: Tensor | None
    loss_sw: Tensor | None = None

    def as_floats(self) -> dict[str, float | None]:
        """Every part as a Python float (None when the mode has no such term), for records."""
        return {k: (None if v is None else float(v.detach())) for k, v in self.__dict__.items()}


def tssd_loss(w: Windows, y: Tensor, cfg: DistillConfig, label_smoothing: float = 0.0) -> LossParts:
    """The total loss of `cfg.mode` and each of its parts.

    Args:
        w: the windows of one step, each (B, K).
        y: labels (B,).
        cfg: the mode, weights, temperature and switches.
        label_smoothing: of every cross-entropy term.

    Returns:
        Every part by name.

    Raises:
        ValueError: the windows lack what the mode needs (a teacher window, the weak head, T_s >= 2).
    """
    use_tsd, use_ssd = cfg.uses_teacher, cfg.uses_weak_head
    zero = w.student.new_zeros(())

    def ce(logits: Tensor) -> Tensor:
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing)

    ce_student = ce(w.student)
    ce_teacher = ce_weak = loss_tsd = loss_ssd = loss_sw = None
    if cfg.uses_timestep_teacher:
        if w.steps is None or w.steps.shape[0] < 2:
            raise ValueError(f"mode {cfg.mode!r} needs at least 2 timesteps in the student window")
        loss_sw = strong_weak_loss(w.steps, cfg.mode, cfg.sw_variant, cfg.kd_temperature)
    if use_tsd:
        if w.teacher is None:
            raise ValueError(f"mode {cfg.mode!r} needs a teacher window: run the model for t_teacher steps")
        loss_tsd = kd_kl(_as_target(w.teacher, cfg.detach_teacher), w.student, cfg.kd_temperature)
        if cfg.teacher_ce:
            ce_teacher = ce(w.teacher)
    if use_ssd:
        if w.weak is None:
            raise ValueError(f"mode {cfg.mode!r} needs the weak head's logits: build the model with one")
        final = w.teacher if cfg.ssd_teacher == "teacher" else w.student
        if final is None:
            raise ValueError("ssd_teacher='teacher' needs a teacher window: run t_teacher steps")
        loss_ssd = kd_kl(_as_target(final, True), w.weak, cfg.kd_temperature)
        if cfg.weak_ce:
            ce_weak = ce(w.weak)

    loss_task = (
        ce_student + (ce_teacher if ce_teacher is not None else zero) + (ce_weak if ce_weak is not None else zero)
    )
    loss = loss_task
    if loss_tsd is not None:
        loss = loss + cfg.alpha * loss_tsd
    if loss_ssd is not None:
        loss = loss + cfg.beta * loss_ssd
    if loss_sw is not None:
        loss = loss + cfg.sw_weight * loss_sw
    return LossParts(loss, loss_task, ce_student, ce_teacher, ce_weak, loss_tsd, loss_ssd, loss_sw)


@torch.no_grad()
def accuracy_by_window(logits: Tensor, y: Tensor) -> list[float]:
    """Accuracy of the window of the first n steps, for n = 1..T.

    Args:
        logits: (T, B, K).
        y: labels (B,).

    Returns:
        T accuracies as fractions, window n at index n - 1.
    """
    T = logits.shape[0]
    running = logits.cumsum(0) / torch.arange(1, T + 1, device=logits.device).view(T, 1, 1)
    return (running.argmax(-1) == y).float().mean(1).tolist()  # (T, B) -> (T,)


@torch.no_grad()
def agreement(teacher_logits: Tensor, student_logits: Tensor) -> float:
    """Fraction of the batch where teacher and student predict the same class.

    Args:
        teacher_logits: (B, K).
        student_logits: (B, K).

    Returns:
        The fraction in [0, 1].
    """
    return (teacher_logits.argmax(-1) == student_logits.argmax(-1)).float().mean().item()
