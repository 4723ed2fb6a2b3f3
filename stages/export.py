"""`export`: a model folder's generators -> ONNX files under --out-dir, each verified in onnxruntime
against PyTorch (export.json records the sizes checked and the differences)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.common import domain_errors


def export(
    model_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="A trained or imported model folder.")],
    out_dir: Annotated[Path, typer.Option(help="Where <network>.onnx and export.json go (written whole).")],
    format: str = typer.Option("onnx", "--format", help="onnx (the one format so far)."),
) -> None:
    """Export every generator of a model folder to ONNX (dynamic batch and size; BicycleGAN: z an input)."""
    from pipeline.export import ONNX_TOLERANCE, export_model

    if format != "onnx":
        typer.echo(f"unknown format {format!r}; expected onnx", err=True)
        raise typer.Exit(code=1)
    with domain_errors(ValueError, FileNotFoundError):
        record = export_model(model_dir, out_dir)
    for name, entry in record["networks"].items():
        worst = max(c["max_abs_diff"] for c in entry["checks"])
        typer.echo(f"{out_dir / entry['file']}: inputs {', '.join(entry['inputs'])}; height and width multiples of "
                   f"{entry['size_multiple']}; onnxruntime = torch within {worst:.1e} (tolerance {ONNX_TOLERANCE})")
