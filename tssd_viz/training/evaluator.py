"""What `Training` evaluates between steps: batch-norm statistics kept fresh for the weights they describe,
the test pass of every window, the train accuracy at T_s, and the probe snapshots (SPEC §8, §10, §12).

Batch-norm statistics for evaluation come from training images, augmented as in training (bn_augment),
never from the test split. The evaluations themselves are evaluation.py's functions; this class decides
which statistics each one sees and keeps them from being recomputed for weights they already describe.
"""

from __future__ import annotations

import itertools

import torch

from ..config import TSSDConfig
from ..data import Dataset, Loader
from ..snn.models import SpikingNet
from ..snn.probes import ProbeSnapshot, snapshot
from .evaluation import (
    TRAIN_EVAL_IMAGES,
    Outputs,
    bn_state,
    collect_outputs,
    evaluate,
    load_bn_state,
    recompute_bn_stats,
    window_bn_stats,
)


class Evaluator:
    """The test loader, the batch-norm loader, the probe batch, and which step their statistics describe."""

    def __init__(
        self, cfg: TSSDConfig, ds: Dataset, model: SpikingNet, device: torch.device, shard: tuple[int, int] | None
    ):
        """`shard`: this rank's slice of every global batch, or None outside torchrun."""
        tc = cfg.train
        self.cfg, self.ds, self.model, self.device = cfg, ds, model, device
        on = dict(device=device, channels_last=tc.channels_last)
        self.test_loader = Loader(ds.test, ds, 256, train=False, **on)
        # Synced batch norm averages over the ranks' shards; unsynced, each rank sees whole batches:
        # either way the statistics are those of a single process.
        bn_augment = cfg.data.augment and tc.bn_augment
        bn_shard = shard if shard is not None and tc.sync_bn else (0, 1)
        self.bn_loader = Loader(
            ds.train, ds, cfg.data.batch_size, train=True, augment=bn_augment, seed=tc.seed + 1, shard=bn_shard, **on
        )
        self.bn_T = cfg.train_timesteps if tc.bn_window == "train" else cfg.distill.t_student
        self.bn_fresh_at = -1  # the step whose weights the stored statistics describe
        self.window_bn_at: tuple[int, dict | None] = (-1, None)  # whole_recording: (step, per-window statistics)
        idx = torch.arange(min(tc.probe_images, len(ds.test.labels)))
        # What the snapshots show: (P, C, H, W) uint8 images, or the (P, T_t, 2, H, W) frames of the T_t pass
        self.probe_images = ds.test.view(cfg.distill.t_teacher)[idx]
        probe_split = type(ds.test)(self.probe_images, ds.test.labels[idx])
        self.probe_x, self.probe_y = next(iter(Loader(probe_split, ds, len(idx), train=False, **on)))

    def fresh_bn_stats(self, step: int) -> None:
        """Make the stored batch-norm statistics describe the weights after `step` (train.bn_stats)."""
        tc = self.cfg.train
        if tc.bn_stats == "recompute" and self.bn_fresh_at != step:
            self.bn_loader.set_epoch(step)
            recompute_bn_stats(self.model, itertools.islice(self.bn_loader, tc.bn_batches), self.bn_T)
            self.bn_fresh_at = step

    def test_outputs(self, step: int) -> Outputs:
        """Every output of one T_t pass over the test split (its first n steps are window n: an SNN is causal).
        Whole-recording windows each get a pass on their own binning, with batch-norm statistics of their own."""
        self.fresh_bn_stats(step)
        bn, kept = self.window_bn(step), bn_state(self.model)
        outputs = collect_outputs(self.model, self.test_loader, self.cfg.distill.t_teacher, bn=bn)
        load_bn_state(self.model, kept)  # checkpoints and probes keep the statistics of bn_T
        return outputs

    def window_bn(self, step: int) -> dict[int, dict] | None:
        """Whole-recording event windows with recomputed statistics (SPEC §12): each window n = 1..T_t's own,
        from the same training batches as `fresh_bn_stats`, each binned into n frames; the model keeps the
        statistics it had (those of bn_T, which checkpoints and probes use). None otherwise."""
        tc, t_t = self.cfg.train, self.cfg.distill.t_teacher
        if tc.bn_stats != "recompute" or self.cfg.data.windowing != "whole_recording":
            return None
        if self.window_bn_at[0] == step:  # the test windows and the train accuracy share one estimate
            return self.window_bn_at[1]
        kept = bn_state(self.model)
        self.bn_loader.set_epoch(step)
        batches = list(itertools.islice(self.bn_loader, tc.bn_batches))
        stats = window_bn_stats(self.model, batches, range(1, t_t + 1))
        load_bn_state(self.model, kept)
        self.window_bn_at = (step, stats)
        return stats

    def train_accuracy(self, step: int) -> tuple[float, int]:
        """Accuracy at T_s on the first TRAIN_EVAL_IMAGES training images, unaugmented, and how many there were:
        with the test accuracy, the train-test gap (how much the run over-fits)."""
        n = min(TRAIN_EVAL_IMAGES, len(self.ds.train.labels))
        split = self.ds.train.subset(slice(0, n))  # event frames keep their binnings
        loader = Loader(
            split, self.ds, 256, train=False, device=self.device, channels_last=self.cfg.train.channels_last
        )
        t_s = self.cfg.distill.t_student
        bn, kept = self.window_bn(step), bn_state(self.model)
        acc = evaluate(self.model, loader, t_s, windows=(t_s,), bn=bn)[0]
        load_bn_state(self.model, kept)
        return acc, n

    def probe(self, step: int, epoch: int) -> ProbeSnapshot:
        """The probe batch's snapshot after `step`, with statistics that describe its weights."""
        self.fresh_bn_stats(step)
        return snapshot(
            self.model,
            self.probe_x,
            self.cfg.distill.t_teacher,
            labels=self.probe_y,
            images=self.probe_images,
            classes=self.ds.classes,
            step=step,
            epoch=epoch,
        )
