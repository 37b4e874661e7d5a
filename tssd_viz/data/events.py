"""Event-camera datasets: recordings of (x, y, t, p) events binned by tonic into the frames a network gets.

Four sources, one path (SPEC §12). Each recording is a tonic-style structured array; `frame_transform`
(event_frames.py: tonic's `Downsample` to the frame size, then `ToFrame` into n time bins, polarity as
2 channels) turns it into (n, 2, H, W) event counts, stored as uint8 (clipped at 255):

- `event_digits`: made here, offline, from scikit-learn's digits the way N-MNIST was made from MNIST
  (`tssd_viz.data.dvs`: the digit moves through three saccades in front of an emulated DVS); generated once,
  seeded, cached as an .npz of events under `cache_dir()/event_digits/`.
- `nmnist`, `dvs_gesture`, `cifar10_dvs`: tonic's dataset classes, read from (or downloaded to) the same
  folders as CIFAR (`--data.root`, `$TSSD_DATA_ROOT/<name>`, the cache); frames are cached per sample by
  tonic's `DiskCachedDataset` under `cache_dir()/event-frames/`, so they are computed once.

How the windows map onto a recording is `data.windowing` **[choice]**: `fixed_window` bins the
recording into T_t frames (each frame is Δt = duration / T_t long) and a window of n steps sees the
first n of them; `whole_recording` bins it into n frames for every window n, stored one binning after
the other on the split's time axis (`Split.windows` names them).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
from torch import Tensor

from ..atomic import atomic_write_bytes
from ..config import DataConfig, DistillConfig
from .dataset import Dataset, DataUnavailable, cache_dir, default_pad, stratified_split
from .dvs import EVENT_DTYPE, emulate, render_moving, saccade_path
from .event_frames import EventSource, Recordings, binned_split, to_frames
from .tonic_sources import open_tonic

EVENT_SOURCES = {
    "event_digits": EventSource((34, 34), (34, 34), flip=False, tonic_class=""),
    "nmnist": EventSource((34, 34), (34, 34), flip=False, tonic_class="NMNIST"),
    # 128x128 DVS128 recordings downsampled to 48x48, as the TSSD authors' follow-up does.
    "dvs_gesture": EventSource((128, 128), (48, 48), flip=False, tonic_class="DVSGesture"),
    "cifar10_dvs": EventSource((128, 128), (48, 48), flip=True, tonic_class="CIFAR10DVS"),
}

# The event_digits recipe (changing any of it changes the dataset: bump EVENT_DIGITS_VERSION).
EVENT_DIGITS_VERSION = 1
EVENT_DIGITS_SEED = 0
DIGIT_SIZE = 28  # px: the 8x8 digit upsampled to MNIST's size, on a 34x34 sensor like N-MNIST's
SACCADES = np.array([[0.0, 0.0], [6.0, 3.0], [0.0, 6.0]])  # (dy, dx) px: N-MNIST's triangle, 6 px of travel
STEPS_PER_SACCADE = 20  # rendered frames per saccade (5 ms apart)
SACCADE_US = 100_000  # 100 ms per saccade, 300 ms per recording, as in N-MNIST
THRESHOLD = 0.4  # log-intensity contrast threshold: ~5,000 events per digit (N-MNIST has ~4,000)
JITTER_US = 500.0  # timing jitter, standard deviation in microseconds
NOISE_HZ = 0.5  # background events per pixel per second


def frame_windows(data: DataConfig, distill: DistillConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The binnings (frame counts) of the train and the test split; () means one binning of T_t frames.

    whole_recording: every window n = 1..T_t in both splits, each its own binning of the whole recording:
    training uses the student's and the teacher's, and the batch-norm statistics of each evaluated window
    are re-estimated on training recordings binned as that window sees them (SPEC §12)."""
    if data.windowing == "fixed_window":
        return (), ()
    every = tuple(range(1, distill.t_teacher + 1))
    return every, every


def load_event_dataset(cfg: DataConfig, distill: DistillConfig, tried: list[Path]) -> Dataset:
    """The event dataset `cfg.dataset` as frames; `limit_train` / `limit_test` apply before binning,
    so only the recordings used are binned."""
    source = EVENT_SOURCES[cfg.dataset]
    if cfg.dataset == "event_digits":
        sets, classes, origin = _event_digits_sets(source)
    else:
        sets, classes, origin = open_tonic(cfg, source, tried)
    train_w, test_w = frame_windows(cfg, distill)
    train = binned_split(sets["train"], cfg.limit_train, train_w, distill.t_teacher)
    test = binned_split(sets["test"], cfg.limit_test, test_w, distill.t_teacher)
    h, w = source.size
    # Frames go in as event counts: mean 0 and std 1/255 make the loader's normalisation the identity
    # (the stem's batch norm scales them); a shifted input would turn "no event" into a signal.
    return Dataset(
        cfg.dataset, train, test, tuple(classes), (0.0, 0.0), (1 / 255, 1 / 255), default_pad(h, w), source.flip, origin
    )


def _event_digits_sets(source: EventSource) -> tuple[dict[str, Recordings], tuple[str, ...], str]:
    recordings, labels, classes, (train, test) = event_digits()

    def frames(idx: np.ndarray, n: int) -> Tensor:
        return to_frames([recordings[i] for i in idx], source, n)

    return (
        {"train": Recordings(train, labels, frames), "test": Recordings(test, labels, frames)},
        classes,
        str(event_digits_path()),
    )


# -- event_digits: the offline event dataset


def event_digits_path() -> Path:
    return cache_dir() / "event_digits" / f"events-v{EVENT_DIGITS_VERSION}-seed{EVENT_DIGITS_SEED}.npz"


def saccade_video(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the emulated camera watches for one digit: the digit upsampled to 28x28, moved through three saccades.

    Args:
        image: (8, 8) scikit-learn digit, pixel values 0..16.

    Returns:
        (video (S, 34, 34) in [0, 1], times (S,) in microseconds).
    """
    from scipy.ndimage import zoom

    digit = zoom(np.asarray(image, dtype=np.float64) / 16, DIGIT_SIZE / image.shape[0], order=1).clip(0, 1)
    path = saccade_path(SACCADES, STEPS_PER_SACCADE)  # (61, 2)
    times = np.linspace(0, len(SACCADES) * SACCADE_US, len(path))
    return render_moving(digit, EVENT_SOURCES["event_digits"].size, path), times  # (61, 34, 34), (61,)


def record_digit(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The events of one 8x8 digit (pixel values 0..16) on its three saccades, tonic-style (x, y, t, p)."""
    video, times = saccade_video(image)
    return emulate(video, times, threshold=THRESHOLD, jitter_us=JITTER_US, noise_hz=NOISE_HZ, rng=rng)


def event_digits() -> tuple[list[np.ndarray], np.ndarray, tuple[str, ...], tuple[np.ndarray, np.ndarray]]:
    """Every scikit-learn digit as an event recording, made once and cached with its label and the split.

    The toolkit makes this cache and can make it again, so a cache that fails its checks (see `check_events`)
    is made again with a warning saying why. A cache made before it held the labels and the split is read, and
    written again with them: with them in the cache a run need not import scikit-learn (1.5 s of its start).

    Returns:
        (recordings, labels (N,), classes, (train indices, test indices)); the split is the digits
        dataset's (stratified 80/20, seed 0), in its order (`limit_train` takes the first of each).

    Raises:
        DataUnavailable: a folder stands where the cache file belongs.
    """
    path = event_digits_path()
    blob = _read_events(path, DIGITS)
    if blob is None or blob[2] is None:
        from sklearn.datasets import load_digits

        d = load_digits()
        if blob is None:
            rngs = (np.random.default_rng([EVENT_DIGITS_SEED, i]) for i in range(len(d.images)))
            recs = [record_digit(img, rng) for img, rng in zip(d.images, rngs)]
        else:  # the events are good; only the labels and the split were not in the cache yet
            recs = _cut(*blob[:2])
        blob = _write_events(path, recs, (d.target, *stratified_split(d.target, 0.2)))
    events, offsets, (labels, train, test) = blob
    return _cut(events, offsets), labels, tuple(str(i) for i in range(10)), (train, test)


def _cut(events: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """The recordings of one events array, cut at `offsets` (n + 1 of them)."""
    return [events[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


DIGITS = 1797  # scikit-learn's digits: the recordings a cache holds
COLUMNS = ("x", "y", "t", "p", "offsets")  # what the cache holds, in the order its digest reads them
SPLIT = ("labels", "train", "test")  # and (caches made since) the labels and the split's indices, in its order


def events_digest(columns: dict[str, np.ndarray], names: tuple[str, ...] = COLUMNS) -> str:
    """sha256 of the cache's columns `names` (dtype, shape and bytes of each, in that order): a changed byte
    shows. The events' digest (COLUMNS, "sha256") is the one every version wrote; the labels and the split have
    their own ("sha256_split"), so a version that does not know them still reads this cache as its own."""
    h = hashlib.sha256()
    for k in names:
        a = np.ascontiguousarray(columns[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_events(columns: dict[str, np.ndarray], n: int) -> str:
    """Why the cached columns are not n recordings of event_digits' sensor ("" when they are): the digest
    they were saved with, offsets that cut the events into n recordings in order, x and y on the 34x34
    sensor, polarities 0 or 1, times that move forward within each recording and are not all one, and
    (where the cache holds them) n labels of the ten classes split into train and test, every class in test."""
    if "sha256" not in columns:
        return "no digest (made by an older version)"
    if str(columns["sha256"]) != events_digest(columns) or (
        SPLIT[0] in columns and str(columns.get("sha256_split")) != events_digest(columns, SPLIT)
    ):
        return "its contents do not match its digest"
    offsets, t = columns["offsets"].astype(np.int64), columns["t"].astype(np.int64)
    if len(offsets) != n + 1 or offsets[0] != 0 or offsets[-1] != len(t) or (np.diff(offsets) < 0).any():
        return f"its offsets do not cut {len(t)} events into {n} recordings in order"
    (w, h) = EVENT_SOURCES["event_digits"].sensor
    if len(t) and (columns["x"].max() >= w or columns["y"].max() >= h or columns["p"].max() > 1):
        return f"it holds events off the {w}x{h} sensor or with a polarity other than 0 or 1"
    starts = np.zeros(len(t), bool)
    starts[offsets[1:-1][offsets[1:-1] < len(t)]] = True  # each recording's first event may go back in time
    if len(t) and ((np.diff(t) < 0) & ~starts[1:]).any():
        return "its times go backwards within a recording"
    if len(t) and t.min() == t.max():
        return "every event has the same time"
    return _check_split(columns, n) if SPLIT[0] in columns else ""


def _check_split(columns: dict[str, np.ndarray], n: int) -> str:
    labels, train, test = (columns.get(k) for k in SPLIT)
    if labels.shape != (n,) or labels.min() < 0 or labels.max() > 9:
        return f"its labels are not {n} digits 0-9"
    if train is None or test is None or not np.array_equal(np.sort(np.concatenate([train, test])), np.arange(n)):
        return f"its train and test indices do not split the {n} recordings"
    if set(labels[test].tolist()) != set(range(10)):
        return "its test split lacks a class"
    return ""


def _write_events(
    path: Path, recordings: list[np.ndarray], split: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Write the cache: the events as compact columns, then (labels, train indices, test indices) and the digest."""
    events = np.concatenate(recordings)
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in recordings])]).astype(np.int64)
    # Compact columns on disk (x, y < 256, t < 2^32 us): about 7 bytes an event before compression.
    columns = {
        "x": events["x"].astype(np.uint8),
        "y": events["y"].astype(np.uint8),
        "t": events["t"].astype(np.uint32),
        "p": events["p"].astype(np.uint8),
        "offsets": offsets,
        **{k: np.asarray(a).astype(np.int64) for k, a in zip(SPLIT, split)},
    }
    buf = io.BytesIO()
    digests = {"sha256": events_digest(columns), "sha256_split": events_digest(columns, SPLIT)}
    np.savez_compressed(buf, **columns, **{k: np.array(v) for k, v in digests.items()})
    atomic_write_bytes(path, buf.getvalue())  # a concurrent reader sees no file or the whole file
    return events, offsets, tuple(columns[k] for k in SPLIT)


def _read_events(path: Path, n: int) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...] | None] | None:
    """The cached events, offsets and (labels, train indices, test indices) (None where the cache predates them),
    or None: missing, or failing its checks (then it is deleted, to be made again, with a warning saying why). A
    folder at `path` is not ours to delete: `DataUnavailable`."""
    if path.is_dir():
        raise DataUnavailable("event_digits", [path], "a folder stands where its cache file belongs: remove it")
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            columns = {k: z[k] for k in (*COLUMNS, *SPLIT, "sha256", "sha256_split") if k in z.files}
        missing = [k for k in COLUMNS if k not in columns]
        why = f"no array {missing[0]!r}" if missing else check_events(columns, n)
    except Exception as e:  # a torn or foreign file
        why = f"not readable ({type(e).__name__}: {str(e).strip()[:120]!r})"
    if why:
        warnings.warn(f"event_digits cache {path}: {why}; making it again", stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    events = np.empty(len(columns["t"]), EVENT_DTYPE)
    for k in ("x", "y", "t", "p"):
        events[k] = columns[k]
    split = tuple(columns[k].astype(np.int64) for k in SPLIT) if SPLIT[0] in columns else None
    return events, columns["offsets"].astype(np.int64), split
