"""Event datasets end to end: event_digits made and binned, N-MNIST and DVS-Gesture read by tonic's own
parsers from tiny files in their real on-disk formats, CIFAR10-DVS through its error paths and split,
the two windowings, and every mode trained on events.

A module-wide cache folder keeps event_digits' one-off generation (~20 s) to once per run; data roots
are temporary folders, and nothing here touches the network.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from tssd_viz import DataConfig, DataUnavailable, Loader, RunFolder, build_model, evaluate, fit, load_dataset, preset
from tssd_viz.cli import main
from tssd_viz.config import MODES, ConfigError, ModelConfig
from tssd_viz.data import events as event_data
from tssd_viz.data import is_available
from tssd_viz.data.tonic_sources import cifar10_dvs_split
from tssd_viz.snn.frames import WindowFrames
from tssd_viz.training.evaluation import collect_outputs, recompute_bn_stats
from tssd_viz.training.step import forward_windows
from tssd_viz.validation import validate


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cache")
        mp.setenv("TSSD_CACHE", str(path))
        mp.setenv("TSSD_DATA_ROOT", str(path / "no-data-here"))
        yield path


@pytest.fixture(scope="module")
def fixed():
    return load_dataset(DataConfig(dataset="event_digits"))


@pytest.fixture(scope="module")
def whole(fixed):  # after `fixed`: the events are made once
    return load_dataset(DataConfig(dataset="event_digits", windowing="whole_recording"))


# -- event_digits


def test_event_digits_are_the_digits_seen_by_an_emulated_camera(fixed):
    digits = load_dataset(DataConfig(dataset="digits"))
    assert fixed.train.images.shape == (1437, 4, 2, 34, 34) and fixed.test.images.shape == (360, 4, 2, 34, 34)
    assert fixed.train.images.dtype == torch.uint8 and fixed.is_events
    assert (fixed.in_channels, fixed.image_size, fixed.classes) == (2, (34, 34), tuple("0123456789"))
    assert torch.equal(fixed.train.labels, digits.train.labels) and torch.equal(fixed.test.labels, digits.test.labels)
    recordings, labels, _, (train_idx, _) = event_data.event_digits()
    assert len(recordings) == 1797
    counts = np.array([len(r) for r in recordings])
    assert 3000 < counts.mean() < 8000 and counts.min() > 500  # N-MNIST has ~4,000 events per digit
    for r in recordings[:50]:
        assert r.dtype.names == ("x", "y", "t", "p") and (np.diff(r["t"]) >= 0).all()
        assert r["t"].min() >= 0 and r["t"].max() <= 300_000 and r["x"].max() < 34 and r["y"].max() < 34
        assert set(np.unique(r["p"])) == {0, 1}


def test_frames_are_tonics_toframe_of_the_cached_events(fixed):
    from tonic.transforms import ToFrame

    recordings, _, _, (train_idx, test_idx) = event_data.event_digits()
    for k in (0, 1, 100):
        expected = ToFrame(sensor_size=(34, 34, 2), n_time_bins=4)(recordings[train_idx[k]])
        assert np.array_equal(fixed.train.images[k].numpy(), expected)
    assert fixed.train.images.max() < 255  # counts never reach the uint8 clip here


def test_event_digits_are_made_once_and_the_same_every_time(fixed, monkeypatch):
    path = event_data.event_digits_path()
    assert path.is_file()

    def refuse(*_):
        raise AssertionError("the events were made again")

    monkeypatch.setattr(event_data, "record_digit", refuse)
    again = load_dataset(DataConfig(dataset="event_digits", limit_train=10))
    assert torch.equal(again.train.images, fixed.train.images[:10])
    monkeypatch.undo()
    from sklearn.datasets import load_digits

    image = load_digits().images[7]
    a, b = (event_data.record_digit(image, np.random.default_rng([0, 7])) for _ in range(2))
    assert np.array_equal(a, b) and np.array_equal(a, event_data.event_digits()[0][7])


def test_windowings_share_the_teacher_frames_and_differ_for_the_student(fixed, whole):
    # every window n = 1..T_t in both splits: evaluation re-estimates each window's batch-norm statistics on
    # training recordings binned as that window sees them
    assert (whole.train.windows, whole.test.windows) == ((1, 2, 3, 4), (1, 2, 3, 4))
    assert whole.train.images.shape[1] == 10 and whole.test.images.shape[1] == 10
    # T_t frames: the whole recording in both windowings, so the teacher sees the same input
    assert torch.equal(whole.test.view(4), fixed.test.view(4))
    # the student: the first half of the recording in 2 frames, or all of it in 2 coarser frames
    assert torch.equal(fixed.test.view(2), fixed.test.images[:, :2])
    early = fixed.test.view(2).sum((1, 2, 3, 4)).double()
    all_of_it = whole.test.view(2).sum((1, 2, 3, 4)).double()
    total = fixed.test.view(4).sum((1, 2, 3, 4)).double()
    assert (early < all_of_it).all()
    assert ((all_of_it - total).abs() <= 0.01 * total).all()  # tonic's bins drop at most a few tail events
    with pytest.raises(ValueError, match="not 5"):  # binned for windows 1..T_t only
        whole.train.view(5)


def test_the_loader_yields_time_major_frames(fixed, whole):
    x, y = next(iter(Loader(fixed.test, fixed, 8, train=False)))
    assert x.shape == (4, 8, 2, 34, 34) and torch.allclose(x, fixed.test.images[:8].transpose(0, 1).float())
    w, _ = next(iter(Loader(whole.test, whole, 8, train=False)))
    assert isinstance(w, WindowFrames) and w.windows == (1, 2, 3, 4)
    # each binning on one scale: counts per frame of the finest binning (T_t = 4 frames)
    assert torch.allclose(w[3], whole.test.view(3)[:8].transpose(0, 1).float() * 3 / 4)
    assert torch.allclose(w[4], whole.test.view(4)[:8].transpose(0, 1).float())
    assert torch.allclose(w[2].sum(0), w[4].sum(0) / 2, atol=0.51)  # (up to tonic's dropped tail event)
    xa, _ = next(iter(Loader(fixed.train, fixed, 16, train=True, augment=True, seed=1)))
    # an augmented recording gets one crop for all its frames: the events move, the counts per frame stay
    # (up to what a 4-pixel shift pushes off the sensor)
    assert xa.shape == (4, 16, 2, 34, 34)


# -- the network on events


def test_event_frames_drive_the_network_one_frame_per_timestep():
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.25), 2, 10, weak_head=False)
    x = torch.rand(4, 3, 2, 34, 34)
    recompute_bn_stats(model, [(x, None)], 4)  # statistics that let spikes reach the head (untrained: silent)
    model.eval()
    changed = x.clone()
    changed[2] += 1.0
    with torch.no_grad():
        a, b = model(x, 4).logits, model(changed, 4).logits
        assert torch.equal(a[:2], b[:2]) and not torch.allclose(a[2], b[2])  # causal, and frame 2 is used
        frames = WindowFrames({2: x[:2] * 3, 4: x})
        assert torch.equal(model(frames, 2).logits, model(x[:2] * 3, 2).logits)
        assert torch.equal(model(frames, 4).logits, a)


def test_whole_recording_gives_student_and_teacher_their_own_binning(whole):
    cfg = preset("events").replace(**{"data.windowing": "whole_recording", "distill.tsd_pass": "separate"})
    torch.manual_seed(0)
    model = build_model(cfg.model, 2, 10, weak_head=True).eval()
    x, _ = next(iter(Loader(whole.train, whole, 4, train=False)))
    with torch.no_grad():
        student, teacher = forward_windows(model, x, cfg)
        assert torch.equal(student.logits, model(x[2], 2).logits)
        assert torch.equal(teacher.logits, model(x[4], 4).logits)


def test_evaluate_bins_each_window_on_its_own(whole):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.25), 2, 10, weak_head=False)
    loader = Loader(whole.test.subset(slice(0, 40)), whole, 16, train=False)
    accs = evaluate(model, loader, 4)
    model.eval()
    with torch.no_grad():
        for n in range(1, 5):
            right = sum((model(x, n).logits.mean(0).argmax(-1) == y).sum().item() for x, y in loader)
            assert accs[n - 1] == pytest.approx(right / 40)
    out = collect_outputs(model, loader, 4)  # what a run's final records come from
    assert out.logits.shape == out.windows.shape == (4, 40, 10)
    assert out.acc_by_window() == pytest.approx(accs)
    x, _ = next(iter(loader))
    with torch.no_grad():
        assert torch.allclose(out.logits[:, :16], model(x[4], 4).logits)  # per-timestep: the T_t-frame pass


def test_each_whole_recording_window_is_judged_with_its_own_batch_norm_statistics(whole):
    import copy

    from tssd_viz.training.evaluation import bn_state, recompute_bn_stats, window_bn_stats

    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.25), 2, 10, weak_head=False)
    batches = list(Loader(whole.train.subset(slice(0, 48)), whole, 16, train=False))
    loader = Loader(whole.test.subset(slice(0, 40)), whole, 16, train=False)
    before = bn_state(model)
    stats = window_bn_stats(model, batches, range(1, 5))
    assert not all(torch.equal(stats[1][k], stats[4][k]) for k in stats[1])  # the binnings differ, so do they
    accs = evaluate(model, loader, 4, bn=stats)
    out = collect_outputs(model, loader, 4, bn=stats)
    assert out.acc_by_window() == pytest.approx(accs)
    for n in range(1, 5):  # independently: a copy re-estimated on n-frame batches, then judged on n frames
        alone = copy.deepcopy(model)
        recompute_bn_stats(alone, [(x[n], y) for x, y in batches], n)
        alone.eval()
        with torch.no_grad():
            right = sum((alone(x, n).logits.mean(0).argmax(-1) == y).sum().item() for x, y in loader)
        assert accs[n - 1] == pytest.approx(right / 40)
    assert set(before) == set(stats[4])


def test_evaluate_reproduces_a_whole_recording_runs_final_windows(tmp_path, capsys, whole):
    import json

    run_dir = tmp_path / "run"
    args = ["--preset", "events", "--data.windowing", "whole_recording", "--distill.tsd-pass", "separate"]
    args += ["--distill.mode", "tsd", "--data.limit-train", "64", "--data.limit-test", "32", "--train.epochs", "1"]
    args += ["--model.width", "0.25", "--train.bn-batches", "2", "--train.eval-every", "0", "--train.probe-every", "0"]
    assert main(["train", *args, "--run-dir", str(run_dir), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--run-dir", str(run_dir), "--which", "last", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)["acc_by_window"]
    final = RunFolder(run_dir).final_eval()
    # each window re-estimates its own statistics from the batches training used at its last step
    assert {int(n): a for n, a in table.items()} == pytest.approx(final)


@pytest.mark.parametrize("windowing", ["fixed_window", "whole_recording"])
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_trains_on_events(mode, windowing, fixed, whole):
    ds = fixed if windowing == "fixed_window" else whole
    cfg = preset("events").replace(
        **{
            "distill.mode": mode,
            "data.windowing": windowing,
            "distill.tsd_pass": "separate" if windowing == "whole_recording" else "shared",
            "train.epochs": 1,
            "train.bn_batches": 2,
        }
    )
    small = dataclasses.replace(ds, train=ds.train.subset(slice(0, 64)), test=ds.test.subset(slice(0, 32)))
    result = fit(cfg, dataset=small)
    assert sorted(result.test_acc) == [1, 2, 3, 4] and result.steps == 2
    assert all(0.0 <= a <= 1.0 for a in result.test_acc.values())


def test_fit_refuses_frames_binned_for_other_windows(fixed):
    cfg = preset("events").replace(**{"data.windowing": "whole_recording", "distill.tsd_pass": "separate"})
    with pytest.raises(ConfigError, match="binned for other windows"):
        fit(cfg, dataset=fixed)


def test_invalid_windowing_combinations_are_refused_in_one_line():
    whole = preset("events").replace(**{"data.windowing": "whole_recording"})
    for cfg, field in (
        (whole, "data.windowing"),  # tsd with the shared pass: one pass cannot hold two binnings
        (whole.replace(**{"distill.tsd_pass": "continue", "distill.teacher_ce": False}), "data.windowing"),
        (preset("quick").replace(**{"data.windowing": "whole_recording"}), "data.windowing"),  # static digits
    ):
        with pytest.raises(ConfigError) as err:
            validate(cfg)
        assert err.value.field == field and "\n" not in str(err.value)
    validate(whole.replace(**{"distill.tsd_pass": "separate"}))
    validate(whole.replace(**{"distill.mode": "baseline"}))  # no teacher window: one binning, one pass
    validate(whole.replace(**{"distill.mode": "ssd"}))


def test_the_cli_refuses_whole_recording_with_a_shared_pass(capsys):

    with pytest.raises(SystemExit) as stop:
        main(["train", "--preset", "events", "--data.windowing", "whole_recording", "--run-dir", "/nonexistent/x"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "data.windowing" in err and "separate" in err


# -- tonic datasets from tiny files in their real formats


def nmnist_bytes(events: list[tuple[int, int, int, int]]) -> bytes:
    """N-MNIST's 40-bit events: x, y, then polarity (bit 7) and a 23-bit timestamp in microseconds."""
    out = bytearray()
    for x, y, p, t in events:
        out += bytes([x, y, (p << 7) | (t >> 16 & 127), t >> 8 & 255, t & 255])
    return bytes(out)


def nmnist_events(label: int, i: int) -> list[tuple[int, int, int, int]]:
    """One event per 1000 us bin at a pixel that names the class; the last event (t = 4000) ends the
    recording, and tonic's bins leave it out."""
    return [
        (label, 1, 1, 0),
        (label + 1, 2, 0, 1000),
        (label + 2, 3, 1, 2000),
        (label + 3, 4, 1, 3000),
        (i % 34, 5, 0, 4000),
    ]


@pytest.fixture(scope="module")
def nmnist_root(tmp_path_factory) -> Path:
    """tonic's NMNIST layout: NMNIST/{train,test}.zip and the extracted Train/<digit>/*.bin, Test/...;
    tonic wants 10,000 files in a split before it believes the archive was extracted."""
    root = tmp_path_factory.mktemp("nmnist")
    for archive, folder in (("train.zip", "Train"), ("test.zip", "Test")):
        (root / "NMNIST" / folder).mkdir(parents=True, exist_ok=True)
        (root / "NMNIST" / archive).write_bytes(b"PK")
        for label in range(10):
            (root / "NMNIST" / folder / str(label)).mkdir()
            for i in range(1000):
                (root / "NMNIST" / folder / str(label) / f"{i:05d}.bin").write_bytes(
                    nmnist_bytes(nmnist_events(label, i))
                )
    return root


def test_nmnist_is_read_by_tonic_and_binned_into_frames(nmnist_root, monkeypatch):
    assert is_available("nmnist", str(nmnist_root)) and not is_available("nmnist")
    cfg = DataConfig(dataset="nmnist", root=str(nmnist_root), download=False, limit_train=20, limit_test=10)
    ds = load_dataset(cfg)
    assert ds.train.images.shape == (20, 4, 2, 34, 34) and ds.test.images.shape == (10, 4, 2, 34, 34)
    assert ds.classes[3] == "3 - three" and ds.source == str(nmnist_root)
    assert ds.train.labels.tolist() == list(range(10)) * 2  # classes interleaved: the first 20 are balanced
    for frames, label in zip(ds.train.images, ds.train.labels.tolist()):
        expected = torch.zeros(4, 2, 34, 34, dtype=torch.uint8)
        for t, (x, y, p, _) in enumerate(nmnist_events(label, 0)[:4]):
            expected[t, p, y, x] = 1
        assert torch.equal(frames, expected)
    cached = list((Path(event_data.cache_dir()) / "event-frames").glob("nmnist-*/train-34x34-n4-v1/*.hdf5"))
    assert len(cached) == 20  # tonic's DiskCachedDataset: one file per binned recording

    import tonic.datasets.nmnist

    def refuse(*_, **__):
        raise AssertionError("a recording was parsed again")

    monkeypatch.setattr(tonic.datasets.nmnist, "read_mnist_file", refuse)
    assert torch.equal(load_dataset(cfg).train.images, ds.train.images)  # frames come from the disk cache


def dvs_gesture_root(root: Path, files_per_split: int = 110) -> Path:
    """tonic's preprocessed DVS-Gesture layout: ibmGesture{Train,Test}.tar.gz and, extracted, folders
    user<NN>_<lighting>/<label>.npy of (N, 4) int rows x, y, p, t in milliseconds."""
    for archive, folder in (("ibmGestureTrain.tar.gz", "ibmGestureTrain"), ("ibmGestureTest.tar.gz", "ibmGestureTest")):
        (root / "DVSGesture").mkdir(parents=True, exist_ok=True)
        (root / "DVSGesture" / archive).write_bytes(b"\x1f\x8b")
        for k in range(files_per_split):
            user, label = divmod(k, 11)
            sub = root / "DVSGesture" / folder / f"user{user + 1:02d}_fluorescent"
            sub.mkdir(parents=True, exist_ok=True)
            rows = [[64, 32, 1, 0], [127, 127, 0, 1], [10, 100, 1, 2], [0, 0, 1, 3], [5, 5, 0, 4]]
            np.save(sub / f"{label}.npy", np.array(rows, dtype=np.int64))
    return root


def test_dvs_gesture_is_read_by_tonic_and_downsampled_to_48(tmp_path):
    root = dvs_gesture_root(tmp_path / "gesture")
    ds = load_dataset(DataConfig(dataset="dvs_gesture", root=str(root), download=False, limit_train=11, limit_test=3))
    assert ds.train.images.shape == (11, 4, 2, 48, 48) and len(ds.classes) == 11
    assert sorted(ds.train.labels.tolist()) == list(range(11))
    frames = ds.train.images[0]
    # 128 -> 48 pixels: x, y scaled by 0.375 and truncated; 1 ms -> 1000 us bins, the t = 4 ms event left out
    expected = torch.zeros(4, 2, 48, 48, dtype=torch.uint8)
    for t, (x, y, p) in enumerate([(24, 12, 1), (47, 47, 0), (3, 37, 1), (0, 0, 1)]):
        expected[t, p, y, x] = 1
    assert torch.equal(frames, expected)


@pytest.mark.parametrize("name", ["nmnist", "dvs_gesture", "cifar10_dvs"])
def test_a_missing_tonic_dataset_names_itself_the_paths_and_the_offline_default(name, tmp_path):
    with pytest.raises(DataUnavailable) as err:
        load_dataset(DataConfig(dataset=name, root=str(tmp_path / "empty"), download=False))
    message = str(err.value)
    assert f"--data.dataset {name}" in message and str(tmp_path / "empty") in message
    assert "--data.dataset event_digits" in message and "\n" not in message


@pytest.mark.parametrize("name", ["nmnist", "dvs_gesture", "cifar10_dvs"])
def test_an_offline_tonic_download_becomes_one_line(name, tmp_path, offline):
    with pytest.raises(DataUnavailable) as err:
        load_dataset(DataConfig(dataset=name, root=str(tmp_path / "mine"), download=True))
    assert offline  # tonic tried to download, and was refused
    assert "downloading into" in str(err.value) and "\n" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_cifar10_dvs_split_is_a_fixed_stratified_90_10():
    labels = np.repeat(np.arange(10), 100)
    train, test = cifar10_dvs_split(labels)
    assert len(train) == 900 and len(test) == 100 and not set(train) & set(test)
    assert np.bincount(labels[test]).tolist() == [10] * 10
    again = cifar10_dvs_split(labels)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
