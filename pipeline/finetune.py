"""Fine-tuning: start a training from the networks of a model folder (`train.init_from`), trained
here or imported from the authors' checkpoints.

Each network the folder holds is loaded strictly into the model that params.yaml builds (so the
architecture params must be the folder's); every other network (the CycleGAN release's missing
discriminators, CUT's netF, BicycleGAN's D's) keeps its fresh initialisation, and the optimisers
start afresh. The record (folder, files' SHA-256, loaded and fresh networks) goes into the training
config, hence into the checkpoint and the MLflow run; a resumed run restores its own state and
reads the folder's weights no more.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from pipeline.checkpoint import load_exported
from pipeline.models.base import Translator

log = logging.getLogger(__name__)

# methods whose model folders hold the same networks (FastCUT is CUT with other loss settings)
SAME_NETWORKS = {"cut": {"cut", "fastcut"}, "fastcut": {"cut", "fastcut"}}
ARCHITECTURE_KEYS = ("generator", "encoder", "discriminator", "where_add", "ngf", "ndf", "nef", "norm", "use_dropout",
                     "n_layers_D", "num_D", "antialias", "netF_nc", "nce_layers")


def init_record(folder: Path, method: str) -> dict[str, Any]:
    """What a training from `folder` starts from: its method and each weights file's SHA-256.

    Raises ValueError when the folder holds another method's model, FileNotFoundError when it holds none.
    """
    config, _ = load_exported(folder)
    source = config.get("method")
    if source not in SAME_NETWORKS.get(method, {method}):
        raise ValueError(f"train.init_from {folder} holds a {source} model; {method} cannot start from it")
    files = {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).glob("*.safetensors"))}
    record = {"path": str(folder), "method": source, "sha256": files}
    if config.get("imported"):
        record["imported_from"] = {name: entry["path"] for name, entry in config["imported"]["files"].items()}
    return record


def _architecture_diff(folder_config: dict[str, Any], params_section: dict[str, Any], section: str) -> str:
    theirs = folder_config.get("params", {}).get(section, {})
    diffs = [f"{section}.{k}: folder {theirs[k]!r}, params {params_section[k]!r}" for k in ARCHITECTURE_KEYS
             if k in theirs and k in params_section and theirs[k] != params_section[k]]
    return "; ".join(diffs) or "no architecture param differs"


def load_init(model: Translator, folder: Path, section: str, params_section: dict[str, Any]) -> dict[str, list[str]]:
    """Load every network the folder holds into `model` (strict); returns {"loaded": [...], "fresh": [...]}."""
    config, weights = load_exported(folder)
    loaded, fresh = [], []
    for name, net in model.networks().items():
        if name not in weights:
            fresh.append(name)
            continue
        try:
            net.load_state_dict(weights[name], strict=True)
        except RuntimeError as exc:
            raise ValueError(f"train.init_from: {folder}/{name}.safetensors does not fit the {name} that params build "
                             f"({_architecture_diff(config, params_section, section)}): {exc}") from None
        loaded.append(name)
    if not loaded:
        raise ValueError(f"train.init_from: {folder} holds none of the networks {sorted(model.networks())}")
    log.info("initialised %s from %s; afresh: %s", ", ".join(loaded), folder, ", ".join(fresh) or "none")
    return {"loaded": loaded, "fresh": fresh}
