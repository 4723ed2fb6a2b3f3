"""DVC stage `curate`: filter, check, split and resize the raw data set (--raw-dir) into the
compact store (--out-dir); writes the data statistics (--summary; counts, not scores, so no DVC metric)."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated

import typer

from stages.common import ParamsOption, domain_errors, read_params

log = logging.getLogger("stages.curate")


def curate(
    raw_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Output of prepare.")],
    out_dir: Annotated[Path, typer.Option(help="Curated store.")],
    summary: Annotated[Path, typer.Option(help="Curation counts and class coverage (JSON).")],
    params: Path = ParamsOption,
) -> None:
    """Curate the raw data set into manifest.csv, rejects.csv and per-split uint8 arrays."""
    from pipeline.data.curation.curate import curate_raw
    from pipeline.data.curation.stats import data_summary
    from pipeline.io import write_json

    cfg = read_params(params)
    with domain_errors(FileNotFoundError, KeyError, ValueError):
        result = curate_raw(raw_dir, out_dir, cfg.curate, cfg.image_size, cfg.seed)
    write_json(summary, {"curation": dataclasses.asdict(result), **data_summary(out_dir)})
    log.info("curated %s", result)
