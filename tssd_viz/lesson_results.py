"""The sentences a lesson prints when it compares: from its own runs (one seed, shown beside the spread that
seeds give) and from the committed sweeps in the project's results/ folder (paired over seeds).

A lesson never types an effect into its text (STYLE 17): it calls one of these, which go through
`tssd_viz.stats` like every table of the README. The committed sweeps are read from their run folders:

- `results/controls-event-digits/`: baseline, tsd, its no-KL twin, tssd, w2s and the equal-time baseline on
  event_digits, 5 seeds, in four regimes (SPEC §14);
- `results/cifar10-race/`: the six modes on a CIFAR-10 subset, 3 seeds, and `results/cifar10-race-controls/`:
  its T_s = 2 arms again under today's code with tsd's no-KL twin and the equal-time baseline, 3 seeds;
- `results/event-digits/`: baseline, tsd and tssd under both windowings of event_digits, 3 seeds.

They are found next to the package (a checkout of the project); an installed package has none, and the
functions say so instead of printing a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._version import __version__
from .stats import Paired, paired, spread
from .sweep.arms import SEP
from .sweep.controls import arm_controls, comparisons, conclusion, regime_label, summarize_controls
from .sweep.events import summarize_events
from .sweep.summary import summarize
from .sweep.tables import paired_difference

RESULTS = Path(__file__).resolve().parents[1] / "results"  # the project's results/, seen from the package
CONTROLS, RACE, EVENTS = "controls-event-digits", "cifar10-race", "event-digits"
RACE_CONTROLS = "cifar10-race-controls"
FAST_FLOOR = 0.85  # every network of a fast-mode lesson reaches this test accuracy at T_s


def results_dir(name: str, root: str | Path | None = None) -> Path | None:
    """`results/<name>` of the project this package sits in.

    Args:
        name: the results folder's name.
        root: another results folder.

    Returns:
        The folder, or None when it holds no run folders: an installed package, or a sweep not committed yet.
    """
    path = Path(root or RESULTS) / name
    return path if (path / "runs").is_dir() and any((path / "runs").iterdir()) else None


def committed_controls(root: str | Path | None = None) -> dict[str, Any] | None:
    """The controls table (`summarize_controls`) of the committed run folders.

    Args:
        root: another results folder (default: the project's `results/`).

    Returns:
        The table, or None when the run folders are not there.
    """
    return _controls_table(CONTROLS, root)


def _controls_table(name: str, root: str | Path | None) -> dict[str, Any] | None:
    path = results_dir(name, root)
    return summarize_controls(path / "runs") if path else None


def controls_for(dataset: str, root: str | Path | None = None) -> tuple[dict[str, Any] | None, str]:
    """The committed controls measured nearest to `dataset`, and a phrase that names them.

    Args:
        dataset: the data a lesson's runs trained on.
        root: another results folder (default: the project's `results/`).

    Returns:
        On cifar10, the race's controls (CIFAR-10 subset, 3 seeds); on any other data, the event_digits controls
        (5 seeds, four regimes; their reference regime is the one compared). The table is None where its run
        folders are not there.
    """
    if dataset == "cifar10":
        return _controls_table(RACE_CONTROLS, root), "the committed race controls (CIFAR-10 subset)"
    return _controls_table(CONTROLS, root), "the committed controls (event_digits, reference regime)"


def committed_race(root: str | Path | None = None) -> dict[str, Any] | None:
    """The CIFAR-10 race's table (`summarize`, what its summary.json holds) from its run folders.

    Args:
        root: another results folder (default: the project's `results/`).

    Returns:
        The table, or None when the run folders are not there.
    """
    path = results_dir(RACE, root)
    return summarize(path / "runs") if path else None


def committed_events(root: str | Path | None = None) -> dict[str, Any] | None:
    """The event_digits windowing table (`summarize_events`).

    Args:
        root: another results folder (default: the project's `results/`).

    Returns:
        The table, or None when it is not there.
    """
    path = results_dir(EVENTS, root)
    return summarize_events(path / "runs") if path else None


def controls_lines(summary: Mapping[str, Any], arm: str = "tsd") -> list[str]:
    """One line per regime of the controls table that has `arm`.

    Args:
        summary: the controls table (`committed_controls`).
        arm: the arm to report.

    Returns:
        Per regime: its accuracy, then its paired verdict against the baseline, against its no-KL twin (what
        the KL term adds) and against the equal-time baseline.
    """
    rows, lines = summary["rows"], [source_line(summary, CONTROLS)]
    for regime in dict.fromkeys(r["regime"] for r in rows):
        mine = {r["arm"]: r for r in rows if r["regime"] == regime}
        if arm not in mine:
            continue
        comps = comparisons(rows, regime)
        acc = spread(mine[arm]["acc_by_seed"].values()).text()
        lines.append(f"{regime_label(regime)}: {arm} {acc} % over {mine[arm]['n']} seeds")
        what = {
            "baseline": f"{arm} − baseline",
            f"{arm}{SEP}noKL": f"{arm} − {arm}{SEP}noKL (the KL term alone)",
            f"baseline{SEP}equal-time": f"{arm} − baseline{SEP}equal-time (the same training seconds)",
        }
        lines += [f"  {what[reference]}: {p.verdict()}" for reference, p in arm_controls(comps, arm)]
    return lines


def committed_paired(summary: Mapping[str, Any] | None, arm: str, reference: str, regime: str = "ref") -> Paired | None:
    """`arm` − `reference` over the seeds of the committed controls table, in `regime`.

    Args:
        summary: the controls table, or None.
        arm: the arm compared.
        reference: the arm it is compared with.
        regime: the regime of the table.

    Returns:
        The paired difference, or None without a table.
    """
    if not summary:
        return None
    return comparisons(summary["rows"], regime).get((arm, reference))


def one_seed(what: str, arm: float, reference: float, seed: int, seeds: Paired | None, where: str) -> str:
    """A comparison of one seed's two runs, beside the spread the same comparison has over seeds.

    Args:
        what: what is compared, as the sentence names it.
        arm: the arm's accuracy, a fraction.
        reference: the reference's accuracy, a fraction.
        seed: the seed of both runs.
        seeds: the same comparison over seeds, from a committed table (None: none).
        where: describes that table.

    Returns:
        The sentence a lesson prints.
    """
    text = f"{what}: {paired({seed: arm}, {seed: reference}).verdict()}."
    if seeds is None or seeds.n < 2:
        return text + f" (No committed table of seeds to set it beside: {where}.)"
    sd = seeds.spread.sd or 0.0
    return (
        text + f" Beside it, the seed spread: over {seeds.n} seeds of {where} the same difference "
        f"was {seeds.numbers()} points, one seed's difference varying by ± {100 * sd:.1f} (sd)."
    )


def window_sentence(name: str, acc_by_window: Mapping[int, float], t_student: int) -> str:
    """Where a run's window curve peaks and what the longest window does against T_s, from its numbers.

    Args:
        name: the run, as the sentence names it.
        acc_by_window: window n -> accuracy, a fraction.
        t_student: T_s.

    Returns:
        The sentence.
    """
    windows = sorted(acc_by_window)
    best = max(windows, key=lambda n: (acc_by_window[n], -n))  # a tie goes to the shorter window
    longest = windows[-1]
    change = 100 * (acc_by_window[longest] - acc_by_window[t_student])
    trend = "gains" if change >= 0.05 else "loses" if change <= -0.05 else "is level"
    versus = f"{trend} {abs(change):.1f} points against" if trend != "is level" else "is level with"
    curve = ", ".join(f"{100 * acc_by_window[n]:.1f}" for n in windows)
    return (
        f"{name}: n = {windows[0]}..{longest}: {curve} %; it peaks at n = {best}"
        + (" (its T_s)" if best == t_student else "")
        + f", and the longest window {versus} n = T_s = {t_student}"
    )


def check_learned(accuracies: Mapping[str, float], fast: bool, floor: float = FAST_FLOOR) -> str:
    """In fast mode every network must reach `floor` at T_s: the lesson's point needs networks that learned.

    Args:
        accuracies: network -> test accuracy at T_s, a fraction.
        fast: whether the lesson runs in fast mode (otherwise nothing is checked).
        floor: the accuracy each must reach.

    Returns:
        The line a lesson prints.

    Raises:
        AssertionError: naming the networks below `floor`, in fast mode.
    """
    low = {name: acc for name, acc in accuracies.items() if acc < floor}
    if fast and low:
        raise AssertionError(f"fast mode must learn ≥ {floor:.0%} at T_s; below it: {low}")
    lowest = min(accuracies, key=accuracies.get)  # type: ignore[arg-type]
    return f"the lowest test accuracy at T_s here: {lowest}, {accuracies[lowest]:.1%}" + (
        f" (fast mode checks ≥ {floor:.0%})" if fast else ""
    )


def committed_conclusion(summary: Mapping[str, Any]) -> str:
    """The controls table's closing sentence: in which regimes a KL term pays beyond both its controls.

    Args:
        summary: the controls table.

    Returns:
        The sentence.
    """
    return conclusion(summary["rows"])


def race_paired(race: Mapping[str, Any] | None, mode: str, t_student: int = 2, budget: str = "epochs") -> Paired | None:
    """`mode` − baseline over the seeds of the committed race (`committed_race`), at `t_student` and `budget`.

    Args:
        race: the race's table, or None.
        mode: the mode compared with the baseline.
        t_student: T_s.
        budget: "epochs" or "time".

    Returns:
        The paired difference, or None without it.
    """
    rows = ((race or {}).get("main") or {}).get(budget) or []
    by_mode = {r["mode"]: r for r in rows if r["t_student"] == t_student}
    if mode not in by_mode or "baseline" not in by_mode:
        return None
    return paired_difference(by_mode[mode], by_mode["baseline"])


def events_lines(summary: Mapping[str, Any]) -> list[str]:
    """The windowing table of `committed_events` as lines.

    Args:
        summary: the windowing table.

    Returns:
        Per windowing and mode: accuracy at T_s over seeds, the mean window curve, and each mode against the
        same windowing's baseline (paired by seed).
    """
    lines, rows = [source_line(summary, EVENTS)], summary["rows"]
    for r in rows:
        ts = r["t_student"] if "t_student" in r else summary["scale"]["t_student"]
        curve = {int(n): ms[0] for n, ms in r["acc_by_window"].items()}
        lines.append(
            f"{r['windowing']:<16} {r['mode']:<9} {spread(r['acc_by_seed'].values()).text()} % at T_s "
            f"over {r['n']} seeds · {window_sentence('mean window curve', curve, ts)}"
        )
        base = next((b for b in rows if b["windowing"] == r["windowing"] and b["mode"] == "baseline"), None)
        if base is not None and base is not r:
            lines.append(f"{'':<26} {r['mode']} − baseline: {paired_difference(r, base).verdict()}")
    return lines


def source_line(summary: Mapping[str, Any] | None, name: str) -> str:
    """Where a committed table comes from: its folder, dataset, runs and the code versions that made them.

    Args:
        summary: the table, or None.
        name: the results folder's name.

    Returns:
        The line, saying whether that is another version than the one running (its numbers measure that code).
    """
    if not summary:
        return f"results/{name}: not on this machine"
    scale, runs = summary.get("scale") or {}, (summary.get("totals") or {}).get("runs")
    versions = scale.get("code") or []
    code = ", ".join(versions) or "code version not recorded"
    older = [v for v in versions if not v.startswith(f"tssd-viz {__version__} ")]
    part = "all its runs were" if len(older) == len(versions) else "some of its runs were"
    note = (
        f"; {part} made by another version than this tssd-viz {__version__}, and measure that version" if older else ""
    )
    return f"results/{name}: {scale.get('dataset', '?')}, {runs} finished runs ({code}{note})"


def events_paired(summary: Mapping[str, Any] | None, windowing: str, mode: str = "tsd") -> Paired | None:
    """`mode` − baseline under `windowing` over the seeds of the committed windowing table.

    Args:
        summary: the windowing table, or None.
        windowing: "fixed_window" or "whole_recording".
        mode: the mode compared with the baseline.

    Returns:
        The paired difference, or None without the table.
    """
    rows = {r["mode"]: r for r in (summary or {}).get("rows", []) if r["windowing"] == windowing}
    if mode not in rows or "baseline" not in rows:
        return None
    return paired_difference(rows[mode], rows["baseline"])
