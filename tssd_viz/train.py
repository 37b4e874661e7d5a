"""Training: one `fit()` that reads top to bottom and emits events to observers (SPEC §8).

The trainer owns the model, the optimizer and the loop; observers (in-memory history, console,
run-folder writer, dashboard) only listen. Evaluation at the end covers every window n = 1..T_t
with a single T_t pass: an SNN is causal, so in eval mode the first n steps of a T_t run are
exactly an n-step run.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from contextlib import nullcontext
from types import MappingProxyType
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from .checkpoints import FORMAT_TRAIN, load_checkpoint, save_checkpoint
from .config import ConfigError, TSSDConfig, validate
from .data import Dataset, Loader, load_dataset
from .events import FitInfo, FitResult
from .losses import LossParts, Windows, accuracy_by_window, agreement, kd_kl, tssd_loss, windows
from .models import ModelOutput, SpikingNet, build_model, count_parameters
from .observers import Observer, RunWriter
from .record import Recording, lif_layers, record
from .runs import RunFolder
from .speed import compile_neurons, tune_allocator


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run stopped before that step changed the weights."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device", "cuda was asked for but no CUDA device is available; use auto or cpu")
    return torch.device(name)


def lr_factor(progress: float, schedule: str, warmup: float) -> float:
    """Learning-rate multiplier at `progress` in [0, 1] of training.

    Hand-written rather than a torch scheduler because progress here is the larger of the step
    fraction and the time-budget fraction: a 120-second run anneals to zero at 120 seconds.
    """
    p = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if warmup > 0 and p < warmup:
        return p / warmup
    q = (p - warmup) / (1 - warmup) if warmup < 1 else 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * q))
    return 1.0 - q  # onecycle: linear warm-up, then linear decay to zero


def make_optimizer(model: nn.Module, cfg: TSSDConfig) -> torch.optim.Optimizer:
    t = cfg.train
    # No weight decay on batch-norm and bias parameters: decaying them only fights the normalisation.
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=t.lr)
    return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.momentum > 0)


def forward_windows(model: SpikingNet, x: Tensor, cfg: TSSDConfig) -> tuple[ModelOutput, ModelOutput | None]:
    """The training forward pass(es) of SPEC §4: (student-pass output, separate teacher output or None)."""
    d = cfg.distill
    T = cfg.train_timesteps
    if T == d.t_student or d.tsd_pass == "shared":
        return model(x, T), None
    if d.tsd_pass == "separate":
        return model(x, d.t_student), model(x, T)
    # "continue": the extra teacher steps carry on from the student's membrane states without a
    # graph; valid only when nothing needs their gradient (validate() checks the switches).
    out = model(x, d.t_student, keep_state=True)
    with torch.no_grad():
        rest = model(x, T - d.t_student, state=out.state)
    return ModelOutput(out.logits, out.weak_logits), ModelOutput(torch.cat([out.logits.detach(), rest.logits]), None)


@torch.no_grad()
def evaluate(model: SpikingNet, loader: Iterable, T: int, device: torch.device | None = None) -> list[float]:
    """Test accuracy of every window n = 1..T, from one T-step pass per batch (eval mode)."""
    was_training = model.training
    model.eval()
    correct, total = torch.zeros(T), 0
    for x, y in loader:
        if device is not None:
            x, y = x.to(device), y.to(device)
        logits = model(x, T).logits.float()  # (T, B, K)
        running = logits.cumsum(0).argmax(-1)  # argmax of a cumulative sum = argmax of the mean
        correct += (running == y).sum(1).cpu().float()
        total += y.shape[0]
    model.train(was_training)
    return (correct / max(total, 1)).tolist()


@torch.no_grad()
def recompute_bn_stats(model: SpikingNet, batches: Iterable, T: int, device: torch.device | None = None) -> int:
    """Replace every batch-norm layer's running mean and variance by their exact average over `batches`.

    Why: eval-mode batch norm normalises with running averages (momentum 0.1), which describe the
    weights of the last ~10-20 steps. Early in training the weights move faster than that average
    follows, so a short run evaluated with them can sit at chance while its training batches are
    mostly right. Re-estimating the statistics with the current weights ("precise BN") makes the
    evaluation describe the network that is being evaluated. Runs the train-mode forward at `T`
    timesteps without gradients; weights and optimizer are untouched. Returns the batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    was_training, momenta = model.training, [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over every batch seen since the reset
    model.train()
    used = 0
    try:
        for x, _ in batches:
            if device is not None:
                x = x.to(device)
            model(x, T)
            used += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return used


def _probe_arrays(model: SpikingNet, x: Tensor, y: Tensor, images: Tensor, ds: Dataset, T: int,
                  max_neurons: int, step: int, epoch: int) -> dict[str, np.ndarray]:
    """Rasters, traces and per-timestep logits of the probe batch (eval mode, T steps)."""
    was_training = model.training
    model.eval()
    with torch.no_grad(), record(model) as rec:
        out = model(x, T)
    model.train(was_training)
    arrays: dict[str, np.ndarray] = {
        "images": images.numpy(), "labels": y.cpu().numpy(), "classes": np.array(ds.classes),
        "logits": out.logits.float().cpu().numpy(), "step": np.array(step), "epoch": np.array(epoch),
    }
    if out.weak_logits is not None:
        arrays["weak_logits"] = out.weak_logits.float().cpu().numpy()
    gen = torch.Generator().manual_seed(0)  # the same neurons at every snapshot
    for name in rec.layers:
        s = rec.spikes[name].flatten(2)  # (T, P, ...) -> (T, P, N)
        idx = torch.randperm(s.shape[2], generator=gen)[:max_neurons].sort().values
        arrays[f"spikes:{name}"] = s[:, :, idx].numpy()
        arrays[f"membrane:{name}"] = rec.membrane[name].flatten(2)[:, :, idx].numpy()
        arrays[f"neurons:{name}"] = idx.numpy()
        arrays[f"rate:{name}"] = np.array(rec.firing_rate[name])
    return arrays


def fit(
    cfg: TSSDConfig,
    observers: Iterable[Observer] = (),
    *,
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    dataset: Dataset | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FitResult:
    """Train `cfg`; write the run folder `run_dir` if given (resume continues it from last.pt)."""
    validate(cfg)
    t = cfg.train
    device = resolve_device(t.device)
    if t.bf16 and device.type != "cuda":
        raise ConfigError("train.bf16", f"bf16 autocast needs a CUDA device; this run uses {device.type}")
    if t.threads:
        torch.set_num_threads(t.threads)
    if t.tune_allocator and device.type == "cpu":
        tune_allocator()  # speed: activations are reused instead of page-faulted in every step
    # Everything that can refuse the run comes before its folder is written: a refusal writes nothing.
    ds = dataset if dataset is not None else load_dataset(cfg.data)
    check_sizes(cfg, ds)
    run = RunFolder(run_dir) if run_dir is not None else None
    if run is not None:
        run.prepare(cfg, resume=resume)
    observers = list(observers) + ([RunWriter(run)] if run is not None else [])

    def emit(event: str, *args) -> None:
        for o in observers:
            getattr(o, event)(*args)

    try:
        return _fit(cfg, device, run, resume, ds, should_stop, emit)
    except BaseException as exc:
        emit("on_error", exc)
        raise


def check_sizes(cfg: TSSDConfig, ds: Dataset) -> None:
    """Refuse a training set smaller than one batch: no step could run (the loader drops partial batches)."""
    n, batch = len(ds.train.labels), cfg.data.batch_size
    if n >= batch:
        return
    if cfg.data.limit_train and cfg.data.limit_train < batch:
        raise ConfigError("data.limit_train", f"{n} training images are fewer than one batch (data.batch_size {batch})")
    raise ConfigError("data.batch_size", f"{batch} is larger than the training set ({n} images)")


def _fit(cfg, device, run, resume, ds, should_stop, emit) -> FitResult:
    t, d = cfg.train, cfg.distill
    torch.manual_seed(t.seed)
    model = build_model(cfg.model, ds.in_channels, ds.num_classes, weak_head=cfg.uses_weak_head).to(device)
    memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    if t.compile:
        compile_neurons(model)  # torch.compile the LIF time loops (the rest of the step stays eager)
    optimizer = make_optimizer(model, cfg)
    train_loader = Loader(ds.train, ds, cfg.data.batch_size, train=True, augment=cfg.data.augment,
                          seed=t.seed, device=device, channels_last=t.channels_last)
    test_loader = Loader(ds.test, ds, 256, train=False, device=device, channels_last=t.channels_last)
    steps_per_epoch = len(train_loader)  # >= 1: check_sizes()
    total_steps = t.epochs * steps_per_epoch

    # Resume: weights, optimizer, position in the data and clock come back from last.pt.
    step, elapsed, best = 0, 0.0, -1.0
    if resume and run is not None and (run.checkpoints_dir / "last.pt").exists():
        ck = load_checkpoint(run.checkpoints_dir / "last.pt", (FORMAT_TRAIN,), map_location=device)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        step, elapsed, best = ck["step"], ck["elapsed_s"], ck["best_acc"]
        run.truncate_metrics(ck["metrics_lines"])
        torch.set_rng_state(ck["rng"])

    # Batch-norm statistics for evaluation come from unaugmented training images (never the test split).
    bn_loader = Loader(ds.train, ds, cfg.data.batch_size, train=True, augment=False, seed=t.seed + 1,
                       device=device, channels_last=t.channels_last)
    bn_T = cfg.train_timesteps if t.bn_window == "train" else d.t_student
    bn_fresh_at = -1  # the step whose weights the current statistics describe

    def fresh_bn_stats() -> None:
        nonlocal bn_fresh_at
        if t.bn_stats == "recompute" and bn_fresh_at != step:
            bn_loader.set_epoch(step)
            recompute_bn_stats(model, itertools.islice(bn_loader, t.bn_batches), bn_T)
            bn_fresh_at = step

    p_idx = torch.arange(min(t.probe_images, len(ds.test.labels)))
    probe_images = ds.test.images[p_idx]
    probe_x, probe_y = next(iter(Loader(type(ds.test)(probe_images, ds.test.labels[p_idx]), ds, len(p_idx),
                                        train=False, device=device, channels_last=t.channels_last)))
    emit("before_fit", FitInfo(cfg, ds.name, ds.classes, cfg.model.arch, str(device), count_parameters(model),
                               tuple(lif_layers(model)), steps_per_epoch, total_steps, step, run.path if run else None))

    def probe(epoch: int) -> None:
        fresh_bn_stats()
        arrays = _probe_arrays(model, probe_x, probe_y, probe_images, ds, d.t_teacher, 256, step, epoch)
        emit("on_probe", f"epoch-{epoch:04d}", MappingProxyType(arrays))

    def checkpoint(name: str) -> None:
        if run is None:
            return
        fresh_bn_stats()  # a checkpoint's batch-norm statistics describe the weights saved with them
        path = run.checkpoints_dir / f"{name}.pt"
        n_lines = len(run.metrics_path.read_text().splitlines()) if run.metrics_path.exists() else 0
        save_checkpoint(path, {
            "format": FORMAT_TRAIN, "config": cfg.to_dict(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "step": step, "elapsed_s": elapsed, "best_acc": best,
            "metrics_lines": n_lines, "rng": torch.get_rng_state(),
            "num_classes": ds.num_classes, "in_channels": ds.in_channels, "classes": list(ds.classes),
        })
        emit("on_checkpoint", path)

    if step == 0 and t.probe_every:
        probe(0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=t.bf16)
    stopped = "done"
    model.train()
    start_epoch = epoch = step // steps_per_epoch
    final: dict[int, float] = {}
    for epoch in range(start_epoch + 1, t.epochs + 1):
        train_loader.set_epoch(epoch)
        means = EpochMeans()
        epoch_start_s = elapsed  # epoch_s: this epoch's share of wall_s, the training steps' clock
        for i, (x, y) in enumerate(train_loader):
            if i < step - (epoch - 1) * steps_per_epoch:
                continue  # resuming mid-epoch: this batch was already trained on
            t0 = time.perf_counter()
            progress = max(step / total_steps, elapsed / t.time_budget_s if t.time_budget_s else 0.0)
            for g in optimizer.param_groups:
                g["lr"] = t.lr * lr_factor(progress, t.schedule, t.warmup)
            log_now = (step + 1) % t.log_every == 0
            # Firing rates cost a reduction per layer: taken on logged steps and on each epoch's last.
            with_rates = log_now or i == steps_per_epoch - 1
            parts, win, longest, rates = _optimise(model, optimizer, x, y, cfg, autocast, with_rates, step + 1)
            step += 1
            elapsed += time.perf_counter() - t0
            rec = {**_signals(parts, win, y, optimizer), "acc_by_window": accuracy_by_window(longest, y)}
            if rates is not None:
                rec["firing_rate"] = dict(rates.firing_rate)
            means.add(rec)
            if log_now:
                emit("after_step", MappingProxyType({
                    "kind": "step", "step": step, "epoch": epoch, "wall_s": round(elapsed, 3), **rec}))
            if should_stop is not None and should_stop():
                stopped = "cancelled"
            elif t.time_budget_s and elapsed >= t.time_budget_s:
                stopped = "time_budget"
            if stopped != "done":
                break

        epoch_s = elapsed - epoch_start_s
        is_last = stopped != "done" or epoch == t.epochs
        test_acc = None
        if stopped != "cancelled" and (is_last or (t.eval_every and epoch % t.eval_every == 0)):
            fresh_bn_stats()
            test_acc = evaluate(model, test_loader, d.t_teacher)  # every window in one T_t pass
            final = dict(enumerate(test_acc, start=1))
        record_ = {"kind": "epoch", "step": step, "epoch": epoch, "wall_s": round(elapsed, 3),
                   "ce_teacher": None, "ce_weak": None, "loss_tsd": None, "loss_ssd": None,
                   "acc_teacher": None, "acc_weak": None, "agreement": None, "kl": None,
                   **means.means(),
                   "epoch_s": round(epoch_s, 3), "complete": stopped == "done"}
        if test_acc is not None:
            record_.update(test_acc=test_acc[d.t_student - 1], test_acc_by_window=test_acc)
        if means.count:
            emit("after_epoch", MappingProxyType(record_))
        if test_acc is not None and test_acc[d.t_student - 1] > best:
            best = test_acc[d.t_student - 1]
            checkpoint("best")
        if t.probe_every and (epoch % t.probe_every == 0 or is_last):
            probe(epoch)
        checkpoint("last")
        if stopped != "done":
            break

    if stopped == "cancelled":
        final = {}
    elif not final:  # resumed a run whose training had already finished
        fresh_bn_stats()
        final = dict(enumerate(evaluate(model, test_loader, d.t_teacher), start=1))
    for n, a in final.items():
        emit("after_eval", MappingProxyType({"kind": "eval", "step": step, "epoch": epoch,
                                             "wall_s": round(elapsed, 3), "split": "test", "t": n, "acc": a}))
    result = FitResult(cfg, model, ds, final, stopped, step, elapsed, run.path if run else None)
    emit("after_fit", result)
    return result


class EpochMeans:
    """Means over one epoch of the step signals: numbers, lists (elementwise) and dicts (per key).

    Each key is averaged over the steps that carried it (a None is skipped): the loss parts over
    every step, firing rates over the steps that recorded them.
    """

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.count = 0  # steps added

    def add(self, rec: dict[str, Any]) -> None:
        self.count += 1
        for k, v in rec.items():
            if v is None:
                continue
            if isinstance(v, dict):
                v = {name: np.float64(x) for name, x in v.items()}
                old = self.sums.get(k, {})
                self.sums[k] = {name: old.get(name, 0.0) + x for name, x in v.items()}
            else:
                self.sums[k] = self.sums.get(k, 0.0) + np.asarray(v, dtype=np.float64)
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, total in self.sums.items():
            n = self.counts[k]
            if isinstance(total, dict):
                out[k] = {name: float(x / n) for name, x in total.items()}
            else:
                mean = total / n
                out[k] = mean.tolist() if mean.ndim else float(mean)
        return out


def _optimise(model: SpikingNet, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor, cfg: TSSDConfig,
              autocast: torch.autocast, with_rates: bool, step: int) -> tuple[LossParts, Windows, Tensor, Recording | None]:
    """Training step number `step`: forward every window and the TSSD loss (under `autocast`), backward, SGD.
    Returns the loss parts, the windows, the longest window's logits (detached) and, when
    `with_rates`, the recording of each LIF layer's firing rate over the step (else None).
    Raises `TrainingDiverged`, before the weights change, when the loss is not finite."""
    d = cfg.distill
    rate_probe = record(model, spikes=False, membrane=False) if with_rates else nullcontext()
    with autocast, rate_probe as rates:
        out, teacher_out = forward_windows(model, x, cfg)
        win = windows(out, d.t_student, teacher_out)
        parts = tssd_loss(win, y, d, cfg.train.label_smoothing)
    _check_finite(parts, step)
    optimizer.zero_grad(set_to_none=True)
    parts.loss.backward()
    optimizer.step()
    return parts, win, (teacher_out or out).logits.detach().float(), rates


def _check_finite(parts: LossParts, step: int) -> None:
    """Stop at the first non-finite loss, naming the most specific part that is not finite.

    One device sync per step; the records read every part as a float right after anyway.
    """
    if torch.isfinite(parts.loss.detach()).item():
        return
    values = parts.as_floats()
    name = next((k for k in ("loss_tsd", "loss_ssd", "ce_teacher", "ce_weak", "loss_task")
                 if values[k] is not None and not math.isfinite(values[k])), "loss")
    raise TrainingDiverged(f"the {name} became {values[name]} at step {step}; training stopped before this step "
                           "changed the weights (a lower train.lr or smaller loss weights may help)")


def _signals(parts: LossParts, win: Windows, y: Tensor, optimizer: torch.optim.Optimizer) -> dict[str, float | None]:
    """The step's distillation signals (SPEC §7): cheap reductions on tensors already computed."""
    return {**{k: v for k, v in parts.as_floats().items() if k != "ce_student"},
            "acc_student": _acc(win.student, y), "acc_teacher": _acc(win.teacher, y), "acc_weak": _acc(win.weak, y),
            "agreement": agreement(win.teacher, win.student) if win.teacher is not None else None,
            "kl": _kl(win.teacher, win.student), "lr": optimizer.param_groups[0]["lr"]}


def _acc(logits: Tensor | None, y: Tensor) -> float | None:
    return None if logits is None else (logits.detach().argmax(-1) == y).float().mean().item()


def _kl(teacher: Tensor | None, student: Tensor | None) -> float | None:
    """KL(teacher || student) at temperature 1, batch mean: how far the student is from its teacher."""
    if teacher is None or student is None:
        return None
    return kd_kl(teacher.detach().float(), student.detach().float(), temperature=1.0).item()
