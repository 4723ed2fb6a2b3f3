"""Import the authors' checkpoints into a model folder, the same that `train@<method>` writes.

`AuthorsOptions` holds the authors' option names (netG, ngf, norm, no_dropout, nz, where_add,
netE, netD, no_antialias, ...); `import_checkpoint` builds our networks from them, reads one .pth
per network (pipeline.published.pth: tensors only, every key and shape checked) and writes
safetensors + config.json, with an `imported` record naming each file, its SHA-256 and what was
converted. translate-folder, translate@<method> and `train.init_from` then read the folder as
any trained one.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.checkpoint import export_networks
from pipeline.config import Params, params_from_dict
from pipeline.io import atomic_dir, sha256_of
from pipeline.models import build_model, method_spec
from pipeline.published.pth import load_authors_file

log = logging.getLogger(__name__)

# the authors' --model name -> ours
AUTHORS_METHODS = {"pix2pix": "pix2pix", "cycle_gan": "cyclegan", "bicycle_gan": "bicyclegan", "cut": "cut",
                   "fastcut": "fastcut"}
# per method: the authors' network name (latest_net_<name>.pth) -> ours in model.networks()
NETWORKS = {
    "pix2pix": {"G": "G", "D": "D"},
    "cyclegan": {"G_A": "G_A", "G_B": "G_B", "D_A": "D_A", "D_B": "D_B"},
    "bicyclegan": {"G": "G", "E": "E", "D": "D_vae", "D2": "D_lr"},
    "cut": {"G": "G", "D": "D", "F": "F"},
    "fastcut": {"G": "G", "D": "D", "F": "F"},
}
# what a model folder must hold to translate; CycleGAN needs one generator per direction it maps
REQUIRED = {"pix2pix": ("G",), "bicyclegan": ("G", "E"), "cut": ("G",), "fastcut": ("G",)}
CYCLEGAN_DIRECTIONS = {"G_A": "a_to_b", "G_B": "b_to_a"}
# the authors' netD -> (our discriminator, n_layers); None: n_layers_D decides
PATCH_D = {"basic": ("patch", 3), "n_layers": ("patch", None), "pixel": ("pixel", 0)}
MULTISCALE_D = {"basic_256_multi": 3, "basic_128_multi": 2}


@dataclass(frozen=True)
class AuthorsOptions:
    """The authors' options that shape the networks (their names; None: the method's default,
    that of the published models: see README "Importing the authors' models")."""

    method: str  # pix2pix | cycle_gan | bicycle_gan | cut | fastcut
    netG: str | None = None
    ngf: int = 64
    norm: str | None = None  # pix2pix: batch; the others: instance
    dropout: bool | None = None  # pix2pix: True; the others: False (the authors' --no_dropout)
    netD: str | None = None  # basic | n_layers | pixel; BicycleGAN basic_256_multi | basic_128_multi
    ndf: int = 64
    n_layers_D: int = 3
    num_Ds: int = 2  # BicycleGAN
    nz: int = 8  # BicycleGAN
    where_add: str = "all"  # BicycleGAN: input | all
    netE: str = "resnet_256"  # BicycleGAN
    nef: int = 64  # BicycleGAN
    no_antialias: bool = False  # CUT: strided convs instead of blur-pooled ones (down)
    no_antialias_up: bool = False  # CUT: transposed convs instead of blur-upsampling (up)
    image_size: int = 256  # the authors' crop_size: what translate-folder scales ResNet inputs to

    def __post_init__(self) -> None:
        if self.method not in AUTHORS_METHODS:
            raise ValueError(f"unknown method {self.method!r}; expected one of {list(AUTHORS_METHODS)}")

    @property
    def ours(self) -> str:
        return AUTHORS_METHODS[self.method]


def _generator(options: AuthorsOptions) -> str:
    default = {"pix2pix": "unet_256", "bicyclegan": "unet_256"}.get(options.ours, "resnet_9blocks")
    return options.netG or default


def _section(options: AuthorsOptions, params: Params) -> Any:
    """Our params section for the method, from the authors' options."""
    method = options.ours
    cfg = method_spec(method).config(params)
    norm = options.norm or ("batch" if method == "pix2pix" else "instance")
    dropout = options.dropout if options.dropout is not None else method == "pix2pix"
    shared = dict(generator=_generator(options), ngf=options.ngf, ndf=options.ndf, norm=norm, use_dropout=dropout,
                  n_layers_D=options.n_layers_D)
    if method in ("pix2pix", "cyclegan", "cut", "fastcut"):
        net_d = options.netD or "basic"
        if net_d not in PATCH_D or (method != "pix2pix" and net_d == "pixel"):
            raise ValueError(f"netD {net_d!r} is not one of {method}'s: expected one of "
                             f"{[d for d in PATCH_D if method == 'pix2pix' or d != 'pixel']}")
        kind, n_layers = PATCH_D[net_d]
        shared["n_layers_D"] = options.n_layers_D if n_layers is None else n_layers
        if method == "pix2pix":
            shared["discriminator"] = kind
    if method == "cyclegan":  # the authors' CycleGAN networks, whatever our defaults
        shared |= dict(upsample="basic", antialias=False)
    if method in ("cut", "fastcut"):
        if options.no_antialias != options.no_antialias_up:
            raise ValueError("no_antialias and no_antialias_up differ; our CUT networks switch anti-aliasing for "
                             "the downs and the ups together (antialias), so import needs both set or both unset")
        shared["antialias"] = not options.no_antialias
    if method == "bicyclegan":
        net_d = options.netD or "basic_256_multi"
        if net_d not in MULTISCALE_D:
            raise ValueError(f"netD {net_d!r} is not one of BicycleGAN's: expected one of {list(MULTISCALE_D)}")
        shared |= dict(n_layers_D=MULTISCALE_D[net_d], num_D=options.num_Ds, encoder=options.netE,
                       nef=options.nef, where_add=options.where_add,
                       upsample="basic")  # the authors' default, which every published G was trained with
    return dataclasses.replace(cfg, **shared)


def imported_params(options: AuthorsOptions) -> Params:
    """Default params with the image size and the method's section set from the authors' options,
    checked by the strict loader (an unknown name or a bad value raises ConfigError)."""
    base = Params()
    size = options.image_size
    base = dataclasses.replace(base, image_size=size, nz=options.nz,
                               train=dataclasses.replace(base.train, load_size=max(size, size * 286 // 256)))
    section = _section(options, base)
    raw = dataclasses.asdict(base)
    raw[method_spec(options.ours).section] = dataclasses.asdict(section)
    return params_from_dict(raw)


def _check_networks(method: str, files: dict[str, Path]) -> None:
    known = NETWORKS[method]
    unknown = sorted(set(files) - set(known))
    if unknown:
        raise ValueError(f"{method} has no network {unknown[0]!r}; the authors' names are {list(known)} "
                         f"(files latest_net_<name>.pth)")
    if method == "cyclegan":
        if not set(files) & set(CYCLEGAN_DIRECTIONS):
            raise ValueError("cycle_gan needs G_A (A -> B) or G_B (B -> A), or both; the CycleGAN release ships one "
                             "generator per direction (e.g. horse2zebra as G_A, zebra2horse as G_B)")
        return
    missing = [name for name in REQUIRED[method] if name not in files]
    if missing:
        raise ValueError(f"{method} needs {' and '.join(missing)} to translate; got {sorted(files)}")


def import_checkpoint(options: AuthorsOptions, files: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    """Read the authors' files {their network name: .pth} into `out_dir` (written atomically);
    returns the `imported` record written into its config.json."""
    method = options.ours
    _check_networks(method, files)
    params = imported_params(options)
    model = build_model(method, params, torch.device("cpu"), seed=params.seed)
    ours = model.networks()
    record: dict[str, Any] = {"authors_method": options.method, "options": dataclasses.asdict(options), "files": {}}
    loaded: dict[str, torch.nn.Module] = {}
    for theirs, path in files.items():
        name = NETWORKS[method][theirs]
        if name not in ours:  # e.g. pix2pix's D where the options say no GAN
            raise ValueError(f"{method} as configured has no network {name!r}")
        conversion = load_authors_file(ours[name], Path(path))
        loaded[name] = ours[name]
        record["files"][name] = {"authors_name": theirs, "path": str(path), "sha256": sha256_of(Path(path)),
                                 **conversion.as_dict()}
        for kind in ("dropped", "filled"):
            if getattr(conversion, kind):
                log.info("%s: %s %s", path, kind, ", ".join(getattr(conversion, kind)))
    record["fresh"] = sorted(set(ours) - set(loaded))  # initialised, not imported: say so
    if method == "cyclegan":
        record["directions"] = [d for g, d in CYCLEGAN_DIRECTIONS.items() if g in loaded]
    config = {"method": method, "params": dataclasses.asdict(params), "imported": record}
    with atomic_dir(out_dir) as tmp:
        export_networks(tmp, loaded, config)
    log.info("imported %s into %s (%s); not in the files, initialised afresh: %s", method, out_dir,
             ", ".join(f"{name} <- {files[entry['authors_name']]}" for name, entry in record["files"].items()),
             ", ".join(record["fresh"]) or "none")
    return record
