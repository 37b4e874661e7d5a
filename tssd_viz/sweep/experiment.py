"""An experiment: a question asked with arms and seeds, trained as one sweep through the shared job queue.

The dashboard's Experiment page asks a prepared question (`QUESTIONS`, e.g. "Does the temporal teacher help
on event data?": baseline vs tsd vs its no-KL twin) or one a student builds (a starting point, 2-5 arms of a
mode and overrides, 3-8 seeds). `create` writes it as a sweep folder and `launch` starts its driver, a process
that trains the cells with the sweep runner (`run_sweep`: seed by seed, so a stopped experiment is balanced;
an equal-time arm waits for the arm it is matched to), each cell waiting its turn in the job queue that the
dashboard's Train page uses (`QueueSlots`), so an experiment never trains more runs at once than the queue
allows. The folder:

    <runs>/experiments/<id>/experiment.json   the question, base config, arms, seeds, reference arm
                            sweep.json        grid "experiment": `sweep --summarize-only` reads it back
                            sweep.pid         the driver while it runs; sweep.log its progress
                            runs -> ../..     the runs folder: each cell is an ordinary run folder there,
                                              `<arm>-<id>-s<seed>`, listed by every page like any run
                            summary.md, summary.json, table.csv, figure.html   (rebuilt from the runs)

Cancelling (`cancel`: SIGTERM to the driver) stops every queued and running cell of it, which keep their
last checkpoint; `attach` finds the experiments of a runs folder again after a reload.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from ..config import ConfigError, TSSDConfig
from ..presets import preset
from ..runs.folders import RunFolder
from ..validation import validate
from .arms import SEP, Arm, ArmError, parse_arms
from .controls import arm_cell
from .grid import SWEEP_DEFAULTS, Cell
from .runner import write_manifest

GRID = "experiment"  # sweep.json's grid: plan.write_summary dispatches on it
EXPERIMENTS = "experiments"  # the sub-folder of the runs folder that holds experiment folders
SPEC = "experiment.json"
ARMS_RANGE, SEEDS_RANGE = (2, 5), (1, 8)  # the page asks for 3-8 seeds; a test may use fewer
EXIT_CANCELLED = 130


@dataclass(frozen=True)
class Question:
    """A prepared question: a starting point (preset + settings) and the arms that answer it."""

    key: str
    text: str
    start: str
    settings: dict[str, Any]
    arms: tuple[str, ...]
    why: str


TWINS = ("baseline", "tsd", f"tsd{SEP}noKL")
QUESTIONS: dict[str, Question] = {
    q.key: q
    for q in (
        Question(
            "events",
            "Does the temporal teacher help on event data?",
            "events",
            {"data.windowing": "fixed_window"},
            TWINS,
            "event_digits, fixed windows: tsd against the baseline, and against its no-KL twin (the same "
            "longer teacher window with the KL term at 0), which isolates what the teacher itself adds.",
        ),
        Question(
            "digits",
            "Does the temporal teacher help on digits?",
            "quick",
            {},
            TWINS,
            "The offline digits (Quick look, 3 epochs): the same three arms on static images.",
        ),
        Question(
            "noise",
            "Does the temporal teacher help with noisy labels?",
            "events",
            {"data.windowing": "fixed_window", "data.label_noise": 0.3},
            TWINS,
            "event_digits with 30% of the training labels flipped at random: soft targets are known to help there.",
        ),
        Question(
            "time",
            "Does the teacher pay for its time?",
            "events",
            {"data.windowing": "fixed_window"},
            (*TWINS, f"baseline{SEP}equal-time"),
            "tsd costs more per step than the baseline: baseline·equal-time gets tsd's training seconds of the "
            "same seed, so a gain that is only more compute shows up as a tie with it.",
        ),
    )
}


@dataclass(frozen=True)
class Experiment:
    """What an experiment trains: every arm on `base` for every seed, compared with the `reference` arm."""

    id: str
    question: str
    base: TSSDConfig
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...]
    reference: str
    key: str = "custom"
    at_once: int = 1  # how many runs the queue allowed at once when it was made (threads per run follow)
    created: float = 0.0  # when it was made (time.time()): the page's clock from the click to the verdict

    def cells(self) -> list[Cell]:
        """Seed by seed, arm by arm, an equal-time arm after the arm it is matched to (a partial experiment
        has whole seeds). Run names: `<arm>-<id>-s<seed>` (the id plays the controls grid's regime)."""
        ordered = sorted(self.arms, key=lambda a: a.equal_time)
        return [arm_cell(arm, self.base, self.id, seed) for seed in self.seeds for arm in ordered]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "question": self.question,
            "base": self.base.to_dict(),
            "arms": [{"name": a.name, "mode": a.mode, "settings": a.settings, "match": a.match} for a in self.arms],
            "seeds": list(self.seeds),
            "reference": self.reference,
            "at_once": self.at_once,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Experiment:
        arms = tuple(Arm(a["name"], a["mode"], dict(a["settings"]), a.get("match")) for a in d["arms"])
        base = TSSDConfig.from_dict(d["base"])
        seeds = tuple(d["seeds"])
        return cls(d["id"], d["question"], base, arms, seeds, d["reference"], d["key"], d["at_once"], d["created"])


def parse_overrides(text: str) -> dict[str, Any]:
    """`distill.alpha=2, train.epochs=5` -> {"distill.alpha": 2.0, "train.epochs": 5}; values as JSON where
    they parse (numbers, true/false), else as text. A ConfigError names a piece that is not `name=value`."""
    out: dict[str, Any] = {}
    for piece in filter(None, (p.strip() for p in text.replace("\n", ",").split(","))):
        name, eq, raw = piece.partition("=")
        if not eq or not name.strip():
            raise ConfigError("overrides", f"{piece!r} is not name=value (e.g. distill.alpha=2)")
        try:
            value = json.loads(raw.strip())
        except ValueError:
            value = raw.strip()
        out[name.strip().replace("-", "_")] = value
    return out


def make_arms(kinds: list[str], overrides: list[dict[str, Any]] | None = None) -> tuple[Arm, ...]:
    """Arms from `parse_arms` names (`tsd`, `tsd·noKL`, `baseline·equal-time`), each with its overrides on top;
    an arm with overrides is named `<kind>·<i>` (its position), so that two tsd arms can differ."""
    overrides = overrides or [{} for _ in kinds]
    by_kind = {a.name: a for a in parse_arms(list(dict.fromkeys(k.replace(".", SEP) for k in kinds)))}
    arms = []
    for i, (kind, extra) in enumerate(zip(kinds, overrides), start=1):
        arm = by_kind[kind.replace(".", SEP)]
        name = f"{arm.name}{SEP}{i}" if extra else arm.name
        arms.append(Arm(name, arm.mode, {**arm.settings, **extra}, arm.match))
    return tuple(arms)


def make_experiment(
    question: str,
    base: TSSDConfig,
    arms: tuple[Arm, ...],
    seeds: int,
    *,
    key: str = "custom",
    reference: str | None = None,
    at_once: int = 1,
) -> Experiment:
    """An experiment, checked: 2-5 arms with distinct names, 1-8 seeds, every arm's config valid (a
    ConfigError or ArmError in one line otherwise). `base` gets the sweep defaults (evaluated once at the end,
    no probe snapshots) and CPU threads shared among the runs the queue trains at once."""
    if not ARMS_RANGE[0] <= len(arms) <= ARMS_RANGE[1]:
        raise ArmError(f"an experiment has {ARMS_RANGE[0]}-{ARMS_RANGE[1]} arms, not {len(arms)}")
    if not SEEDS_RANGE[0] <= seeds <= SEEDS_RANGE[1]:
        raise ArmError(f"an experiment has {SEEDS_RANGE[0]}-{SEEDS_RANGE[1]} seeds, not {seeds}")
    if len({a.slug for a in arms}) != len(arms):
        raise ArmError(f"arms {', '.join(a.name for a in arms)}: an arm is named twice")
    names = {a.name for a in arms}
    for arm in arms:
        if arm.equal_time and arm.match not in names:  # its match was renamed by overrides
            raise ArmError(f"{arm.name} takes the training seconds of {arm.match!r}: add that arm without overrides")
    reference = reference or arms[0].name
    if reference not in names:
        raise ArmError(f"the reference arm {reference!r} is not one of the arms")
    # Runs that train side by side share the cores (one alone keeps torch's default: all of them).
    threads = max(1, (os.cpu_count() or 1) // at_once) if at_once > 1 else 0
    base = base.replace(**SWEEP_DEFAULTS, **{"train.threads": base.train.threads or threads})
    for arm in arms:
        try:
            validate(arm.config(base))
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"arm {arm.name}", str(e)) from None
    now = time.time()
    name = f"{key}-{time.strftime('%m%d-%H%M%S', time.localtime(now))}"
    return Experiment(name, question, base, arms, tuple(range(seeds)), reference, key, at_once, now)


def prepared(key: str, seeds: int = 3, *, at_once: int = 1, settings: dict[str, Any] | None = None) -> Experiment:
    """The prepared question `key` (QUESTIONS) with `seeds` seeds; `settings` (dotted names, e.g.
    {"train.epochs": 1}) go on top of its starting point, for a shorter classroom or test version."""
    q = QUESTIONS[key]
    base = preset(q.start).replace(**q.settings, **(settings or {}))
    return make_experiment(q.text, base, make_arms(list(q.arms)), seeds, key=key, at_once=at_once)


# -- the folder, the driver, and finding it again --------------------------------------------------------------


def experiments_dir(runs_root: Path) -> Path:
    return Path(runs_root) / EXPERIMENTS


def create(exp: Experiment, runs_root: Path) -> Path:
    """The experiment's sweep folder under `runs_root/experiments` (its `runs` links back to the runs folder,
    where the job queue trains its cells); nothing trains until `launch`."""
    root = experiments_dir(runs_root)
    root.mkdir(parents=True, exist_ok=True)
    stem, sweep_dir = exp.id, root / exp.id
    for i in range(2, 100):  # two experiments made in the same second get different folders
        try:
            sweep_dir.mkdir()
            break
        except FileExistsError:
            exp = replace(exp, id=f"{stem}-{i}")
            sweep_dir = root / exp.id
    (sweep_dir / "runs").symlink_to(os.path.relpath(Path(runs_root).absolute(), sweep_dir.absolute()))
    atomic_write_json(sweep_dir / SPEC, exp.to_dict())
    write_manifest(sweep_dir, GRID, exp.base, ["experiment", str(sweep_dir)], exp.cells())
    return sweep_dir


def load(sweep_dir: Path) -> Experiment:
    return Experiment.from_dict(json.loads((Path(sweep_dir) / SPEC).read_text()))


DRIVER = "import sys; from tssd_viz.sweep.queued import main; sys.exit(main(sys.argv[1:]))"


def launch(sweep_dir: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start the driver of `sweep_dir` in a session of its own (closing the app stops nothing); its pid goes
    to sweep.pid at once, so that a reload finds it running. The caller reaps it (`proc.wait()`)."""
    with open(Path(sweep_dir) / "sweep.log", "a", encoding="utf-8") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(sweep_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
        )
    (Path(sweep_dir) / "sweep.pid").write_text(f"{proc.pid}\n")
    return proc


def driver_pid(sweep_dir: Path) -> int | None:
    """The pid of the experiment's driver while it runs, else None: a live process (not a zombie) whose
    command line names the folder (a pid the system reused for something else does not count)."""
    try:
        pid = int((Path(sweep_dir) / "sweep.pid").read_text().strip() or 0)
        if pid <= 0:
            return None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):  # no such process (or no /proc to tell)
        return None
    return pid if state != "Z" and Path(sweep_dir).name in cmdline else None


def cancel(sweep_dir: Path) -> str:
    """Stop the experiment: its driver cancels every queued and running cell (each keeps its last checkpoint)."""
    pid = driver_pid(sweep_dir)
    if pid is None:
        return "nothing to cancel: the experiment is not running"
    os.kill(pid, signal.SIGTERM)
    return "stopping: queued runs are cancelled, running ones stop after their current step"


def cell_states(exp: Experiment, sweep_dir: Path) -> dict[str, str]:
    """Each cell's state: its run folder's, or "planned" before the driver has made it."""
    runs = Path(sweep_dir) / "runs"
    return {
        c.name: RunFolder(runs / c.name).status()["state"] if (runs / c.name).is_dir() else "planned"
        for c in exp.cells()
    }


def experiment_state(exp: Experiment, sweep_dir: Path) -> str:
    """running (its driver is alive), finished (every cell done) or stopped (cancelled, or the driver died)."""
    if driver_pid(sweep_dir) is not None:
        return "running"
    return "finished" if all(s == "done" for s in cell_states(exp, sweep_dir).values()) else "stopped"


def attach(runs_root: Path) -> list[Path]:
    """The experiment folders of a runs folder, newest first."""
    root = experiments_dir(runs_root)
    found = [p for p in root.iterdir() if (p / SPEC).is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: ((p / SPEC).stat().st_mtime_ns, p.name), reverse=True)
