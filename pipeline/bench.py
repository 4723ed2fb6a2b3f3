"""Benchmarks that print figures: training images/s and peak memory per method, and the
street-scene generator's images/s. Speed is measured here, never asserted in tests."""
from __future__ import annotations

import dataclasses
import resource
import time
from dataclasses import dataclass

import torch

from pipeline.config import Params
from pipeline.models import METHODS, build_model, method_spec
from pipeline.models.base import Batch


def paper_params(base: Params, image_size: int) -> Params:
    """The papers' architectures at `image_size` (each method's `at_paper_size`: ngf/ndf 64,
    unet_256 / resnet_9blocks, their batches)."""
    return dataclasses.replace(
        base, image_size=image_size, train=dataclasses.replace(base.train, load_size=image_size),
        **{spec.section: spec.at_paper_size(spec.config(base), image_size) for spec in METHODS.values()})


@dataclass(frozen=True)
class TrainBench:
    method: str
    image_size: int
    batch_size: int
    images_per_s: float
    ms_per_step: float
    peak_mem_mb: float
    device: str


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (KiB on Linux)


def bench_training(params: Params, method: str, device: torch.device, warmup: int, steps: int) -> TrainBench:
    """Time `steps` training steps on random batches after `warmup` steps (data loading excluded)."""
    model = build_model(method, params, device, seed=0)
    bs = params.schedule(method_spec(method).section).batch_size
    g = torch.Generator().manual_seed(0)
    shape = (bs, 3, params.image_size, params.image_size)
    batch = Batch(a=(torch.rand(shape, generator=g) * 2 - 1).to(device), b=(torch.rand(shape, generator=g) * 2 - 1).to(device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        losses = model.train_step(batch)
    float(next(iter(losses.values())))  # sync
    t0 = time.perf_counter()
    for _ in range(steps):
        losses = model.train_step(batch)
    float(next(iter(losses.values())))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    return TrainBench(method, params.image_size, bs, steps * bs / seconds, 1000 * seconds / steps,
                      _peak_mb(device), str(device))
