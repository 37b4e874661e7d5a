"""Fuzzing counts: how many damaged or random inputs are accepted, refused in one line, or crash, per kind.

    python bench/fuzz_counts.py                                   # this checkout
    PYTHONPATH=/tmp/old python bench/fuzz_counts.py --no-repo     # another version's tssd_viz (e.g. git archive)

Four kinds, each seeded (the same inputs every time, for any version):
- configs: the quick preset's dict with 1-3 fields (or whole sections) replaced by values from a pool of
  wrong types, out-of-range numbers, huge integers and deep nesting; `validate(TSSDConfig.from_dict(d))`.
  Refused: a ConfigError of one line. Crashed: any other exception.
- command lines: a command and up to four random options with good or bad values, plus the fixed list of
  refusals that once printed a usage box or a traceback; `python -m tssd_viz ...` in this process, with
  training and sweeping replaced by stubs (a config accepted is all that is asked). Refused: exit status
  non-zero with one line on stderr ("refused, several lines" otherwise). Crashed: an exception.
- checkpoints: a real run's last.pt as random bytes, truncated, with flipped bits, or with fields removed
  or of the wrong type; `evaluate --checkpoint FILE --json`. Accepted flipped bits are counted apart: a
  checkpoint that loads after a flip evaluates weights nobody trained.
- run files: random bytes written over or appended to each file of a finished run folder; list_runs, the
  status, a job-queue poll and the probe reader. Refused: a reader said "unreadable" or refused in one line.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
POOL = [-1, 0, 1, 2, 3, 64, 10**6, 10**400, 0.5, -0.5, 1e-9, float("nan"), float("inf"), "x", "", None, [], {}, True]
POOL += [[1, 2], {"a": 1}, "vgg_small", "digits", "tssd", "cpu", 2.0]


def one_line(text: str) -> bool:
    return "\n" not in text.strip() and len(text) < 600


def fuzz_configs(n: int, rng: random.Random) -> collections.Counter:
    from tssd_viz import TSSDConfig, preset
    from tssd_viz.config import ConfigError
    from tssd_viz.validation import validate

    base = preset("quick").to_dict()
    counts: collections.Counter = collections.Counter()
    for i in range(n):
        d = json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 3)):
            section = rng.choice(list(d))
            if rng.random() < 0.05:
                d[section] = rng.choice(POOL)  # a whole section of junk
            elif isinstance(d[section], dict):
                key = rng.choice([*d[section], "bogus"]) if rng.random() < 0.95 else "x" * 300
                d[section][key] = rng.choice(POOL)
        if i % 500 == 0:  # a value nested thousands deep, and an integer past the int-to-string limit
            d["model"]["aux_stage"] = 10**5000 if i % 1000 == 0 else nested(5000)
        try:
            validate(TSSDConfig.from_dict(d))
            counts["accepted"] += 1
        except ConfigError as e:
            counts["refused" if one_line(str(e)) else "refused, several lines"] += 1
        except Exception:
            counts["crashed"] += 1
    return counts


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def run_cli(argv: list[str]) -> str:
    """`python -m tssd_viz ARGV` in this process: accepted, refused (one line), refused in several, or crashed."""
    from tssd_viz import cli

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(argv))
    except SystemExit as e:
        code = e.code
    except Exception:
        return "crashed"
    if code in (0, None):
        return "accepted"
    return "refused" if len(err.getvalue().strip().splitlines()) == 1 else "refused, several lines"


@contextlib.contextmanager
def stubs():
    """Training and sweeping replaced by stubs that return at once: the command line is what is fuzzed."""
    import tssd_viz.sweep as sweep
    import tssd_viz.training.fit as train

    saved = train.fit, sweep.run_sweep
    train.fit = lambda *a, **k: types.SimpleNamespace(stopped="done")
    sweep.run_sweep = lambda cells, *a, **k: {c.name: "done" for c in cells}
    try:
        yield
    finally:
        train.fit, sweep.run_sweep = saved


def command_lines(n: int, rng: random.Random, files: dict[str, str]) -> list[list[str]]:
    """The fixed refusals of the issue, then `n` random command lines."""
    fixed = [
        [],
        ["train", "--preset"],
        ["evaluate", "--t", "abc"],
        ["evaluate", "--which", "foo"],
        ["export"],
        ["export", "--which", "foo"],
        ["export", "--bogus"],
        ["sweep"],
        ["sweep", "--grid", "foo"],
        ["evaluate", "--checkpoint", "/etc/passwd"],
        ["evaluate", "--checkpoint", files["ckpt"], "--t", "20000"],
        ["evaluate", "--checkpoint", files["ckpt"], "--early-exit", "0.5", "--figure", "/nonexistent/dir/x.html"],
        ["sweep", "--sweep-dir", files["file"], "--dry-run"],
        ["sweep", "--sweep-dir", files["dir"], "--summarize-only", "--readme", files["binary"]],
        ["sweep", "--sweep-dir", files["dir"], "--seeds", "-1", "--dry-run"],
        ["sweep", "--sweep-dir", files["dir"], "--only", "nomatch*", "--dry-run"],
        ["sweep", "--sweep-dir", files["dir"] + "/missing", "--summarize-only"],
    ]
    options = {
        "train": ["--preset", "--train.epochs", "--data.batch-size", "--distill.t-student", "--model.tau", "--bogus"],
        "evaluate": ["--checkpoint", "--run-dir", "--t", "--which", "--early-exit", "--figure", "--json", "--bogus"],
        "export": ["--run-dir", "--which", "--format", "--out", "--bogus"],
        "sweep": ["--sweep-dir", "--grid", "--seeds", "--dry-run", "--summarize-only", "--only", "--readme"],
    }
    values = ["quick", "huge", "1", "-1", "0", "abc", "1e9", "0.5", "nan", "20000", "foo", "best", "nir", "main"]
    values += [files["file"], files["binary"], files["dir"], "/nonexistent/x", "~nouser/x", "nomatch*"]
    out = []
    for _ in range(n):
        command = rng.choice([*options, "bogus"])
        argv = [command]
        for _ in range(rng.randint(0, 4)):
            argv.append(rng.choice(options.get(command, ["--x"])))
            if rng.random() < 0.85:
                argv.append(rng.choice(values))
        if command == "sweep" and "--summarize-only" not in argv:
            argv += ["--sweep-dir", files["dir"], "--dry-run"]  # never a real sweep
        out.append(argv)
    return fixed + out


def finished_run(root: Path):
    """One short epoch on the offline digits, with its probes and checkpoints."""
    from tssd_viz import RunFolder, fit, preset

    over = {"model.width": 0.25, "data.limit_train": 128, "data.limit_test": 64, "train.epochs": 1}
    cfg = preset("digits").replace(**over, **{"train.device": "cpu", "train.log_every": 1})
    run = RunFolder(root / "done")
    fit(cfg, [], run_dir=run.path)
    return run


def damaged_checkpoints(good: Path, root: Path, rng: random.Random) -> list[tuple[str, Path]]:
    """(kind, file): 200 random-byte files, 10 truncations, 30 flipped bits, 15 fields removed or mistyped."""
    import torch

    data, out = good.read_bytes(), []
    for i in range(200):
        out.append(("random bytes", root / f"rand-{i}.pt", rng.randbytes(rng.randint(0, 4000))))
    for i in range(10):
        out.append(("truncated", root / f"cut-{i}.pt", data[: rng.randint(0, len(data) - 1)]))
    for i in range(30):
        flipped = bytearray(data)
        at = rng.randrange(len(flipped) // 2, len(flipped) - 1024)  # inside the tensors, not the zip's index
        flipped[at] ^= 1 << rng.randrange(8)
        out.append(("flipped bit", root / f"flip-{i}.pt", bytes(flipped)))
    payload = torch.load(good, map_location="cpu", weights_only=True)
    for i, key in enumerate(sorted(payload)[:15]):
        edited = dict(payload)
        if i % 2:
            edited.pop(key)
        else:
            edited[key] = "garbage"
        buf = io.BytesIO()
        torch.save(edited, buf)
        out.append(("fields", root / f"field-{i}.pt", buf.getvalue()))
    for _, path, content in out:
        path.write_bytes(content)
    return [(kind, path) for kind, path, _ in out]


def fuzz_checkpoints(run, root: Path, rng: random.Random) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    root.mkdir()
    for kind, path in damaged_checkpoints(run.checkpoint_path("last"), root, rng):
        outcome = run_cli(["evaluate", "--checkpoint", str(path), "--json"])
        counts[outcome] += 1
        if outcome != "refused":
            print(f"  checkpoint, {kind}: {outcome}", file=sys.stderr)
        if kind == "flipped bit" and outcome == "accepted" and not same_weights(run.checkpoint_path("last"), path):
            counts["flipped bits loaded as other weights"] += 1
    return counts


def same_weights(a: Path, b: Path) -> bool:
    """Whether two checkpoint files hold equal tensors (a flip in the zip's padding changes none)."""
    import torch

    def flat(path: Path) -> list:
        items, todo = [], [torch.load(path, map_location="cpu", weights_only=True)]
        while todo:
            x = todo.pop()
            if isinstance(x, dict):
                todo += [x[k] for k in sorted(x, key=str)]
            elif isinstance(x, (list, tuple)):
                todo += list(x)
            else:
                items.append(x)
        return items

    pairs = list(zip(flat(a), flat(b)))
    return all(torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y for x, y in pairs)


def read_damaged(run) -> str:
    """What the readers make of a damaged run folder: accepted, refused (in one line) or crashed."""
    from tssd_viz import list_runs
    from tssd_viz.jobs.queue import JobManager

    try:
        (row,) = list_runs(run.path.parent)
        st = run.status()
        JobManager(run.path.parent, max_running=1, python="/bin/true").poll()
        refused = row.state == "unreadable" or st.get("state") == "unreadable"
        if not (one_line(row.message) and one_line(st.get("message", ""))):
            return "crashed"
        for probe in run.probes():
            try:
                run.load_probe(probe)
            except Exception as e:
                if type(e).__name__ != "ProbeError" or not one_line(str(e)):
                    return "crashed"
                refused = True
    except Exception:
        return "crashed"
    return "refused" if refused else "accepted"


def fuzz_run_files(run, root: Path, n: int, rng: random.Random) -> collections.Counter:
    from tssd_viz import RunFolder

    names = ["status.json", "metrics.jsonl", "config.json", "env.json", "probes/epoch-0001.npz"]
    junk = [b"1\n", b"[]\n", b"null\n", b'"x"\n', b'{"kind":"eval","split":"test","t":"x","acc":1}\n', b"\xff\xfe\x00"]
    counts: collections.Counter = collections.Counter()
    for i in range(n):
        copy = root / f"c{i}"
        shutil.copytree(run.path, copy / "run")
        content = rng.choice(junk) if rng.random() < 0.4 else rng.randbytes(rng.randint(0, 300))
        with open(copy / "run" / rng.choice(names), "ab" if rng.random() < 0.5 else "wb") as f:
            f.write(content)
        counts[read_damaged(RunFolder(copy / "run"))] += 1
        shutil.rmtree(copy)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=2000)
    ap.add_argument("--command-lines", type=int, default=150)
    ap.add_argument("--run-files", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-repo", action="store_true", help="import tssd_viz from PYTHONPATH, not this checkout")
    args = ap.parse_args(argv)
    for name in ("configs", "command_lines", "run_files"):
        if not 0 < getattr(args, name) <= 10**6:  # before anything is generated
            ap.error(f"--{name.replace('_', '-')} should be a count in (0, 10^6], got {getattr(args, name)}")
    if not args.no_repo:
        sys.path.insert(0, str(REPO))
    import tssd_viz

    root = Path(tempfile.mkdtemp(prefix="fuzz-counts-"))
    os.chdir(root)  # anything a command line writes by default lands here
    run = finished_run(root)
    files = {"ckpt": str(run.checkpoint_path("last")), "file": str(root / "a-file"), "dir": str(root / "sweep")}
    files["binary"] = str(root / "binary.md")
    Path(files["file"]).write_text("x")
    Path(files["binary"]).write_bytes(b"\xff\xfe\x00")
    Path(files["dir"]).mkdir()
    rng = random.Random(args.seed)
    lines: collections.Counter = collections.Counter()
    with stubs():
        for line in command_lines(args.command_lines, rng, files):
            lines[outcome := run_cli(line)] += 1
            if outcome not in ("refused", "accepted"):
                print(f"  command line {line}: {outcome}", file=sys.stderr)
    results = {
        "configs": fuzz_configs(args.configs, random.Random(args.seed)),
        "command lines": lines,
        "checkpoints": fuzz_checkpoints(run, root / "ckpts", random.Random(args.seed)),
        "run files": fuzz_run_files(run, root / "files", args.run_files, random.Random(args.seed)),
    }
    print(f"tssd_viz from {Path(tssd_viz.__file__).parent}")
    for kind, counts in results.items():
        print(
            f"{kind:14s} {sum(v for k, v in counts.items() if not k.startswith('flipped')):5d}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        )
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
