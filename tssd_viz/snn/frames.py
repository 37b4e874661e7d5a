"""Event frames binned once per window length: the input of `data.windowing = "whole_recording"`.

With whole-recording windows, a T-step window sees the whole recording cut into T frames, so the
student (T_s frames) and the teacher (T_t frames) get different tensors for the same sample. A batch
then carries one binning per window length, and the network takes the one that matches its T.
Plain module, no torch model code: the loader builds these and the model reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no single truth value
class WindowFrames:
    """The same B recordings binned once per window: n -> (n, B, C, H, W) frames.

    Attributes:
        by_window: n -> (n, B, C, H, W); `frames[n]` reads one (a KeyError names the windows there are).
    """

    by_window: dict[int, Tensor]

    def __getitem__(self, n: int) -> Tensor:
        if n not in self.by_window:
            have = ", ".join(map(str, sorted(self.by_window)))
            raise KeyError(f"these frames were binned for windows of {have} timesteps, not {n}")
        return self.by_window[n]

    @property
    def windows(self) -> tuple[int, ...]:
        return tuple(sorted(self.by_window))

    def to(self, device: str | torch.device) -> WindowFrames:
        return WindowFrames({n: x.to(device) for n, x in self.by_window.items()})
