"""Spiking VGG and ResNet backbones with one weak classifier on an intermediate stage.

Shapes are time-major: spikes are (T, B, C, H, W). Stateless layers (conv, norm, pool, linear) run
once on the (T*B, ...) fold; only the LIF neurons loop over time (SPEC §2).

Direct encoding: a static image drives the first conv at every timestep, so the first conv+norm is
computed once on (B, ...) and broadcast over T. In train mode this is exactly what T copies would
give, batch-norm statistics included (repeating a batch changes neither its mean nor its variance).

The weak classifier (SPEC §5) reads the spikes at the end of stage `aux_stage` (1-based): global
average pool + linear, per timestep. It sits in the middle of the backbone because that is where a
weak learner is weak enough to learn from the final output yet close enough to shape shared features.
It exists only during training; `mode="baseline"` and exported students have none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from ..archs import RESNET19_FC, RESNET19_STAGES, RESNET19_STEM, VGG_SPECS
from ..archs import num_stages as num_stages  # still importable from here
from ..config import ModelConfig
from .frames import WindowFrames
from .neurons import LIF, LIFParams


@dataclass(frozen=True)
class ModelOutput:
    """What one T-step pass of a `SpikingNet` returns.

    Attributes:
        logits: (T, B, K) per-timestep logits of the final classifier.
        weak_logits: (T, B, K) per-timestep logits of the weak head; None without one.
        state: V(T-1) of every LIF layer by name, when asked for (`keep_state`).
    """

    logits: Tensor  # (T, B, K) per-timestep logits of the final classifier
    weak_logits: Tensor | None  # (T, B, K) per-timestep logits of the weak head, None without one
    state: dict[str, Tensor] | None = None  # V(T-1) of every LIF layer, when asked for (keep_state)


@dataclass
class Carry:
    """Membrane potentials carried into and out of one call, so a window can run in pieces."""

    start: dict[str, Tensor] | None = None
    keep: bool = False
    end: dict[str, Tensor] = field(default_factory=dict)

    def __call__(self, lif: LIF, current: Tensor) -> Tensor:
        v0 = self.start.get(lif.name) if self.start else None
        if not self.keep:
            return lif(current, v0)
        spikes, membrane = lif.run(current, v0)
        self.end[lif.name] = membrane[-1].detach().clone()  # clone: don't pin the whole (T, ...) tensor
        return spikes


def fold(x: Tensor) -> Tensor:
    return x.flatten(0, 1)  # (T, B, ...) -> (T*B, ...)


def unfold(x: Tensor, T: int) -> Tensor:
    return x.unflatten(0, (T, -1))  # (T*B, ...) -> (T, B, ...)


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout))


class ConvBNLIF(nn.Module):
    def __init__(self, cin: int, cout: int, lif: LIFParams, stride: int = 1):
        super().__init__()
        self.conv = conv_bn(cin, cout, stride)
        self.lif = LIF(lif)

    def forward(self, x: Tensor, carry: Carry) -> Tensor:
        T = x.shape[0]
        return carry(self.lif, unfold(self.conv(fold(x)), T))


class BasicBlock(nn.Module):
    """Spiking residual block: LIF(bn(conv(LIF(bn(conv(x))))) + shortcut(x))."""

    def __init__(self, cin: int, cout: int, stride: int, lif: LIFParams):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, stride)
        self.lif1 = LIF(lif)
        self.conv2 = conv_bn(cout, cout)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        self.lif2 = LIF(lif)

    def forward(self, x: Tensor, carry: Carry) -> Tensor:
        T = x.shape[0]
        xf = fold(x)  # (T*B, C, H, W)
        h = carry(self.lif1, unfold(self.conv1(xf), T))
        out = self.conv2(fold(h)) + self.shortcut(xf)
        return carry(self.lif2, unfold(out, T))


class Stage(nn.Module):
    """A list of blocks followed by an optional 2x2 pooling (VGG)."""

    def __init__(self, blocks: list[nn.Module], pool: bool):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AvgPool2d(2) if pool else None

    def forward(self, x: Tensor, carry: Carry) -> Tensor:
        for block in self.blocks:
            x = block(x, carry)
        if self.pool is not None and x.shape[-1] > 1:
            x = unfold(self.pool(fold(x)), x.shape[0])
        return x


class Head(nn.Module):
    """Global average pool + linear per timestep; an optional hidden spiking FC layer (ResNet-19)."""

    def __init__(self, cin: int, num_classes: int, hidden: int = 0, lif: LIFParams | None = None):
        super().__init__()
        self.hidden = nn.Linear(cin, hidden) if hidden else None
        self.lif = LIF(lif) if hidden else None
        self.fc = nn.Linear(hidden or cin, num_classes)

    def forward(self, x: Tensor, carry: Carry) -> Tensor:
        x = x.mean(dim=(-2, -1))  # (T, B, C, H, W) -> (T, B, C)
        if self.hidden is not None:
            x = carry(self.lif, self.hidden(x))
        return self.fc(x)  # (T, B, K); Linear acts on the last dim, no fold needed


class SpikingNet(nn.Module):
    """A spiking backbone: stem, stages, final classifier and optional weak head, run for T timesteps.

    Built by `build_model`; time-major throughout. Each LIF layer's `name` is its module name, the key of
    carried state and of recordings.
    """

    def __init__(
        self,
        stem: nn.Module,
        stem_lif: LIF,
        stages: list[Stage],
        head: Head,
        weak_head: nn.Linear | None,
        aux_stage: int,
    ):
        super().__init__()
        self.stem, self.stem_lif = stem, stem_lif
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.weak_head = weak_head
        self.aux_stage = aux_stage
        for name, module in self.named_modules():
            if isinstance(module, LIF):
                module.name = name  # stable key for carried state and recordings

    def forward(
        self, x: Tensor | WindowFrames, T: int, state: dict[str, Tensor] | None = None, keep_state: bool = False
    ) -> ModelOutput:
        """Run the network for T timesteps.

        Args:
            x: static images (B, C, H, W), shown at every step (direct encoding); event frames (T', B, C, H, W)
                with T' >= T (the first T are used); or `WindowFrames` (whole-recording windows: the binning
                into T frames is used).
            T: timesteps.
            state: membrane potentials of an earlier call (`keep_state=True`) to continue from.
            keep_state: return every LIF layer's last potential in `ModelOutput.state`.

        Returns:
            The per-timestep logits (T, B, K) and weak-head logits over T steps.
        """
        carry = Carry(state, keep_state)
        if isinstance(x, WindowFrames):
            x = x[T]  # (T, B, C, H, W): the whole recording at this window's resolution
        if x.dim() == 4:  # direct encoding: first conv+norm once, broadcast over T
            current = self.stem(x).unsqueeze(0).expand(T, *x.shape[:1], -1, -1, -1)
        else:  # event frames differ per timestep: no broadcast, the stem sees each frame
            current = unfold(self.stem(fold(x[:T])), T)
        h = carry(self.stem_lif, current)  # (T, B, C, H, W)
        weak = None
        for i, stage in enumerate(self.stages, start=1):
            h = stage(h, carry)
            if i == self.aux_stage and self.weak_head is not None:
                weak = self.weak_head(h.mean(dim=(-2, -1)))  # (T, B, C) -> (T, B, K)
        return ModelOutput(self.head(h, carry), weak, carry.end if keep_state else None)


def build_model(cfg: ModelConfig, in_channels: int, num_classes: int, weak_head: bool) -> SpikingNet:
    """The configured backbone; `weak_head` adds the spatial-distillation classifier.

    Args:
        cfg: architecture, width, aux_stage and LIF parameters.
        in_channels: C of the input (3 for RGB, 2 for event frames).
        num_classes: K.
        weak_head: add the weak classifier after stage `cfg.aux_stage`.

    Returns:
        The network, in train mode.
    """
    lif = LIFParams(cfg.tau, cfg.threshold, cfg.surrogate_width, cfg.detach_reset)

    def ch(c: int) -> int:
        return max(4, int(round(c * cfg.width)))

    if cfg.arch == "resnet19":
        stem_c = ch(RESNET19_STEM)
        stages, cin, widths = [], stem_c, []
        for n_blocks, c, stride in RESNET19_STAGES:
            blocks = [
                BasicBlock(cin if i == 0 else ch(c), ch(c), stride if i == 0 else 1, lif) for i in range(n_blocks)
            ]
            stages.append(Stage(blocks, pool=False))
            cin = ch(c)
            widths.append(cin)
        head = Head(cin, num_classes, hidden=ch(RESNET19_FC), lif=lif)
    else:
        spec = [[ch(c) for c in stage] for stage in VGG_SPECS[cfg.arch]]
        stem_c = spec[0][0]
        stages, cin, widths = [], stem_c, []
        for i, stage_channels in enumerate(spec):
            convs = stage_channels[1:] if i == 0 else stage_channels  # stage 1's first conv is the stem
            blocks = []
            for c in convs:
                blocks.append(ConvBNLIF(cin, c, lif))
                cin = c
            stages.append(Stage(blocks, pool=True))
            widths.append(cin)
        head = Head(cin, num_classes)
    stem = conv_bn(in_channels, stem_c)
    weak = nn.Linear(widths[cfg.aux_stage - 1], num_classes) if weak_head else None
    return SpikingNet(stem, LIF(lif), stages, head, weak, cfg.aux_stage)


def count_parameters(model: nn.Module) -> int:
    """The number of parameters of `model`.

    Args:
        model: any module.

    Returns:
        The total number of elements of its parameters.
    """
    return sum(p.numel() for p in model.parameters())
