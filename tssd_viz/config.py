"""One configuration tree, shared by the CLI, the notebooks and the app (SPEC §8).

Every field has a default and a one-line reason. Fields named after the paper keep its names
(`t_student`, `t_teacher`, `alpha`, `beta`, `kd_temperature`, `aux_stage`). Choices that the paper
leaves open (SPEC's **[choice]** items) are plain switches here, so that a lesson can flip them.

`validate()` is the single place where a configuration is checked; it raises `ConfigError`, whose
message is one line naming the field and the allowed values.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

ARCHS = ("vgg_small", "vgg_fast", "vgg11", "resnet19", "vgg_bench")
MODES = ("baseline", "tsd", "ssd", "tssd")
DATASETS = ("digits", "cifar10", "cifar100", "folder")
TSD_PASSES = ("shared", "separate", "continue")
SSD_TEACHERS = ("student", "teacher")
DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "constant")
BN_STATS = ("recompute", "running")
BN_WINDOWS = ("train", "student")


class ConfigError(ValueError):
    """A configuration value is out of range. `field` is the dotted name, e.g. `distill.t_student`."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass
class ModelConfig:
    arch: str = "vgg_small"
    """Backbone: vgg_small (classroom CPU net), vgg11, resnet19 (the paper's CIFAR network)."""
    width: float = 1.0
    """Multiplier on every layer's channel count (0.5 halves the network's width)."""
    aux_stage: int = 2
    """Stage (1-based) whose output spikes feed the weak classifier; SPEC §5 default: the second."""
    tau: float = 2.0
    """LIF membrane time constant in timesteps; decay beta = 1 - 1/tau."""
    threshold: float = 1.0
    """LIF firing threshold theta."""
    surrogate_width: float = 1.0
    """Width a of the rectangular surrogate window around the threshold."""
    detach_reset: bool = False
    """[choice] Block the gradient through the soft-reset term (SPEC §1)."""


@dataclass
class DistillConfig:
    mode: str = "tssd"
    """Training mode: baseline, tsd (temporal), ssd (spatial), tssd (both)."""
    t_student: int = 2
    """T_s: timesteps used at inference (the student window)."""
    t_teacher: int = 4
    """T_t: timesteps of the teacher window during training (> t_student)."""
    alpha: float = 1.0
    """Weight of the temporal distillation loss L_tsd."""
    beta: float = 1.0
    """Weight of the spatial distillation loss L_ssd."""
    kd_temperature: float = 2.0
    """Softmax temperature tau_kd of both KL terms."""
    tsd_pass: str = "shared"
    """[choice] shared: one T_t pass, student = its first T_s steps; separate: two passes;
    continue: the teacher's extra steps run without a graph from the student's states."""
    detach_teacher: bool = True
    """[choice] Stop the gradient through the teacher distribution in L_tsd."""
    teacher_ce: bool = True
    """[choice] The teacher window also gets the task (cross-entropy) loss."""
    ssd_teacher: str = "student"
    """[choice] Which final output teaches the weak head: student (T_s window) or teacher (T_t)."""
    weak_ce: bool = True
    """[choice] The weak head also gets the task loss."""


@dataclass
class DataConfig:
    dataset: str = "digits"
    """digits (offline, ships with scikit-learn), cifar10, cifar100, folder (train/<class>/*, test/<class>/*)."""
    root: str = ""
    """Where the dataset lives or is downloaded to; empty: the cache directory (TSSD_CACHE or ~/.cache/tssd-viz)."""
    batch_size: int = 128
    """Images per training step."""
    limit_train: int = 0
    """Use only the first N training images (0: all); for short classroom runs."""
    limit_test: int = 0
    """Use only the first N test images (0: all)."""
    augment: bool = True
    """Random crop with padding (and a horizontal flip on natural images)."""
    download: bool = True
    """Download a torchvision dataset that is missing (needs the internet)."""


@dataclass
class TrainConfig:
    epochs: int = 3
    """Passes over the training set."""
    time_budget_s: float = 0.0
    """Stop training after this many seconds (0: no limit) and still evaluate."""
    optimizer: str = "sgd"
    """sgd (with Nesterov momentum) or adamw."""
    lr: float = 0.1
    """Peak learning rate."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 5e-4
    """L2 weight decay on conv and linear weights."""
    schedule: str = "onecycle"
    """Learning-rate shape over training progress (epochs or time budget, whichever ends first)."""
    warmup: float = 0.15
    """Fraction of training spent warming the learning rate up (onecycle)."""
    label_smoothing: float = 0.0
    """Label smoothing of every cross-entropy term."""
    seed: int = 0
    """Seed of weights, data order and augmentation."""
    device: str = "auto"
    """auto (cuda when present, else cpu), cpu or cuda."""
    bf16: bool = False
    """bf16 autocast (CUDA only)."""
    channels_last: bool = True
    """channels_last memory format for the convolutions (faster on CPU and tensor cores)."""
    compile: bool = False
    """torch.compile the neuron time loop (helps on GPUs; the fused CPU neuron is faster uncompiled)."""
    tune_allocator: bool = True
    """CPU: keep freed activation memory for reuse instead of returning it to the OS (tssd_viz.speed)."""
    bn_stats: str = "recompute"
    """[choice] Eval-mode batch-norm statistics: recompute (re-estimated with the current weights on
    bn_batches training images before every evaluation and probe) or running (PyTorch's running averages)."""
    bn_batches: int = 20
    """Training batches (unaugmented) averaged by bn_stats=recompute."""
    bn_window: str = "train"
    """[choice] Timesteps of the forward pass that recomputes the statistics: train (the training pass: T_t
    in teacher modes) or student (T_s)."""
    log_every: int = 10
    """Write a step record every N optimizer steps."""
    eval_every: int = 1
    """Evaluate at T_s on the test split every N epochs (0: only at the end)."""
    probe_every: int = 1
    """Snapshot rasters, traces and per-timestep logits of the probe batch every N epochs (0: never)."""
    probe_images: int = 8
    """Number of fixed test images in the probe batch."""
    threads: int = 0
    """CPU threads for torch (0: leave torch's default)."""


@dataclass
class TSSDConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TSSDConfig":
        """Build from a (possibly partial) nested dict; unknown keys are an error."""
        parts = {}
        for f in dataclasses.fields(cls):
            sub_cls = f.default_factory  # type: ignore[misc]
            sub = dict(d.get(f.name, {}))
            names = {g.name for g in dataclasses.fields(sub_cls)}
            unknown = sorted(set(sub) - names)
            if unknown:
                raise ConfigError(f"{f.name}.{unknown[0]}", f"unknown field; known: {', '.join(sorted(names))}")
            parts[f.name] = sub_cls(**sub)
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(unknown[0], "unknown section; known: model, distill, data, train")
        return cls(**parts)

    def replace(self, **dotted: Any) -> "TSSDConfig":
        """A copy with dotted fields replaced: `cfg.replace(**{"distill.mode": "baseline"})`."""
        d = self.to_dict()
        for key, value in dotted.items():
            section, _, name = key.partition(".")
            if section not in d or name not in d[section]:
                raise ConfigError(key, "no such config field")
            d[section][name] = value
        return TSSDConfig.from_dict(d)

    # Derived quantities, kept here so that every part of the project agrees on them.
    @property
    def uses_teacher(self) -> bool:
        return self.distill.mode in ("tsd", "tssd")

    @property
    def uses_weak_head(self) -> bool:
        return self.distill.mode in ("ssd", "tssd")

    @property
    def train_timesteps(self) -> int:
        """Timesteps of the training forward pass."""
        d = self.distill
        needs_teacher_window = self.uses_teacher or (self.uses_weak_head and d.ssd_teacher == "teacher")
        return d.t_teacher if needs_teacher_window else d.t_student


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(name, f"{value!r} is not one of {', '.join(allowed)}")


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(name, f"must be {bound}, got {value}")


def validate(cfg: TSSDConfig) -> TSSDConfig:
    """Check every field; return `cfg` unchanged or raise `ConfigError` (one line, names the field)."""
    from .models import num_stages  # local import: models import config

    m, d, data, t = cfg.model, cfg.distill, cfg.data, cfg.train
    _choice("model.arch", m.arch, ARCHS)
    _positive("model.width", m.width)
    n = num_stages(m.arch)
    if not 1 <= m.aux_stage <= n - 1:
        raise ConfigError("model.aux_stage", f"must be between 1 and {n - 1} for {m.arch}, got {m.aux_stage}")
    if m.tau <= 1.0:
        raise ConfigError("model.tau", f"must be > 1 (decay 1 - 1/tau in (0, 1)), got {m.tau}")
    _positive("model.threshold", m.threshold)
    _positive("model.surrogate_width", m.surrogate_width)

    _choice("distill.mode", d.mode, MODES)
    if d.t_student < 1:
        raise ConfigError("distill.t_student", f"must be >= 1, got {d.t_student}")
    if d.t_teacher <= d.t_student:
        raise ConfigError(
            "distill.t_teacher", f"must be > distill.t_student ({d.t_student}), got {d.t_teacher}"
        )
    _positive("distill.alpha", d.alpha, allow_zero=True)
    _positive("distill.beta", d.beta, allow_zero=True)
    _positive("distill.kd_temperature", d.kd_temperature)
    _choice("distill.tsd_pass", d.tsd_pass, TSD_PASSES)
    if d.tsd_pass == "continue" and (not d.detach_teacher or d.teacher_ce):
        raise ConfigError(
            "distill.tsd_pass",
            "'continue' builds no graph for the teacher's extra steps: it needs "
            "distill.detach_teacher true and distill.teacher_ce false",
        )
    _choice("distill.ssd_teacher", d.ssd_teacher, SSD_TEACHERS)

    _choice("data.dataset", data.dataset, DATASETS)
    if data.dataset == "folder" and not data.root:
        raise ConfigError("data.root", "dataset 'folder' needs data.root, a folder with train/ and test/")
    _positive("data.batch_size", data.batch_size)
    _positive("data.limit_train", data.limit_train, allow_zero=True)
    _positive("data.limit_test", data.limit_test, allow_zero=True)

    _positive("train.epochs", t.epochs)
    _positive("train.time_budget_s", t.time_budget_s, allow_zero=True)
    _choice("train.optimizer", t.optimizer, OPTIMIZERS)
    _positive("train.lr", t.lr)
    _positive("train.momentum", t.momentum, allow_zero=True)
    _positive("train.weight_decay", t.weight_decay, allow_zero=True)
    _choice("train.schedule", t.schedule, SCHEDULES)
    if not 0 <= t.warmup < 1:
        raise ConfigError("train.warmup", f"must be in [0, 1), got {t.warmup}")
    if not 0 <= t.label_smoothing < 1:
        raise ConfigError("train.label_smoothing", f"must be in [0, 1), got {t.label_smoothing}")
    _choice("train.device", t.device, DEVICES)
    _choice("train.bn_stats", t.bn_stats, BN_STATS)
    _positive("train.bn_batches", t.bn_batches)
    _choice("train.bn_window", t.bn_window, BN_WINDOWS)
    for name in ("log_every", "probe_images"):
        _positive(f"train.{name}", getattr(t, name))
    for name in ("eval_every", "probe_every", "threads"):
        _positive(f"train.{name}", getattr(t, name), allow_zero=True)
    return cfg


PRESETS: dict[str, dict[str, Any]] = {
    # Offline, seconds on a laptop: the embedded default everywhere nothing else is available. The
    # recipe was chosen by measuring (docs/SPEC.md §9): batches of 32 give 44 steps per epoch on the
    # 1,437 training digits, enough for every mode to pass 90% test accuracy at T_s in 3 epochs; no
    # augmentation, because a 1-pixel shift is an eighth of an 8x8 digit and cost 2-7 points here.
    "quick": {
        "model": {"arch": "vgg_small", "width": 0.5},
        "data": {"dataset": "digits", "batch_size": 32, "augment": False},
        "train": {"epochs": 3, "lr": 0.1, "log_every": 2},
    },
    "digits": {
        "model": {"arch": "vgg_small", "width": 0.5},
        "data": {"dataset": "digits", "batch_size": 32, "augment": False},
        "train": {"epochs": 8, "lr": 0.1, "log_every": 4},
    },
    # The classroom demo: real CIFAR-10, a CPU-sized network (vgg_fast: downsampling right after the
    # stem, so only the stem's neurons run at 32x32), all 50,000 images; give it a time budget
    # (--train.time-budget-s 120): the learning rate then anneals to zero at the budget.
    "classroom": {
        "model": {"arch": "vgg_fast", "width": 0.5},
        "data": {"dataset": "cifar10", "batch_size": 128, "limit_train": 0},
        "train": {"epochs": 4, "lr": 0.2, "label_smoothing": 0.1, "warmup": 0.1},
    },
    # The paper's CIFAR line: ResNet-19, T_s=2 vs T_t=4 (for a GPU).
    "paper-resnet19": {
        "model": {"arch": "resnet19"},
        "data": {"dataset": "cifar10", "batch_size": 64},
        "train": {"epochs": 200, "lr": 0.1, "schedule": "cosine", "warmup": 0.0},
    },
}


def preset(name: str) -> TSSDConfig:
    """The named preset as a full config (defaults for every field it does not set)."""
    if name not in PRESETS:
        raise ConfigError("preset", f"{name!r} is not one of {', '.join(PRESETS)}")
    return TSSDConfig.from_dict(PRESETS[name])
