"""Benchmarks that print figures: training step times, images/s, FLOPs, MFU and peak memory for the
papers' networks (named cases that line up with a timing of the authors' code) and the default
params, and the street-scene generator's images/s. Speed is measured here, never asserted in tests."""
from __future__ import annotations

import dataclasses
import resource
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from pipeline.config import Params
from pipeline.models import METHODS, build_model, method_spec
from pipeline.sampler import BatchSampler, SamplerSpec, placed_sampler, training_arrays

PAPER_LOAD = 286 / 256  # the papers resize to 286, then crop 256


def paper_params(base: Params, image_size: int) -> Params:
    """The papers' architectures at `image_size` (each method's `at_paper_size`: ngf/ndf 64,
    unet_256 / resnet_9blocks, their batches), loaded at the papers' 286/256 and cropped."""
    return dataclasses.replace(
        base, image_size=image_size,
        train=dataclasses.replace(base.train, load_size=round(image_size * PAPER_LOAD)),
        **{spec.section: spec.at_paper_size(spec.config(base), image_size) for spec in METHODS.values()})


@dataclass(frozen=True)
class Case:
    """One benchmark case: a method with the papers' networks at `image_size` and `batch_size`."""
    tag: str
    method: str
    image_size: int
    batch_size: int
    top: dict = field(default_factory=dict)  # top-level params (loss weights) the case sets

    def params(self, base: Params) -> Params:
        p = paper_params(base, self.image_size)
        section = method_spec(self.method).section
        return dataclasses.replace(p, **{section: dataclasses.replace(getattr(p, section), batch_size=self.batch_size)},
                                   **self.top)


_IDT = {"lambda_idt": 0.5}  # the CycleGAN paper's identity weight for photo sets (our default task uses 0)
# The tags of issue-tracker timings of the authors' code: GPU cases at 256 px, CPU cases at the sizes
# the default run trains at
CASES: dict[str, Case] = {c.tag: c for c in (
    Case("cyclegan_bs1", "cyclegan", 256, 1, _IDT), Case("cyclegan_bs4", "cyclegan", 256, 4, _IDT),
    Case("cyclegan_bs8", "cyclegan", 256, 8, _IDT),
    Case("pix2pix_bs1", "pix2pix", 256, 1), Case("pix2pix_bs4", "pix2pix", 256, 4),
    Case("pix2pix_bs8", "pix2pix", 256, 8),
    Case("bicyclegan_bs2", "bicyclegan", 256, 2), Case("bicyclegan_bs8", "bicyclegan", 256, 8),
    Case("cpu_cyclegan_r6_64", "cyclegan", 64, 1, _IDT),
    Case("cpu_pix2pix_u128_128", "pix2pix", 128, 1),
    Case("cpu_bicyclegan_u128_128_bs2", "bicyclegan", 128, 2),
)}

# Dense (no sparsity) peak FLOP/s per device, by a substring of torch.cuda.get_device_name, most
# specific first: (bf16 tensor core, tf32 tensor core, fp32 non-tensor). From the vendors' data sheets.
PEAK_FLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"bf16": 989e12, "tf32": 495e12, "fp32": 67e12}),
    ("H100 PCIe", {"bf16": 756e12, "tf32": 378e12, "fp32": 51e12}),
    ("H100", {"bf16": 989e12, "tf32": 495e12, "fp32": 67e12}),  # SXM
    ("A100", {"bf16": 312e12, "tf32": 156e12, "fp32": 19.5e12}),
    ("L4", {"bf16": 121e12, "tf32": 60e12, "fp32": 30e12}),
)


def select_cases(cases: str, methods: str, params: Params, device: torch.device) -> list[tuple[str, str, Params]]:
    """(tag, method, params) per case of `cases` (comma-separated tags of CASES, `default`: each method
    at `params`, `gpu`: the 256 px tags, `cpu`: the cpu_ tags, `auto`: default plus gpu on CUDA, plus
    cpu elsewhere), kept to `methods` (comma-separated, or `all`). ValueError for an unknown name."""
    groups = {"gpu": [t for t in CASES if not t.startswith("cpu_")], "cpu": [t for t in CASES if t.startswith("cpu_")]}
    names = cases.split(",") if cases != "auto" else ["default", "gpu" if device.type == "cuda" else "cpu"]
    runs = []
    for name in names:
        if name == "default":
            runs += [(f"default_{m}", m, params) for m in METHODS]
        elif name in groups or name in CASES:
            runs += [(t, CASES[t].method, CASES[t].params(params)) for t in groups.get(name, [name])]
        else:
            raise ValueError(f"unknown case {name!r}; expected auto, default, gpu, cpu or one of {list(CASES)}")
    wanted = set(METHODS) if methods == "all" else set(methods.split(","))
    return [run for run in runs if run[1] in wanted]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def peak_flops(device: torch.device, precision: str) -> float | None:
    """The device's dense peak for `precision` (bf16 | tf32 | fp32), or None when it is not in PEAK_FLOPS (CPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peaks[precision] for key, peaks in PEAK_FLOPS if key in name), None)


def switches(params: Params, device: torch.device) -> dict[str, Any]:
    """Every fast-path param as set, and what is in effect on `device`."""
    t = params.train
    cuda = device.type == "cuda"
    return {"amp": t.amp, "channels_last": t.channels_last, "cpu_amp": t.cpu_amp,
            "cpu_channels_last": t.cpu_channels_last, "fused_adam": t.fused_adam, "compile": t.compile,
            "compile_mode": t.compile_mode, "threads": torch.get_num_threads(),
            "in_effect": {"bf16": t.amp == "bf16" and (cuda or t.cpu_amp),
                          "channels_last": t.channels_last and (cuda or t.cpu_channels_last),
                          "fused_adam": t.fused_adam, "compile": t.compile == "nets"}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "CUDA max allocated"
    # the process's peak RSS (KiB on Linux): it never falls, so later cases include earlier ones
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"


def _sampler(params: Params, method: str, device: torch.device, curated: Path | None) -> tuple[BatchSampler, str]:
    spec = method_spec(method)
    bs = params.schedule(spec.section).batch_size
    if curated is not None:
        data = training_arrays(curated, "train", method, spec.paired)
        a, b, paired, labels, source = data.a, data.b, data.paired, data.a_is_labels, str(curated)
    else:
        rng = np.random.default_rng(0)
        shape = (max(2 * bs, 16), params.train.load_size, params.train.load_size, 3)
        a, b = rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 256, shape, dtype=np.uint8)
        paired, labels, source = True, False, "random uint8 arrays (no curated store given)"
    sampler_spec = SamplerSpec(image_size=params.image_size, load_size=params.train.load_size, batch_size=bs,
                               flip=params.train.flip, seed=0, paired=spec.paired, data_paired=paired,
                               a_is_labels=labels)
    return placed_sampler(a, b, sampler_spec, device, params.train.device_data_fraction), source


def count_flops(params: Params, method: str, device: torch.device, batch, model=None) -> int:
    """FLOPs of one training step (forward, backward; matmuls and convolutions) by torch's flop counter,
    on `model` when it is eager, else on an eager copy (compiled code hides its ops from the counter)."""
    if model is None or params.train.compile != "none":
        eager = dataclasses.replace(params, train=dataclasses.replace(params.train, compile="none"))
        model = build_model(method, eager, device, seed=0)
    with FlopCounterMode(display=False) as counter:
        model.train_step(batch)
    return int(counter.get_total_flops())


def bench_case(params: Params, method: str, device: torch.device, *, warmup: int, steps: int,
               curated: Path | None = None, tag: str = "") -> dict[str, Any]:
    """Time `method` with `params` on `device`: the median of `steps` synced steps on batches drawn
    beforehand (loading excluded), then images/s over an unsynced window of `steps` steps that draws
    each batch from the sampler (over `curated`'s train split, else random uint8 arrays)."""
    spec = method_spec(method)
    bs = params.schedule(spec.section).batch_size
    model = build_model(method, params, device, seed=0)
    sampler, source = _sampler(params, method, device, curated)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup):
        model.train_step(sampler.batch(i))
    _sync(device)
    times = []
    for i in range(steps):
        batch = sampler.batch(warmup + i)
        _sync(device)
        t0 = time.perf_counter()
        model.train_step(batch)
        _sync(device)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(steps):
        model.train_step(sampler.batch(warmup + steps + i))
    _sync(device)
    wall = time.perf_counter() - t0
    peak_mb, peak_kind = _peak_mb(device)
    flops = count_flops(params, method, device, sampler.batch(0), model)  # after the timing: one step more
    on = switches(params, device)
    precision = "bf16" if on["in_effect"]["bf16"] else ("tf32" if torch.backends.cudnn.allow_tf32 else "fp32")
    peak = peak_flops(device, precision)
    median = statistics.median(times)
    return {"tag": tag or f"{method}_{params.image_size}_bs{bs}", "method": method, "image_size": params.image_size,
            "batch_size": bs, "networks": {k: getattr(spec.config(params), k) for k in ("generator", "ngf", "ndf")
                                           if hasattr(spec.config(params), k)},
            "steps": steps, "warmup": warmup, "step_median_s": median, "step_times_s": times,
            "imgs_per_s_synced": bs / median, "imgs_per_s_unsynced_wall": steps * bs / wall, "wall_data": source,
            "data_store": str(sampler.store_device), "peak_mem_mb": peak_mb, "peak_mem_kind": peak_kind,
            "flops_per_step": flops, "mfu": None if peak is None else flops / median / peak,
            "mfu_peak": None if peak is None else {"precision": precision, "flops_per_s": peak},
            "device": device_name(device), "torch": torch.__version__, "switches": on}


def reference_params(params: Params) -> Params:
    """`params` with every fast-path switch off: fp32 eager, foreach Adam, contiguous tensors."""
    return dataclasses.replace(params, train=dataclasses.replace(
        params.train, amp="none", channels_last=False, fused_adam=False, compile="none"))


def bench_table_header() -> str:
    return (f"{'case':<30} {'size':>4} {'bs':>3} {'ms/step':>8} {'img/s':>7} {'wall img/s':>10} "
            f"{'GFLOP/step':>10} {'MFU':>6} {'peak MB':>8}  switches")


def bench_table_row(r: dict[str, Any]) -> str:
    on = [k for k, v in r["switches"]["in_effect"].items() if v]
    mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
    return (f"{r['tag']:<30} {r['image_size']:>4} {r['batch_size']:>3} {1000 * r['step_median_s']:>8.1f} "
            f"{r['imgs_per_s_synced']:>7.2f} {r['imgs_per_s_unsynced_wall']:>10.2f} {r['flops_per_step'] / 1e9:>10.1f} "
            f"{mfu:>6} {r['peak_mem_mb']:>8.0f}  {'+'.join(on) or 'fp32 eager'}")
