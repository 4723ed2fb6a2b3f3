"""BicycleGAN's encoder E: image -> (mu, logvar) of the latent code z (Zhu et al. 2017, sec. 3).

Re-implemented from junyanz/BicycleGAN `E_ResNet`, `BasicBlock` and `E_NLayers` (`models/networks.py`).
E uses LeakyReLU(0.2) throughout and biases on every conv, as the reference.
"""
from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.blocks import NormLayer

MAX_MULT = 4  # channel multiplier cap: nef * 4 at most


class BasicBlock(nn.Module):
    """Pre-activation residual block that halves the size: (norm-lrelu-conv3x3) x 2, then avg-pool.

    The shortcut is avg-pool then a 1x1 conv. With norm "none" the reference's in-place LeakyReLU
    would also rewrite the shortcut's input; here the shortcut always sees the block's input.
    """

    def __init__(self, in_nc: int, out_nc: int, norm_layer: NormLayer):
        super().__init__()
        self.conv = nn.Sequential(
            norm_layer(in_nc),
            nn.LeakyReLU(0.2),
            nn.Conv2d(in_nc, in_nc, kernel_size=3, padding=1),
            norm_layer(in_nc),
            nn.LeakyReLU(0.2),
            nn.Conv2d(in_nc, out_nc, kernel_size=3, padding=1),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(in_nc, out_nc, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.shortcut(x)  # (B, C_in, H, W) -> (B, C_out, H/2, W/2)


class GaussianHead(nn.Module):
    """Linear heads from pooled features to mu and, when vae, logvar of a diagonal Gaussian."""

    def __init__(self, in_features: int, nz: int, vae: bool):
        super().__init__()
        self.fc = nn.Linear(in_features, nz)
        self.fc_var = nn.Linear(in_features, nz) if vae else None

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = features.flatten(1)  # (B, C, 1, 1) -> (B, C)
        mu = self.fc(features)
        logvar = self.fc_var(features) if self.fc_var is not None else None
        return mu, logvar


# The reference ends both encoders in AvgPool2d(8), which assumes an 8x8 map (e.g. resnet_256 at
# 256 px) and breaks at other sizes (resnet_256 at 64 px leaves 2x2). AdaptiveAvgPool2d(1) is the
# same average at the design size and still reduces to 1x1 at 64, 128 and 256 px otherwise.


class ResnetEncoder(nn.Module):
    """E_ResNet: 4x4 stride-2 conv, n_blocks - 1 BasicBlocks, lrelu, global average pool, linear heads.

    n_blocks=4 for 128 px, 5 for 256 px (each stage halves the size; 8x8 before the pool).
    """

    def __init__(self, in_ch: int, nz: int, nef: int = 64, n_blocks: int = 4,
                 norm_layer: NormLayer = nn.InstanceNorm2d, vae: bool = True):
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        layers: list[nn.Module] = [nn.Conv2d(in_ch, nef, kernel_size=4, stride=2, padding=1)]
        for n in range(1, n_blocks):
            layers.append(BasicBlock(nef * min(MAX_MULT, n), nef * min(MAX_MULT, n + 1), norm_layer))
        layers += [nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1)]
        self.conv = nn.Sequential(*layers)
        self.head = GaussianHead(nef * min(MAX_MULT, n_blocks), nz, vae)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.head(self.conv(x))  # (B, C, H, W) -> (B, nz), (B, nz) | None


class ConvEncoder(nn.Module):
    """E_NLayers: n_layers 4x4 stride-2 convs (norm from the second on), global average pool, heads.

    n_layers=4 for 128 px, 5 for 256 px.
    """

    def __init__(self, in_ch: int, nz: int, nef: int = 64, n_layers: int = 3,
                 norm_layer: NormLayer = nn.InstanceNorm2d, vae: bool = True):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, nef, kernel_size=4, stride=2, padding=1),  # no norm on the first
            nn.LeakyReLU(0.2),
        ]
        mult = 1
        for n in range(1, n_layers):
            prev_mult, mult = mult, min(2**n, MAX_MULT)
            layers += [
                nn.Conv2d(nef * prev_mult, nef * mult, kernel_size=4, stride=2, padding=1),
                norm_layer(nef * mult),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.conv = nn.Sequential(*layers)
        self.head = GaussianHead(nef * mult, nz, vae)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.head(self.conv(x))  # (B, C, H, W) -> (B, nz), (B, nz) | None
