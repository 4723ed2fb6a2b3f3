"""Typed configuration: `params.yaml` parsed into frozen dataclasses by a strict loader.

Unknown keys, missing keys, wrong types and out-of-range values raise ConfigError naming the key.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A params value is missing, unknown, of the wrong type or out of range."""


def _check(key: str, ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


# --------------------------------------------------------------------------- sections


DataSource = Literal["streets", "celeba", "cityscapes", "pix2pix_folders", "cyclegan_folders", "image_folder"]
# sources whose two domains are folders or halves that the user may swap with data.direction
SWAPPABLE_SOURCES = ("pix2pix_folders", "cyclegan_folders")
# how curate makes a frame square: centre-crop it, or resize it whole (the papers' Cityscapes 2:1 -> 1:1)
ResizeMode = Literal["crop", "stretch"]


@dataclass(frozen=True)
class DataConfig:
    """`data`: which raw data set `prepare` builds or imports."""

    source: DataSource = "streets"
    n_images: int = 2000  # streets: how many scenes to generate
    path: str | None = None  # real data sets: the folder the user downloaded
    workers: int = 2  # streets: processes used to render
    # streets: "day" (daylight, sun or overcast, dry or wet: the papers' Cityscapes-like task),
    # "all" (dusk, night and fog too: one label map, many photos) or "day_night" (each scene by day
    # or by night: the unpaired day -> night task, README "Day -> night (unpaired)")
    styles: Literal["day", "all", "day_night"] = "day"
    # pix2pix/CycleGAN folders: b_to_a makes the folders' B side the store's domain A (the input)
    direction: Literal["a_to_b", "b_to_a"] = "a_to_b"

    def __post_init__(self) -> None:
        _check("data.n_images", self.n_images >= 1, f"must be >= 1, got {self.n_images}")
        _check("data.workers", self.workers >= 1, f"must be >= 1, got {self.workers}")
        _check("data.path", self.source == "streets" or bool(self.path),
               f"source {self.source!r} needs data.path (the folder holding the data set)")
        _check("data.direction", self.direction == "a_to_b" or self.source in SWAPPABLE_SOURCES,
               f"b_to_a applies to sources {list(SWAPPABLE_SOURCES)}, not {self.source!r}")


@dataclass(frozen=True)
class SplitConfig:
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            _check(f"curate.split.{name}", 0.0 <= value <= 1.0, f"must be in [0, 1], got {value}")
        total = self.train + self.val + self.test
        _check("curate.split", abs(total - 1.0) < 1e-6, f"fractions must sum to 1, got {total}")


@dataclass(frozen=True)
class CurateConfig:
    """`curate`: attribute filters, two-domain selection, landmark filters, the split, and limits on
    what images are accepted."""

    require: dict[str, int] = field(default_factory=dict)  # attribute -> 1 | -1 that must hold
    exclude: dict[str, int] = field(default_factory=dict)  # attribute -> 1 | -1 that drops an image
    # two domains of an unpaired task, each by the attribute values that must hold (CelebA)
    domain_a: dict[str, int] = field(default_factory=dict)
    domain_b: dict[str, int] = field(default_factory=dict)
    # faces whose 5 landmarks lie closest to the mean landmarks: keep the N closest per domain
    # and/or those within a mean distance in pixels (CelebA's list_landmarks_align_celeba)
    landmarks_keep: int | None = None
    landmarks_max_distance: float | None = None
    split: SplitConfig = field(default_factory=SplitConfig)
    use_partition: bool = True  # the data set's own partition file (CelebA) when it has one
    max_pixels: int = 50_000_000  # larger images are refused as decompression bombs
    palette_tolerance: float = 24.0  # label colours within this RGB distance snap to the palette
    resize: ResizeMode = "crop"  # photos and label maps alike (labels nearest)

    def __post_init__(self) -> None:
        for section in ("require", "exclude", "domain_a", "domain_b"):
            for attr, value in getattr(self, section).items():
                _check(f"curate.{section}.{attr}", value in (1, -1), f"must be 1 or -1, got {value!r}")
        _check("curate.domain_a", bool(self.domain_a) == bool(self.domain_b),
               "domain_a and domain_b are set together (the two domains of an unpaired task) or not at all")
        _check("curate.landmarks_keep", self.landmarks_keep is None or self.landmarks_keep >= 1,
               f"must be >= 1 or null, got {self.landmarks_keep}")
        _check("curate.landmarks_max_distance",
               self.landmarks_max_distance is None or self.landmarks_max_distance >= 0,
               f"must be >= 0 or null, got {self.landmarks_max_distance}")
        _check("curate.max_pixels", self.max_pixels >= 1, f"must be >= 1, got {self.max_pixels}")
        _check("curate.palette_tolerance", self.palette_tolerance >= 0,
               f"must be >= 0, got {self.palette_tolerance}")

    @property
    def uses_landmarks(self) -> bool:
        return self.landmarks_keep is not None or self.landmarks_max_distance is not None


@dataclass(frozen=True)
class TrainConfig:
    """`train`: what the three methods share: optimiser, augmentation, device, logging."""

    lr: float = 2e-4
    beta1: float = 0.5  # Adam beta1 from the pix2pix/CycleGAN papers
    beta2: float = 0.999
    load_size: int = 72  # resize to this, then random-crop image_size (pix2pix: 286 -> 256)
    flip: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["none", "bf16"] = "bf16"  # autocast on CUDA (on the CPU too with cpu_amp)
    channels_last: bool = True  # on CUDA (on the CPU too with cpu_channels_last)
    # bf16 autocast on the CPU: parity holds (`stages parity`), but at the default run's sizes it was
    # only 1.0-1.2x faster per step on an AVX512-BF16 CPU (`stages bench`), and CPUs without bf16
    # instructions emulate it (slower); off, so the default run keeps fp32's results
    cpu_amp: bool = False
    # channels_last on the CPU: measured slower here, and torch's CPU InstanceNorm2d backward is
    # wrong with channels_last gradients (refused for instance-norm methods)
    cpu_channels_last: bool = False
    # one fused Adam kernel per tensor (CUDA and CPU); off: foreach. On this CPU the fused step made
    # the default trainings 1.08-1.21x faster, with parity held (`stages parity`)
    fused_adam: bool = True
    # torch.compile of every network (nn.Module.compile: state-dict keys unchanged), on any device
    compile: Literal["none", "nets"] = "none"
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    threads: int = 0  # CPU threads for torch; 0 leaves torch's default
    # the curated store (resized uint8) is uploaded to a CUDA device once when it takes at most this
    # share of the device's memory; larger, it stays in pinned host memory and each batch is copied
    device_data_fraction: float = 0.25
    log_every: int = 10
    sample_every: int = 250
    checkpoint_every: int = 250
    mlflow_experiment: str = "i2i"
    # a model folder (trained, or imported with `import-checkpoint`) whose networks start the
    # training; networks it lacks (e.g. the CycleGAN release's D's) and the optimisers start afresh
    init_from: str | None = None
    # DDP (pipeline.distributed): processes the train stage starts on this node under torchrun when
    # > 1 (a torchrun started by hand sets its own); batch_size stays the global batch at any count
    nproc_per_node: int = 1
    sync_batchnorm: bool = True  # batch norm over the global batch (SyncBatchNorm); false: each rank's share
    collective_timeout_s: int = 600  # a rank that waits longer on a collective fails, and torchrun stops all
    # the training's own seed (initial weights, batches, pools); None: the top-level `seed`. Error
    # bars over seeds vary this alone, so every seed trains on the same data set and is scored by
    # the same segmenter (`seed` also draws the street scenes and the splits)
    seed: int | None = None
    # export the networks every K steps into the model folder's kept/ (0: never), so that `select`
    # can choose a checkpoint on the val split
    keep_every: int = 0

    def __post_init__(self) -> None:
        _check("train.nproc_per_node", self.nproc_per_node >= 1, f"must be >= 1, got {self.nproc_per_node}")
        _check("train.collective_timeout_s", self.collective_timeout_s >= 1,
               f"must be >= 1, got {self.collective_timeout_s}")
        _check("train.keep_every", self.keep_every >= 0, f"must be >= 0, got {self.keep_every}")
        _check("train.init_from", self.init_from is None or bool(self.init_from.strip()),
               "must be a model folder or null, got an empty string")
        _check("train.lr", self.lr > 0, f"must be > 0, got {self.lr}")
        _check("train.beta1", 0 <= self.beta1 < 1, f"must be in [0, 1), got {self.beta1}")
        _check("train.beta2", 0 <= self.beta2 < 1, f"must be in [0, 1), got {self.beta2}")
        _check("train.load_size", self.load_size >= 1, f"must be >= 1, got {self.load_size}")
        _check("train.threads", self.threads >= 0, f"must be >= 0, got {self.threads}")
        _check("train.device_data_fraction", 0 < self.device_data_fraction <= 1,
               f"must be in (0, 1], got {self.device_data_fraction}")
        for name in ("log_every", "sample_every", "checkpoint_every"):
            value = getattr(self, name)
            _check(f"train.{name}", value >= 1, f"must be >= 1, got {value}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Steps at the initial learning rate, then steps of linear decay to zero (CycleGAN schedule)."""

    iters: int
    iters_decay: int
    batch_size: int

    def __post_init__(self) -> None:
        _check("iters", self.iters >= 0, f"must be >= 0, got {self.iters}")
        _check("iters_decay", self.iters_decay >= 0, f"must be >= 0, got {self.iters_decay}")
        _check("iters", self.iters + self.iters_decay >= 1, "iters + iters_decay must be >= 1")
        _check("batch_size", self.batch_size >= 1, f"must be >= 1, got {self.batch_size}")

    @property
    def total_steps(self) -> int:
        return self.iters + self.iters_decay


# the one definition of these names: pipeline.nets and pipeline.losses import them from here
NormName = Literal["batch", "instance", "none"]
InitName = Literal["normal", "xavier", "kaiming", "orthogonal"]
GanMode = Literal["vanilla", "lsgan"]
UpsampleName = Literal["basic", "bilinear", "nearest"]  # BicycleGAN's --upsample


@dataclass(frozen=True)
class Pix2PixConfig:
    """`pix2pix`: Isola et al. 2017. Loss weight lambda_L1 lives at the top level."""

    iters: int = 700
    iters_decay: int = 700
    batch_size: int = 4
    enabled: bool = True  # false: train/translate/evaluate record "switched off" instead of running
    # a model folder (e.g. from `import-checkpoint`) that train@ takes as this method's trained model
    # instead of training, so that translate@ and evaluate@ run on it
    pretrained: str | None = None
    generator: str = "unet_64"
    discriminator: Literal["patch", "pixel"] = "patch"
    n_layers_D: int = 3  # 3 -> 70x70 PatchGAN; 0 pixel, 1 16x16, 5 286x286
    ngf: int = 32
    ndf: int = 32
    norm: NormName = "batch"
    init_type: InitName = "normal"
    init_gain: float = 0.02
    use_dropout: bool = True  # dropout is pix2pix's only noise
    dropout_at_test: bool = True  # the paper keeps dropout on at test time
    gan_mode: GanMode = "vanilla"
    conditional_d: bool = True  # False: unconditional D (the paper's GAN-only ablation)
    use_gan: bool = True  # False: L1 alone (the loss ablation)
    direction: Literal["a_to_b", "b_to_a"] = "a_to_b"

    def __post_init__(self) -> None:
        ScheduleConfig(self.iters, self.iters_decay, self.batch_size)
        _check("pix2pix.n_layers_D", 0 <= self.n_layers_D <= 6, f"must be in [0, 6], got {self.n_layers_D}")
        _check("pix2pix.ngf", self.ngf >= 1, f"must be >= 1, got {self.ngf}")
        _check("pix2pix.ndf", self.ndf >= 1, f"must be >= 1, got {self.ndf}")


@dataclass(frozen=True)
class CycleGANConfig:
    """`cyclegan`: Zhu et al. 2017. Loss weights lambda_cyc and lambda_idt live at the top level."""

    iters: int = 1250
    iters_decay: int = 1250
    batch_size: int = 1
    enabled: bool = True  # false: train/translate/evaluate record "switched off" instead of running
    # a model folder (e.g. from `import-checkpoint`) that train@ takes as this method's trained model
    # instead of training, so that translate@ and evaluate@ run on it
    pretrained: str | None = None
    generator: str = "resnet_6blocks"
    n_layers_D: int = 3
    # 16, not 32: on 2 CPU cores 2500 steps at 16 cost what 1000 at 32 did, and learn more
    ngf: int = 16
    ndf: int = 16
    norm: NormName = "instance"
    init_type: InitName = "normal"
    init_gain: float = 0.02
    use_dropout: bool = False
    gan_mode: GanMode = "lsgan"
    pool_size: int = 50  # history of generated images shown to D (Shrivastava et al.)
    use_gan: bool = True  # Table 4 ablations: "cycle alone" turns the GAN terms off
    cycle_forward: bool = True  # A -> B -> A ("GAN + forward cycle")
    cycle_backward: bool = True  # B -> A -> B ("GAN + backward cycle")
    # not the paper's: CUT's blur-pooled downs (G and D) and blur-upsampled ups (G)
    antialias: bool = False
    # G's 2x ups: basic (the paper's transposed convs) | bilinear | nearest (resize, then a 3x3 conv)
    upsample: UpsampleName = "basic"

    def __post_init__(self) -> None:
        ScheduleConfig(self.iters, self.iters_decay, self.batch_size)
        _check("cyclegan.upsample", not (self.antialias and self.upsample != "basic"),
               f"must be basic with cyclegan.antialias (its blur-upsampling replaces the ups), got {self.upsample!r}")
        _check("cyclegan.pool_size", self.pool_size >= 0, f"must be >= 0, got {self.pool_size}")
        _check("cyclegan.n_layers_D", 0 <= self.n_layers_D <= 6, f"must be in [0, 6], got {self.n_layers_D}")


@dataclass(frozen=True)
class BicycleGANConfig:
    """`bicyclegan`: Zhu et al. 2017b. Loss weights lambda_img, lambda_kl, lambda_z and nz are top level."""

    iters: int = 500
    iters_decay: int = 500
    batch_size: int = 4  # halves go through cVAE-GAN and cLR-GAN
    enabled: bool = True  # false: train/translate/evaluate record "switched off" instead of running
    # a model folder (e.g. from `import-checkpoint`) that train@ takes as this method's trained model
    # instead of training, so that translate@ and evaluate@ run on it
    pretrained: str | None = None
    generator: str = "unet_64"
    encoder: str = "resnet_64"
    where_add: Literal["input", "all"] = "all"
    # G's 2x ups, the reference's --upsample: basic (transposed conv, its default) | bilinear | nearest
    # (resize, then a 3x3 conv)
    upsample: UpsampleName = "nearest"
    # 2: each D's field 34x34 (at 64 px; the paper's 3, 70x70, sees the whole image there at both
    # scales); PAPER_DEPARTURES
    n_layers_D: int = 2
    num_D: int = 2  # two-scale discriminators, as the reference
    ngf: int = 32
    ndf: int = 32
    nef: int = 32
    norm: NormName = "instance"
    init_type: InitName = "xavier"
    init_gain: float = 0.02
    use_dropout: bool = False
    gan_mode: GanMode = "lsgan"
    n_samples: int = 5  # outputs per input at translation time

    def __post_init__(self) -> None:
        ScheduleConfig(self.iters, self.iters_decay, self.batch_size)
        _check("bicyclegan.batch_size", self.batch_size >= 2 and self.batch_size % 2 == 0,
               f"must be even and >= 2 (half cVAE-GAN, half cLR-GAN), got {self.batch_size}")
        _check("bicyclegan.n_samples", self.n_samples >= 1, f"must be >= 1, got {self.n_samples}")
        _check("bicyclegan.num_D", self.num_D >= 1, f"must be >= 1, got {self.num_D}")


@dataclass(frozen=True)
class CUTConfig:
    """`cut`: contrastive unpaired translation, Park et al. 2020 (the authors' `--CUT_mode CUT`).

    One generator, no inverse: PatchNCE between an input's and its translation's encoder features,
    plus LSGAN. Its loss weights live here, not at the top level, because CUT and FastCUT default
    to different values of the same names.
    """

    iters: int = 400
    iters_decay: int = 400
    batch_size: int = 1
    enabled: bool = False  # not in the default run (it would pass 15 minutes on 2 CPU cores)
    # a model folder (e.g. from `import-checkpoint`) that train@ takes as this method's trained model
    # instead of training, so that translate@ and evaluate@ run on it
    pretrained: str | None = None
    generator: str = "resnet_6blocks"  # a ResNet generator: its encoder gives the NCE features
    n_layers_D: int = 3
    ngf: int = 32
    ndf: int = 32
    norm: NormName = "instance"
    init_type: InitName = "xavier"
    init_gain: float = 0.02
    use_dropout: bool = False
    gan_mode: GanMode = "lsgan"
    antialias: bool = True  # blur-pooled downs (G and D) and blur-upsampled ups (G): the authors' default
    lambda_GAN: float = 1.0
    lambda_NCE: float = 1.0  # the paper's lambda_X
    nce_idt: bool = True  # PatchNCE on domain B too, NCE(G(y), y): the paper's lambda_Y = lambda_X
    nce_layers: tuple[int, ...] = (0, 4, 8, 12, 16)  # indices into G's layer sequence (the authors')
    num_patches: int = 256  # patches sampled per layer and image
    netF_nc: int = 256  # width of netF's two-layer MLP
    nce_T: float = 0.07  # temperature
    flip_equivariance: bool = False  # FastCUT: G's input flipped at random, features flipped back

    def __post_init__(self) -> None:
        section = self.section
        ScheduleConfig(self.iters, self.iters_decay, self.batch_size)
        _check(f"{section}.generator", self.generator.startswith("resnet_"),
               f"CUT takes its PatchNCE features from a ResNet generator's encoder; got {self.generator!r}")
        _check(f"{section}.n_layers_D", 1 <= self.n_layers_D <= 6, f"must be in [1, 6], got {self.n_layers_D}")
        _check(f"{section}.nce_layers", bool(self.nce_layers) and list(self.nce_layers) == sorted(set(self.nce_layers))
               and self.nce_layers[0] >= 0, f"must be distinct ascending indices >= 0, got {list(self.nce_layers)}")
        for name in ("lambda_GAN", "lambda_NCE"):
            value = getattr(self, name)
            _check(f"{section}.{name}", value >= 0, f"must be >= 0, got {value}")
        _check(f"{section}.lambda_NCE", self.lambda_GAN > 0 or self.lambda_NCE > 0,
               "lambda_GAN and lambda_NCE are both 0: no objective")
        for name in ("num_patches", "netF_nc", "ngf", "ndf"):
            value = getattr(self, name)
            _check(f"{section}.{name}", value >= 1, f"must be >= 1, got {value}")
        _check(f"{section}.nce_T", self.nce_T > 0, f"must be > 0, got {self.nce_T}")

    @property
    def section(self) -> str:
        return "cut"


@dataclass(frozen=True)
class FastCUTConfig(CUTConfig):
    """`fastcut`: CUT without the identity NCE, lambda_NCE 10 and flip-equivariance, trained for a
    shorter schedule (the authors' `--CUT_mode FastCUT`: 150 + 50 epochs where CUT has 200 + 200)."""

    iters: int = 450
    iters_decay: int = 150
    lambda_NCE: float = 10.0
    nce_idt: bool = False
    flip_equivariance: bool = True

    @property
    def section(self) -> str:
        return "fastcut"


@dataclass(frozen=True)
class SegmenterConfig:
    """`segmenter`: the network behind the FCN-score, trained on the train split's real photos."""

    arch: Literal["small_fcn", "fcn_resnet50", "deeplabv3_mobilenet"] = "small_fcn"
    width: int = 16
    steps: int = 600
    batch_size: int = 16
    lr: float = 3e-3
    weights: str | None = None  # a folder holding a user's trained segmenter: used instead of training

    def __post_init__(self) -> None:
        _check("segmenter.width", self.width >= 1, f"must be >= 1, got {self.width}")
        _check("segmenter.steps", self.steps >= 1, f"must be >= 1, got {self.steps}")
        _check("segmenter.batch_size", self.batch_size >= 1, f"must be >= 1, got {self.batch_size}")
        _check("segmenter.lr", self.lr > 0, f"must be > 0, got {self.lr}")


@dataclass(frozen=True)
class EvaluateConfig:
    """`evaluate`: batch size of translation and evaluation, and locally stored metric weights."""

    batch_size: int = 32
    # LPIPS diversity (the `lpips` package, BicycleGAN's protocol); with weights only, from local files:
    lpips_weights: str | None = None  # the whole LPIPS state dict (safetensors), or:
    lpips_backbone_weights: str | None = None  # torchvision's backbone file (e.g. alexnet-owt-7be5be79.pth)
    lpips_linear_weights: str | None = None  # the learned layers; None: the package's bundled v<version>/<net>.pth
    # BicycleGAN's numbers are v0.0 (its README), the package's default 0.1; they differ by 2x there
    lpips_version: Literal["0.0", "0.1"] = "0.0"
    lpips_net: Literal["alex", "vgg", "squeeze"] = "alex"
    lpips_pairs: Literal["consecutive", "all"] = "consecutive"  # compute_dists_pair.py's default, or --all-pairs
    # FID/KID (torch-fidelity's FID Inception): a local weights file, or "download" to fetch it once
    # into torch's hub cache; None: no FID/KID (the segmenter-feature Frechet distance stays)
    inception_weights: str | None = None
    inception_sha256: str | None = None  # the file's full digest; None: the published weights' digest prefix
    kid_subset_size: int = 1000  # images per KID subset (min with the real and generated counts)
    kid_subsets: int = 100

    def __post_init__(self) -> None:
        _check("evaluate.batch_size", self.batch_size >= 1, f"must be >= 1, got {self.batch_size}")
        _check("evaluate.kid_subset_size", self.kid_subset_size >= 2, f"must be >= 2, got {self.kid_subset_size}")
        _check("evaluate.kid_subsets", self.kid_subsets >= 1, f"must be >= 1, got {self.kid_subsets}")
        sha = self.inception_sha256
        _check("evaluate.inception_sha256", sha is None or bool(re.fullmatch(r"[0-9a-fA-F]{64}", sha)),
               f"must be 64 hex digits, got {sha!r}")


@dataclass(frozen=True)
class SelectConfig:
    """`select`: choosing a checkpoint on the val split (opt in; needs train.keep_every's checkpoints)."""

    enabled: bool = False


# Defaults that depart from the papers' for the small CPU default (64 px, minutes of training):
# key -> (the paper's value, why). The report's setup table and the README name them.
PAPER_DEPARTURES: dict[str, tuple[float | str, str]] = {
    "lambda_img": (10.0, "at 1000 steps and 64 px the paper's 10 leaves BicycleGAN's GAN terms in charge "
                         "(outputs the same blotches for every input); 100, pix2pix's L1 weight, makes it learn "
                         "the layout in minutes (README, \"Departures from the papers\")"),
    "bicyclegan.upsample": ("basic", "upsample nearest: no chequered blotches, and higher over 3 seeds (README, "
                                     "\"BicycleGAN's upsampling\")"),
    "bicyclegan.n_layers_D": (3, "n_layers_D 2: at 64 px the paper's 70x70 field covers the whole image at both "
                                 "of the D's scales; 34x34 (half the width, at the full scale) raised the random-z "
                                 "samples' score and their diversity over 3 seeds (README, \"The discriminators' "
                                 "field at 64 px\")"),
}


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml."""

    seed: int = 0
    image_size: int = 64
    # the papers' hyper-parameters keep the papers' names, at the top level
    lambda_L1: float = 100.0  # pix2pix
    lambda_cyc: float = 10.0  # CycleGAN cycle consistency
    lambda_idt: float = 0.0  # CycleGAN identity, as a fraction of lambda_cyc (paper: 0 for labels <-> photos)
    lambda_img: float = 100.0  # BicycleGAN cVAE-GAN L1; the paper's 10 (PAPER_DEPARTURES)
    lambda_kl: float = 0.01  # BicycleGAN
    lambda_z: float = 0.5  # BicycleGAN latent regression
    nz: int = 8  # BicycleGAN latent size
    data: DataConfig = field(default_factory=DataConfig)
    curate: CurateConfig = field(default_factory=CurateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pix2pix: Pix2PixConfig = field(default_factory=Pix2PixConfig)
    cyclegan: CycleGANConfig = field(default_factory=CycleGANConfig)
    bicyclegan: BicycleGANConfig = field(default_factory=BicycleGANConfig)
    cut: CUTConfig = field(default_factory=CUTConfig)
    fastcut: FastCUTConfig = field(default_factory=FastCUTConfig)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    select: SelectConfig = field(default_factory=SelectConfig)

    def __post_init__(self) -> None:
        _check("image_size", self.image_size >= 16 and self.image_size % 16 == 0,
               f"must be a multiple of 16 and >= 16, got {self.image_size}")
        for name in ("lambda_L1", "lambda_cyc", "lambda_idt", "lambda_img", "lambda_kl", "lambda_z"):
            value = getattr(self, name)
            _check(name, value >= 0, f"must be >= 0, got {value}")
        _check("nz", self.nz >= 1, f"must be >= 1, got {self.nz}")
        _check("train.load_size", self.train.load_size >= self.image_size,
               f"must be >= image_size ({self.image_size}), got {self.train.load_size}")

    def schedule(self, section: str) -> ScheduleConfig:
        """The schedule of the method whose params section is `section`."""
        cfg = getattr(self, section)
        return ScheduleConfig(cfg.iters, cfg.iters_decay, cfg.batch_size)

    @property
    def train_seed(self) -> int:
        """The seed a training draws with: train.seed, else the top-level seed."""
        return self.seed if self.train.seed is None else self.train.seed

    def as_flat_dict(self) -> dict[str, Any]:
        """Dotted keys -> values, as MLflow params."""
        return flatten(dataclasses.asdict(self))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value) \
                and not _is_mapping_field(name):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _is_mapping_field(name: str) -> bool:
    return name in ("curate.require", "curate.exclude", "curate.domain_a", "curate.domain_b")


# --------------------------------------------------------------------------- loader


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """Check `value` against the annotation `tp`, building nested dataclasses."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        _check(key, isinstance(value, dict), f"must be a mapping, got {value!r}")
        return build(tp, value, prefix=key + ".")
    if origin is Literal:
        _check(key, value in get_args(tp), f"must be one of {list(get_args(tp))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            _check(key, type(None) in args, "must not be null")
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, arg, value)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is tuple:  # tuple[X, ...]: a YAML list
        item_tp = get_args(tp)[0]
        _check(key, isinstance(value, (list, tuple)), f"must be a list, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", item_tp, item) for i, item in enumerate(value))
    if origin is dict:
        key_tp, value_tp = get_args(tp)
        _check(key, isinstance(value, dict), f"must be a mapping, got {value!r}")
        return {_coerce(f"{key}.{k}", key_tp, k): _coerce(f"{key}.{k}", value_tp, v) for k, v in value.items()}
    if tp is bool:
        _check(key, isinstance(value, bool), f"must be true or false, got {value!r}")
        return value
    if tp is int:
        _check(key, isinstance(value, int) and not isinstance(value, bool), f"must be an integer, got {value!r}")
        return value
    if tp is float:
        _check(key, isinstance(value, (int, float)) and not isinstance(value, bool), f"must be a number, got {value!r}")
        return float(value)
    if tp is str:
        _check(key, isinstance(value, str), f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key}")


def build(cls: type[T], raw: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping; unknown keys and bad values raise ConfigError."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key; expected one of {sorted(fields)}")
    kwargs = {name: _coerce(prefix + name, hints[name], value) for name, value in raw.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{prefix.rstrip('.') or 'params'}: {exc}") from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml; raises ConfigError naming the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must hold a mapping of keys, got {type(raw).__name__}")
    try:
        return build(Params, raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def params_from_dict(raw: dict[str, Any]) -> Params:
    """Validate an in-memory mapping (a checkpoint's resolved config, a test's override)."""
    return build(Params, raw)
