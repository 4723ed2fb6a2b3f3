"""The checkpoints a training keeps for choosing one later on the val split (`train.keep_every`):
each an exported model folder, like the final one, under `kept/step_<N>/`."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from pipeline.checkpoint import export_networks

log = logging.getLogger(__name__)

KEPT_DIR = "kept"  # in the training state folder while training, then in the model folder
STEP_KEY = "kept_step"  # what a kept folder's config.json adds to the training's config


def kept_name(step: int) -> str:
    return f"step_{step:06d}"


def keep_checkpoint(state_dir: Path, step: int, networks: dict[str, torch.nn.Module], config: dict[str, Any]) -> Path:
    """Export the networks at `step` into `state_dir/kept/step_<N>/`, loadable as a model folder."""
    folder = Path(state_dir) / KEPT_DIR / kept_name(step)
    export_networks(folder, networks, {**config, STEP_KEY: step})
    return folder


def collect_kept(state_dir: Path, out_dir: Path, config: dict[str, Any], total: int) -> list[int]:
    """Copy into `out_dir/kept/` the checkpoints this training kept: those saved with `config`
    before its last step (the state folder persists across runs, so another config's are left out)."""
    wanted = json.loads(json.dumps(config))  # as config.json holds it (tuples as lists)
    steps = []
    for folder in sorted((Path(state_dir) / KEPT_DIR).glob("step_*")):
        try:
            saved = json.loads((folder / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        step = saved.pop(STEP_KEY, None)
        if saved != wanted or not isinstance(step, int) or step >= total:
            continue
        shutil.copytree(folder, Path(out_dir) / KEPT_DIR / folder.name)
        steps.append(step)
    if steps:
        log.info("kept %d checkpoints (steps %s) for selection on the val split", len(steps), steps)
    return steps


def kept_folders(model_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of the checkpoints a model folder kept, in step order."""
    found = []
    for folder in (Path(model_dir) / KEPT_DIR).glob("step_*"):
        config = json.loads((folder / "config.json").read_text())
        found.append((int(config[STEP_KEY]), folder))
    return sorted(found)
