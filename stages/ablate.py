"""User commands `ablate` (queue or run one study's DVC experiments) and `ablation-report`
(read `dvc exp show --json`; write --out markdown and --json-out with the raw numbers)."""
from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from stages.common import ParamsOption, domain_errors, read_params

log = logging.getLogger("stages.ablate")


def _run(command: list[str], root: Path) -> None:
    log.info("$ %s", " ".join(command))
    done = subprocess.run(command, cwd=root)  # output streams to the terminal
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} exited with {done.returncode}: {' '.join(command)}")


def ablate(
    study: Annotated[str, typer.Argument(help="cyclegan_table4 | pix2pix_loss | pix2pix_generator | pix2pix_patch")],
    budget: str = typer.Option("default", help="default | small (fewer steps, for every row)."),
    queue: bool = typer.Option(True, help="Queue the rows and start the queue; --no-queue runs them one "
                                          "after another in the workspace."),
    jobs: int = typer.Option(1, help="Queue workers (dvc queue start -j)."),
    target: Annotated[list[str] | None, typer.Option(help="Stages to reproduce per row, e.g. "
                                                          "evaluate@cyclegan (default: the whole pipeline).")] = None,
    dry_run: bool = typer.Option(False, help="Print the commands without running them."),
    params: Path = ParamsOption,
) -> None:
    """Run one of the papers' ablations as DVC experiments named <study>-<row>."""
    from pipeline.ablations import dvc_commands, study_for
    from pipeline.tracking import repo_root

    cfg = read_params(params)
    root = repo_root()
    with domain_errors(ValueError, RuntimeError, OSError):
        commands = dvc_commands(study_for(study, cfg), cfg, budget=budget, queue=queue, jobs=jobs,
                                targets=tuple(target or ()))
        if dry_run:
            for command in commands:
                typer.echo(" ".join(command))
            return
        # in the workspace each run leaves its params in params.yaml: put the user's file back after
        saved = params.read_bytes() if not queue else None
        try:
            for command in commands:
                _run(command, root)
        finally:
            if saved is not None and params.read_bytes() != saved:
                params.write_bytes(saved)
                log.info("restored %s; the workspace outputs are the last row's (dvc exp apply to pick one)",
                         params)
    if queue:
        log.info("queued; follow with `dvc queue status` / `dvc queue logs <name>`, then "
                 "`python -m stages ablation-report %s%s`", study, "" if budget == "default" else f" --budget {budget}")


def ablation_report(
    study: Annotated[str, typer.Argument(help="A study name, or all.")] = "all",
    out: Path = typer.Option(Path("reports/ablations.md"), help="The markdown tables."),
    json_out: Path = typer.Option(Path("reports/ablations.json"), help="The numbers behind them."),
    budget: str = typer.Option("default", help="The budget the experiments ran with."),
    all_commits: bool = typer.Option(False, help="Look for experiments of every commit (dvc exp show -A), "
                                                 "not only those based on HEAD."),
    tag_runs_: bool = typer.Option(True, "--tag-runs/--no-tag-runs",
                                   help="Tag each row's MLflow run with its study (ablation.<study> = row)."),
    params: Path = ParamsOption,
) -> None:
    """Tables of the papers' ablations from the DVC experiments that ran them."""
    from pipeline.ablations import PRESETS, ablations_markdown, as_json, parse_exp_show, row_run_tags, study_for
    from pipeline.io import atomic_file, write_json
    from pipeline.tracking import repo_root, tag_runs

    cfg = read_params(params)
    with domain_errors(ValueError, RuntimeError, OSError):
        studies = [study_for(name, cfg) for name in (PRESETS if study == "all" else [study])]
        command = ["dvc", "exp", "show", "--json", *(["-A"] if all_commits else [])]
        shown = subprocess.run(command, cwd=repo_root(), capture_output=True, text=True)
        if shown.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {shown.returncode}: {shown.stderr.strip()}")
        try:
            experiments = parse_exp_show(shown.stdout)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{' '.join(command)} printed no JSON ({exc})") from None
        with atomic_file(out) as tmp:
            tmp.write_text(ablations_markdown(studies, experiments, budget))
        write_json(json_out, {s.name: as_json(s, experiments, budget) for s in studies})
    log.info("wrote %s and %s (%d experiments found)", out, json_out, len(experiments))
    if tag_runs_:  # rows that reused an earlier run get the study's tag too, for the MLflow compare view
        runs = row_run_tags(studies, experiments, budget)
        if runs:
            log.info("tagged %d of %d MLflow runs with their study rows", tag_runs(runs), len(runs))
