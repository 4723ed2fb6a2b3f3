"""Parity of the fast path: N training steps from one seed in fp32 eager, then with each switch
(torch.compile, bf16 autocast, channels_last, fused Adam) the device supports, compared step by
step (losses) and at the end (weights).

Every run builds the model from the same seed, seeds the global generator (dropout) the same way
and trains on the same batches, so any difference comes from the switch's arithmetic alone.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from pipeline.config import Params
from pipeline.models import build_model, method_spec
from pipeline.sampler import Batch


@dataclass(frozen=True)
class Switch:
    name: str
    devices: tuple[str, ...]  # where it runs
    precision: str  # a key of ROUNDOFF: the size of the change it makes to each result
    # the largest relative difference allowed in any logged loss of the first step (at most one
    # update in: the switch's arithmetic alone, before training's chaos amplifies it), and the base
    # bound on the run's later losses and its trained generators' outputs, which the noise floor
    # may widen
    step0_rtol: float
    rtol: float
    train: dict  # the train params that switch it on (on top of the reference's, all off)


# fp32 switches only reorder float32 arithmetic (eps 1.2e-7): the first step's losses agree to
# ~1e-7, and 1e-4 is far below what a wrong loss, pool draw or sampler gives (order 1). bf16 keeps
# 8 mantissa bits (eps 3.9e-3 per rounding): 3e-2 on the first step. Later steps are chaotic: Adam
# moves every weight by ~lr whatever its gradient's size, so a gradient that is 0 up to rounding (a
# conv bias before instance norm) takes a random +-lr step, and a GAN amplifies the rest. So the run
# is also held against a noise floor at the switch's precision: the same fp32 eager training from
# weights rounded once more at that precision (each scaled by 1 + u * roundoff, u uniform in
# [-1, 1]), whose divergence is the chaos any change of that size shows. A switch passes when its
# trajectory stays within FLOOR_FACTOR times that floor's, or within `rtol`.
FLOOR_FACTOR = 10.0
ROUNDOFF = {"fp32": 2.0 ** -24, "bf16": 2.0 ** -9}
SWITCHES: dict[str, Switch] = {s.name: s for s in (
    Switch("compile", ("cpu", "cuda"), "fp32", 1e-4, 1e-3, {"compile": "nets"}),
    Switch("channels_last", ("cpu", "cuda"), "fp32", 1e-4, 1e-3, {"channels_last": True}),
    Switch("fused_adam", ("cpu", "cuda"), "fp32", 1e-4, 1e-3, {"fused_adam": True}),
    Switch("bf16", ("cpu", "cuda"), "bf16", 3e-2, 3e-2, {"amp": "bf16"}),
)}
# every switch off; the CPU flags on, so that a switch's own param turns it on on any device
REFERENCE_TRAIN = {"amp": "none", "channels_last": False, "fused_adam": False, "compile": "none",
                   "cpu_amp": True, "cpu_channels_last": True}


def switch_names(device: torch.device) -> list[str]:
    """The switches that run on `device`, in table order."""
    return [name for name, s in SWITCHES.items() if device.type in s.devices]


def _variant(params: Params, switches: tuple[str, ...], compile_mode: str) -> Params:
    train = dict(REFERENCE_TRAIN)
    for name in switches:
        train |= SWITCHES[name].train
    if "compile" in switches:
        train["compile_mode"] = compile_mode
    return dataclasses.replace(params, train=dataclasses.replace(params.train, **train))


def parity_batches(params: Params, method: str, steps: int, seed: int, device: torch.device) -> list[Batch]:
    """`steps` batches of smooth random images in [-1, 1] at the method's batch size (the same for every run)."""
    bs = params.schedule(method_spec(method).section).batch_size
    g = torch.Generator().manual_seed(seed)
    size = params.image_size
    out = []
    for _ in range(steps):
        coarse = torch.rand(2, bs, 3, max(size // 8, 1), max(size // 8, 1), generator=g) * 2 - 1
        smooth = torch.nn.functional.interpolate(coarse.flatten(0, 1), size=(size, size), mode="bilinear",
                                                 align_corners=False).unflatten(0, (2, bs))
        out.append(Batch(a=smooth[0].contiguous().to(device), b=smooth[1].contiguous().to(device)))
    return out


def _train(params: Params, method: str, batches: list[Batch], seed: int, device: torch.device,
           roundoff: float = 0.0):
    torch.manual_seed(seed)  # dropout draws from the global generator
    model = build_model(method, params, device, seed=seed, allow_known_wrong=True)
    if roundoff:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for net in model.networks().values():
                for p in net.parameters():
                    u = torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1
                    p.mul_((1 + u * roundoff).to(p.device, p.dtype))
    losses = []
    for batch in batches:
        step = model.train_step(batch)
        losses.append({k: float(v) for k, v in step.items()})
    weights = {name: torch.cat([p.detach().float().flatten().cpu() for p in net.parameters()])
               for name, net in model.networks().items()}
    probe = batches[0]
    outputs = {d: model.translate(probe.a if d == "a_to_b" else probe.b, d).float().cpu()
               for d in model.directions()}
    return losses, weights, outputs


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-2)  # a loss near 0 is judged by its absolute difference


def _compare(run: tuple, ref: tuple) -> dict:
    (losses, weights, outputs), (ref_losses, ref_weights, ref_outputs) = run, ref
    per_step = [{k: {"abs": abs(row[k] - ref[k]), "rel": _rel(row[k], ref[k])} for k in ref}
                for row, ref in zip(losses, ref_losses)]
    return {
        "per_step": per_step,
        "step0_loss_rel_diff": max(d["rel"] for d in per_step[0].values()),
        "max_loss_rel_diff": max(d["rel"] for row in per_step for d in row.values()),
        "weights_rel_diff": {name: float((weights[name] - w).norm() / w.norm().clamp_min(1e-12))
                             for name, w in ref_weights.items()},
        # what the trained generators make of the first batch: judged instead of the weights, which
        # include parameters the outputs do not depend on (conv biases before instance norm)
        "outputs_rel_diff": {d: float((outputs[d] - o).norm() / o.norm().clamp_min(1e-12))
                             for d, o in ref_outputs.items()},
        "finite": all(math.isfinite(v) for row in losses for v in row.values()),
    }


def run_parity(params: Params, method: str, device: torch.device, *, steps: int = 5, seed: int = 0,
               switches: list[str] | None = None, combined: bool = True,
               compile_mode: str = "default") -> dict:
    """The reference run's losses, the noise floor and, per switch (and all of them together when
    `combined`), the per-step loss differences, the final weights' relative differences and whether
    they are within the switch's tolerances. ValueError for a switch the device does not run."""
    names = switch_names(device) if switches is None else list(switches)
    for name in names:
        if name not in SWITCHES:
            raise ValueError(f"unknown switch {name!r}; expected some of {list(SWITCHES)}")
        if device.type not in SWITCHES[name].devices:
            raise ValueError(f"switch {name!r} runs on {', '.join(SWITCHES[name].devices)} only, not {device.type}")
    batches = parity_batches(params, method, steps, seed, device)
    reference = _variant(params, (), compile_mode)
    ref = _train(reference, method, batches, seed, device)
    precisions = {SWITCHES[n].precision for n in names}
    ref_losses = ref[0]
    floors = {prec: _compare(_train(reference, method, batches, seed, device, roundoff=ROUNDOFF[prec]), ref)
              for prec in ROUNDOFF if prec in precisions}
    variants = [(name,) for name in names] + ([tuple(names)] if combined and len(names) > 1 else [])
    results = []
    for combo in variants:
        diff = _compare(_train(_variant(params, combo, compile_mode), method, batches, seed, device), ref)
        floor = floors["bf16" if any(SWITCHES[n].precision == "bf16" for n in combo) else "fp32"]
        base = max(SWITCHES[n].rtol for n in combo)
        step0_rtol = max(SWITCHES[n].step0_rtol for n in combo)
        loss_rtol = max(base, FLOOR_FACTOR * floor["max_loss_rel_diff"])
        output_rtol = max(base, FLOOR_FACTOR * max(floor["outputs_rel_diff"].values()))
        passed = (diff["finite"] and diff["step0_loss_rel_diff"] <= step0_rtol
                  and diff["max_loss_rel_diff"] <= loss_rtol and max(diff["outputs_rel_diff"].values()) <= output_rtol)
        results.append({"switches": list(combo), "step0_rtol": step0_rtol, "loss_rtol": loss_rtol,
                        "output_rtol": output_rtol, **diff, "passed": passed})
    return {"method": method, "device": str(device), "torch": torch.__version__, "steps": steps, "seed": seed,
            "image_size": params.image_size, "compile_mode": compile_mode, "floor_factor": FLOOR_FACTOR,
            "reference": {"train": REFERENCE_TRAIN, "losses": ref_losses},
            "floors": {prec: {"roundoff": ROUNDOFF[prec], **f} for prec, f in floors.items()},
            "variants": results}


def parity_table(result: dict) -> str:
    """The human-readable summary of run_parity's result."""
    def row(label: str, d: dict, tols: tuple[str, str, str], verdict: str) -> str:
        return (f"{label:<30} {d['step0_loss_rel_diff']:>9.1e} {tols[0]:>6} {d['max_loss_rel_diff']:>9.1e} "
                f"{tols[1]:>6} {max(d['outputs_rel_diff'].values()):>9.1e} {tols[2]:>6} "
                f"{max(d['weights_rel_diff'].values()):>9.1e}  "
                f"{verdict}")

    lines = [f"{result['method']} on {result['device']}, {result['steps']} steps, seed {result['seed']}, "
             f"{result['image_size']} px, torch {result['torch']}: relative differences to fp32 eager",
             f"{'run':<30} {'step-0':>9} {'tol':>6} {'losses':>9} {'tol':>6} {'outputs':>9} {'tol':>6} "
             f"{'weights':>9}  result",
             *(row(f"floor: weights x (1+u {f['roundoff']:.0e})", f, ("", "", ""), f"{prec} noise floor")
               for prec, f in result["floors"].items())]
    for v in result["variants"]:
        tols = (f"{v['step0_rtol']:.0e}", f"{v['loss_rtol']:.0e}", f"{v['output_rtol']:.0e}")
        lines.append(row("+".join(v["switches"]), v, tols, "ok" if v["passed"] else "OUT OF TOLERANCE"))
    return "\n".join(lines)
