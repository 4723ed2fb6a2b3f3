"""Shared building blocks: the norm-layer table, the residual block and the recursive U-Net level.

Re-implemented from junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py` (get_norm_layer,
ResnetBlock, UnetSkipConnectionBlock) and junyanz/BicycleGAN `models/networks.py` (upsampleLayer).
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn

from pipeline.config import NormName, UpsampleName

NormLayer = Callable[[int], nn.Module]  # num_features -> normalisation module


class Dropout(nn.Dropout):
    """nn.Dropout whose mask is drawn in logical (contiguous) order, so that which units drop depends
    on the seed alone and not on the activations' memory format: nn.Dropout draws in memory order,
    so channels_last would change the masks (and pix2pix's training) under the same seed. A
    contiguous input goes to nn.Dropout unchanged (the same draws, compiled or not)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.is_contiguous():
            return super().forward(x)
        out = super().forward(x.contiguous())
        return out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
            memory_format=torch.channels_last) else out


def _no_norm(num_features: int) -> nn.Module:
    return nn.Identity()


_NORMS: dict[str, NormLayer] = {
    "batch": partial(nn.BatchNorm2d, affine=True, track_running_stats=True),
    # affine-free and without running statistics, as the reference: statistics of the test image
    "instance": partial(nn.InstanceNorm2d, affine=False, track_running_stats=False),
    "none": _no_norm,
}


def norm_layer(name: NormName) -> NormLayer:
    """The constructor `num_features -> norm module` named `name` (reference get_norm_layer)."""
    try:
        return _NORMS[name]
    except KeyError:
        raise ValueError(f"unknown norm {name!r}; expected one of {sorted(_NORMS)}") from None


def reference_bias(norm_layer: NormLayer) -> bool:
    """The pix2pix/CycleGAN rule for convs followed by a norm: a bias only with InstanceNorm.

    BatchNorm's affine shift makes a bias redundant; the reference applies the same test to "none"
    too, so that those convs get no bias either.
    """
    return isinstance(norm_layer(1), nn.InstanceNorm2d)


def up_conv(in_nc: int, out_nc: int, upsample: UpsampleName, bias: bool) -> list[nn.Module]:
    """A 2x upsampling conv: `basic` transposed conv, or a bilinear or nearest resize + 3x3 conv
    (BicycleGAN's upsampleLayer)."""
    if upsample == "basic":
        return [nn.ConvTranspose2d(in_nc, out_nc, kernel_size=4, stride=2, padding=1, bias=bias)]
    if upsample in ("bilinear", "nearest"):
        corners = {"align_corners": False} if upsample == "bilinear" else {}  # nearest takes none
        return [
            nn.Upsample(scale_factor=2, mode=upsample, **corners),
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_nc, out_nc, kernel_size=3, stride=1, padding=0, bias=bias),
        ]
    raise ValueError(f"unknown upsample {upsample!r}; expected one of ['basic', 'bilinear', 'nearest']")


class ResnetBlock(nn.Module):
    """Residual block: x + (pad-conv3x3-norm-relu-[dropout]-pad-conv3x3-norm)(x), reflection padding."""

    def __init__(self, dim: int, norm_layer: NormLayer, use_dropout: bool, use_bias: bool):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
            norm_layer(dim),
            nn.ReLU(),
        ]
        if use_dropout:
            layers.append(Dropout(0.5))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
            norm_layer(dim),
        ]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class UnetSkipBlock(nn.Module):
    """One level of the recursive U-Net: down (4x4 conv, stride 2), `submodule`, up, skip concat.

        x - lrelu -+-------------------- skip (when skip=True) --------------------- cat -> out
                   |-- conv - norm -- |submodule| -- relu - upconv - norm - [dropout] --|

    The outermost level takes the raw input (no activation, no norm) and ends in tanh with no skip;
    the innermost has no submodule and no down norm (its output is the 1x1 bottleneck).
    `skip=False` severs the concatenation: the encoder-decoder of the pix2pix ablation (sec. 4.3).
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        *,
        outermost: bool = False,
        innermost: bool = False,
        norm_layer: NormLayer = nn.BatchNorm2d,
        use_dropout: bool = False,
        skip: bool = True,
        use_bias: bool | None = None,
        upsample: UpsampleName = "basic",
        up_first: bool = False,
    ):
        """Args:
        outer_nc: channels this level returns to its parent (before the skip concat).
        inner_nc: channels of the down conv's output, i.e. the submodule's input.
        input_nc: channels of this level's input; defaults to outer_nc.
        use_bias: bias of every conv but the last; None = `reference_bias(norm_layer)`, the pix2pix
            rule (which the reference applies to the un-normalised down convs too).
            BicycleGAN's UnetBlock uses True throughout.
        up_first: concatenate [up(x), x] (BicycleGAN's UnetBlock) instead of [x, up(x)] (pix2pix's
            UnetSkipConnectionBlock). The same layers either way, but the next up conv reads its input
            channels in this order, so the authors' weights need their own order.
        """
        super().__init__()
        if outermost and innermost:
            raise ValueError("a U-Net level cannot be both outermost and innermost")
        if innermost != (submodule is None):
            raise ValueError("the innermost U-Net level, and only it, has no submodule")
        input_nc = outer_nc if input_nc is None else input_nc
        use_bias = reference_bias(norm_layer) if use_bias is None else use_bias
        self.concat = skip and not outermost
        self.up_first = up_first
        # the submodule's output width: its up path, plus its input again when it concatenates
        sub_nc = inner_nc * 2 if skip and not innermost else inner_nc

        # The reference's down-path LeakyReLU is in-place, so the tensor it concatenates as the
        # skip is the *activated* x (see lanpa/tensorboardX#215); here that is done explicitly.
        self.down_act = nn.Identity() if outermost else nn.LeakyReLU(0.2)
        down_conv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        if outermost:
            down = [down_conv]
            # the last conv always has a bias: no norm follows it
            up = [nn.ReLU(), *up_conv(sub_nc, outer_nc, upsample, bias=True), nn.Tanh()]
        elif innermost:
            down = [down_conv]  # no norm on the 1x1 bottleneck
            up = [nn.ReLU(), *up_conv(inner_nc, outer_nc, upsample, use_bias), norm_layer(outer_nc)]
        else:
            down = [down_conv, norm_layer(inner_nc)]
            up = [nn.ReLU(), *up_conv(sub_nc, outer_nc, upsample, use_bias), norm_layer(outer_nc)]
            if use_dropout:
                up.append(Dropout(0.5))
        middle = [] if submodule is None else [submodule]
        self.model = nn.Sequential(*down, *middle, *up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down_act(x)
        y = self.model(x)
        if self.concat and self.up_first:
            return torch.cat([y, x], 1)  # (B, C_out, H, W) + (B, C_in, H, W) -> (B, C_out + C_in, H, W)
        if self.concat:
            return torch.cat([x, y], 1)  # (B, C_in, H, W) + (B, C_out, H, W) -> (B, C_in + C_out, H, W)
        return y
