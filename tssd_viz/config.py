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
import math
from dataclasses import dataclass, field
from typing import Any

from .archs import num_stages

ARCHS = ("vgg_small", "vgg_fast", "vgg11", "resnet19", "vgg_bench")
MODES = ("baseline", "tsd", "ssd", "tssd", "s2w", "w2s")
SW_VARIANTS = ("pair", "cascade")
DATASETS = ("digits", "cifar10", "cifar100", "folder", "event_digits", "nmnist", "dvs_gesture", "cifar10_dvs")
EVENT_DATASETS = ("event_digits", "nmnist", "dvs_gesture", "cifar10_dvs")
WINDOWINGS = ("fixed_window", "whole_recording")
TSD_PASSES = ("shared", "separate", "continue")
SSD_TEACHERS = ("student", "teacher")
DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "constant")
BN_STATS = ("recompute", "running")
BN_WINDOWS = ("train", "student")
ALLOCATORS = ("auto", "glibc", "jemalloc", "tcmalloc")


class ConfigError(ValueError):
    """A configuration value is out of range. `field` is the dotted name, e.g. `distill.t_student`."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _key(name: str) -> str:
    """A key from a config file as an error names it: as written, or quoted when it is empty or holds
    a newline or another unprintable character (the message must stay one line)."""
    return name if isinstance(name, str) and name and name.isprintable() else repr(name)


@dataclass
class ModelConfig:
    arch: str = "vgg_small"
    """Backbone: vgg_small (classroom CPU net), vgg11, resnet19 (the paper's CIFAR network)."""
    width: float = 1.0
    """Multiplier on every layer's channel count (0.5 halves the network's width); in (0, 4]."""
    aux_stage: int = 2
    """Stage (1-based) whose output spikes feed the weak classifier; SPEC §5 default: the second."""
    tau: float = 2.0
    """LIF membrane time constant in timesteps; decay beta = 1 - 1/tau; in (1, 1000]."""
    threshold: float = 1.0
    """LIF firing threshold theta; in (0, 100]."""
    surrogate_width: float = 1.0
    """Width a of the rectangular surrogate window around the threshold (gradient 1/a inside); in [0.01, 100]."""
    detach_reset: bool = False
    """[choice] Block the gradient through the soft-reset term (SPEC §1)."""


@dataclass
class DistillConfig:
    mode: str = "tssd"
    """Training mode: baseline, tsd (temporal), ssd (spatial), tssd (both); s2w / w2s (the strongest timestep of
    the T_s window teaches the weakest / the reverse: no extra timesteps, no weak head; SPEC §10)."""
    t_student: int = 2
    """T_s: timesteps used at inference (the student window); 1 to 63."""
    t_teacher: int = 4
    """T_t: timesteps of the teacher window during training (> t_student); at most 64."""
    alpha: float = 1.0
    """Weight of the temporal distillation loss L_tsd; in [0, 100]."""
    beta: float = 1.0
    """Weight of the spatial distillation loss L_ssd; in [0, 100]."""
    kd_temperature: float = 2.0
    """Softmax temperature tau_kd of both KL terms; in [0.1, 100]."""
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
    sw_weight: float = 1.0
    """lambda: weight of the strong/weak loss L_sw of s2w and w2s; in [0, 100]."""
    sw_variant: str = "pair"
    """[choice] s2w / w2s: pair (one teacher timestep, one student timestep) or cascade (timesteps ranked by
    confidence, each adjacent pair distilled, averaged over T_s - 1 pairs)."""

    # The modes as the two teachers they switch on; every part of the project asks these.
    @property
    def uses_teacher(self) -> bool:
        """The temporal teacher: a T_t window that teaches the T_s window (tsd, tssd)."""
        return self.mode in ("tsd", "tssd")

    @property
    def uses_weak_head(self) -> bool:
        """The spatial teacher's pupil: a weak head on an intermediate stage (ssd, tssd)."""
        return self.mode in ("ssd", "tssd")

    @property
    def uses_timestep_teacher(self) -> bool:
        """A timestep of the T_s window teaches another one (s2w, w2s): no extra timesteps, no weak head."""
        return self.mode in ("s2w", "w2s")


@dataclass
class DataConfig:
    dataset: str = "digits"
    """digits (offline, ships with scikit-learn), cifar10, cifar100, folder (train/<class>/*, test/<class>/*);
    event cameras: event_digits (offline, made from digits), nmnist, dvs_gesture, cifar10_dvs (through tonic)."""
    root: str = ""
    """Where the dataset lives or is downloaded to; empty: the cache directory (TSSD_CACHE or ~/.cache/tssd-viz)."""
    batch_size: int = 128
    """Images per training step; 1 to 65,536, and at most the training set."""
    limit_train: int = 0
    """Use only the first N training images (0: all); for short classroom runs. At most 10^9."""
    limit_test: int = 0
    """Use only the first N test images (0: all). At most 10^9."""
    augment: bool = True
    """Random crop with padding (and a horizontal flip on natural images)."""
    download: bool = True
    """Download a torchvision or tonic dataset that is missing (needs the internet)."""
    windowing: str = "fixed_window"
    """[choice] Event data: fixed_window (frames of duration/T_t: a window of n steps sees the first n of them)
    or whole_recording (each window sees the whole recording in its own n frames; needs tsd_pass separate)."""
    label_noise: float = 0.0
    """[choice] Fraction of the training labels flipped, each to one of the other classes at random (symmetric
    noise, a regime where soft targets are known to help); the same images and new labels in every run (seed 0);
    test labels are never touched. In [0, 1)."""


@dataclass
class TrainConfig:
    epochs: int = 3
    """Passes over the training set; 1 to 10,000."""
    time_budget_s: float = 0.0
    """Stop training after this many seconds (0: no limit) and still evaluate; at most 30 days (2,592,000)."""
    optimizer: str = "sgd"
    """sgd (with Nesterov momentum) or adamw."""
    lr: float = 0.1
    """Peak learning rate; in (0, 10]."""
    momentum: float = 0.9
    """SGD momentum; in [0, 1)."""
    weight_decay: float = 5e-4
    """L2 weight decay on conv and linear weights; in [0, 1]."""
    schedule: str = "onecycle"
    """Learning-rate shape over training progress (epochs or time budget, whichever ends first)."""
    warmup: float = 0.15
    """Fraction of training spent warming the learning rate up (onecycle); in [0, 1)."""
    label_smoothing: float = 0.0
    """Label smoothing of every cross-entropy term; in [0, 1)."""
    seed: int = 0
    """Seed of weights, data order and augmentation; 0 to 2^32 - 1."""
    device: str = "auto"
    """auto (cuda when present, else cpu), cpu or cuda."""
    bf16: bool = False
    """bf16 autocast (CUDA only)."""
    channels_last: bool = True
    """channels_last memory format for the convolutions (faster on CPU and tensor cores)."""
    compile: bool = False
    """torch.compile the neuron time loop (helps on GPUs; the fused CPU neuron is faster uncompiled)."""
    tune_allocator: bool = True
    """CPU: keep freed activation memory for reuse instead of returning it to the OS (tssd_viz.training.speed)."""
    allocator: str = "auto"
    """[choice] The training process's malloc: auto (jemalloc, else tcmalloc, when installed; else glibc),
    glibc, jemalloc or tcmalloc; one not installed falls back to glibc (tssd_viz.training.allocator)."""
    bn_stats: str = "recompute"
    """[choice] Eval-mode batch-norm statistics: recompute (re-estimated with the current weights on
    bn_batches training images before every evaluation and probe) or running (PyTorch's running averages)."""
    bn_batches: int = 20
    """Training batches averaged by bn_stats=recompute; 1 to 1,000."""
    bn_augment: bool = True
    """[choice] bn_stats=recompute: those batches get the training augmentation (data.augment), the input
    distribution the weights were trained with; false: unaugmented images (1.4 points lower on the classroom
    baseline, SPEC §9)."""
    bn_window: str = "train"
    """[choice] Timesteps of the forward pass that recomputes the statistics: train (the training pass: T_t
    in teacher modes) or student (T_s)."""
    log_every: int = 10
    """Write a step record every N optimizer steps; 1 to 10^6."""
    eval_every: int = 1
    """Evaluate at T_s on the test split every N epochs (0: only at the end); at most 10,000."""
    probe_every: int = 1
    """Snapshot rasters, traces and per-timestep logits of the probe batch every N epochs (0: never); at most 10,000."""
    probe_images: int = 8
    """Number of fixed test images in the probe batch; 1 to 64."""
    threads: int = 0
    """CPU threads for torch (0: leave torch's default); at most 256."""
    sync_bn: bool = True
    """[choice] Under torchrun: batch norm over the global batch (SyncBatchNorm), so N processes train as one
    does; false: each process normalises its own shard (no communication in the forward pass)."""
    dist_timeout_s: float = 600.0
    """Under torchrun: how long a process waits for the others at a collective before the run fails (a rank
    that dies ends the others at once; this bounds a rank that hangs); 10 to 86,400 seconds."""


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
    def from_dict(cls, d: dict[str, Any]) -> TSSDConfig:
        """Build from a (possibly partial) nested dict; unknown keys or a wrong structure are a `ConfigError`.

        Only the structure is checked here (sections are dicts of known fields); the values are
        checked by `validate()`.
        """
        sections = {f.name: f.default_factory for f in dataclasses.fields(cls)}  # type: ignore[misc]
        if not isinstance(d, dict):
            raise ConfigError("config", f"must be a mapping of sections ({', '.join(sections)}), got {_shown(d)}")
        unknown = sorted(str(k)[:60] for k in d if k not in sections)  # a key of any length: named in one short line
        if unknown:
            raise ConfigError(_key(unknown[0]), f"unknown section; known: {', '.join(sections)}")
        parts = {}
        for name, sub_cls in sections.items():
            sub = d.get(name, {})
            if not isinstance(sub, dict):
                raise ConfigError(name, f"must be a mapping of fields, got {_shown(sub)}")
            names = {g.name for g in dataclasses.fields(sub_cls)}
            unknown = sorted(str(k)[:60] for k in sub if k not in names)
            if unknown:
                raise ConfigError(f"{name}.{_key(unknown[0])}", f"unknown field; known: {', '.join(sorted(names))}")
            parts[name] = sub_cls(**sub)
        return cls(**parts)

    def replace(self, **dotted: Any) -> TSSDConfig:
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
        return self.distill.uses_teacher

    @property
    def uses_weak_head(self) -> bool:
        return self.distill.uses_weak_head

    @property
    def train_timesteps(self) -> int:
        """Timesteps of the training forward pass."""
        d = self.distill
        needs_teacher_window = self.uses_teacher or (self.uses_weak_head and d.ssd_teacher == "teacher")
        return d.t_teacher if needs_teacher_window else d.t_student


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric field: lo to hi, each end included unless it is open."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def check(self, name: str, value: float) -> None:
        if value < self.lo or (self.lo_open and value == self.lo):
            raise ConfigError(name, f"must be {'>' if self.lo_open else '>='} {self.lo}, got {_shown(value)}")
        if value > self.hi or (self.hi_open and value == self.hi):
            raise ConfigError(name, f"must be {'<' if self.hi_open else '<='} {self.hi}, got {_shown(value)}")


# The range of every numeric field. Upper bounds stop a typo from training for ever, allocating the
# machine away or overflowing a seed; each is well beyond any run this project makes, and each field's
# docstring repeats it (as does the README). model.aux_stage depends on the arch and distill.t_teacher
# on t_student: validate() checks those two against each other.
LIMITS: dict[str, Range] = {
    "model.width": Range(0, 4, lo_open=True),
    "model.tau": Range(1, 1000, lo_open=True),  # decay 1 - 1/tau must lie in (0, 1)
    "model.threshold": Range(0, 100, lo_open=True),
    "model.surrogate_width": Range(0.01, 100),  # the surrogate gradient is 1/width
    "distill.t_student": Range(1, 63),
    "distill.t_teacher": Range(2, 64),  # memory and time grow with T_t
    "distill.alpha": Range(0, 100),
    "distill.beta": Range(0, 100),
    "distill.sw_weight": Range(0, 100),
    "distill.kd_temperature": Range(0.1, 100),  # logits are divided by it
    "data.batch_size": Range(1, 65536),
    "data.limit_train": Range(0, 10**9),
    "data.limit_test": Range(0, 10**9),
    "data.label_noise": Range(0, 1, hi_open=True),
    "train.epochs": Range(1, 10_000),
    "train.time_budget_s": Range(0, 30 * 86400),
    "train.lr": Range(0, 10, lo_open=True),
    "train.momentum": Range(0, 1, hi_open=True),
    "train.weight_decay": Range(0, 1),
    "train.warmup": Range(0, 1, hi_open=True),
    "train.label_smoothing": Range(0, 1, hi_open=True),
    "train.seed": Range(0, 2**32 - 1),
    "train.bn_batches": Range(1, 1000),
    "train.log_every": Range(1, 10**6),
    "train.eval_every": Range(0, 10_000),
    "train.probe_every": Range(0, 10_000),
    "train.probe_images": Range(1, 64),
    "train.threads": Range(0, 256),  # 100,000 threads crashed the process
    "train.dist_timeout_s": Range(10, 86400),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "model.arch": ARCHS,
    "distill.mode": MODES,
    "distill.tsd_pass": TSD_PASSES,
    "distill.ssd_teacher": SSD_TEACHERS,
    "distill.sw_variant": SW_VARIANTS,
    "data.dataset": DATASETS,
    "data.windowing": WINDOWINGS,
    "train.optimizer": OPTIMIZERS,
    "train.schedule": SCHEDULES,
    "train.device": DEVICES,
    "train.bn_stats": BN_STATS,
    "train.bn_window": BN_WINDOWS,
    "train.allocator": ALLOCATORS,
}


def _shown(value: Any) -> str:
    """`value` for a one-line message: its repr, shortened."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr (more than 4,300 digits)
        return "a number too large to print"
    except RecursionError:  # a list nested thousands deep
        return f"a {type(value).__name__} nested too deep to print"
    return text if len(text) <= 60 else text[:57] + "..."


def _check_field(name: str, kind: str, value: Any) -> None:
    """Type, finiteness, range and choices of one field; `kind` is its annotation (bool, int, float, str)."""
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(name, f"must be true or false, got {_shown(value)}")
    if kind == "str" and not isinstance(value, str):
        raise ConfigError(name, f"must be a string, got {_shown(value)}")
    # bool is a subclass of int in Python: True is neither an integer count nor a number here.
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(name, f"must be a whole number, got {_shown(value)}")
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(name, f"must be a number, got {_shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(name, f"must be a finite number, got {_shown(value)}")
    if name in LIMITS:
        LIMITS[name].check(name, value)
    if name in CHOICES and value not in CHOICES[name]:
        raise ConfigError(name, f"{_shown(value)} is not one of {', '.join(CHOICES[name])}")


def validate(cfg: TSSDConfig) -> TSSDConfig:
    """Check every field; return `cfg` unchanged or raise `ConfigError` (one line, names the field).

    Each field must have its annotated type (a bool is not an int, an int is a fine float), be finite
    and lie in its `LIMITS` range or `CHOICES`; then the fields are checked against each other.
    """
    for section in dataclasses.fields(cfg):
        part = getattr(cfg, section.name)
        for f in dataclasses.fields(part):
            _check_field(f"{section.name}.{f.name}", str(f.type), getattr(part, f.name))

    m, d, data = cfg.model, cfg.distill, cfg.data
    n = num_stages(m.arch)
    if not 1 <= m.aux_stage <= n - 1:
        raise ConfigError("model.aux_stage", f"must be between 1 and {n - 1} for {m.arch}, got {_shown(m.aux_stage)}")
    if d.t_teacher <= d.t_student:
        raise ConfigError("distill.t_teacher", f"must be > distill.t_student ({d.t_student}), got {d.t_teacher}")
    if d.uses_timestep_teacher and d.t_student < 2:
        raise ConfigError(
            "distill.t_student",
            f"mode {d.mode!r} distils between the timesteps of the T_s window: "
            f"it needs t_student >= 2, got {d.t_student}",
        )
    if d.tsd_pass == "continue" and (not d.detach_teacher or d.teacher_ce):
        raise ConfigError(
            "distill.tsd_pass",
            "'continue' builds no graph for the teacher's extra steps: it needs "
            "distill.detach_teacher true and distill.teacher_ce false",
        )
    if data.windowing == "whole_recording":
        if data.dataset not in EVENT_DATASETS:
            raise ConfigError("data.windowing", f"'whole_recording' bins event recordings; {data.dataset} has none")
        if cfg.train_timesteps != d.t_student and d.tsd_pass != "separate":
            raise ConfigError(
                "data.windowing",
                "'whole_recording' gives the student and the teacher different frames: it needs distill.tsd_pass "
                f"'separate', got {d.tsd_pass!r}",
            )
    if data.dataset == "folder" and not data.root:
        raise ConfigError("data.root", "dataset 'folder' needs data.root, a folder with train/ and test/")
    if "\0" in data.root:
        raise ConfigError("data.root", "must not contain a NUL character")
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
    # Event camera, offline: event_digits (digits seen by an emulated DVS through three saccades), the
    # digits recipe on 34x34 two-channel frames.
    "events": {
        "model": {"arch": "vgg_small", "width": 0.5},
        "data": {"dataset": "event_digits", "batch_size": 32, "augment": False},
        "train": {"epochs": 3, "lr": 0.1, "log_every": 4},
    },
    # The classroom demo: real CIFAR-10, a CPU-sized network (vgg_fast: downsampling right after the
    # stem, so only the stem's neurons run at 32x32), all 50,000 images; give it a time budget
    # (--train.time-budget-s 120): the learning rate then anneals to zero at the budget.
    "classroom": {
        "model": {"arch": "vgg_fast", "width": 0.5},
        "data": {"dataset": "cifar10", "batch_size": 128, "limit_train": 0},
        "train": {"epochs": 4, "lr": 0.2, "label_smoothing": 0.1, "warmup": 0.1},
    },
    # The classroom demo sized for a lesson: the same recipe on the first 10,000 training images for 4 epochs
    # (312 steps), evaluated once at the end on the first 2,000 test images; about two minutes on an idle
    # 2-core CPU. No time budget: a busy machine takes longer but ends at the same accuracy, so a class
    # compares like with like.
    "classroom-quick": {
        "model": {"arch": "vgg_fast", "width": 0.5},
        "data": {"dataset": "cifar10", "batch_size": 128, "limit_train": 10_000, "limit_test": 2_000},
        "train": {
            "epochs": 4,
            "lr": 0.2,
            "label_smoothing": 0.1,
            "warmup": 0.1,
            "eval_every": 0,
        },
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
