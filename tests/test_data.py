"""tssd_viz.data: the three sources, the tensor cache, the loader's order and augmentation, errors.

Every test points TSSD_CACHE and TSSD_DATA_ROOT at empty temporary folders (the `isolated` fixture),
so nothing here reads the user's cache or touches the network. The one test on real CIFAR-10 reads
the JPEG tree named by TSSD_CIFAR10_ROOT and is skipped when it is unset.
"""

import dataclasses
import math
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torchvision.io import decode_jpeg, encode_jpeg, write_png

from tssd_viz.config import DataConfig
from tssd_viz.data import (
    Dataset,
    DataUnavailable,
    Loader,
    Split,
    folders,
    is_available,
    load_dataset,
    offline_default,
    random_crop,
)

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")

REPO = Path(__file__).resolve().parents[1]
CALLER_CACHE = os.environ.get("TSSD_CACHE")  # read before the autouse fixture replaces it
CALLER_CIFAR10 = os.environ.get("TSSD_CIFAR10_ROOT", "")  # read before the autouse fixture removes it
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Empty cache and data roots for every test: whatever is on this machine must not leak in."""
    monkeypatch.setenv("TSSD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TSSD_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("TSSD_CIFAR10_ROOT", raising=False)  # CI's real CIFAR-10 is a candidate too
    return tmp_path


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset(DataConfig(dataset="digits"))


def indexed(ds: Dataset, pad: int, flip: bool, n: int = 256) -> Dataset:
    """The first n digits with label = image index, so a batch says where each image came from."""
    train = Split(ds.train.images[:n], torch.arange(n))
    return dataclasses.replace(ds, train=train, classes=tuple(map(str, range(n))), pad=pad, flip=flip)


def to_pixels(x: torch.Tensor, ds: Dataset) -> torch.Tensor:
    """Undo the loader's normalisation: (B, C, H, W) float -> uint8."""
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    return (x * std * 255 + mean * 255).round().to(torch.uint8)


# ------------------------------------------------------------------------------------------ digits
def test_digits_shapes_classes_and_metadata(digits):
    assert digits.name == "digits" and digits.source == "scikit-learn"
    assert digits.train.images.shape == (1437, 1, 8, 8) and digits.test.images.shape == (360, 1, 8, 8)
    assert digits.train.images.dtype == torch.uint8 and digits.train.images.is_contiguous()
    assert digits.train.labels.dtype == torch.int64
    assert digits.classes == tuple("0123456789") and digits.num_classes == 10
    assert digits.in_channels == 1 and digits.image_size == (8, 8)
    assert digits.pad == 1 and digits.flip is False  # a mirrored digit is not the same digit
    assert int(digits.train.images.max()) == 255 and int(digits.train.images.min()) == 0  # 16 -> 255
    # Stratified: each class keeps 20% of its 174-183 images in the test split.
    counts = torch.bincount(digits.test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37


def test_digits_split_is_the_seeded_stratified_split(digits):
    d = load_digits()
    tr, te = train_test_split(np.arange(len(d.target)), test_size=0.2, random_state=0, stratify=d.target)
    expected = torch.from_numpy(np.rint(d.images[tr] * 255 / 16).astype(np.uint8))[:, None]
    assert torch.equal(digits.train.images, expected)
    assert torch.equal(digits.test.labels, torch.from_numpy(d.target[te]))
    again = load_dataset(DataConfig(dataset="digits"))
    assert torch.equal(again.train.images, digits.train.images)
    assert torch.equal(again.test.labels, digits.test.labels)


def test_limits_take_the_first_n_and_keep_the_full_statistics(digits):
    ds = load_dataset(DataConfig(dataset="digits", limit_train=100, limit_test=7))
    assert torch.equal(ds.train.images, digits.train.images[:100])
    assert torch.equal(ds.test.labels, digits.test.labels[:7])
    assert ds.mean == digits.mean and ds.std == digits.std


# ------------------------------------------------------------------------------------------ loader
def batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_loader_is_a_pure_function_of_seed_and_epoch(digits):
    a, b = (Loader(digits.train, digits, 64, train=True, seed=3) for _ in range(2))
    a.set_epoch(5)
    b.set_epoch(5)
    first, second = batches(a), batches(b)
    assert len(first) == len(a) == 1437 // 64
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(first, second))
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(first, batches(a)))  # iterating again
    b.set_epoch(6)
    assert not torch.equal(first[0][1], next(iter(b))[1])  # another epoch, another order
    other_seed = Loader(digits.train, digits, 64, train=True, seed=4)
    other_seed.set_epoch(5)
    assert not torch.equal(first[0][1], next(iter(other_seed))[1])


def slow_crop(image: torch.Tensor, pad: int, dy: int, dx: int) -> torch.Tensor:
    """One (C, H, W) image: copy it into a zero canvas, then read the window at (dy, dx)."""
    c, h, w = image.shape
    canvas = torch.zeros(c, h + 2 * pad, w + 2 * pad, dtype=image.dtype)
    canvas[:, pad : pad + h, pad : pad + w] = image
    return canvas[:, dy : dy + h, dx : dx + w]


def test_random_crop_matches_a_per_image_reference():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (20, 3, 6, 5), generator=gen, dtype=torch.uint8)
    dy, dx = torch.randint(0, 2 * 2 + 1, (2, 20), generator=gen)
    out = random_crop(images, 2, dy, dx)
    for i in range(20):
        assert torch.equal(out[i], slow_crop(images[i], 2, int(dy[i]), int(dx[i])))
    assert torch.equal(random_crop(images, 2, torch.full((20,), 2), torch.full((20,), 2)), images)


@pytest.mark.parametrize("pad", [1, 3])
def test_augmented_images_are_windows_of_the_zero_padded_original(digits, pad):
    ds = indexed(digits, pad=pad, flip=False)
    offsets = set()
    for x, y in Loader(ds.train, ds, 64, train=True, seed=1):
        for img, i in zip(to_pixels(x, ds), y.tolist()):
            src = ds.train.images[i]
            found = [
                (a, b)
                for a in range(2 * pad + 1)
                for b in range(2 * pad + 1)
                if torch.equal(img, slow_crop(src, pad, a, b))
            ]
            assert found, f"image {i} is no window of its padded original"
            offsets.update(found)
    assert len(offsets) == (2 * pad + 1) ** 2  # every offset is drawn


def test_flip_only_when_the_dataset_allows_it(digits):
    for flip in (False, True):
        ds = indexed(digits, pad=0, flip=flip)
        x, y = next(iter(Loader(ds.train, ds, 256, train=True, seed=2)))
        pixels, src = to_pixels(x, ds), ds.train.images[y]
        same = (pixels == src).flatten(1).all(1)
        mirrored = (pixels == src.flip(3)).flatten(1).all(1)
        assert bool((same | mirrored).all())
        if flip:  # about half are mirrored (the symmetric digits count as both)
            assert 80 < int((mirrored & ~same).sum()) < 176
        else:
            assert bool(same.all())


def test_no_augmentation_when_switched_off_or_testing(digits):
    ds = indexed(digits, pad=2, flip=True)
    for loader in (Loader(ds.train, ds, 64, train=True, augment=False), Loader(ds.train, ds, 64, train=False)):
        for x, y in loader:
            assert torch.equal(to_pixels(x, ds), ds.train.images[y])


def test_normalisation_makes_the_train_split_zero_mean_unit_std(digits):
    x, _ = next(iter(Loader(digits.train, digits, 2000, train=False)))
    assert x.dtype == torch.float32 and x.shape == (1437, 1, 8, 8)
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-3


def test_test_loader_yields_every_image_once_in_order(digits):
    loader = Loader(digits.test, digits, 64, train=False)
    got = batches(loader)
    assert len(loader) == len(got) == math.ceil(360 / 64)
    assert [len(y) for _, y in got][-1] == 360 - 5 * 64  # the last partial batch is kept
    assert torch.equal(torch.cat([y for _, y in got]), digits.test.labels)
    assert torch.equal(to_pixels(torch.cat([x for x, _ in got]), digits), digits.test.images)


def test_train_loader_drops_the_partial_batch_unless_asked(digits):
    ds = indexed(digits, pad=1, flip=False)
    assert len(Loader(ds.train, ds, 100, train=True)) == 2  # 256 images
    keep = Loader(ds.train, ds, 100, train=True, drop_last=False)
    seen = torch.cat([y for _, y in keep])
    assert len(keep) == 3 and torch.equal(seen.sort().values, torch.arange(256))  # a permutation


def test_channels_last_layout(digits):
    x, _ = next(iter(Loader(digits.test, digits, 8, train=False, channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------------------ folders
def make_tree(root: Path, size=(6, 5), seed=0) -> dict[str, list[torch.Tensor]]:
    """cat/ as PNG, dog/ as JPEG; 3 train and 2 test images each. Returns what the files decode to."""
    gen = torch.Generator().manual_seed(seed)
    expected: dict[str, list[torch.Tensor]] = {}
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                img = torch.randint(0, 256, (3, *size), generator=gen, dtype=torch.uint8)
                if cls == "cat":
                    write_png(img, str(root / split / cls / f"{k}.png"))
                else:  # JPEG is lossy: keep what the decoder gives back
                    data = encode_jpeg(img, quality=95)
                    (root / split / cls / f"{k}.jpg").write_bytes(data.numpy().tobytes())
                    img = decode_jpeg(data)
                expected.setdefault(split, []).append(img)
    return expected


def test_folder_decodes_interleaved_and_computes_statistics(isolated):
    expected = make_tree(isolated / "tree")
    ds = load_dataset(DataConfig(dataset="folder", root=str(isolated / "tree")))
    assert ds.name == "folder" and ds.classes == ("cat", "dog") and ds.source == str(isolated / "tree")
    assert ds.train.images.shape == (6, 3, 6, 5) and ds.image_size == (6, 5) and ds.flip and ds.pad == 1
    assert ds.train.labels.tolist() == [0, 1, 0, 1, 0, 1]  # interleaved: the first N are balanced
    cat, dog = expected["train"][:3], expected["train"][3:]
    assert torch.equal(ds.train.images, torch.stack([cat[0], dog[0], cat[1], dog[1], cat[2], dog[2]]))
    assert ds.test.labels.tolist() == [0, 1, 0, 1]
    pixels = ds.train.images.double().numpy() / 255
    assert np.allclose(ds.mean, pixels.mean((0, 2, 3))) and np.allclose(ds.std, pixels.std((0, 2, 3)))
    assert len(list((isolated / "cache" / "folders").glob("*.pt"))) == 1


def test_folder_second_load_reads_the_cache(isolated, monkeypatch):
    make_tree(isolated / "tree")
    cfg = DataConfig(dataset="folder", root=str(isolated / "tree"))
    first = load_dataset(cfg)
    decoded = []
    real_decode = folders._decode_batch
    monkeypatch.setattr(folders, "_decode_batch", lambda datas: decoded.append(len(datas)) or real_decode(datas))
    second = load_dataset(cfg)
    assert decoded == []  # not one image decoded: the tensors came from the cache file
    assert torch.equal(first.train.images, second.train.images) and first.mean == second.mean
    cat = isolated / "tree" / "train" / "cat"
    (cat / "3.png").write_bytes((cat / "0.png").read_bytes())
    assert len(load_dataset(cfg).train.labels) == 7 and sum(decoded) == 7 + 4  # a changed tree misses


def test_corrupt_cache_is_deleted_and_rebuilt(isolated):
    make_tree(isolated / "tree")
    cfg = DataConfig(dataset="folder", root=str(isolated / "tree"))
    first = load_dataset(cfg)
    (cache,) = (isolated / "cache" / "folders").glob("*.pt")
    cache.write_bytes(b"not a tensor file")
    with pytest.warns(UserWarning, match="rebuilding"):
        again = load_dataset(cfg)
    assert torch.equal(first.train.images, again.train.images)
    assert torch.equal(torch.load(cache, weights_only=True)["train_images"], first.train.images)


def test_grey_and_alpha_images_become_rgb(isolated):
    root = isolated / "tree"
    for split, cls, mode, value in (
        ("train", "a", "L", 7),
        ("train", "b", "RGBA", (9, 9, 9, 128)),
        ("test", "a", "RGB", (5, 5, 5)),
    ):
        (root / split / cls).mkdir(parents=True)
        Image.new(mode, (4, 4), value).save(root / split / cls / "0.png")  # torchvision cannot write RGBA
    ds = load_dataset(DataConfig(dataset="folder", root=str(root)))
    assert ds.in_channels == 3 and ds.train.images[0].unique().tolist() == [7]
    assert ds.train.images[1].unique().tolist() == [9]


def broken(kind: str, root: Path) -> str:
    """Break a good tree in one way; return a fragment the error message must contain."""
    make_tree(root)
    if kind == "missing":
        return str(root / "nowhere")
    if kind == "no_test":
        shutil.rmtree(root / "test")
        return "train/<class>/ and test/<class>/"
    if kind == "empty_class":
        (root / "train" / "owl").mkdir()
        return "owl holds no .jpg/.png images"
    if kind == "sizes":
        write_png(torch.zeros(3, 7, 7, dtype=torch.uint8), str(root / "train" / "cat" / "9.png"))
        return "must share one size"
    (root / "train" / "cat" / "bad.png").write_bytes(b"\x89PNG but not really")
    return "bad.png could not be decoded"


@pytest.mark.parametrize("kind", ["missing", "no_test", "empty_class", "sizes", "undecodable"])
def test_malformed_folders_raise_data_unavailable(isolated, kind):
    fragment = broken(kind, isolated / "tree")
    root = isolated / "tree" / "nowhere" if kind == "missing" else isolated / "tree"
    with pytest.raises(DataUnavailable) as err:
        load_dataset(DataConfig(dataset="folder", root=str(root)))
    message = str(err.value)
    assert fragment in message and str(root) in message and "--data.dataset digits" in message
    assert "\n" not in message  # one paragraph


# ------------------------------------------------------------------------------------------ CIFAR
def test_missing_cifar_without_download_names_every_path(isolated):
    with pytest.raises(DataUnavailable) as err:
        load_dataset(DataConfig(dataset="cifar10", download=False))
    message = str(err.value)
    assert str(isolated / "data" / "cifar10") in message and str(isolated / "cache" / "cifar10") in message
    assert "--data.dataset digits" in message and "--data.root PATH" in message
    assert err.value.tried == (isolated / "data" / "cifar10", isolated / "cache" / "cifar10")


def test_offline_download_becomes_data_unavailable(isolated, offline):
    with pytest.raises(DataUnavailable) as err:
        load_dataset(DataConfig(dataset="cifar100", root=str(isolated / "mine"), download=True))
    assert offline and "cifar-100" in offline[0]  # the download was attempted, and refused
    assert "URLError" in str(err.value) and str(isolated / "mine") in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no download traceback


def fake_torchvision_layout(folder: Path) -> None:
    (folder / "cifar-10-batches-py").mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / "cifar-10-batches-py" / name).touch()


def test_is_available_looks_without_loading(isolated):
    assert is_available("digits") and not is_available("cifar10") and not is_available("folder")
    fake_torchvision_layout(isolated / "cache" / "cifar10")  # empty files: found, never read
    assert is_available("cifar10") and not is_available("cifar100")
    make_tree(isolated / "data" / "cifar100")
    assert is_available("cifar100") and is_available("folder", str(isolated / "data" / "cifar100"))
    assert not is_available("cifar10", root=str(isolated / "elsewhere"))


def test_offline_default_falls_back_to_digits_with_a_note(isolated):
    cfg, note = offline_default()
    assert cfg.dataset == "digits"
    assert note.startswith("CIFAR-10 was not found in") and str(isolated / "cache" / "cifar10") in note
    assert "digits" in note
    fake_torchvision_layout(isolated / "data" / "cifar10")
    cfg, note = offline_default("cifar10")
    assert (cfg.dataset, cfg.download, note) == ("cifar10", False, "")


def test_torchvision_batches_become_channel_first_uint8(isolated, monkeypatch):
    """A miniature of torchvision's pickled layout; rows are 1024 R, then G, then B values."""
    folder = isolated / "data" / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows[name] = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, 4).tolist()
        (folder / name).write_bytes(pickle.dumps({"data": rows[name], "labels": labels}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR10_CLASSES)}))
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)  # our files have no real md5
    ds = load_dataset(DataConfig(dataset="cifar10", download=False))
    train_rows = np.concatenate([rows[f"data_batch_{i}"] for i in range(1, 6)])
    assert ds.train.images.shape == (20, 3, 32, 32) and ds.train.images.is_contiguous()
    assert torch.equal(ds.train.images, torch.from_numpy(train_rows.reshape(20, 3, 32, 32)))
    assert torch.equal(ds.test.images, torch.from_numpy(rows["test_batch"].reshape(4, 3, 32, 32)))
    assert ds.classes == CIFAR10_CLASSES and ds.pad == 4 and ds.flip
    assert ds.source == str(isolated / "data" / "cifar10")


def test_cifar_image_tree_from_the_data_root_is_read_as_cifar(isolated):
    make_tree(isolated / "data" / "cifar10")
    ds = load_dataset(DataConfig(dataset="cifar10", download=False))
    assert ds.name == "cifar10" and ds.classes == ("cat", "dog") and ds.source == str(isolated / "data" / "cifar10")


def test_real_cifar10_tree(monkeypatch):
    root = CALLER_CIFAR10
    if not root or not Path(root, "train").is_dir():
        pytest.skip("TSSD_CIFAR10_ROOT is unset or holds no train/ folder (CI sets it)")
    # A persistent cache (TSSD_CACHE from the caller's environment, else the repo's ignored .cache/):
    # the first run decodes all 60,000 JPEGs (~10-15 s), later runs load one tensor file (~1 s).
    monkeypatch.setenv("TSSD_CACHE", CALLER_CACHE or str(REPO / ".cache" / "tssd-viz"))
    ds = load_dataset(DataConfig(dataset="cifar10", root=root, limit_train=1000, limit_test=500))
    assert ds.classes == CIFAR10_CLASSES and ds.pad == 4 and ds.flip
    assert ds.train.images.shape == (1000, 3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert ds.test.images.shape == (500, 3, 32, 32)
    assert torch.bincount(ds.train.labels).tolist() == [100] * 10  # the interleaved prefix is balanced
    assert np.allclose(ds.mean, (0.4914, 0.4822, 0.4465), atol=0.01)
    assert np.allclose(ds.std, (0.2470, 0.2435, 0.2616), atol=0.02)
    x, y = next(iter(Loader(ds.train, ds, 128, train=True)))
    assert x.shape == (128, 3, 32, 32) and y.shape == (128,)


def test_label_noise_flips_that_fraction_of_training_labels_only():
    from tssd_viz.config import DataConfig
    from tssd_viz.data.sources import flip_labels, load_dataset

    y = torch.arange(10).repeat(20)  # 200 labels
    z = flip_labels(y, 0.3, 10)
    assert int((z != y).sum()) == 60  # exactly round(0.3 x 200), each to another class
    assert torch.equal(z, flip_labels(y, 0.3, 10))  # seeded: the same flips every run
    assert torch.equal(flip_labels(y, 0.0, 10), y)
    clean, noisy = load_dataset(DataConfig()), load_dataset(DataConfig(label_noise=0.3))
    changed = (clean.train.labels != noisy.train.labels).float().mean().item()
    assert changed == pytest.approx(0.3, abs=1 / len(clean.train.labels))
    assert torch.equal(clean.test.labels, noisy.test.labels)  # the test split is never touched
    assert torch.equal(clean.train.images, noisy.train.images)


def test_cifar_is_found_where_either_variable_names_its_image_tree(isolated, monkeypatch):
    """$TSSD_DATA_ROOT may be the image tree itself (not only a folder holding cifar10/), and
    $TSSD_CIFAR10_ROOT names CIFAR-10's tree: the dashboard's default finds both."""
    from tssd_viz import is_available, offline_default

    make_tree(isolated / "tree")
    assert not is_available("cifar10")  # $TSSD_DATA_ROOT/cifar10 and the cache are empty
    monkeypatch.setenv("TSSD_DATA_ROOT", str(isolated / "tree"))
    assert is_available("cifar10") and offline_default("cifar10")[0].dataset == "cifar10"
    assert load_dataset(DataConfig(dataset="cifar10", download=False)).classes == ("cat", "dog")
    monkeypatch.setenv("TSSD_DATA_ROOT", str(isolated / "data"))
    monkeypatch.setenv("TSSD_CIFAR10_ROOT", str(isolated / "tree"))
    assert is_available("cifar10") and not is_available("cifar100")  # a CIFAR-10 variable only
    with pytest.raises(DataUnavailable, match="tree"):
        load_dataset(DataConfig(dataset="cifar100", download=False))
