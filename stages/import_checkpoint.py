"""`import-checkpoint`: the authors' published .pth files (pytorch-CycleGAN-and-pix2pix, BicycleGAN,
CUT) -> a model folder (safetensors + config.json) under --out-dir, as train@<method> writes it."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from stages.common import domain_errors

log = logging.getLogger("stages.import_checkpoint")


def _files(net: list[str], checkpoint_dir: Path | None, epoch: str, method: str) -> dict[str, Path]:
    """{authors' network name: file} from --net NAME=PATH and/or <checkpoint-dir>/<epoch>_net_<NAME>.pth."""
    from pipeline.published.importer import AUTHORS_METHODS, NETWORKS

    files: dict[str, Path] = {}
    if checkpoint_dir is not None:
        names = NETWORKS.get(AUTHORS_METHODS.get(method, ""), {})
        files = {name: checkpoint_dir / f"{epoch}_net_{name}.pth" for name in names
                 if (checkpoint_dir / f"{epoch}_net_{name}.pth").is_file()}
        if not files:
            raise FileNotFoundError(f"{checkpoint_dir}: no {epoch}_net_<name>.pth for {method} (names {list(names)})")
    for item in net:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--net takes NAME=PATH (e.g. G_A=latest_net_G_A.pth), got {item!r}")
        if not Path(path).is_file():
            raise FileNotFoundError(f"--net {name}: no file {path}")
        files[name] = Path(path)
    if not files:
        raise ValueError("no checkpoint given: pass --net NAME=PATH (one per network) or --checkpoint-dir")
    return files


def import_checkpoint(
    method: Annotated[str, typer.Argument(help="The authors' model: pix2pix | cycle_gan | bicycle_gan | cut | fastcut.")],
    out_dir: Annotated[Path, typer.Option(help="The model folder to write (e.g. data/models/imported/horse2zebra).")],
    net: Annotated[Optional[list[str]], typer.Option(
        help="NAME=PATH, one per network, the authors' names: G (pix2pix, CUT, BicycleGAN), G_A / G_B "
             "(CycleGAN), E (BicycleGAN), D, D_A, D_B, D2, F (optional: for fine-tuning).")] = None,
    checkpoint_dir: Annotated[Optional[Path], typer.Option(
        file_okay=False, help="Read every <epoch>_net_<NAME>.pth of this folder (the authors' checkpoints dir).")] = None,
    epoch: str = typer.Option("latest", help="With --checkpoint-dir: the file prefix (latest, 200, ...)."),
    net_g: Optional[str] = typer.Option(None, "--netG", help="unet_256 | unet_128 | resnet_9blocks | resnet_6blocks."),
    ngf: int = typer.Option(64, "--ngf"),
    norm: Optional[str] = typer.Option(None, "--norm", help="batch | instance | none (pix2pix: batch; others: instance)."),
    dropout: Optional[bool] = typer.Option(None, "--dropout/--no-dropout",
                                           help="Dropout in G (default: on for pix2pix, off for the others)."),
    net_d: Optional[str] = typer.Option(None, "--netD", help="basic | n_layers | pixel; BicycleGAN basic_256_multi."),
    ndf: int = typer.Option(64, "--ndf"),
    n_layers_d: int = typer.Option(3, "--n-layers-D", help="With --netD n_layers."),
    num_ds: int = typer.Option(2, "--num-Ds", help="BicycleGAN: scales of each D."),
    nz: int = typer.Option(8, "--nz", help="BicycleGAN: latent size."),
    where_add: str = typer.Option("all", "--where-add", help="BicycleGAN: input | all."),
    net_e: str = typer.Option("resnet_256", "--netE", help="BicycleGAN: resnet_256 | resnet_128 | conv_256 | conv_128."),
    nef: int = typer.Option(64, "--nef", help="BicycleGAN: encoder width."),
    no_antialias: bool = typer.Option(False, "--no-antialias", help="CUT: trained with --no_antialias."),
    no_antialias_up: bool = typer.Option(False, "--no-antialias-up", help="CUT: trained with --no_antialias_up."),
    image_size: int = typer.Option(256, "--image-size", help="The authors' crop_size."),
) -> None:
    """Import the authors' published checkpoints into a model folder that translate-folder,
    translate@<method> and train.init_from read like a trained one."""
    from pipeline.published.importer import AuthorsOptions, import_checkpoint as run
    from pipeline.published.pth import CheckpointRefused, KeyMismatch

    with domain_errors(ValueError, FileNotFoundError, CheckpointRefused, KeyMismatch):
        options = AuthorsOptions(method=method, netG=net_g, ngf=ngf, norm=norm, dropout=dropout, netD=net_d, ndf=ndf,
                                 n_layers_D=n_layers_d, num_Ds=num_ds, nz=nz, where_add=where_add, netE=net_e,
                                 nef=nef, no_antialias=no_antialias, no_antialias_up=no_antialias_up,
                                 image_size=image_size)
        record = run(options, _files(net or [], checkpoint_dir, epoch, method), out_dir)
    sources = ", ".join(f"{name} <- {entry['path']}" for name, entry in record["files"].items())
    typer.echo(f"imported {sources} into {out_dir}"
               + (f"; initialised afresh (not in the files): {', '.join(record['fresh'])}" if record["fresh"] else ""))
