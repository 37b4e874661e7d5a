"""The backbones' stage tables: plain data, no torch, so the config can check `aux_stage` without
importing the models (and the models import the config without a cycle)."""

from __future__ import annotations

# Channels per stage; each stage ends with a 2x2 pooling. The first conv of stage 1 is the stem.
VGG_SPECS: dict[str, list[list[int]]] = {
    "vgg_small": [[32, 32], [64], [128]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    # The classroom preset's network: one conv per stage, downsampling right after the stem.
    "vgg_fast": [[32], [64], [128], [256]],
    # The benchmark's reference network (bench/): 64-128-M-256-256-M-512-512-M.
    "vgg_bench": [[64, 128], [256, 256], [512, 512]],
}
# ResNet-19 (Zheng et al. 2021, the TSSD paper's CIFAR backbone): a 128-channel stem, then
# (blocks, channels, stride) per stage, then pool -> FC 256 -> LIF -> FC K.
RESNET19_STAGES = [(3, 128, 1), (3, 256, 2), (2, 512, 2)]
RESNET19_STEM, RESNET19_FC = 128, 256


def num_stages(arch: str) -> int:
    return len(RESNET19_STAGES) if arch == "resnet19" else len(VGG_SPECS[arch])
