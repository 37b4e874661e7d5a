"""The named starting points of a configuration: `PRESETS` and `preset()` (SPEC §8, §9).

Each preset is a partial config (the fields it sets; every other field keeps its default), with a
comment saying what it is for and how its recipe was chosen. The command line's `--preset`, the app's
starts and the lessons begin from these.
"""

from __future__ import annotations

from typing import Any

from .config import ConfigError, TSSDConfig

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
    # 2-core CPU. No time budget: a busy machine takes longer but trains the same 312 steps (a budget cut
    # them short under load: 28-42 % instead of about 53 %).
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
    """The named preset as a full config (defaults for every field it does not set).

    Args:
        name: a key of `PRESETS` ("digits", "quick", "classroom", ...).

    Returns:
        The config, not validated.

    Raises:
        ConfigError: no preset of that name.
    """
    if name not in PRESETS:
        raise ConfigError("preset", f"{name!r} is not one of {', '.join(PRESETS)}")
    return TSSDConfig.from_dict(PRESETS[name])
