"""Networks chosen by name from explicit tables: build_generator, build_z_generator,
build_discriminator, build_encoder and build_patch_sampler construct a network and initialise its
weights.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Literal, get_args

import torch
from torch import nn

from pipeline.nets.blocks import NormLayer, NormName, UpsampleName, norm_layer
from pipeline.nets.encoder import ConvEncoder, ResnetEncoder
from pipeline.nets.init import InitName, init_weights
from pipeline.nets.patch_sample import PatchSampleF
from pipeline.nets.patchgan import (
    MultiscaleDiscriminator, PatchDiscriminator, PixelDiscriminator, receptive_field,
)
from pipeline.nets.resnet import ResnetGenerator
from pipeline.nets.unet import UnetGenerator, UnetZGenerator, WhereAdd

__all__ = [
    "GeneratorName", "ZGeneratorName", "DiscriminatorName", "EncoderName", "NormName", "InitName",
    "GENERATOR_NAMES", "Z_GENERATOR_NAMES", "DISCRIMINATOR_NAMES", "ENCODER_NAMES",
    "build_generator", "build_z_generator", "build_discriminator", "build_encoder", "build_patch_sampler",
    "ANTIALIAS_GENERATORS", "PatchSampleF",
    "receptive_field", "count_parameters", "init_weights", "norm_layer",
]

# unet_N: log2(N) downs, so an N-px image reaches a 1x1 bottleneck; encdec_N: the same without skips
GeneratorName = Literal["unet_32", "unet_64", "unet_128", "unet_256", "encdec_64", "encdec_128",
                        "encdec_256", "resnet_6blocks", "resnet_9blocks"]
_GENERATORS: dict[str, Callable[..., nn.Module]] = {
    "unet_32": partial(UnetGenerator, num_downs=5),
    "unet_64": partial(UnetGenerator, num_downs=6),
    "unet_128": partial(UnetGenerator, num_downs=7),
    "unet_256": partial(UnetGenerator, num_downs=8),
    "encdec_64": partial(UnetGenerator, num_downs=6, skip=False),
    "encdec_128": partial(UnetGenerator, num_downs=7, skip=False),
    "encdec_256": partial(UnetGenerator, num_downs=8, skip=False),
    "resnet_6blocks": partial(ResnetGenerator, n_blocks=6),
    "resnet_9blocks": partial(ResnetGenerator, n_blocks=9),
}

# the generators with CUT's anti-aliased resampling and encoder features (ResnetGenerator.features)
ANTIALIAS_GENERATORS = ("resnet_6blocks", "resnet_9blocks")

ZGeneratorName = Literal["unet_32", "unet_64", "unet_128", "unet_256"]
_Z_GENERATORS: dict[str, Callable[..., nn.Module]] = {
    "unet_32": partial(UnetZGenerator, num_downs=5),
    "unet_64": partial(UnetZGenerator, num_downs=6),
    "unet_128": partial(UnetZGenerator, num_downs=7),
    "unet_256": partial(UnetZGenerator, num_downs=8),
}

DiscriminatorName = Literal["patch", "patch_antialias", "pixel", "multiscale"]
_DISCRIMINATORS: dict[str, Callable[[int, int, int, NormLayer, int], nn.Module]] = {
    # (in_ch, ndf, n_layers, norm_layer, num_D): "pixel" has no layers to count, only "multiscale" scales
    "patch": lambda in_ch, ndf, n_layers, norm, num_D: PatchDiscriminator(in_ch, ndf, n_layers, norm),
    # CUT's PatchGAN: blur-pooled downsampling
    "patch_antialias": lambda in_ch, ndf, n_layers, norm, num_D: PatchDiscriminator(in_ch, ndf, n_layers, norm,
                                                                                    antialias=True),
    "pixel": lambda in_ch, ndf, n_layers, norm, num_D: PixelDiscriminator(in_ch, ndf, norm),
    "multiscale": lambda in_ch, ndf, n_layers, norm, num_D: MultiscaleDiscriminator(
        in_ch, ndf, n_layers, norm, num_D),
}

# each stage halves the size, so that an N-px image is 8x8 before the pool (BicycleGAN define_E)
EncoderName = Literal["resnet_64", "resnet_128", "resnet_256", "conv_64", "conv_128", "conv_256"]
_ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "resnet_64": partial(ResnetEncoder, n_blocks=3),
    "resnet_128": partial(ResnetEncoder, n_blocks=4),
    "resnet_256": partial(ResnetEncoder, n_blocks=5),
    "conv_64": partial(ConvEncoder, n_layers=3),
    "conv_128": partial(ConvEncoder, n_layers=4),
    "conv_256": partial(ConvEncoder, n_layers=5),
}

GENERATOR_NAMES: tuple[str, ...] = get_args(GeneratorName)
Z_GENERATOR_NAMES: tuple[str, ...] = get_args(ZGeneratorName)
DISCRIMINATOR_NAMES: tuple[str, ...] = get_args(DiscriminatorName)
ENCODER_NAMES: tuple[str, ...] = get_args(EncoderName)


def _lookup(table: dict[str, Callable[..., nn.Module]], name: str, kind: str) -> Callable[..., nn.Module]:
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; expected one of {sorted(table)}") from None


def _initialised(make: Callable[[], nn.Module], init_type: InitName, init_gain: float,
                 generator: torch.Generator | None) -> nn.Module:
    """Construct with `make`, then init_weights; with a generator the global RNG is left untouched.

    The constructors' own default initialisation draws from the global RNG and is overwritten;
    with a generator it runs inside fork_rng, so that the global stream does not advance.
    """
    with torch.random.fork_rng(devices=[], enabled=generator is not None):
        net = make()
    init_weights(net, init_type, init_gain, generator)
    return net


def build_generator(name: GeneratorName, in_ch: int, out_ch: int, ngf: int = 64, norm: NormName = "batch",
                    use_dropout: bool = False, init_type: InitName = "normal", init_gain: float = 0.02,
                    generator: torch.Generator | None = None, antialias: bool = False,
                    upsample: UpsampleName = "basic") -> nn.Module:
    """pix2pix / CycleGAN / CUT generator G(x) by name; defaults are pix2pix's.

    antialias: CUT's blur-pooled downs and blur-upsampled ups; upsample: the ups as a resize and a 3x3
    conv instead of transposed convs. Both for ANTIALIAS_GENERATORS (the ResNets) only.
    """
    factory = _lookup(_GENERATORS, name, "generator")
    if (antialias or upsample != "basic") and name not in ANTIALIAS_GENERATORS:
        option = "anti-aliased variant" if antialias else f"upsample {upsample!r}"
        raise ValueError(f"generator {name!r} has no {option}; expected one of {list(ANTIALIAS_GENERATORS)}")
    extra = {"antialias": antialias, "upsample": upsample} if name in ANTIALIAS_GENERATORS else {}
    layer = norm_layer(norm)
    return _initialised(lambda: factory(in_ch, out_ch, ngf=ngf, norm_layer=layer, use_dropout=use_dropout, **extra),
                        init_type, init_gain, generator)


def build_z_generator(name: ZGeneratorName, in_ch: int, out_ch: int, nz: int, ngf: int = 64,
                      norm: NormName = "instance", use_dropout: bool = False, where_add: WhereAdd = "all",
                      init_type: InitName = "xavier", init_gain: float = 0.02,
                      generator: torch.Generator | None = None, upsample: UpsampleName = "basic") -> nn.Module:
    """BicycleGAN generator G(x, z) by name; defaults are BicycleGAN's (upsample "basic")."""
    factory = _lookup(_Z_GENERATORS, name, "z-generator")
    layer = norm_layer(norm)
    return _initialised(lambda: factory(in_ch, out_ch, nz, ngf=ngf, norm_layer=layer, use_dropout=use_dropout,
                                        where_add=where_add, upsample=upsample),
                        init_type, init_gain, generator)


def build_discriminator(name: DiscriminatorName, in_ch: int, ndf: int = 64, n_layers: int = 3,
                        norm: NormName = "batch", num_D: int = 2, init_type: InitName = "normal",
                        init_gain: float = 0.02, generator: torch.Generator | None = None) -> nn.Module:
    """Discriminator by name. n_layers: patch and multiscale (3 -> 70x70); num_D: multiscale only."""
    factory = _lookup(_DISCRIMINATORS, name, "discriminator")
    layer = norm_layer(norm)
    return _initialised(lambda: factory(in_ch, ndf, n_layers, layer, num_D), init_type, init_gain, generator)


def build_encoder(name: EncoderName, in_ch: int, nz: int, nef: int = 64, norm: NormName = "instance",
                  vae: bool = True, init_type: InitName = "xavier", init_gain: float = 0.02,
                  generator: torch.Generator | None = None) -> nn.Module:
    """BicycleGAN encoder E(x) -> (mu, logvar) by name; logvar is None when vae is False."""
    factory = _lookup(_ENCODERS, name, "encoder")
    layer = norm_layer(norm)
    return _initialised(lambda: factory(in_ch, nz, nef=nef, norm_layer=layer, vae=vae),
                        init_type, init_gain, generator)


def build_patch_sampler(in_channels: list[int], nc: int = 256, init_type: InitName = "xavier",
                        init_gain: float = 0.02, generator: torch.Generator | None = None) -> PatchSampleF:
    """CUT's netF ("mlp_sample"): one 2-layer MLP of width nc per feature layer of the given widths."""
    return _initialised(lambda: PatchSampleF(in_channels, nc), init_type, init_gain, generator)


def count_parameters(net: nn.Module) -> int:
    """Number of parameter elements, as the reference's print_network counts them."""
    return sum(p.numel() for p in net.parameters())
