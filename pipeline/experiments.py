"""Running one study's DVC experiments (`ablate`) and tabulating the experiments that ran it
(`ablation-report`): the subprocess side of pipeline.ablations."""
from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any

from pipeline.ablations import (PRESETS, as_json, dvc_commands, parse_exp_show, provenance, row_run_tags, study_for,
                                study_table, study_tag)
from pipeline.config import Params
from pipeline.io import atomic_file, write_json
from pipeline.report import markdown_table
from pipeline.report_sections import read_ablations
from pipeline.seeds import TEST, seeded_commands, seeded_json, seeded_section
from pipeline.tracking import repo_root, tag_runs

log = logging.getLogger(__name__)


def _run(command: list[str], root: Path) -> None:
    log.info("$ %s", " ".join(command))
    done = subprocess.run(command, cwd=root)  # output streams to the terminal
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} exited with {done.returncode}: {' '.join(command)}")


def run_study(study: str, params: Params, params_path: Path, *, budget: str, queue: bool, jobs: int,
              targets: tuple[str, ...], dry_run: bool, seeds: int = 0) -> list[list[str]]:
    """Queue (or, without `queue`, run one after another in the workspace) the DVC experiments of
    one study's rows, or with `seeds` of each row for that many training seeds; returns the
    commands, which `dry_run` only returns."""
    chosen = study_for(study, params)
    commands = (seeded_commands(chosen, params, seeds, budget=budget, queue=queue, jobs=jobs, targets=targets)
                if seeds else dvc_commands(chosen, params, budget=budget, queue=queue, jobs=jobs, targets=targets))
    if dry_run:
        return commands
    # in the workspace each run leaves its params in params.yaml: put the user's file back after
    saved = params_path.read_bytes() if not queue else None
    try:
        for command in commands:
            _run(command, repo_root())
    finally:
        if saved is not None and params_path.read_bytes() != saved:
            params_path.write_bytes(saved)
            log.info("restored %s; the workspace outputs are the last row's (dvc exp apply to pick one)", params_path)
    return commands


def attach_run_ids(experiments: list[dict], records: dict[str, str], root: Path) -> None:
    """Give each finished experiment `run_ids` ({metrics file: MLflow run id}), read from the record
    beside each metrics file (`records`: metrics file -> record file) as the experiment's commit
    holds it: the metrics files hold scores only, and `dvc exp show` shows nothing else."""
    for exp in experiments:
        if exp.get("status") != "success" or not exp.get("rev"):
            continue
        found = {}
        for metrics_file, record_file in records.items():
            shown = subprocess.run(["git", "show", f"{exp['rev']}:{record_file}"], cwd=root, capture_output=True,
                                   text=True)
            if shown.returncode != 0:  # an experiment of an older layout, or of another method
                continue
            try:
                run_id = json.loads(shown.stdout).get("mlflow_run_id")
            except (json.JSONDecodeError, AttributeError):
                continue
            if run_id:
                found[metrics_file] = run_id
        exp["run_ids"] = found


def merged_records(earlier: dict[str, dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`earlier` (study name -> record, from reports/ablations.json) with each of `records` in its
    study's place where it has a finished row or the study had no record: a study run elsewhere,
    whose experiments this repository does not hold, keeps its table."""
    merged = dict(earlier)
    for record in records:
        if record["name"] not in merged or any(row["status"] == "success" for row in record["rows"]):
            merged[record["name"]] = record
    return merged


def study_section(record: dict[str, Any]) -> list[str]:
    """One one-seed study's section of reports/ablations.md: provenance, caption and table."""
    return [f"## {record['title']} ({record['paper_table']})", "", provenance(record), "", record["caption"], "",
            markdown_table(study_table(record)), ""]


def records_markdown(records: dict[str, dict[str, Any]]) -> str:
    """reports/ablations.md: one section per study record, seeded (mean ± std, n, orderings) or not."""
    lines = ["# Ablations", "",
             "DVC experiments `<study>-[<budget>-]<row>[-seed<k>]`; \"not run\", \"queued\" or \"failed\" where "
             f"no finished experiment was found. Orderings over seeds decided by {TEST}.", ""]
    for record in records.values():
        lines += seeded_section(record) if record.get("seeds") else study_section(record)
    return "\n".join(lines).rstrip() + "\n"


def _write_merged(out: Path, json_out: Path, records: list[dict[str, Any]]) -> None:
    merged = merged_records(read_ablations(json_out), records)
    with atomic_file(out) as tmp:
        tmp.write_text(records_markdown(merged))
    write_json(json_out, merged)


def write_ablation_report(study: str, params: Params, *, out: Path, json_out: Path, budget: str, all_commits: bool,
                          tag: bool, seeds: int = 0) -> int:
    """The markdown tables (`out`) and their numbers (`json_out`) of one study, or of every study for
    "all", from `dvc exp show --json`; with `seeds`, over that many seeds per row (mean ± std, n,
    and the papers' orderings tested); with `tag`, each row's MLflow run gets its study's tag.
    Returns how many experiments were found."""
    studies = [study_for(name, params) for name in (PRESETS if study == "all" else [study])]
    command = ["dvc", "exp", "show", "--json", *(["-A"] if all_commits else [])]
    shown = subprocess.run(command, cwd=repo_root(), capture_output=True, text=True)
    if shown.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {shown.returncode}: {shown.stderr.strip()}")
    try:
        experiments = parse_exp_show(shown.stdout)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{' '.join(command)} printed no JSON ({exc})") from None
    if not experiments and not all_commits:
        # `dvc exp show` lists only the experiments based on HEAD: a commit made after queuing hides them
        log.warning("no DVC experiment is based on HEAD; experiments run before HEAD moved are found "
                    "with --all-commits")
    attach_run_ids(experiments, {f: r for s in studies for f, r in s.metrics_files.items()}, repo_root())
    if seeds:
        records = [seeded_json(s, experiments, params, seeds, budget) for s in studies]
        _write_merged(out, json_out, records)
        log.info("wrote %s and %s (%d experiments found)", out, json_out, len(experiments))
        if tag:  # a seed that reused an earlier run (the baseline's params and seed) gets the tag too
            runs: dict[str, dict[str, str]] = {}
            for study, record in zip(studies, records):
                for row in record["rows"]:
                    for run_id in row["mlflow_run_ids"]:
                        runs.setdefault(run_id, {})[study_tag(study, budget)] = row["label"]
            if runs:
                log.info("tagged %d of %d MLflow runs with their study rows", tag_runs(runs), len(runs))
        return len(experiments)
    _write_merged(out, json_out, [as_json(s, experiments, budget) for s in studies])
    log.info("wrote %s and %s (%d experiments found)", out, json_out, len(experiments))
    if tag:  # rows that reused an earlier run get the study's tag too, for the MLflow compare view
        runs = row_run_tags(studies, experiments, budget)
        if runs:
            log.info("tagged %d of %d MLflow runs with their study rows", tag_runs(runs), len(runs))
    return len(experiments)
