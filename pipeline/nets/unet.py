"""U-Net generators: pix2pix's (with the encoder-decoder ablation) and BicycleGAN's with z injected.

Re-implemented from junyanz/pytorch-CycleGAN-and-pix2pix `UnetGenerator` and junyanz/BicycleGAN
`G_Unet_add_input`, `G_Unet_add_all`, `UnetBlock_with_z` (`models/networks.py`).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from pipeline.nets.blocks import Dropout, NormLayer, UnetSkipBlock, UpsampleName, up_conv

WhereAdd = Literal["input", "all"]
MIN_DOWNS = 5  # the ngf -> 2ngf -> 4ngf -> 8ngf ramp plus the innermost level


def _check_num_downs(num_downs: int) -> None:
    if num_downs < MIN_DOWNS:
        raise ValueError(f"num_downs must be >= {MIN_DOWNS}, got {num_downs}")


def tile_z(z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Spatially replicate a latent code to the size of `like`."""
    return z[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])  # (B, nz) -> (B, nz, H, W)


def _unet(in_ch: int, out_ch: int, num_downs: int, ngf: int, norm_layer: NormLayer,
          use_dropout: bool, skip: bool, use_bias: bool | None, upsample: UpsampleName,
          up_first: bool = False) -> UnetSkipBlock:
    """The recursive U-Net, built from the innermost level out; 2^num_downs px -> 1x1 bottleneck.

    up_first: each level returns [up(x), x] (BicycleGAN) rather than [x, up(x)] (pix2pix).
    """
    _check_num_downs(num_downs)
    same = dict(norm_layer=norm_layer, skip=skip, use_bias=use_bias, upsample=upsample, up_first=up_first)
    block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, **same)
    for _ in range(num_downs - MIN_DOWNS):  # the extra 8ngf levels: the only ones with dropout
        block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout, **same)
    for mult in (4, 2, 1):
        block = UnetSkipBlock(ngf * mult, ngf * mult * 2, submodule=block, **same)
    return UnetSkipBlock(out_ch, ngf, in_ch, block, outermost=True, **same)


class UnetGenerator(nn.Module):
    """pix2pix's U-Net (Isola et al. 2017, sec. 3.2.1): C64-C128-C256-C512-... with skips, tanh out.

    num_downs halvings take a 2^num_downs px image to a 1x1 bottleneck (unet_256: 8).
    skip=False gives the paper's encoder-decoder (same layers, no skip concatenation).
    """

    def __init__(self, in_ch: int, out_ch: int, num_downs: int, ngf: int = 64,
                 norm_layer: NormLayer = nn.BatchNorm2d, use_dropout: bool = False, skip: bool = True):
        super().__init__()
        self.model = _unet(in_ch, out_ch, num_downs, ngf, norm_layer, use_dropout, skip,
                           use_bias=None, upsample="basic")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetZBlock(nn.Module):
    """One U-Net level that sees z tiled onto its input (BicycleGAN's UnetBlock_with_z).

    All convs have a bias, as in BicycleGAN. The skip is this level's input *before* the down
    LeakyReLU: in the reference the in-place activation hits the (x, z) concatenation, not x.
    """

    def __init__(self, input_nc: int, outer_nc: int, inner_nc: int, nz: int,
                 submodule: UnetZBlock | None = None, *, outermost: bool = False,
                 innermost: bool = False, norm_layer: NormLayer = nn.InstanceNorm2d,
                 use_dropout: bool = False, upsample: UpsampleName = "basic"):
        super().__init__()
        if outermost and innermost:
            raise ValueError("a U-Net level cannot be both outermost and innermost")
        if innermost != (submodule is None):
            raise ValueError("the innermost U-Net level, and only it, has no submodule")
        self.outermost = outermost
        down_conv = nn.Conv2d(input_nc + nz, inner_nc, kernel_size=4, stride=2, padding=1)
        if outermost:
            down = [down_conv]
            up = [nn.ReLU(), *up_conv(inner_nc * 2, outer_nc, upsample, bias=True), nn.Tanh()]
        elif innermost:
            down = [nn.LeakyReLU(0.2), down_conv]
            up = [nn.ReLU(), *up_conv(inner_nc, outer_nc, upsample, bias=True), norm_layer(outer_nc)]
        else:
            down = [nn.LeakyReLU(0.2), down_conv, norm_layer(inner_nc)]
            up = [nn.ReLU(), *up_conv(inner_nc * 2, outer_nc, upsample, bias=True), norm_layer(outer_nc)]
            if use_dropout:
                up.append(Dropout(0.5))
        self.down = nn.Sequential(*down)
        self.submodule = submodule
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x_and_z = torch.cat([x, tile_z(z, x)], 1)  # (B, C, H, W) -> (B, C + nz, H, W)
        h = self.down(x_and_z)
        if self.submodule is not None:
            h = self.submodule(h, z)
        y = self.up(h)
        if self.outermost:
            return y
        return torch.cat([y, x], 1)  # (B, C_out, H, W) + (B, C, H, W) -> (B, C_out + C, H, W)


class UnetZGenerator(nn.Module):
    """BicycleGAN's U-Net generator G(x, z) (Zhu et al. 2017, sec. 4).

    where_add="input": z tiled and concatenated to the input only (G_Unet_add_input); nz=0 makes it
    a plain U-Net (all convs biased) and z may then be None.
    where_add="all": z concatenated to the input of every down level (G_Unet_add_all); needs nz > 0
    (the reference silently switches to "input" when nz == 0; here that is an error).
    """

    def __init__(self, in_ch: int, out_ch: int, nz: int, num_downs: int, ngf: int = 64,
                 norm_layer: NormLayer = nn.InstanceNorm2d, use_dropout: bool = False,
                 where_add: WhereAdd = "all", upsample: UpsampleName = "basic"):
        super().__init__()
        if nz < 0:
            raise ValueError(f"nz must be >= 0, got {nz}")
        if where_add not in ("input", "all"):
            raise ValueError(f"unknown where_add {where_add!r}; expected one of ['all', 'input']")
        if where_add == "all" and nz == 0:
            raise ValueError("where_add='all' needs nz > 0; use where_add='input' for nz=0")
        _check_num_downs(num_downs)
        self.nz, self.where_add = nz, where_add
        if where_add == "input":
            # BicycleGAN's UnetBlock is pix2pix's level with a bias on every conv, returning
            # torch.cat([self.model(x), x]): the up path first, unlike pix2pix's [x, self.model(x)]
            self.model = _unet(in_ch + nz, out_ch, num_downs, ngf, norm_layer, use_dropout,
                               skip=True, use_bias=True, upsample=upsample, up_first=True)
            return
        same = dict(norm_layer=norm_layer, upsample=upsample)
        block = UnetZBlock(ngf * 8, ngf * 8, ngf * 8, nz, innermost=True, **same)
        # The reference hard-codes one dropout level and then adds num_downs - 6, so it builds 6
        # levels when asked for 5; num_downs - 5 here is the same for num_downs >= 6.
        for _ in range(num_downs - MIN_DOWNS):
            block = UnetZBlock(ngf * 8, ngf * 8, ngf * 8, nz, block, use_dropout=use_dropout, **same)
        for mult in (4, 2, 1):
            block = UnetZBlock(ngf * mult, ngf * mult, ngf * mult * 2, nz, block, **same)
        self.model = UnetZBlock(in_ch, out_ch, ngf, nz, block, outermost=True, **same)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if self.nz > 0 and z is None:
            raise ValueError(f"this generator has nz={self.nz} and needs z of shape (B, {self.nz})")
        if self.where_add == "all":
            return self.model(x, z)
        if self.nz > 0:
            x = torch.cat([x, tile_z(z, x)], 1)  # (B, C, H, W) -> (B, C + nz, H, W)
        return self.model(x)
