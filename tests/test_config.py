"""One config tree, validated in one place, serialisable, with presets."""

import dataclasses
import json
import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tssd_viz.config import ConfigError, TSSDConfig
from tssd_viz.presets import PRESETS, preset
from tssd_viz.validation import CHOICES, LIMITS, validate


def test_defaults_and_presets_are_valid():
    validate(TSSDConfig())
    for name in PRESETS:
        validate(preset(name))


def test_json_round_trip():
    cfg = preset("classroom").replace(**{"distill.alpha": 0.5, "model.aux_stage": 1})
    assert TSSDConfig.from_dict(json.loads(cfg.to_json())) == cfg


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("distill.t_teacher", 2, "distill.t_teacher: must be > distill.t_student"),
        ("distill.t_student", 0, "distill.t_student"),
        ("distill.alpha", -1.0, "distill.alpha: must be >= 0"),
        ("distill.beta", -0.1, "distill.beta"),
        ("distill.kd_temperature", 0.0, "distill.kd_temperature: must be >= 0.1"),
        ("distill.mode", "kd", "distill.mode: 'kd' is not one of baseline, tsd, ssd, tssd"),
        ("model.arch", "vgg99", "model.arch: 'vgg99' is not one of"),
        ("model.aux_stage", 3, "model.aux_stage: must be between 1 and 2 for vgg_small"),
        ("model.aux_stage", 0, "model.aux_stage"),
        ("data.dataset", "mnist", "data.dataset: 'mnist' is not one of digits, cifar10, cifar100, folder"),
        ("data.batch_size", 0, "data.batch_size: must be >= 1"),
        ("train.epochs", 0, "train.epochs: must be >= 1"),
        ("train.device", "tpu", "train.device"),
        ("distill.tsd_pass", "twice", "distill.tsd_pass"),
        ("distill.ssd_teacher", "weak", "distill.ssd_teacher"),
        ("model.tau", 1.0, "model.tau"),
    ],
)
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


@pytest.mark.parametrize(
    "mode,ssd_teacher,T",
    [
        ("baseline", "student", 2),
        ("tsd", "student", 4),
        ("ssd", "student", 2),
        ("ssd", "teacher", 4),
        ("tssd", "student", 4),
    ],
)
def test_training_timesteps_follow_the_mode(mode, ssd_teacher, T):
    cfg = TSSDConfig().replace(**{"distill.mode": mode, "distill.ssd_teacher": ssd_teacher})
    assert cfg.train_timesteps == T
    assert cfg.uses_weak_head == (mode in ("ssd", "tssd"))


# -- types, finiteness and bounds (issue 11: fuzzed configs crashed validate() or passed it)

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "field,value",
    [
        # a string, None, a list or a dict in a numeric field raised TypeError from a comparison
        ("model.width", "1"),
        ("model.tau", None),
        ("distill.alpha", [1]),
        ("train.lr", {"a": 1}),
        ("train.epochs", "3"),
        ("data.batch_size", None),
        ("distill.t_student", [2]),
        ("train.seed", "0"),
        ("model.aux_stage", "2"),
        ("distill.t_teacher", None),
        ("train.warmup", "0.1"),
        # 1.5 or a bool in an integer field
        ("train.epochs", 1.5),
        ("train.epochs", True),
        ("data.batch_size", 32.0),
        ("train.threads", False),
        ("distill.t_student", True),
        ("model.aux_stage", 1.0),
        # a bool in a float field, anything but a bool in a bool field
        ("distill.alpha", True),
        ("model.detach_reset", 1),
        ("data.augment", "yes"),
        ("train.bf16", None),
        ("distill.teacher_ce", "False"),
        ("train.compile", 0.0),
        # a string field that is not a string
        ("data.root", 3),
        ("distill.mode", None),
        ("model.arch", ["vgg11"]),
        ("train.bn_stats", {"x": 1}),
    ],
)
def test_wrong_types_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError) as e:
        validate(TSSDConfig().replace(**{field: value}))
    assert e.value.field == field and str(e.value).startswith(f"{field}: ")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "field",
    [
        "model.width",
        "model.tau",
        "model.threshold",
        "model.surrogate_width",
        "distill.alpha",
        "distill.beta",
        "distill.kd_temperature",
        "train.time_budget_s",
        "train.lr",
        "train.momentum",
        "train.weight_decay",
        "train.warmup",
        "train.label_smoothing",
    ],
)
@pytest.mark.parametrize("value", [NAN, INF, -INF, 1e18])
def test_nan_inf_and_huge_numbers_are_refused(field, value):
    with pytest.raises(ConfigError) as e:
        validate(TSSDConfig().replace(**{field: value}))
    assert e.value.field == field


# The documented bounds (README "What is refused", the field docstrings): the last value accepted and
# the first refused at each end.
BOUNDS = [
    ("model.width", [1e-3, 4.0], [0.0, 4.001]),
    ("model.tau", [1.001, 1000.0], [1.0, 1000.5]),
    ("model.threshold", [1e-3, 100.0], [0.0, 100.5]),
    ("model.surrogate_width", [0.01, 100.0], [0.009, 100.5]),
    ("distill.t_student", [1, 63], [0, 64]),
    ("distill.t_teacher", [64], [65]),
    ("distill.alpha", [0.0, 100.0], [-1e-9, 100.5]),
    ("distill.beta", [0.0, 100.0], [-1e-9, 100.5]),
    ("distill.kd_temperature", [0.1, 100.0], [0.09, 100.5]),
    ("data.batch_size", [1, 65536], [0, 65537]),
    ("data.limit_train", [0, 10**9], [-1, 10**9 + 1]),
    ("data.limit_test", [0, 10**9], [-1, 10**9 + 1]),
    ("train.epochs", [1, 10_000], [0, 10_001, 1_000_000_000]),
    ("train.time_budget_s", [0.0, 2_592_000.0], [-1.0, 2_592_001.0]),
    ("train.lr", [1e-9, 10.0], [0.0, 10.5]),
    ("train.momentum", [0.0, 0.999], [-0.1, 1.0]),
    ("train.weight_decay", [0.0, 1.0], [-1e-9, 1.5]),
    ("train.warmup", [0.0, 0.99], [-0.1, 1.0]),
    ("train.label_smoothing", [0.0, 0.99], [-0.1, 1.0]),
    ("data.label_noise", [0.0, 0.99], [-0.1, 1.0]),
    ("train.seed", [0, 2**32 - 1], [-1, 2**32, 99999999999999999999999]),
    ("train.bn_batches", [1, 1000], [0, 1001]),
    ("train.log_every", [1, 10**6], [0, 10**6 + 1]),
    ("train.eval_every", [0, 10_000], [-1, 10_001]),
    ("train.probe_every", [0, 10_000], [-1, 10_001]),
    ("train.probe_images", [1, 64], [0, 65]),
    ("train.threads", [0, 256], [-1, 257, 100_000]),
]


@pytest.mark.parametrize("field,accepted,refused", BOUNDS)
def test_documented_bounds(field, accepted, refused):
    base = (
        TSSDConfig().replace(**{"distill.t_student": 1, "distill.t_teacher": 64})
        if field == "distill.t_student"
        else TSSDConfig()
    )
    for value in accepted:
        validate(base.replace(**{field: value}))
    for value in refused:
        with pytest.raises(ConfigError) as e:
            validate(base.replace(**{field: value}))
        assert e.value.field == field and "\n" not in str(e.value)


def test_upper_bounds_are_named_in_the_message():
    with pytest.raises(ConfigError, match=r"train.epochs: must be <= 10000, got 1000000000"):
        validate(TSSDConfig().replace(**{"train.epochs": 1_000_000_000}))
    with pytest.raises(ConfigError, match=r"model.width: must be a finite number, got nan"):
        validate(TSSDConfig().replace(**{"model.width": NAN}))


def test_a_root_with_a_nul_byte_is_refused():
    with pytest.raises(ConfigError, match="data.root"):
        validate(TSSDConfig().replace(**{"data.root": "a\0b"}))


@pytest.mark.parametrize(
    "d,field",
    [
        ([1, 2], "config"),
        ("model", "config"),
        (None, "config"),
        ({"model": [1]}, "model"),
        ({"train": "fast"}, "train"),
        ({"data": None}, "data"),
        ({"model": {1: 2}}, "model.1"),
        ({3: {}}, "3"),
    ],
)
def test_from_dict_refuses_garbage_structure(d, field):
    with pytest.raises(ConfigError) as e:
        TSSDConfig.from_dict(d)
    assert e.value.field == field


# -- property: any config is refused with a ConfigError naming a field, or accepted and sane

SECTIONS = {s.name: s.default_factory for s in dataclasses.fields(TSSDConfig)}
FIELDS = [(f"{sec}.{f.name}", str(f.type)) for sec, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
NAMES = {name for name, _ in FIELDS}


def test_every_numeric_and_string_field_has_a_range_or_choices():
    dependent = {"model.aux_stage"}  # its range depends on the arch; validate() checks it
    free_text = {"data.root"}
    assert {n for n, k in FIELDS if k in ("int", "float")} - dependent == set(LIMITS)
    assert {n for n, k in FIELDS if k == "str"} - free_text == set(CHOICES)


GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=6),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
HUGE = st.sampled_from([10**9, 2**32, 2**63, 10**30, 1e18, -1e18, 1e308, 5e-324])


def values_for(name: str, kind: str):
    plausible = {
        "int": st.integers(min_value=-3, max_value=70) | HUGE,
        "float": st.floats(allow_nan=True, allow_infinity=True) | st.floats(-2, 200) | st.integers(-2, 10) | HUGE,
        "bool": st.booleans() | st.sampled_from([0, 1, 0.0, "True", "false"]),
        "str": st.sampled_from(CHOICES.get(name, ("", "x", "a\0b"))) | st.text(max_size=6),
    }[kind]
    return plausible | GARBAGE


@st.composite
def configs(draw):
    base = draw(st.sampled_from([None, *PRESETS]))
    cfg = TSSDConfig() if base is None else preset(base)
    for name, kind in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        sec, field_name = name.split(".")
        setattr(getattr(cfg, sec), field_name, draw(values_for(name, kind)))
    return cfg


def assert_refused_or_sane(cfg) -> None:
    from tssd_viz.snn.models import num_stages

    try:
        validate(cfg)
    except ConfigError as e:
        assert e.field in NAMES | {"config", *SECTIONS}, e.field
        assert str(e).startswith(f"{e.field}: ") and "\n" not in str(e)
        event("refused")
        return
    event("accepted")
    for name, kind in FIELDS:
        sec, field_name = name.split(".")
        value = getattr(getattr(cfg, sec), field_name)
        if kind == "bool":
            assert type(value) is bool, name
        elif kind == "str":
            assert isinstance(value, str) and "\0" not in value, name
        else:
            assert isinstance(value, int if kind == "int" else (int, float)) and not isinstance(value, bool), name
            assert not isinstance(value, float) or math.isfinite(value), name
        if name in LIMITS:
            r = LIMITS[name]
            assert (r.lo < value if r.lo_open else r.lo <= value) and (value < r.hi if r.hi_open else value <= r.hi), (
                name
            )
        if name in CHOICES:
            assert value in CHOICES[name], name
    assert 1 <= cfg.model.aux_stage < num_stages(cfg.model.arch)
    assert cfg.distill.t_student < cfg.distill.t_teacher


@settings(max_examples=1000, deadline=None, database=None)
@given(configs())
def test_any_config_is_refused_naming_a_field_or_accepted_and_sane(cfg):
    assert_refused_or_sane(cfg)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def section_dict(cls):
    names = [f.name for f in dataclasses.fields(cls)]
    return st.dictionaries(st.sampled_from(names), GARBAGE | st.floats(0, 3) | st.integers(0, 5), max_size=4) | JSONISH


@settings(max_examples=300, deadline=None, database=None)
@given(st.one_of(JSONISH, st.fixed_dictionaries({}, optional={k: section_dict(c) for k, c in SECTIONS.items()})))
def test_from_dict_of_anything_is_refused_naming_a_field_or_builds_a_config(d):
    try:
        cfg = TSSDConfig.from_dict(d)
    except ConfigError as e:
        assert str(e).startswith(f"{e.field}: ") and "\n" not in str(e)
        return
    assert_refused_or_sane(cfg)


@pytest.mark.parametrize("bad", [{"model": {"\n": 1}}, {"a\nb": {}}, {"train": {'x"\n': 0}}])
def test_an_unknown_key_with_a_newline_is_still_named_on_one_line(bad):
    with pytest.raises(ConfigError) as err:
        TSSDConfig.from_dict(bad)
    assert "\n" not in str(err.value) and "unknown" in str(err.value)


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


# Values no config file should hold, from the library API (issue 28): a ConfigError of one short line, never
# a ValueError of the int-to-string limit, a RecursionError, or a message that prints the value whole.
@pytest.mark.parametrize(
    "dotted,value,needle",
    [
        ("model.aux_stage", 10**5000, "model.aux_stage: must be between 1 and"),
        ("model.aux_stage", 10**400, "model.aux_stage: must be between 1 and"),
        ("model.width", 10**400, "model.width: must be <= 4"),
        ("model.arch", "x" * 10_000, "model.arch"),
        ("data.dataset", _nested(5000), "data.dataset: must be a string"),
        ("model.width", _nested(5000), "model.width: must be a number"),
    ],
    ids=["aux_stage-10**5000", "aux_stage-10**400", "width-10**400", "arch-long", "dataset-nested", "width-nested"],
)
def test_values_from_the_api_are_refused_in_one_short_line(dotted, value, needle):
    section, name = dotted.split(".")
    cfg = TSSDConfig()
    setattr(getattr(cfg, section), name, value)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert str(err.value).startswith(needle) and len(str(err.value)) < 200 and "\n" not in str(err.value)


def test_an_unknown_key_of_any_length_is_named_in_a_short_line():
    with pytest.raises(ConfigError) as err:
        TSSDConfig.from_dict({"model": {"k" * 10_000: 1}})
    assert len(str(err.value)) < 400
