"""The controls grid: each distilling arm beside its controls, in a few regimes, paired over seeds.

`python -m tssd_viz sweep --grid controls --preset events --seeds 5 --sweep-dir DIR` trains, seed by seed
(a partial sweep stays balanced), every regime's arms: baseline, tsd, its no-KL twin `tsd·noKL`, tssd,
w2s (where T_s >= 2) and `baseline·equal-time` (the baseline given tsd's measured training seconds of
the same seed). The regimes vary one thing around the base config: T_s = 1, 8 epochs, 30 % label noise.
The table (`summarize_controls`, `render_controls`) compares every arm with the baseline, tsd with its
twin (what the KL term adds) and with the equal-time baseline, each through `tssd_viz.stats.paired`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import TSSDConfig
from ..stats import MIN_SEEDS, paired, signed, spread
from .arms import SEP, Arm, parse_arms
from .grid import EPOCH_CAP_FACTOR, Cell
from .records import collect, recipe

CONTROL_ARMS = ("baseline", "tsd", "tsd·noKL", "tssd", "w2s", "baseline·equal-time")
# The CIFAR race at T_s = 2 (sweep/grid.py's race) with the two controls: `--grid race-controls`.
RACE_CONTROL_ARMS = ("baseline", "tsd", "tsd·noKL", "ssd", "tssd", "s2w", "w2s", "baseline·equal-time")
# slug -> (what the table calls it, the settings it changes on top of the base config)
REGIMES: dict[str, tuple[str, dict[str, Any]]] = {
    "ref": ("reference", {}),
    "ts1": ("T_s = 1", {"distill.t_student": 1}),
    "e8": ("8 epochs", {"train.epochs": 8}),
    "noise30": ("30% label noise", {"data.label_noise": 0.3}),
}


def arm_cell(arm: Arm, cfg: TSSDConfig, regime: str, seed: int) -> Cell:
    """The cell of `arm` in `regime` for `seed` (`cfg`: the regime's config)."""
    cfg = arm.config(cfg).replace(**{"train.seed": seed})
    name = f"{arm.slug}-{regime}-s{seed}"
    if not arm.equal_time:
        return Cell(name, cfg, "epochs", None, arm=arm.name, regime=regime)
    # Stops on the clock: the budget is the matched cell's training seconds, known once it has run; the
    # epoch cap only has to be out of reach.
    cfg = cfg.replace(**{"train.epochs": cfg.train.epochs * EPOCH_CAP_FACTOR, "train.time_budget_s": 0.0})
    match = f"{arm.match.replace(SEP, '.')}-{regime}-s{seed}"  # type: ignore[union-attr]
    return Cell(name, cfg, "time", None, arm=arm.name, regime=regime, match=match)


def control_cells(
    base: TSSDConfig,
    seeds: int,
    arms: tuple[str, ...] | list[str] = CONTROL_ARMS,
    regimes: dict[str, tuple[str, dict[str, Any]]] = REGIMES,
) -> list[Cell]:
    """Seed by seed, regime by regime, arm by arm (an equal-time arm after the arm it is matched to).
    Arms that cannot run in a regime (s2w / w2s at T_s = 1) are left out of it."""
    parsed = sorted(parse_arms(list(arms)), key=lambda a: a.equal_time)  # a matched arm after its match
    cells = []
    for seed in range(seeds):
        for regime, (_, settings) in regimes.items():
            cfg = base.replace(**settings)
            for arm in parsed:
                if arm.mode in ("s2w", "w2s") and cfg.distill.t_student < 2:
                    continue
                cells.append(arm_cell(arm, cfg, regime, seed))
    return cells


# -- reading it back ---------------------------------------------------------------------------------------


def _arm_row(regime: str, arm: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    ts = records[0]["t_student"]
    by_seed = {r["seed"]: r["acc_by_window"][ts] for r in records}
    values = lambda key: [r[key] for r in records if r.get(key) is not None]  # noqa: E731
    stat = lambda key: spread(values(key)).__dict__ if values(key) else None  # noqa: E731
    return {
        "regime": regime,
        "arm": arm,
        "mode": records[0]["mode"],
        "t_student": ts,
        "n": len(records),
        "seeds": sorted(by_seed),
        "acc_by_seed": by_seed,
        "acc": spread(by_seed.values()).__dict__,
        "train_s": stat("train_s"),
        "epochs_trained": stat("epochs_trained"),
        "teacher_margin": stat("teacher_margin"),
        "gap": stat("gap"),
    }


def summarize_controls(runs_dir: Path) -> dict[str, Any]:
    """Per (regime, arm): accuracy at T_s per seed and its spread, training seconds, teacher margin, train − test."""
    runs = [r for r in collect(runs_dir) if r["acc_by_window"] and r.get("arm")]
    rows = []
    for regime in [*REGIMES, *sorted({r["regime"] for r in runs} - set(REGIMES))]:
        arms = [a for a in RACE_CONTROL_ARMS if any(r["arm"] == a for r in runs)]
        arms += sorted({r["arm"] for r in runs} - set(arms))
        for arm in arms:
            group = [r for r in runs if r["regime"] == regime and r["arm"] == arm]
            if group:
                rows.append(_arm_row(regime, arm, group))
    scale = {}
    if runs:
        epochs = min(r["cfg"].train.epochs for r in runs)
        scale = {**recipe(runs), "epochs": epochs, "limit_train": runs[0]["cfg"].data.limit_train}
    totals = {"runs": len(runs), "train_s": sum(r["train_s"] or 0 for r in runs)}
    return {"scale": scale, "rows": rows, "totals": totals}


def comparisons(rows: list[dict[str, Any]], regime: str) -> dict[str, Any]:
    """The paired comparisons of one regime: every arm vs the baseline, each mode vs its no-KL twin, and the
    matched arm vs `baseline·equal-time`. Keys: (arm, reference) -> `Paired`."""
    by_arm = {r["arm"]: r["acc_by_seed"] for r in rows if r["regime"] == regime}
    out = {}
    for arm, accs in by_arm.items():
        for reference in ("baseline", f"{arm}{SEP}noKL", f"baseline{SEP}equal-time"):
            if reference in by_arm and reference != arm:
                out[(arm, reference)] = paired(accs, by_arm[reference])
    return out


# -- what the table says ----------------------------------------------------------------------------------


def regime_label(regime: str) -> str:
    """What the table calls a regime (its slug when it is not one of REGIMES)."""
    return REGIMES.get(regime, (regime, {}))[0]


def arm_controls(comps: dict[tuple[str, str], Any], arm: str) -> list[tuple[str, Any]]:
    """(reference, `Paired`) of `arm` against the baseline, its no-KL twin and the equal-time baseline, in that
    order, where `comps` (`comparisons`) has them."""
    refs = ("baseline", f"{arm}{SEP}noKL", f"baseline{SEP}equal-time")
    return [(ref, comps[(arm, ref)]) for ref in refs if (arm, ref) in comps]


def pays(comps: dict[tuple[str, str], Any], arm: str) -> bool:
    """The KL term of `arm` pays: a gain beyond the noise over its no-KL twin and over the equal-time baseline,
    on at least MIN_SEEDS seeds."""
    need = [comps.get((arm, f"{arm}{SEP}noKL")), comps.get((arm, f"baseline{SEP}equal-time"))]
    return all(p is not None and p.n >= MIN_SEEDS and p.beyond_noise and p.mean > 0 for p in need)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """One bullet per regime: each arm that has a no-KL twin, against the baseline, the twin and equal time."""
    lines = []
    for regime in dict.fromkeys(r["regime"] for r in rows):
        comps = comparisons(rows, regime)
        parts = []
        for arm in dict.fromkeys(a for a, ref in comps if ref == f"{a}{SEP}noKL"):
            what = {f"{arm}{SEP}noKL": f"the KL term (`{arm}` vs `{arm}{SEP}noKL`)"}
            parts += [f"{what.get(ref, f'`{arm}` vs `{ref}`')}: {p.verdict()}" for ref, p in arm_controls(comps, arm)]
            parts.append(_why(rows, regime, arm))
        if parts:
            label = regime_label(regime)
            lines.append(f"- **{label}**: " + "; ".join(p for p in parts if p) + ".")
    return lines


def _why(rows: list[dict[str, Any]], regime: str, arm: str) -> str:
    """What a teacher could pass on, from the table: the arm's teacher margin (what its teacher knows more than its
    student, at the end of training) and the baseline's train − test gap (what a regulariser could fix)."""
    row = {r["arm"]: r for r in rows if r["regime"] == regime}
    margin, gap = (row.get(arm) or {}).get("teacher_margin"), (row.get("baseline") or {}).get("gap")
    said = [f"`{arm}`'s teacher margin {signed(100 * margin['mean'])} points"] if margin else []
    said += [f"the baseline's train − test gap {signed(100 * gap['mean'])} points"] if gap else []
    return ", ".join(said) + " (means over seeds)" if said else ""


def conclusion(rows: list[dict[str, Any]]) -> str:
    """Where a KL term pays beyond both its controls, computed from the table (one sentence)."""
    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    found = []
    for regime in regimes:
        comps = comparisons(rows, regime)
        arms = dict.fromkeys(a for a, ref in comps if ref == f"{a}{SEP}noKL")
        found += [f"`{a}` in {regime_label(regime)}" for a in arms if pays(comps, a)]
    if found:
        return "The KL term pays beyond its no-KL twin and beyond the equal-time baseline for " + ", ".join(found) + "."
    where = (
        "In this regime no KL term pays"
        if len(regimes) == 1
        else f"In none of the {len(regimes)} regimes does a KL term pay"
    )
    return (
        f"{where} beyond both its no-KL twin and the equal-time baseline (a gain outside two standard errors on at "
        f"least {MIN_SEEDS} seeds) at this scale."
    )
