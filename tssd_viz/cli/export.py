"""`python -m tssd_viz export`: a trained run's student, without the weak head, as a plain PyTorch file
(`--format pt`, the default) or as a NIR graph for other frameworks and neuromorphic chips (`--format nir`).
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import StorageError
from ..data import DataUnavailable
from ..runs.checkpoints import CheckpointError
from ..runs.trained import export_student, load_trained
from .options import ArgumentParser, checkpoint_path, fail


def cmd_export(argv: list[str]) -> int:
    from ..export.nir_writer import NIRExportError, export_nir  # needs the nir extra only when --format nir runs

    ap = ArgumentParser(prog="python -m tssd_viz export")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--which", choices=("best", "last"), default="best")
    ap.add_argument("--out", default=None, help="default: RUN_DIR/student.pt, or RUN_DIR/student.nir with --format nir")
    ap.add_argument("--format", choices=("pt", "nir"), default="pt", help="nir: a NIR graph for other frameworks")
    known = ap.parse_args(argv)
    out = Path(known.out) if known.out else Path(known.run_dir) / f"student.{known.format}"
    try:
        trained = load_trained(checkpoint_path(known.run_dir, None, known.which))
        if known.format == "nir":
            export_nir(trained, out)
        else:
            n_trained, n_plain = export_student(trained, out)
    except CheckpointError as e:
        fail(str(e))
    except StorageError as e:
        fail(str(e))  # a full disk: one line and exit 2 like any refusal; nothing saved is lost
    except (NIRExportError, DataUnavailable) as e:
        fail(str(e))  # NIR cannot express something exactly, nir is not installed, or no data to size the input
    if known.format == "nir":
        T_s = trained.cfg.distill.t_student
        print(f"exported the student (T_s={T_s}, the weak head dropped) as a NIR graph to {out}")
        print(f"{out.stat().st_size:,} bytes; run it for {T_s} steps of dt = 1 (tau in timesteps; docs/SPEC.md §15)")
        return 0
    print(f"exported the student (T_s={trained.cfg.distill.t_student}) to {out}")
    print(
        f"parameters: {n_plain:,} (the plain network: {n_plain:,}; the weak head dropped "
        f"{n_trained - n_plain:,} used only in training)"
    )
    return 0
