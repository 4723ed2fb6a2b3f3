"""One training process of the DDP tests (tests/unit/test_distributed.py), started by torchrun
(`python -m torch.distributed.run --nproc-per-node 2 -m tests.unit.ddp_worker CURATED OUT CASE...`)
or called in the test's own process as the one-process reference.

Each case trains one method through `fit` for a few steps on the tiny store and writes, per rank,
`OUT/<case>.rank<r>.pt` (every network's state) beside the case's state, loss CSV and samples.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import torch

from pipeline.distributed import Ranks, join, leave, replicate
from pipeline.models import METHODS, build_model
from pipeline.sampler import Batch, BatchSampler, SamplerSpec, domain_arrays, fixed_batch
from pipeline.tracking import NullTracker
from pipeline.training import LoopSettings, fit
from tests.conftest import tiny_params

LOOP = LoopSettings(log_every=1, sample_every=3, checkpoint_every=2, progress=False)


def _with(params, section: str, **changes):
    return dataclasses.replace(params, **{section: dataclasses.replace(getattr(params, section), **changes)})


def case_params(case: str):
    """(method, params) of a case. `*_equal`: a run with no randomness that differs across ranks,
    so that 2 ranks x half the batch match one process on the whole batch."""
    p = tiny_params()
    if case == "pix2pix_equal":  # batch norm over the global batch; dropout (per-rank noise) off
        return "pix2pix", _with(p, "pix2pix", batch_size=4, use_dropout=False, iters=3, iters_decay=3)
    if case == "cyclegan_equal":  # instance norm; no image history, whose draws are per rank
        return "cyclegan", _with(p, "cyclegan", batch_size=2, pool_size=0, iters=3, iters_decay=3)
    if case == "pix2pix":  # as trained: dropout per rank, dropout at test (samples in train mode)
        return "pix2pix", _with(p, "pix2pix", batch_size=4)
    if case == "pix2pix_local_bn":  # batch norm over each rank's share
        return "pix2pix", dataclasses.replace(_with(p, "pix2pix", batch_size=4),
                                              train=dataclasses.replace(p.train, sync_batchnorm=False))
    if case == "pix2pix_bf16":  # bf16 autocast (train.cpu_amp, off in the tests elsewhere) under DDP
        return "pix2pix", _with(p, "pix2pix", batch_size=4)
    if case == "bicyclegan":  # each rank's share of 2 halved into cVAE-GAN and cLR-GAN
        return "bicyclegan", _with(p, "bicyclegan", batch_size=4)
    if case == "cut":
        # netF_nc 32: at the tiny 8 a ReLU MLP can output zeros, whose L2 norm has no gradient (NaN)
        return "cut", _with(p, "cut", batch_size=2, netF_nc=32)
    if case.startswith("cyclegan_resume"):  # image pools and dropout: per-rank draws to resume
        return "cyclegan", _with(p, "cyclegan", batch_size=2, pool_size=2, use_dropout=True, iters=8,
                                 iters_decay=8)
    if case.startswith("fail_"):
        return "cyclegan", dataclasses.replace(_with(p, "cyclegan", batch_size=2, iters=50, iters_decay=50),
                                               train=dataclasses.replace(p.train, collective_timeout_s=5))
    raise ValueError(f"unknown case {case!r}")


class Float64Sampler:
    """The sampler's batches in float64 (the equivalence cases: see test_distributed)."""

    def __init__(self, sampler: BatchSampler):
        self.sampler, self.spec = sampler, sampler.spec

    def batch(self, step: int) -> Batch:
        batch = self.sampler.batch(step)
        return Batch(a=batch.a.double(), b=batch.b.double())


def run_case(curated: Path, out: Path, case: str, ranks: Ranks, state_name: str | None = None) -> None:
    """Train `case` on this rank, as pipeline.training does (seeds, replicas, shares), then save."""
    method, params = case_params(case)
    float64 = case.endswith("_equal")
    torch.manual_seed(params.seed + ranks.rank)
    model = build_model(method, params, ranks.device, seed=params.seed, rank=ranks.rank)
    if float64:
        for net in model.networks().values():
            net.double()  # in place: the optimisers keep their parameters
    if case == "pix2pix_bf16":
        model.amp_dtype = torch.bfloat16
    replicate(model, ranks, params.train.sync_batchnorm)
    if case == "fail_raise" and ranks.rank == 1:
        model.train_step = _failing(model.train_step, lambda: _raise("rank 1 fails on purpose at its third step"))
    if case == "fail_hang" and ranks.rank == 1:
        model.train_step = _failing(model.train_step, lambda: time.sleep(600))
    a, b = domain_arrays(curated, "train")
    spec = SamplerSpec(params.image_size, params.train.load_size, params.schedule(method).batch_size,
                       params.train.flip, params.seed, paired=METHODS[method].paired)
    folder = out / (state_name or case)
    config = {"method": method, "params": dataclasses.asdict(params), "world_size": ranks.world_size}
    sampler = BatchSampler(a, b, spec, ranks.device)
    samples = fixed_batch(curated, "val", 2, ranks.device)
    if float64:
        sampler, samples = Float64Sampler(sampler), Batch(a=samples.a.double(), b=samples.b.double())
    fit(model, sampler, params.schedule(method), LOOP, NullTracker(), config=config, state_dir=folder / "state",
        losses_csv=folder / "losses.csv", samples_dir=folder / "samples", sample_batch=samples, ranks=ranks)
    torch.save({name: net.state_dict() for name, net in model.networks().items()},
               out / f"{state_name or case}.rank{ranks.rank}.pt")


def _raise(message: str) -> None:
    raise RuntimeError(message)


def _failing(train_step, fail):
    calls = []

    def step(batch):
        calls.append(1)
        if len(calls) == 3:
            fail()
        return train_step(batch)

    return step


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)  # two ranks on two cores
    curated, out, cases = Path(argv[0]), Path(argv[1]), argv[2:]
    ranks = join("cpu", case_params(cases[0])[1].train.collective_timeout_s)
    try:
        for case in cases:
            # "<case>@<name>": the case's run under another name (a second run of the same case)
            case, _, name = case.partition("@")
            run_case(curated, out, case, ranks, name or None)
    finally:
        leave(ranks)


if __name__ == "__main__":
    main(sys.argv[1:])
