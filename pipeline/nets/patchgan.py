"""PatchGAN discriminators: N-layer PatchGAN, 1x1 PixelGAN, and BicycleGAN's two-scale PatchGAN.

Re-implemented from junyanz/pytorch-CycleGAN-and-pix2pix `NLayerDiscriminator`,
`PixelDiscriminator` and junyanz/BicycleGAN `D_NLayersMulti` (`models/networks.py`).
Outputs are logits (no sigmoid): the GAN loss applies it.
"""
from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.antialias import BlurDownsample
from pipeline.nets.blocks import NormLayer, reference_bias

KERNEL, PADDING = 4, 1
MAX_MULT = 8  # channel multiplier cap: ndf * 8 at most


def receptive_field(n_layers: int) -> int:
    """Receptive field (px) of one output cell of an n_layers PatchGAN; n_layers=0 is the PixelGAN.

    1 -> 16, 2 -> 34, 3 -> 70, 4 -> 142, 5 -> 286 (pix2pix sec. 4.4 and its ImageGAN at 256 px).
    """
    if n_layers < 0:
        raise ValueError(f"n_layers must be >= 0, got {n_layers}")
    if n_layers == 0:
        return 1
    strides = [2] * n_layers + [1, 1]  # n_layers stride-2 convs, one stride-1 conv, the output conv
    field = 1
    for stride in reversed(strides):
        field = (field - 1) * stride + KERNEL
    return field


def _patch_layers(in_ch: int, ndf: int, n_layers: int, norm_layer: NormLayer,
                  use_bias: bool, antialias: bool = False) -> list[nn.Module]:
    """antialias (CUT's default): each stride-2 conv becomes a stride-1 conv, its activation, a blur-pool."""
    down = 1 if antialias else 2
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, ndf, kernel_size=KERNEL, stride=down, padding=PADDING),  # no norm on the first
        nn.LeakyReLU(0.2),
    ]
    if antialias:
        layers.append(BlurDownsample(ndf))
    mult = 1
    for n in range(1, n_layers + 1):
        prev_mult, mult = mult, min(2**n, MAX_MULT)
        last = n == n_layers  # the last of these keeps the size: a stride-1 layer
        layers += [
            nn.Conv2d(ndf * prev_mult, ndf * mult, kernel_size=KERNEL, stride=1 if last else down, padding=PADDING,
                      bias=use_bias),
            norm_layer(ndf * mult),
            nn.LeakyReLU(0.2),
        ]
        if antialias and not last:
            layers.append(BlurDownsample(ndf * mult))
    layers.append(nn.Conv2d(ndf * mult, 1, kernel_size=KERNEL, stride=1, padding=PADDING))  # 1-channel map
    return layers


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix sec. 3.2.2): classifies each receptive_field(n_layers) patch as real or fake.

    n_layers=3 is the 70x70 PatchGAN: 256 px in -> 30x30 map out.
    use_bias: bias of the convs followed by a norm; None = the pix2pix rule (`reference_bias`),
    True = BicycleGAN's D_NLayersMulti. antialias: blur-pooled downsampling, CUT's default.
    """

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 3, norm_layer: NormLayer = nn.BatchNorm2d,
                 use_bias: bool | None = None, antialias: bool = False):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1 (use PixelDiscriminator for 1x1), got {n_layers}")
        use_bias = reference_bias(norm_layer) if use_bias is None else use_bias
        self.model = nn.Sequential(*_patch_layers(in_ch, ndf, n_layers, norm_layer, use_bias, antialias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, C, H, W) -> (B, 1, H', W') logits


class PixelDiscriminator(nn.Module):
    """1x1 PixelGAN (pix2pix sec. 4.4): 1x1 convs only, one logit per pixel."""

    def __init__(self, in_ch: int, ndf: int = 64, norm_layer: NormLayer = nn.BatchNorm2d):
        super().__init__()
        use_bias = reference_bias(norm_layer)
        self.model = nn.Sequential(
            nn.Conv2d(in_ch, ndf, kernel_size=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, bias=use_bias),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, bias=use_bias),  # the reference's rule, here too
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, C, H, W) -> (B, 1, H, W) logits


class MultiscaleDiscriminator(nn.Module):
    """BicycleGAN's D_NLayersMulti: num_D PatchGANs, scale i sees the input avg-pooled i times by 2x.

    Scale i has round(ndf / 2^i) base channels; every conv has a bias, as in BicycleGAN.
    Returns a list of num_D logit maps, finest first (also for num_D=1, where the reference returns
    a bare tensor).
    """

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 3, norm_layer: NormLayer = nn.BatchNorm2d,
                 num_D: int = 2):
        super().__init__()
        if num_D < 1:
            raise ValueError(f"num_D must be >= 1, got {num_D}")
        widths = [int(round(ndf / 2**i)) for i in range(num_D)]
        if min(widths) < 1:
            raise ValueError(f"ndf={ndf} is too small for num_D={num_D}: scale widths {widths}")
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_ch, width, n_layers, norm_layer, use_bias=True) for width in widths
        )
        self.down = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, scale in enumerate(self.scales):
            if i > 0:
                x = self.down(x)  # (B, C, H, W) -> (B, C, H/2, W/2)
            outputs.append(scale(x))
        return outputs
