"""DVC stage `curate`: filter, check, split and resize the raw data set (--raw-dir) into the
compact store (--out-dir); writes data statistics as DVC metrics (--summary)."""
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
    summary: Annotated[Path, typer.Option(help="Curation counts and class coverage (JSON metrics).")],
    params: Path = ParamsOption,
) -> None:
    """Curate the raw data set into manifest.csv, rejects.csv and per-split uint8 arrays."""
    from pipeline.data.curate import curate as run_curate
    from pipeline.data.sources import read_layout
    from pipeline.data.stats import data_summary
    from pipeline.io import write_json

    cfg = read_params(params)
    with domain_errors(FileNotFoundError, KeyError, ValueError):
        layout = read_layout(raw_dir)
        result = run_curate(layout["images"], out_dir, cfg.curate, cfg.image_size, cfg.seed,
                            labels_dir=layout["labels"], attr_path=layout["attributes"],
                            partition_path=layout["partition"])
    write_json(summary, {"curation": dataclasses.asdict(result), **data_summary(out_dir)})
    log.info("curated %s", result)
