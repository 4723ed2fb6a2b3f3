"""Anti-aliased resampling (Zhang 2019, "Making convolutional networks shift-invariant again"): a
fixed binomial blur before subsampling, and after zero-insertion when upsampling.

CUT's networks use these by default in place of strided and transposed convs (Park et al. 2020;
taesungp/contrastive-unpaired-translation `models/networks.py`, Downsample and Upsample). The filters
are buffers named `filt`, as there, so that the authors' state dicts carry over.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_BINOMIAL = {1: [1.0], 2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}


def binomial_filter(size: int) -> torch.Tensor:
    """The (size, size) outer product of a binomial row, summing to 1."""
    try:
        row = torch.tensor(_BINOMIAL[size])
    except KeyError:
        raise ValueError(f"blur filter size must be one of {sorted(_BINOMIAL)}, got {size}") from None
    filt = row[:, None] * row[None, :]
    return filt / filt.sum()


class BlurDownsample(nn.Module):
    """Reflection-pad, blur with a 3x3 binomial filter, keep every second pixel: H -> ceil(H / 2)."""

    def __init__(self, channels: int, filt_size: int = 3):
        super().__init__()
        pad = (filt_size - 1) // 2, filt_size // 2  # left/top, right/bottom
        self.pad = nn.ReflectionPad2d((pad[0], pad[1], pad[0], pad[1]))
        self.register_buffer("filt", binomial_filter(filt_size)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt.to(x.dtype), stride=2, groups=x.shape[1])


class BlurUpsample(nn.Module):
    """Zero-insert to twice the size and blur with a 4x4 binomial filter (x4, so the mean is kept),
    edges replicated: H -> 2H."""

    def __init__(self, channels: int, filt_size: int = 4):
        super().__init__()
        self.filt_odd = filt_size % 2 == 1
        self.pad_size = (filt_size - 1) // 2
        self.pad = nn.ReplicationPad2d(1)
        self.register_buffer("filt", binomial_filter(filt_size)[None, None].repeat(channels, 1, 1, 1) * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(self.pad(x), self.filt.to(x.dtype), stride=2, padding=1 + self.pad_size,
                               groups=x.shape[1])[:, :, 1:, 1:]
        return y if self.filt_odd else y[:, :, :-1, :-1]
