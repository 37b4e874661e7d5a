"""A damaged event_digits cache: the toolkit made it, so one that fails its checks (values the sensor cannot
produce, offsets out of order, a timeline with no time in it, bytes that no longer match its digest) is made
again with a warning saying why; a folder where the file belongs is refused in one line, never deleted.

The emulated camera is replaced by a cheap stand-in (a few events per digit), so a cache is made in a second."""

import io
import warnings

import numpy as np
import pytest

from tssd_viz import DataConfig, DataUnavailable, load_dataset
from tssd_viz.data import events as event_data
from tssd_viz.data.dvs import EVENT_DTYPE


def few_events(image, rng):
    """40 events of a 34x34 sensor over 300 ms, sorted by time: what record_digit returns, only fewer."""
    out = np.zeros(40, EVENT_DTYPE)
    out["x"], out["y"] = rng.integers(0, 34, 40), rng.integers(0, 34, 40)
    out["t"], out["p"] = np.sort(rng.integers(0, 300_000, 40)), rng.integers(0, 2, 40)
    return out


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TSSD_CACHE", str(tmp_path))
    monkeypatch.setattr(event_data, "record_digit", few_events)
    recordings = event_data.event_digits()[0]  # made once: the good cache
    return event_data.event_digits_path(), recordings


def columns(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k].copy() for k in z.files}


def save(path, cols, rehash: bool):
    """Write `cols` back; with `rehash` the digests are recomputed, so only the content checks can tell."""
    if rehash:
        cols = {**cols, "sha256": np.array(event_data.events_digest(cols))}
        if "labels" in cols:
            cols["sha256_split"] = np.array(event_data.events_digest(cols, event_data.SPLIT))
    buf = io.BytesIO()
    np.savez(buf, **cols)
    path.write_bytes(buf.getvalue())


def x_200(c):
    c["x"][5] = 200  # in range of the file's uint8, not of a 34-pixel sensor


def p_7(c):
    c["p"][5] = 7


def shuffled_offsets(c):
    c["offsets"][1:-1] = np.random.default_rng(0).permutation(c["offsets"][1:-1])


def all_t_zero(c):
    c["t"][:] = 0


def one_byte(c):
    c["t"][100] += 1  # a flipped bit that breaks no bound: only the digest notices


def one_label(c):
    c["labels"][3] = (c["labels"][3] + 1) % 10  # another digit: only the split's digest notices


def label_12(c):
    c["labels"][3] = 12


def one_index_tested_twice(c):
    c["test"][0] = c["test"][1]  # one recording tested twice, another never


def a_class_never_tested(c):
    c["labels"][c["test"][c["labels"][c["test"]] == 0]] = 1  # every tested 0 becomes a 1 ...
    c["labels"][c["train"][c["labels"][c["train"]] == 0][:1]] = 0  # ... and the 0s are all in training


DAMAGE = [x_200, p_7, shuffled_offsets, all_t_zero, label_12, one_index_tested_twice, a_class_never_tested]
# Each damage with the file's digests as they were, and (where a bound is broken) with digests recomputed
# over the damage; a one-count change under recomputed digests is a different, valid cache, so it is not asked.
CASES = [(d, False) for d in [*DAMAGE, one_byte, one_label]] + [(d, True) for d in DAMAGE]


@pytest.mark.parametrize(
    ("damage", "rehash"), CASES, ids=[f"{d.__name__}-{'rehashed' if r else 'stale'}" for d, r in CASES]
)
def test_a_cache_that_fails_its_checks_is_made_again_with_a_warning(cache, damage, rehash):
    path, good = cache
    cols = columns(path)
    damage(cols)
    save(path, cols, rehash)
    with pytest.warns(UserWarning, match="event_digits cache .* making it again") as said:
        again = event_data.event_digits()[0]
    assert all("\n" not in str(w.message) for w in said)
    assert len(again) == len(good) and all(np.array_equal(a, b) for a, b in zip(again, good))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cache made again passes its checks: no second warning
        event_data.event_digits()


def test_damaged_event_data_trains_on_the_events_made_again(cache):
    path, _ = cache
    cols = columns(path)
    x_200(cols)
    save(path, cols, rehash=True)
    with pytest.warns(UserWarning, match="making it again"):
        ds = load_dataset(DataConfig(dataset="event_digits", limit_train=16, limit_test=8))
    assert ds.train.images.shape[:2] == (16, 4)


def test_a_cache_without_a_digest_is_made_again(cache):
    path, good = cache
    cols = columns(path)
    del cols["sha256"]
    save(path, cols, rehash=False)
    with pytest.warns(UserWarning, match="no digest"):
        assert len(event_data.event_digits()[0]) == len(good)


def test_a_folder_where_the_cache_belongs_is_refused_in_one_line_and_kept(cache):
    path, _ = cache
    path.unlink()
    path.mkdir()
    (path / "keep.txt").write_text("not ours to delete")
    with pytest.raises(DataUnavailable) as err:
        load_dataset(DataConfig(dataset="event_digits", limit_train=16, limit_test=8))
    assert "\n" not in str(err.value) and str(path) in str(err.value) and "folder" in str(err.value)
    assert (path / "keep.txt").exists()


def test_a_cache_from_before_the_split_is_read_and_given_its_labels_and_split(cache, monkeypatch):
    """A cache written before it held the labels and the split (only the events and their digest) loads
    without a warning, with scikit-learn's labels and stratified split; it is written again with them, so
    the next load needs no scikit-learn at all."""
    from sklearn.datasets import load_digits

    from tssd_viz.data.dataset import stratified_split

    path, good = cache
    cols = columns(path)
    old = {k: cols[k] for k in (*event_data.COLUMNS, "sha256")}
    save(path, old, rehash=False)
    target = load_digits().target
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recordings, labels, _, (train, test) = event_data.event_digits()
    assert all(np.array_equal(a, b) for a, b in zip(recordings, good))
    expected = stratified_split(target, 0.2)
    assert np.array_equal(labels, target) and np.array_equal(train, expected[0]) and np.array_equal(test, expected[1])
    assert {"labels", "train", "test", "sha256_split"} <= set(columns(path))

    def no_sklearn(*a, **k):
        raise AssertionError("scikit-learn was asked for what the cache holds")

    monkeypatch.setattr("sklearn.datasets.load_digits", no_sklearn)
    monkeypatch.setattr("tssd_viz.data.events.stratified_split", no_sklearn)
    again = event_data.event_digits()
    assert np.array_equal(again[1], target) and np.array_equal(again[3][0], expected[0])
