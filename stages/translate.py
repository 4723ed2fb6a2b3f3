"""DVC stage `translate@<method>`: translate the test split of --data-dir with the model in
--model-dir into --out-dir (or pass on its not-applicable record); and `translate-folder`, the user
command for any folder of images."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from pipeline.translated import MAX_SIDE
from stages.common import METHOD_HELP, ParamsOption, domain_errors, read_params

log = logging.getLogger("stages.translate")


def translate(
    method: Annotated[str, typer.Argument(help=METHOD_HELP)],
    data_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Curated data set.")],
    model_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Output of train@<method>.")],
    out_dir: Annotated[Path, typer.Option(help="Folder of translated PNGs.")],
    split: str = typer.Option("test", help="Which split to translate."),
    params: Path = ParamsOption,
) -> None:
    """Translate a split of the curated data set (a sampling method: several samples per input)."""
    from pipeline.device import pick_device
    from pipeline.inference import translate_method

    cfg = read_params(params)
    with domain_errors(ValueError, FileNotFoundError):
        counts = translate_method(method, data_dir, model_dir, out_dir, split=split, params=cfg,
                                  device=pick_device(cfg.train.device))
    log.info("%s: translated %s into %s", method, counts, out_dir)


def translate_folder(
    model_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="A trained model folder.")],
    input_dir: Annotated[Path, typer.Option("--input", exists=True, file_okay=False, help="Images to translate.")],
    output_dir: Annotated[Path, typer.Option("--output", help="Where the translations go (created whole).")],
    direction: str = typer.Option("a_to_b", help="a_to_b (labels -> photo) or b_to_a, where the model maps it."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    seed: int = typer.Option(0, help="Seed of the noise (dropout, latent z)."),
    max_pixels: int = typer.Option(50_000_000, help="Larger images are refused as decompression bombs."),
    max_side: int = typer.Option(MAX_SIDE, help="Longest side a ResNet generator is given, in pixels: a longer "
                                 "image is translated smaller (then resized back), so memory stays bounded."),
) -> None:
    """Translate any folder of images with a trained model; unreadable files are reported and skipped."""
    from pipeline.device import pick_device
    from pipeline.inference import load_model, translate_folder as run

    with domain_errors(ValueError, FileNotFoundError):
        dev = pick_device(device)
        done, skipped = run(load_model(model_dir, dev), input_dir, output_dir, direction=direction, device=dev,
                            max_pixels=max_pixels, seed=seed, max_side=max_side)
    for name, reason in skipped:
        typer.echo(f"skipped {input_dir / name}: {reason}", err=True)
    typer.echo(f"translated {done} images into {output_dir}" + (f"; {len(skipped)} skipped" if skipped else ""))
