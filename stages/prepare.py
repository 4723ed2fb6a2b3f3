"""DVC stage `prepare`: build the raw data set (--out-dir) from params `data`: the embedded street
scenes, or a description of a user's folder (CelebA, Cityscapes, pix2pix or CycleGAN folders, a
plain folder of images); also a contact sheet (--sheet) to look at."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from stages.common import ParamsOption, domain_errors, read_params

log = logging.getLogger("stages.prepare")


def prepare(
    out_dir: Annotated[Path, typer.Option(help="Raw data set folder (holds layout.json).")],
    sheet: Annotated[Path, typer.Option(help="Contact sheet PNG (label | photo pairs).")],
    params: Path = ParamsOption,
) -> None:
    """Generate or locate the raw data set."""
    from pipeline.data.sources import adapters, layouts as sources
    from pipeline.data.streets import scenes as streets
    from pipeline.io import atomic_dir

    cfg = read_params(params)
    with domain_errors(FileNotFoundError, ValueError), atomic_dir(out_dir) as tmp:
        if cfg.data.source == "streets":
            streets.write_dataset(tmp / "streets", cfg.data.n_images, cfg.image_size, cfg.seed, cfg.data.workers,
                                  cfg.data.styles)
            scenes = [streets.render_scene(cfg.seed, i, cfg.image_size, cfg.data.styles)
                      for i in range(min(16, cfg.data.n_images))]
            sheet.parent.mkdir(parents=True, exist_ok=True)
            streets.contact_sheet(scenes, sheet)
            sources.write_layout(tmp, sources.streets_layout())
        else:
            adapters.prepare_real(cfg.data, tmp, sheet)
    log.info("raw data set ready in %s", out_dir)
