"""Reading one of the authors' .pth files into one of our networks: tensors only, every key checked.

torch.load runs with weights_only=True, so a file that needs pickled code (a whole pickled module,
an optimiser object, a custom class) is refused with the reason, never executed. The `module.`
prefix of DataParallel / DistributedDataParallel checkpoints is removed. Every key and shape is
checked against our network through the key mapping of `pipeline.published.keys`; a mismatch
names the missing, extra and mis-shaped keys. Two differences of the authors' own files are
bridged, each reported by name, as the authors' loader does (base_model.load_networks):
InstanceNorm running statistics in files from before PyTorch 0.4 (their InstanceNorm keeps none
now, so they are dropped) and a BatchNorm `num_batches_tracked` absent from such files (set to 0;
it only counts batches).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from pipeline.published.keys import authors_keys, authors_modules, legacy_renames

DDP_PREFIX = "module."
INSTANCE_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")
SHOWN = 8  # keys named per kind of mismatch; the count says how many more


class CheckpointRefused(ValueError):
    """The file cannot be read as plain tensors (pickled code, not a state dict, unreadable)."""


class KeyMismatch(ValueError):
    """The file's keys or shapes are not those of the network the options describe."""


@dataclass
class Conversion:
    """What reading one file changed, by the authors' key names: recorded in the model folder."""

    stripped_prefix: str = ""
    renamed: dict[str, str] = field(default_factory=dict)  # old authors' name -> current one
    dropped: list[str] = field(default_factory=list)  # InstanceNorm statistics of pre-0.4 files
    filled: list[str] = field(default_factory=list)  # BatchNorm counters absent from the file

    def as_dict(self) -> dict:
        return {"stripped_prefix": self.stripped_prefix, "renamed": self.renamed, "dropped": self.dropped,
                "filled": self.filled}


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of a .pth state dict; CheckpointRefused naming the file and the reason otherwise."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointRefused(
            f"{path}: refused: loading it would run pickled code, and only plain tensors are read "
            f"(torch.load weights_only=True). PyTorch says: {reason}. Save the state dict alone "
            "(torch.save(net.state_dict(), path)) where the file comes from.") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointRefused(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise CheckpointRefused(f"{path}: holds a {type(raw).__name__}, not a state dict of tensors")
    bad = [(k, type(v).__name__) for k, v in raw.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        key, kind = bad[0]
        raise CheckpointRefused(f"{path}: not a state dict of tensors: {key!r} holds a {kind}"
                                f"{f' ({len(bad)} such entries)' if len(bad) > 1 else ''}")
    return dict(raw)


def strip_parallel_prefix(state: dict[str, Tensor], conversion: Conversion) -> dict[str, Tensor]:
    """Remove DataParallel's / DDP's `module.` prefix when every key has it."""
    if state and all(k.startswith(DDP_PREFIX) for k in state):
        conversion.stripped_prefix = DDP_PREFIX
        return {k[len(DDP_PREFIX):]: v for k, v in state.items()}
    return state


def _named(keys: list[str], ours_of: dict[str, str]) -> str:
    shown = [f"{k} (ours: {ours_of[k]})" if k in ours_of and ours_of[k] != k else k for k in keys[:SHOWN]]
    more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return ", ".join(shown) + more


def _is_stale_instance_norm_stat(key: str, theirs_to_module: dict[str, nn.Module]) -> bool:
    path, _, leaf = key.rpartition(".")
    module = theirs_to_module.get(path)
    return (leaf in INSTANCE_NORM_STATS and isinstance(module, nn.InstanceNorm2d)
            and not module.track_running_stats)


def match_state_dict(net: nn.Module, state: dict[str, Tensor], source: str) -> tuple[dict[str, Tensor], Conversion]:
    """The authors' state dict `state` as a state dict of `net` (our keys); KeyMismatch otherwise.

    `source` names the file in messages.
    """
    conversion = Conversion()
    state = strip_parallel_prefix(state, conversion)
    conversion.renamed = legacy_renames(net, list(state))
    state = {conversion.renamed.get(k, k): v for k, v in state.items()}
    theirs_of = authors_keys(net)
    ours_of = {theirs: ours for ours, theirs in theirs_of.items()}
    modules = dict(net.named_modules())
    theirs_to_module = {theirs: modules[ours] for ours, theirs in authors_modules(net).items()}
    expected = net.state_dict()

    extra = [k for k in state if k not in ours_of]
    conversion.dropped = [k for k in extra if _is_stale_instance_norm_stat(k, theirs_to_module)]
    extra = [k for k in extra if k not in conversion.dropped]
    missing = [theirs_of[k] for k in expected if theirs_of[k] not in state]
    conversion.filled = [k for k in missing if k.endswith(".num_batches_tracked")]
    missing = [k for k in missing if k not in conversion.filled]
    shaped = [f"{theirs} {tuple(state[theirs].shape)}, expected {tuple(expected[ours].shape)}"
              for ours, theirs in theirs_of.items()
              if theirs in state and state[theirs].shape != expected[ours].shape]
    if missing or extra or shaped:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {_named(missing, ours_of)}")
        if extra:
            parts.append(f"extra {len(extra)}: {', '.join(extra[:SHOWN])}"
                         f"{f' and {len(extra) - SHOWN} more' if len(extra) > SHOWN else ''}")
        if shaped:
            parts.append(f"mis-shaped {len(shaped)}: {'; '.join(shaped[:SHOWN])}"
                         f"{f' and {len(shaped) - SHOWN} more' if len(shaped) > SHOWN else ''}")
        raise KeyMismatch(f"{source}: does not fit {type(net).__name__} as the options describe it "
                          f"(keys in the authors' names): {'; '.join(parts)}. Check the network options "
                          "(netG / netD / netE, ngf / ndf / nef, norm, dropout, nz, where_add, antialias) "
                          "against the ones the file was trained with.")
    ours = {}
    for key, value in expected.items():
        theirs = theirs_of[key]
        ours[key] = state[theirs].to(value.dtype) if theirs in state else torch.zeros_like(value)
    return ours, conversion


def load_authors_file(net: nn.Module, path: Path) -> Conversion:
    """Read `path` into `net` (strict: every key and shape matched); returns what was converted."""
    state, conversion = match_state_dict(net, read_state_dict(path), str(path))
    net.load_state_dict(state, strict=True)
    return conversion
