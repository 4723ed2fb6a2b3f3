"""User commands `ablate` (queue or run one study's DVC experiments) and `ablation-report`
(read `dvc exp show --json`; write --out markdown and --json-out with the raw numbers)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from stages.common import ParamsOption, domain_errors, read_params

log = logging.getLogger("stages.ablate")


def ablate(
    study: Annotated[str, typer.Argument(help="A study of pipeline.ablations.PRESETS, e.g. pix2pix_loss.")],
    budget: str = typer.Option("default", help="default | small (fewer steps, for every row)."),
    queue: bool = typer.Option(True, help="Queue the rows and start the queue; --no-queue runs them one "
                                          "after another in the workspace."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Queue workers (dvc queue start -j)."),
    target: Annotated[list[str] | None, typer.Option(help="Stages to reproduce per row, e.g. "
                                                          "evaluate@cyclegan (default: the whole pipeline).")] = None,
    dry_run: bool = typer.Option(False, help="Print the commands without running them."),
    seeds: int = typer.Option(0, help="Repeat each row with N training seeds (<study>-<row>-seed<k>)."),
    params: Path = ParamsOption,
) -> None:
    """Run one of the papers' ablations as DVC experiments named <study>-<row>."""
    from pipeline.experiments import run_study

    with domain_errors(ValueError, RuntimeError, OSError):
        commands = run_study(study, read_params(params), params, budget=budget, queue=queue, jobs=jobs,
                             targets=tuple(target or ()), dry_run=dry_run, seeds=seeds)
    if dry_run:
        typer.echo("\n".join(" ".join(command) for command in commands))
    elif queue:
        log.info("queued; follow with `dvc queue status` / `dvc queue logs <name>`, then `python -m stages "
                 "ablation-report %s%s%s`", study, "" if budget == "default" else f" --budget {budget}",
                 f" --seeds {seeds}" if seeds else "")


def ablation_report(
    study: Annotated[str, typer.Argument(help="A study name, or all.")] = "all",
    out: Path = typer.Option(Path("reports/ablations.md"), help="The markdown tables."),
    json_out: Path = typer.Option(Path("reports/ablations.json"), help="The numbers behind them."),
    budget: str = typer.Option("default", help="The budget the experiments ran with."),
    all_commits: bool = typer.Option(False, help="Look for experiments of every commit (dvc exp show -A), "
                                                 "not only those based on HEAD."),
    tag_runs_: bool = typer.Option(True, "--tag-runs/--no-tag-runs",
                                   help="Tag each row's MLflow run with its study (ablation.<study> = row)."),
    seeds: int = typer.Option(0, help="The rows' seeds (ablate --seeds): tables of mean ± std and n."),
    params: Path = ParamsOption,
) -> None:
    """Tables of the papers' ablations from the DVC experiments that ran them."""
    from pipeline.experiments import write_ablation_report

    with domain_errors(ValueError, RuntimeError, OSError):
        write_ablation_report(study, read_params(params), out=out, json_out=json_out, budget=budget,
                              all_commits=all_commits, tag=tag_runs_, seeds=seeds)
