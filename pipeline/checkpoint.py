"""Checkpoints: the full training state (atomic, resumable) and the exported generators.

Training state holds every network, optimiser and scheduler, the model's extra state (image
pools, latent generators), the RNG states, the step and the resolved config; under DDP the
extra state and RNG states of every rank (`ranks`), as each rank draws its own. Exports are
safetensors plus a JSON config, which load without executing pickled code.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pipeline.io import atomic_file

log = logging.getLogger(__name__)

STATE_FILE = "last.pt"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: Path, *, step: int, config: dict[str, Any], networks: dict[str, torch.nn.Module],
                        optimizers: dict[str, torch.optim.Optimizer], schedulers: dict[str, Any],
                        extra: dict[str, Any], run_id: str | None, seconds: float = 0.0,
                        ranks: list[dict[str, Any]] | None = None) -> None:
    """Write the whole training state to `path` atomically (temporary file, then rename).

    `seconds`: training time spent up to `step`, over every session, so a resumed run reports the
    whole run's time and speed rather than the last session's. `ranks`: under DDP, every rank's
    {"extra": ..., "rng": ...} in rank order (`extra` and the RNG state are then rank 0's).
    """
    state = {
        "step": step,
        "seconds": float(seconds),
        "config": json.dumps(config, sort_keys=True),
        "networks": {k: v.state_dict() for k, v in networks.items()},
        "optimizers": {k: v.state_dict() for k, v in optimizers.items()},
        "schedulers": {k: v.state_dict() for k, v in schedulers.items()},
        "extra": extra,
        "rng": rng_state(),
        "run_id": run_id or "",
    }
    if ranks is not None:
        state["ranks"] = ranks
        state["extra"], state["rng"] = ranks[0]["extra"], ranks[0]["rng"]
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


@dataclass
class TrainingState:
    step: int
    config: dict[str, Any]
    raw: dict[str, Any]
    run_id: str | None
    seconds: float | None  # None in checkpoints written before the time was kept

    def matches(self, config: dict[str, Any]) -> bool:
        """Whether `config` is the one this state was saved with, compared in the JSON form the
        state keeps (a tuple param, such as CUT's nce_layers, is stored as a list)."""
        return self.config == json.loads(json.dumps(config, sort_keys=True))


def read_training_state(path: Path) -> TrainingState:
    """Load a training state (weights_only: no pickled code runs). Raises ValueError if unreadable."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file must be named, not half-used
        raise ValueError(f"{path}: unreadable training checkpoint ({type(exc).__name__}: {exc})") from exc
    return TrainingState(step=int(raw["step"]), config=json.loads(raw["config"]), raw=raw,
                         run_id=raw["run_id"] or None,
                         seconds=float(raw["seconds"]) if "seconds" in raw else None)


def restore_training_state(state: TrainingState, *, networks: dict[str, torch.nn.Module],
                           optimizers: dict[str, torch.optim.Optimizer], schedulers: dict[str, Any],
                           rank: int = 0) -> dict[str, Any]:
    """Load weights, optimiser and scheduler states and `rank`'s RNG; return `rank`'s extra state."""
    raw = state.raw
    for name, net in networks.items():
        net.load_state_dict(raw["networks"][name])
    for name, opt in optimizers.items():
        opt.load_state_dict(raw["optimizers"][name])
    for name, sched in schedulers.items():
        sched.load_state_dict(raw["schedulers"][name])
    own = raw["ranks"][rank] if "ranks" in raw else raw
    set_rng_state(own["rng"])
    return own["extra"]


def export_networks(out_dir: Path, networks: dict[str, torch.nn.Module], config: dict[str, Any]) -> None:
    """Write `<name>.safetensors` per network and `config.json` (enough to rebuild them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, net in networks.items():
        tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        with atomic_file(out_dir / f"{name}.safetensors") as tmp:
            save_file(tensors, str(tmp))
    with atomic_file(out_dir / "config.json") as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_exported(out_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """Read an export: (config, {network name: state dict})."""
    config_path = out_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{config_path}: missing; not a trained model folder")
    config = json.loads(config_path.read_text())
    weights = {p.stem: load_file(str(p)) for p in sorted(out_dir.glob("*.safetensors"))}
    if not weights:
        raise FileNotFoundError(f"{out_dir}: holds no *.safetensors weights")
    return config, weights
