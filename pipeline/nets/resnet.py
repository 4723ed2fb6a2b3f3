"""CycleGAN's ResNet generator (Johnson et al. 2016 layout; Zhu et al. 2017, appendix 7.2).

Re-implemented from junyanz/pytorch-CycleGAN-and-pix2pix `ResnetGenerator` (`models/networks.py`).
"""
from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.blocks import NormLayer, ResnetBlock, reference_bias

N_DOWNSAMPLING = 2  # c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-3


class ResnetGenerator(nn.Module):
    """7x7 conv, two stride-2 downs, n_blocks residual blocks, two transposed-conv ups, 7x7 conv, tanh.

    n_blocks=6 for 128 px and 9 for 256 px training images in the CycleGAN paper.
    """

    def __init__(self, in_ch: int, out_ch: int, ngf: int = 64, norm_layer: NormLayer = nn.BatchNorm2d,
                 use_dropout: bool = False, n_blocks: int = 6):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
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
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
                norm_layer(ngf * mult * 2),
                nn.ReLU(),
            ]
        mult = 2**N_DOWNSAMPLING
        layers += [ResnetBlock(ngf * mult, norm_layer, use_dropout, use_bias) for _ in range(n_blocks)]
        for i in range(N_DOWNSAMPLING):
            mult = 2 ** (N_DOWNSAMPLING - i)
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
