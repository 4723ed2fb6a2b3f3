"""The method table (METHODS): every translation method described once, and build_model().

Stages, the report, ablations, applicability, bench and the tests read this table; nothing else
names methods. A model is built from its typed config: networks by name from `pipeline.nets`,
initialised from one seeded torch.Generator, then placed on the device.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from pipeline.config import BicycleGANConfig, CUTConfig, CycleGANConfig, Params, Pix2PixConfig
from pipeline.models.base import Batch, StepLosses, Translator, evaluating
from pipeline.models.bicyclegan import BicycleGAN
from pipeline.models.cut import CUT
from pipeline.models.cyclegan import CycleGAN
from pipeline.models.pix2pix import Pix2Pix
from pipeline.models.pool import ImagePool
from pipeline.nets import (build_discriminator, build_encoder, build_generator, build_patch_sampler,
                           build_z_generator)
from pipeline.translated import ENCODED, FAKE_A, FAKE_B, SAMPLES

__all__ = ["METHODS", "MODELS", "MethodSpec", "method_spec", "build_model", "Batch", "StepLosses", "Translator",
           "Pix2Pix", "CycleGAN", "BicycleGAN", "CUT", "ImagePool"]

IMAGE_CHANNELS = 3  # RGB in both domains: label colour maps and photos


class _Builder:
    """What one build needs besides the config: the init generator, the device, the amp dtype."""

    def __init__(self, params: Params, device: torch.device, seed: int, rank: int = 0):
        self.params = params
        self.device = device
        self.rank = rank
        self.init = torch.Generator().manual_seed(seed)  # CPU: same weights whatever the device
        cuda, t = device.type == "cuda", params.train
        self.amp_dtype = torch.bfloat16 if t.amp == "bf16" and (cuda or t.cpu_amp) else None
        self.channels_last = t.channels_last and (cuda or t.cpu_channels_last)

    def place(self, net: nn.Module) -> nn.Module:
        net = net.to(self.device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if self.params.train.compile == "nets":
            import torch._dynamo.config as dynamo
            import torch._inductor.config as inductor

            # compiled random ops draw from eager's generator, so dropout drops the units eager
            # training drops under the same seed (inductor's own RNG would give other masks)
            inductor.fallback_random = True
            # networks of one class share their forward's graph cache, and each instance, input
            # dtype (autocast: fp32 real, bf16 fake images) and grad mode adds a graph: torch's
            # default of 8 per function sends CycleGAN's discriminators back to eager
            dynamo.recompile_limit = max(dynamo.recompile_limit, 64)
            # in place: the module and its state-dict keys stay the same for checkpoints and export
            net.compile(mode=self.params.train.compile_mode)
        return net

    def child_generator(self) -> torch.Generator:
        """A generator on the device for training-time sampling, seeded from the init stream; each
        training rank draws its own stream (rank 0's is the single process's), while every rank
        takes the same draw from the init stream, so that all build the same weights."""
        seed = int(torch.randint(2**62, (), generator=self.init)) + self.rank
        return torch.Generator(device=self.device).manual_seed(seed)


def _build_pix2pix(b: _Builder) -> Pix2Pix:
    p, cfg = b.params, b.params.pix2pix
    init = dict(init_type=cfg.init_type, init_gain=cfg.init_gain, generator=b.init)
    generator = build_generator(cfg.generator, IMAGE_CHANNELS, IMAGE_CHANNELS, ngf=cfg.ngf, norm=cfg.norm,
                                use_dropout=cfg.use_dropout, **init)
    discriminator = None
    if cfg.use_gan:
        d_in_ch = 2 * IMAGE_CHANNELS if cfg.conditional_d else IMAGE_CHANNELS  # (A, B) pairs or B alone
        discriminator = b.place(build_discriminator(
            "pixel" if cfg.discriminator == "pixel" else "patch", d_in_ch, ndf=cfg.ndf,
            n_layers=cfg.n_layers_D, norm=cfg.norm, **init))
    return Pix2Pix(cfg, p.lambda_L1, p.train, b.place(generator), discriminator, b.amp_dtype)


def _build_cyclegan(b: _Builder) -> CycleGAN:
    p, cfg = b.params, b.params.cyclegan
    init = dict(init_type=cfg.init_type, init_gain=cfg.init_gain, generator=b.init)
    g_a, g_b = (b.place(build_generator(cfg.generator, IMAGE_CHANNELS, IMAGE_CHANNELS, ngf=cfg.ngf,
                                        norm=cfg.norm, use_dropout=cfg.use_dropout, antialias=cfg.antialias,
                                        upsample=cfg.upsample, **init))
                for _ in range(2))
    d_a = d_b = None
    if cfg.use_gan:
        d_name = "patch_antialias" if cfg.antialias else "patch"
        d_a, d_b = (b.place(build_discriminator(d_name, IMAGE_CHANNELS, ndf=cfg.ndf, n_layers=cfg.n_layers_D,
                                                norm=cfg.norm, **init))
                    for _ in range(2))
    return CycleGAN(cfg, p.lambda_cyc, p.lambda_idt, p.train, g_a, g_b, d_a, d_b,
                    pool_generator=b.child_generator(), amp_dtype=b.amp_dtype)


def _build_bicyclegan(b: _Builder) -> BicycleGAN:
    p, cfg = b.params, b.params.bicyclegan
    init = dict(init_type=cfg.init_type, init_gain=cfg.init_gain, generator=b.init)
    generator = build_z_generator(cfg.generator, IMAGE_CHANNELS, IMAGE_CHANNELS, p.nz, ngf=cfg.ngf,
                                  norm=cfg.norm, use_dropout=cfg.use_dropout, where_add=cfg.where_add,
                                  upsample=cfg.upsample, **init)
    encoder = build_encoder(cfg.encoder, IMAGE_CHANNELS, p.nz, nef=cfg.nef, norm=cfg.norm, vae=True, **init)
    # D sees B alone (the reference default conditional_D off), at num_D scales
    d_vae, d_lr = (b.place(build_discriminator("multiscale", IMAGE_CHANNELS, ndf=cfg.ndf, n_layers=cfg.n_layers_D,
                                               norm=cfg.norm, num_D=cfg.num_D, **init))
                   for _ in range(2))
    return BicycleGAN(cfg, p.lambda_img, p.lambda_kl, p.lambda_z, p.nz, p.train, b.place(generator),
                      b.place(encoder), d_vae, d_lr, z_generator=b.child_generator(), amp_dtype=b.amp_dtype)


def _build_cut(b: _Builder, cfg: CUTConfig, in_ch: int = IMAGE_CHANNELS, out_ch: int = IMAGE_CHANNELS) -> CUT:
    """G, then netF (its MLP widths read from G's features), then D, all from the init stream."""
    if cfg.lambda_NCE > 0 and in_ch != out_ch:
        raise ValueError(f"{cfg.section}: PatchNCE encodes G's output with G's own encoder, so domains A and B "
                         f"need the same number of channels; got {in_ch} and {out_ch}")
    init = dict(init_type=cfg.init_type, init_gain=cfg.init_gain, generator=b.init)
    generator = build_generator(cfg.generator, in_ch, out_ch, ngf=cfg.ngf, norm=cfg.norm,
                                use_dropout=cfg.use_dropout, antialias=cfg.antialias, **init)
    widths = feature_widths(generator, in_ch, cfg.nce_layers, b.params.image_size)
    projection = build_patch_sampler(widths, cfg.netF_nc, **init)
    discriminator = build_discriminator("patch_antialias" if cfg.antialias else "patch", out_ch, ndf=cfg.ndf,
                                        n_layers=cfg.n_layers_D, norm=cfg.norm, **init)
    return CUT(cfg, b.params.train, b.place(generator), b.place(projection), b.place(discriminator),
               sample_generator=b.child_generator(), amp_dtype=b.amp_dtype)


def feature_widths(generator: nn.Module, in_ch: int, layers: tuple[int, ...], image_size: int) -> list[int]:
    """The channels of G's features at `layers`, from one forward of a blank image (no RNG drawn).

    Widths do not depend on the image size; a small image keeps this cheap.
    """
    side = min(image_size, 32)
    with torch.no_grad(), evaluating(generator), torch.random.fork_rng(devices=[]):
        feats = generator.features(torch.zeros(1, in_ch, side, side), layers)
    return [feat.shape[1] for feat in feats]


def _paper_side(image_size: int) -> str:
    return "256" if image_size >= 256 else str(image_size)


def _paper_unet(image_size: int) -> str:
    side = _paper_side(image_size)
    return f"unet_{side}" if side in ("32", "64", "128", "256") else "unet_256"


def _pix2pix_at_paper_size(cfg: Pix2PixConfig, image_size: int) -> Pix2PixConfig:
    return dataclasses.replace(cfg, generator=_paper_unet(image_size), ngf=64, ndf=64, batch_size=1, n_layers_D=3)


def _cyclegan_at_paper_size(cfg: CycleGANConfig, image_size: int) -> CycleGANConfig:
    generator = "resnet_9blocks" if image_size >= 256 else "resnet_6blocks"
    return dataclasses.replace(cfg, generator=generator, ngf=64, ndf=64, batch_size=1, upsample="basic",
                               antialias=False, n_layers_D=3)


def _bicyclegan_at_paper_size(cfg: BicycleGANConfig, image_size: int) -> BicycleGANConfig:
    side = _paper_side(image_size)
    encoder = f"resnet_{side}" if side in ("64", "128", "256") else "resnet_256"
    return dataclasses.replace(cfg, generator=_paper_unet(image_size), encoder=encoder, ngf=64, ndf=64, nef=64,
                               batch_size=2, upsample="basic", n_layers_D=3, num_D=2)


def _cut_at_paper_size(cfg: CUTConfig, image_size: int) -> CUTConfig:
    generator = "resnet_9blocks" if image_size >= 256 else "resnet_6blocks"
    return dataclasses.replace(cfg, generator=generator, ngf=64, ndf=64, batch_size=1, netF_nc=256, num_patches=256,
                               n_layers_D=3)


@dataclass(frozen=True)
class MethodSpec:
    """One translation method, as every stage sees it."""

    name: str  # the dvc.yaml matrix key and the CLI argument
    title: str  # in tables and figure titles
    paired: bool  # learns from aligned (A, B) pairs only
    loss_weights: tuple[str, ...]  # the top-level params it reads (as in dvc.yaml's train stage)
    section: str  # its params.yaml section, a field of Params
    build: Callable[[_Builder], Translator]
    outputs: tuple[str, ...]  # the folders of translate's layout it may write (pipeline.translated)
    at_paper_size: Callable[[Any, int], Any]  # (its section, image size) -> the paper's architecture (bench)
    n_samples: Callable[[Params], int] = lambda params: 0  # random-latent samples per test input
    # each training rank's share of the batch is a multiple of this (BicycleGAN halves its share)
    batch_multiple: int = 1

    def config(self, params: Params):
        """Its params section (Pix2PixConfig, ...)."""
        return getattr(params, self.section)

    def switched_off(self, params: Params) -> str | None:
        """Why the pipeline does not run it (its section's `enabled` is false), or None."""
        if self.config(params).enabled:
            return None
        return (f"switched off in params ({self.section}.enabled: false); "
                f"`dvc exp run -S {self.section}.enabled=true` runs it")


METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec("pix2pix", "pix2pix", paired=True, loss_weights=("lambda_L1",), section="pix2pix",
               build=_build_pix2pix, outputs=(FAKE_B, FAKE_A), at_paper_size=_pix2pix_at_paper_size),  # fake_a when trained b_to_a
    MethodSpec("cyclegan", "CycleGAN", paired=False, loss_weights=("lambda_cyc", "lambda_idt"),
               section="cyclegan", build=_build_cyclegan, outputs=(FAKE_B, FAKE_A),
               at_paper_size=_cyclegan_at_paper_size),
    MethodSpec("bicyclegan", "BicycleGAN", paired=True, loss_weights=("lambda_img", "lambda_kl", "lambda_z", "nz"),
               section="bicyclegan", build=_build_bicyclegan, outputs=(FAKE_B, SAMPLES, ENCODED),
               at_paper_size=_bicyclegan_at_paper_size,
               n_samples=lambda params: params.bicyclegan.n_samples, batch_multiple=2),
    # CUT's loss weights live in its section: FastCUT defaults the same names to other values
    MethodSpec("cut", "CUT", paired=False, loss_weights=(), section="cut",
               build=lambda b: _build_cut(b, b.params.cut), outputs=(FAKE_B,), at_paper_size=_cut_at_paper_size),
    MethodSpec("fastcut", "FastCUT", paired=False, loss_weights=(), section="fastcut",
               build=lambda b: _build_cut(b, b.params.fastcut), outputs=(FAKE_B,),
               at_paper_size=_cut_at_paper_size),
)}
MODELS: dict[str, Callable[[_Builder], Translator]] = {name: spec.build for name, spec in METHODS.items()}


def method_spec(method: str) -> MethodSpec:
    """The table's entry for `method`; ValueError naming the known ones otherwise."""
    try:
        return METHODS[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r}; expected one of {list(METHODS)}") from None


# torch 2.14's CPU InstanceNorm2d backward is wrong when the incoming gradient is channels_last and
# the saved input is not (shown by `stages parity cyclegan`; reproduced on the op alone)
CPU_CHANNELS_LAST_INSTANCE_NORM = ("train.cpu_channels_last is refused for instance-norm networks: torch's CPU "
                                   "InstanceNorm2d backward gives wrong gradients with channels_last gradients "
                                   "(see README, Parity); set train.cpu_channels_last false")
# torch 2.14's inductor stops the backward of the replication padding that anti-aliased resampling
# uses (a stride assertion in replication_pad2d_backward), on the CPU; CUDA is unchecked
CPU_COMPILE_ANTIALIAS = ("train.compile: nets is refused on the CPU for anti-aliased networks: torch's inductor "
                         "fails in the backward of their replication padding (see README, Parity); set "
                         "train.compile none")


def build_model(method: str, params: Params, device: torch.device, seed: int, rank: int = 0, *,
                allow_known_wrong: bool = False) -> Translator:
    """The `method` model from `params`, its networks initialised from `seed` and placed on `device`;
    `rank` (a training process under torchrun) seeds its own image-pool and latent generators.
    A switch combination known to train wrongly is a ValueError unless `allow_known_wrong` (parity,
    which shows it).

    bf16 autocast and channels_last are used on CUDA (on the CPU with train.cpu_amp and
    train.cpu_channels_last), when params.train asks for them; train.compile compiles every
    network on any device.
    """
    spec = method_spec(method)
    builder = _Builder(params, torch.device(device), seed, rank)
    cfg, on_cpu = spec.config(params), builder.device.type == "cpu"
    if not allow_known_wrong and on_cpu and builder.channels_last and cfg.norm == "instance":
        raise ValueError(f"{spec.title}: {CPU_CHANNELS_LAST_INSTANCE_NORM}")
    if not allow_known_wrong and on_cpu and params.train.compile == "nets" and getattr(cfg, "antialias", False):
        raise ValueError(f"{spec.title}: {CPU_COMPILE_ANTIALIAS}")
    return spec.build(builder)
