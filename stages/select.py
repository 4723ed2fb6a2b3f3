"""DVC stage `select` (opt in, select.enabled): for each method, its kept checkpoints and final one
ranked on the val split of --data-dir, and the test scores of the final and the val-selected one,
into --out-dir/<method>.json; a switched-off selection writes why."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.common import ParamsOption, domain_errors, read_params


def select(
    data_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Curated data set.")],
    models_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="The train stages' outputs.")],
    segmenter_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Output of train_segmenter.")],
    out_dir: Annotated[Path, typer.Option(help="One record per method (JSON).")],
    params: Path = ParamsOption,
) -> None:
    """Choose each method's checkpoint on the val split (never on test)."""
    from pipeline.io import atomic_dir
    from pipeline.models import METHODS
    from pipeline.selection import select_checkpoint

    cfg = read_params(params)
    with domain_errors(ValueError, FileNotFoundError, RuntimeError), atomic_dir(out_dir) as tmp:
        for method in METHODS:
            select_checkpoint(method, data_dir, models_dir / method, segmenter_dir=segmenter_dir,
                              out=tmp / f"{method}.json", params=cfg)
