"""One config tree, validated in one place, serialisable, with presets."""

import json

import pytest

from tssd_viz.config import PRESETS, ConfigError, TSSDConfig, preset, validate


def test_defaults_and_presets_are_valid():
    validate(TSSDConfig())
    for name in PRESETS:
        validate(preset(name))


def test_json_round_trip():
    cfg = preset("classroom").replace(**{"distill.alpha": 0.5, "model.aux_stage": 1})
    assert TSSDConfig.from_dict(json.loads(cfg.to_json())) == cfg


@pytest.mark.parametrize("field,value,match", [
    ("distill.t_teacher", 2, "distill.t_teacher: must be > distill.t_student"),
    ("distill.t_student", 0, "distill.t_student"),
    ("distill.alpha", -1.0, "distill.alpha: must be >= 0"),
    ("distill.beta", -0.1, "distill.beta"),
    ("distill.kd_temperature", 0.0, "distill.kd_temperature: must be > 0"),
    ("distill.mode", "kd", "distill.mode: 'kd' is not one of baseline, tsd, ssd, tssd"),
    ("model.arch", "vgg99", "model.arch: 'vgg99' is not one of"),
    ("model.aux_stage", 3, "model.aux_stage: must be between 1 and 2 for vgg_small"),
    ("model.aux_stage", 0, "model.aux_stage"),
    ("data.dataset", "mnist", "data.dataset: 'mnist' is not one of digits, cifar10, cifar100, folder"),
    ("data.batch_size", 0, "data.batch_size: must be > 0"),
    ("train.epochs", 0, "train.epochs: must be > 0"),
    ("train.device", "tpu", "train.device"),
    ("distill.tsd_pass", "twice", "distill.tsd_pass"),
    ("distill.ssd_teacher", "weak", "distill.ssd_teacher"),
    ("model.tau", 1.0, "model.tau"),
])
def test_bad_values_name_the_field(field, value, match):
    with pytest.raises(ConfigError, match=match) as e:
        validate(TSSDConfig().replace(**{field: value}))
    assert e.value.field == field
    assert "\n" not in str(e.value)


def test_continue_pass_requires_a_detached_teacher_without_ce():
    cfg = TSSDConfig().replace(**{"distill.tsd_pass": "continue"})
    with pytest.raises(ConfigError, match="teacher_ce false"):
        validate(cfg)
    validate(cfg.replace(**{"distill.teacher_ce": False}))


def test_unknown_fields_and_presets_are_refused():
    with pytest.raises(ConfigError, match="distill.t_studnet"):
        TSSDConfig.from_dict({"distill": {"t_studnet": 2}})
    with pytest.raises(ConfigError, match="no such config field"):
        TSSDConfig().replace(**{"train.epoch": 2})
    with pytest.raises(ConfigError, match="classroom"):
        preset("nope")


@pytest.mark.parametrize("mode,ssd_teacher,T", [
    ("baseline", "student", 2), ("tsd", "student", 4), ("ssd", "student", 2), ("ssd", "teacher", 4),
    ("tssd", "student", 4),
])
def test_training_timesteps_follow_the_mode(mode, ssd_teacher, T):
    cfg = TSSDConfig().replace(**{"distill.mode": mode, "distill.ssd_teacher": ssd_teacher})
    assert cfg.train_timesteps == T
    assert cfg.uses_weak_head == (mode in ("ssd", "tssd"))
