"""One configuration tree, shared by the CLI, the notebooks and the app (SPEC §8).

Every field has a default and a one-line reason. Fields named after the paper keep its names
(`t_student`, `t_teacher`, `alpha`, `beta`, `kd_temperature`, `aux_stage`). Choices that the paper
leaves open (SPEC's **[choice]** items) are plain switches here, so that a lesson can flip them.

`tssd_viz.validation.validate()` is the single place where a configuration's values are checked (the
range or choices of every field, and the fields against each other); it raises `ConfigError`, whose message
is one line naming the field and the allowed values. The named starting points live in `tssd_viz.presets`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

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
    """A configuration value is out of range: one line naming the field and what is allowed.

    Attributes:
        field: the dotted name, e.g. `distill.t_student`.
    """

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _key(name: str) -> str:
    """A key from a config file as an error names it: as written, or quoted when it is empty or holds
    a newline or another unprintable character (the message must stay one line)."""
    return name if isinstance(name, str) and name and name.isprintable() else repr(name)


def shown(value: Any) -> str:
    """`value` for a one-line message: its repr, shortened."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr (more than 4,300 digits)
        return "a number too large to print"
    except RecursionError:  # a list nested thousands deep
        return f"a {type(value).__name__} nested too deep to print"
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class ModelConfig:
    """The network: backbone, width, where the weak head reads, and the LIF neuron; each field below says why."""

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
    """The training mode and its distillation terms (named after the paper); each field below says why."""

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
    """Which dataset, where it lives, batch size, subsets, augmentation, event windowing; each field says why."""

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
    """The optimisation, schedule, device, batch-norm statistics, logging and probes of a run; each field says why."""

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
    """The whole configuration tree shared by the CLI, the notebooks and the app; check it with `validate`.

    Attributes:
        model: the network (`ModelConfig`).
        distill: the mode and its losses (`DistillConfig`).
        data: the dataset (`DataConfig`).
        train: the run (`TrainConfig`).
    """

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
        """Build from a (possibly partial) nested dict.

        Only the structure is checked here (sections are dicts of known fields); the values are
        checked by `validate()`.

        Args:
            d: section -> {field: value}; missing sections and fields keep their defaults.

        Returns:
            The config, not validated.

        Raises:
            ConfigError: unknown keys or a wrong structure.
        """
        sections = {f.name: f.default_factory for f in dataclasses.fields(cls)}  # type: ignore[misc]
        if not isinstance(d, dict):
            raise ConfigError("config", f"must be a mapping of sections ({', '.join(sections)}), got {shown(d)}")
        unknown = sorted(str(k)[:60] for k in d if k not in sections)  # a key of any length: named in one short line
        if unknown:
            raise ConfigError(_key(unknown[0]), f"unknown section; known: {', '.join(sections)}")
        parts = {}
        for name, sub_cls in sections.items():
            sub = d.get(name, {})
            if not isinstance(sub, dict):
                raise ConfigError(name, f"must be a mapping of fields, got {shown(sub)}")
            names = {g.name for g in dataclasses.fields(sub_cls)}
            unknown = sorted(str(k)[:60] for k in sub if k not in names)
            if unknown:
                raise ConfigError(f"{name}.{_key(unknown[0])}", f"unknown field; known: {', '.join(sorted(names))}")
            parts[name] = sub_cls(**sub)
        return cls(**parts)

    def replace(self, **dotted: Any) -> TSSDConfig:
        """A copy with dotted fields replaced: `cfg.replace(**{"distill.mode": "baseline"})`.

        Args:
            **dotted: "section.field" -> new value.

        Returns:
            A new config, not validated.

        Raises:
            ConfigError: no such field.
        """
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
