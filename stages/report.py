"""DVC stage `report`: reads reports/metrics, reports/losses, data/translated, data/curated (test),
data/models/*/train_summary.json and params; writes --out (markdown) and its figures in --figures-dir."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from stages.common import ParamsOption, domain_errors, read_params

log = logging.getLogger("stages.report")


def report(
    metrics_dir: Annotated[Path, typer.Option(help="The metrics JSON files (evaluate, curate).")],
    losses_dir: Annotated[Path, typer.Option(help="Per-step loss CSVs of the train stages.")],
    translated_dir: Annotated[Path, typer.Option(help="translate's output, one folder per method.")],
    curated_dir: Annotated[Path, typer.Option(help="The curated data set (its test split).")],
    models_dir: Annotated[Path, typer.Option(help="Trained models, each with train_summary.json.")],
    figures_dir: Annotated[Path, typer.Option(help="Where the report's figures go (replaced whole).")],
    contact_sheet: Annotated[Path, typer.Option(help="The data set's contact sheet (prepare).")],
    out: Annotated[Path, typer.Option(help="The markdown report.")],
    ablations: Annotated[Path | None, typer.Option(help="Ablation studies' JSON (ablation-report): those run "
                                                               "on this data set are included.")]
    = None,
    timings_dir: Annotated[Path | None, typer.Option(help="Wall-time records of the stages DVC ran.")] = None,
    selection_dir: Annotated[Path | None, typer.Option(help="select's records (val-selected checkpoints).")] = None,
    n_images: int = typer.Option(6, help="Test images per example grid."),
    params: Path = ParamsOption,
) -> None:
    """Write the results report: metric tables in the papers' layout, image grids, loss curves."""
    from pipeline.report_build import build_report
    from pipeline.tracking import git_commit, repo_root

    cfg = read_params(params)
    with domain_errors(ValueError):  # only a figures folder that would swallow the contact sheet
        build_report(metrics_dir=metrics_dir, losses_dir=losses_dir, translated_dir=translated_dir,
                     curated_dir=curated_dir, models_dir=models_dir, figures_dir=figures_dir,
                     contact_sheet=contact_sheet, out=out, params=cfg, commit=git_commit(repo_root()),
                     ablations=ablations, timings_dir=timings_dir, selection_dir=selection_dir, n_images=n_images)
