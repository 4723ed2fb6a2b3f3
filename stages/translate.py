"""DVC stage `translate@<method>`: translate the test split of --data-dir with the model in
--model-dir into --out-dir (or pass on its not-applicable record); and `translate-folder`, the user
command for any folder of images."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from stages.common import ParamsOption, domain_errors, read_params

log = logging.getLogger("stages.translate")


def translate(
    method: Annotated[str, typer.Argument(help="pix2pix | cyclegan | bicyclegan")],
    data_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Curated data set.")],
    model_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Output of train@<method>.")],
    out_dir: Annotated[Path, typer.Option(help="Folder of translated PNGs.")],
    split: str = typer.Option("test", help="Which split to translate."),
    params: Path = ParamsOption,
) -> None:
    """Translate a split of the curated data set (BicycleGAN: several samples per input)."""
    from pipeline.applicability import NOT_APPLICABLE, not_applicable_record
    from pipeline.inference import load_model, translate_split
    from pipeline.io import atomic_dir, write_json
    from stages.train import pick_device

    cfg = read_params(params)
    with domain_errors(ValueError, FileNotFoundError):
        record = not_applicable_record(model_dir)
        if record is not None and record.get("method", method) != method:
            raise ValueError(f"{model_dir} holds the record of {record['method']}, not {method}")
        if record is not None:  # train@<method> did not apply: pass its record on, translate nothing
            with atomic_dir(out_dir) as tmp:
                write_json(tmp / NOT_APPLICABLE, record)
            log.warning("%s: nothing to translate: %s", method, record["reason"])
            return
        device = pick_device(cfg.train.device)
        loaded = load_model(model_dir, device)
        if loaded.method != method:
            raise ValueError(f"{model_dir} holds a {loaded.method} model, not {method}")
        counts = translate_split(loaded, data_dir, split, out_dir, batch_size=cfg.evaluate.batch_size,
                                 n_samples=cfg.bicyclegan.n_samples, seed=cfg.seed, device=device)
    log.info("%s: translated %s into %s", method, counts, out_dir)


def translate_folder(
    model_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="A trained model folder.")],
    input_dir: Annotated[Path, typer.Option("--input", exists=True, file_okay=False, help="Images to translate.")],
    output_dir: Annotated[Path, typer.Option("--output", help="Where the translations go (created whole).")],
    direction: str = typer.Option("a_to_b", help="a_to_b (labels -> photo) or b_to_a (CycleGAN, pix2pix b_to_a)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    seed: int = typer.Option(0, help="Seed of the noise (pix2pix dropout, BicycleGAN z)."),
    max_pixels: int = typer.Option(50_000_000, help="Larger images are refused as decompression bombs."),
) -> None:
    """Translate any folder of images with a trained model; unreadable files are reported and skipped."""
    from pipeline.inference import load_model, translate_folder as run
    from stages.train import pick_device

    with domain_errors(ValueError, FileNotFoundError):
        dev = pick_device(device)
        loaded = load_model(model_dir, dev)
        if loaded.method == "pix2pix" and direction != loaded.params.pix2pix.direction:
            raise ValueError(f"this pix2pix model maps {loaded.params.pix2pix.direction}, not {direction}")
        done, skipped = run(loaded, input_dir, output_dir, direction=direction, device=dev,
                            max_pixels=max_pixels, seed=seed)
    for name, reason in skipped:
        typer.echo(f"skipped {input_dir / name}: {reason}", err=True)
    typer.echo(f"translated {done} images into {output_dir}" + (f"; {len(skipped)} skipped" if skipped else ""))
