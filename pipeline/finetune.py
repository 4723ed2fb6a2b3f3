"""Model folders from elsewhere in training: fine-tuning from one (`train.init_from`), or taking one
as the method's trained model (`<method>.pretrained`), e.g. imported from the authors' checkpoints.

Fine-tuning:
Each network the folder holds is loaded strictly into the model that params.yaml builds (so the
architecture params must be the folder's); every other network (the CycleGAN release's missing
discriminators, CUT's netF, BicycleGAN's D's) keeps its fresh initialisation, and the optimisers
start afresh. The record (folder, files' SHA-256, loaded and fresh networks) goes into the training
config, hence into the checkpoint and the MLflow run; a resumed run restores its own state and
reads the folder's weights no more.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from pipeline.checkpoint import load_exported
from pipeline.io import atomic_dir, sha256_of, write_json
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
    files = {p.stem: sha256_of(p) for p in sorted(Path(folder).glob("*.safetensors"))}
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


PRETRAINED_RECORD = "pretrained.json"


def use_pretrained(method: str, folder: Path, *, out_dir: Path, state_dir: Path, samples_dir: Path) -> dict[str, Any]:
    """`<method>.pretrained`: copy the model folder to `out_dir` as train@<method>'s model (with a
    train_summary.json of 0 steps naming where it came from), and leave in `state_dir` and
    `samples_dir` a record of the same, so that translate@ and evaluate@ run on it. Nothing trains."""
    config, _ = load_exported(folder)
    if config.get("method") != method:
        raise ValueError(f"{method}.pretrained: {folder} holds a {config.get('method')} model, not {method}")
    record = {"method": method, "pretrained_from": str(folder),
              "imported_from": {name: entry["path"] for name, entry in (config.get("imported") or {}).get("files", {}).items()}}
    with atomic_dir(out_dir) as tmp:
        for path in sorted(Path(folder).iterdir()):
            if path.is_file() and (path.suffix == ".safetensors" or path.name == "config.json"):
                shutil.copy2(path, tmp / path.name)
        write_json(tmp / "train_summary.json", {"steps": 0, "resumed_from": 0, "seconds": 0.0, "images_per_second": None,
                                                "device": None, "mlflow_run_id": None, **record})
    for target in (state_dir, samples_dir):
        with atomic_dir(target) as tmp:
            write_json(tmp / PRETRAINED_RECORD, record)
    log.info("%s: not trained; the model in %s is used (%s)", method, folder,
             ", ".join(f"{n} from {p}" for n, p in record["imported_from"].items()) or "trained elsewhere")
    return record
