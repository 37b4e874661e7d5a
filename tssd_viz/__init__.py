"""tssd-viz: see how a spiking neural network teaches itself (temporal-spatial self-distillation).

The public API; notebooks and the app import only from here.
"""

from . import figures
from ._version import __version__ as __version__
from .config import ConfigError, DataConfig, DistillConfig, ModelConfig, TrainConfig, TSSDConfig
from .data import Dataset, DataUnavailable, Loader, Split, cache_dir, is_available, load_dataset, offline_default
from .data.dvs import emulate
from .data.event_frames import frame_transform
from .data.events import event_digits, saccade_video
from .export.nir_reader import NIRAgreement, NIRNetwork, NIRRun, load_nir, nir_agreement
from .export.nir_writer import NIRExportError, export_nir
from .jobs.queue import JobManager
from .lesson_measures import accuracy, gradient_norms, split_windows, step_milliseconds, weak_head_tap
from .lesson_results import (
    check_learned,
    committed_conclusion,
    committed_controls,
    committed_events,
    committed_paired,
    committed_race,
    controls_for,
    controls_lines,
    events_lines,
    events_paired,
    one_seed,
    race_paired,
    results_dir,
    source_line,
    window_sentence,
)
from .lessons import events_config, fast_mode, lesson_config, lesson_runs_dir, race_rows, runs_summary, train_or_read
from .presets import preset
from .runs.checkpoints import CheckpointError, load_checkpoint
from .runs.folders import RunFolder
from .runs.listing import list_runs, run_folders
from .runs.metrics import final_accuracy
from .runs.trained import Trained, export_student, load_trained
from .snn.frames import WindowFrames
from .snn.losses import (
    LossParts,
    Windows,
    accuracy_by_window,
    agreement,
    kd_kl,
    rank_timesteps,
    strong_weak_loss,
    sw_pairs,
    timestep_confidence,
    tssd_loss,
    windows,
)
from .snn.models import ModelOutput, SpikingNet, build_model, count_parameters
from .snn.neurons import LIF, LIFParams, lif_multistep, lif_step, rect_surrogate_grad, snntorch_multistep
from .snn.ops import LayerOps, energy_uj, synaptic_operations
from .snn.probes import ProbeSnapshot, read_probe, snapshot
from .snn.record import Recording, lif_layers, record
from .training.evaluation import (
    ExitPoint,
    Outputs,
    analysis,
    collect_outputs,
    early_exit,
    evaluate,
    exit_points,
    teacher_margins,
)
from .training.events import FitInfo, FitResult
from .training.fit import fit
from .training.observers import ConsoleProgress, History, Observer, RunWriter
from .training.step import TrainingDiverged
from .validation import validate

__all__ = [
    "figures",
    "CheckpointError",
    "ConfigError",
    "ConsoleProgress",
    "DataConfig",
    "DataUnavailable",
    "Dataset",
    "DistillConfig",
    "FitInfo",
    "FitResult",
    "History",
    "JobManager",
    "LIF",
    "LIFParams",
    "LayerOps",
    "Loader",
    "LossParts",
    "Split",
    "cache_dir",
    "emulate",
    "energy_uj",
    "event_digits",
    "frame_transform",
    "is_available",
    "synaptic_operations",
    "ModelConfig",
    "ModelOutput",
    "Observer",
    "Recording",
    "RunFolder",
    "RunWriter",
    "SpikingNet",
    "TSSDConfig",
    "TrainConfig",
    "TrainingDiverged",
    "WindowFrames",
    "Windows",
    "accuracy_by_window",
    "agreement",
    "build_model",
    "count_parameters",
    "evaluate",
    "fit",
    "kd_kl",
    "lif_layers",
    "lif_multistep",
    "lif_step",
    "list_runs",
    "ProbeSnapshot",
    "read_probe",
    "saccade_video",
    "snapshot",
    "final_accuracy",
    "run_folders",
    "load_checkpoint",
    "load_dataset",
    "offline_default",
    "preset",
    "record",
    "rect_surrogate_grad",
    "snntorch_multistep",
    "Trained",
    "export_student",
    "load_trained",
    "NIRExportError",
    "NIRNetwork",
    "NIRRun",
    "export_nir",
    "load_nir",
    "NIRAgreement",
    "nir_agreement",
    "tssd_loss",
    "validate",
    "windows",
    "accuracy",
    "fast_mode",
    "gradient_norms",
    "lesson_config",
    "lesson_runs_dir",
    "race_rows",
    "runs_summary",
    "split_windows",
    "train_or_read",
    "weak_head_tap",
    "events_config",
    "step_milliseconds",
    "check_learned",
    "committed_conclusion",
    "committed_controls",
    "controls_for",
    "committed_events",
    "committed_paired",
    "committed_race",
    "controls_lines",
    "events_lines",
    "events_paired",
    "one_seed",
    "race_paired",
    "results_dir",
    "source_line",
    "window_sentence",
    "ExitPoint",
    "Outputs",
    "analysis",
    "collect_outputs",
    "early_exit",
    "exit_points",
    "teacher_margins",
    "rank_timesteps",
    "strong_weak_loss",
    "sw_pairs",
    "timestep_confidence",
]
