"""CycleGAN's ResNet generator (Johnson et al. 2016 layout; Zhu et al. 2017, appendix 7.2), and CUT's
anti-aliased variant with its encoder features (Park et al. 2020).

Re-implemented from junyanz/pytorch-CycleGAN-and-pix2pix `ResnetGenerator` (`models/networks.py`)
and taesungp/contrastive-unpaired-translation's (`antialias`, `features`).
"""
from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.antialias import BlurDownsample, BlurUpsample
from pipeline.nets.blocks import NormLayer, ResnetBlock, UpsampleName, reference_bias, up_conv

N_DOWNSAMPLING = 2  # c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-3


class ResnetGenerator(nn.Module):
    """7x7 conv, two stride-2 downs, n_blocks residual blocks, two transposed-conv ups, 7x7 conv, tanh.

    n_blocks=6 for 128 px and 9 for 256 px training images in the CycleGAN paper.
    antialias (CUT's default): each down is a stride-1 conv, norm, ReLU, then a blur-pool; each up a
    blur-upsample, then a stride-1 conv. The parameters are the same; the layer indices of
    `features` follow the authors' Sequential (CUT's nce_layers 0,4,8,12,16).
    upsample: `basic` (the reference's 3x3 transposed convs), or a bilinear or nearest resize, then a
    reflection-padded 3x3 conv (BicycleGAN's upsampleLayer), which leaves no chequer; same parameters.
    """

    def __init__(self, in_ch: int, out_ch: int, ngf: int = 64, norm_layer: NormLayer = nn.BatchNorm2d,
                 use_dropout: bool = False, n_blocks: int = 6, antialias: bool = False,
                 upsample: UpsampleName = "basic"):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        if antialias and upsample != "basic":
            raise ValueError(f"antialias has its own blur-upsampling; upsample must be 'basic', got {upsample!r}")
        use_bias = reference_bias(norm_layer)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(ngf),
            nn.ReLU(),
        ]
        for i in range(N_DOWNSAMPLING):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=1 if antialias else 2, padding=1,
                          bias=use_bias),
                norm_layer(ngf * mult * 2),
                nn.ReLU(),
            ]
            if antialias:
                layers.append(BlurDownsample(ngf * mult * 2))
        mult = 2**N_DOWNSAMPLING
        layers += [ResnetBlock(ngf * mult, norm_layer, use_dropout, use_bias) for _ in range(n_blocks)]
        for i in range(N_DOWNSAMPLING):
            mult = 2 ** (N_DOWNSAMPLING - i)
            if antialias:
                layers += [
                    BlurUpsample(ngf * mult),
                    nn.Conv2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=1, padding=1, bias=use_bias),
                    norm_layer(ngf * mult // 2),
                    nn.ReLU(),
                ]
                continue
            if upsample != "basic":
                layers += [*up_conv(ngf * mult, ngf * mult // 2, upsample, use_bias), norm_layer(ngf * mult // 2),
                           nn.ReLU()]
                continue
            layers += [
                # output_padding=1 makes each up exactly undo a stride-2 down
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1,
                                   output_padding=1, bias=use_bias),
                norm_layer(ngf * mult // 2),
                nn.ReLU(),
            ]
        layers += [
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, out_ch, kernel_size=7, padding=0),  # biased: no norm follows
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def features(self, x: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
        """The outputs of the Sequential's layers `layers` (ascending indices), stopping after the last."""
        if not layers or list(layers) != sorted(set(layers)) or layers[0] < 0 or layers[-1] >= len(self.model):
            raise ValueError(f"feature layers must be distinct ascending indices in [0, {len(self.model) - 1}], "
                             f"got {list(layers)}")
        wanted, feats = set(layers), []
        for index, layer in enumerate(self.model[:layers[-1] + 1]):
            x = layer(x)
            if index in wanted:
                feats.append(x)
        return feats
