"""Training on several processes: PyTorch DistributedDataParallel under PyTorch's `torchrun`.

torchrun starts one process per device and puts RANK, LOCAL_RANK, WORLD_SIZE and the rendezvous in
each one's environment. `join` makes them one process group (NCCL on CUDA, gloo on CPU) with a
collective timeout; `Ranks` then gives each rank its rows of the global batch, averages the logged
losses and gathers what rank 0 writes; `replicate` wraps a model's networks in DDP, batch norm
made global. Outside torchrun (or at one process) every call here is the single-process identity.
"""
from __future__ import annotations

import datetime
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from pipeline.config import ConfigError
from pipeline.device import pick_device
from pipeline.models.base import Translator
from pipeline.sampler import Batch

log = logging.getLogger(__name__)


def under_torchrun() -> bool:
    """Whether this process is a worker that torchrun (or another launcher of its protocol) started."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and "LOCAL_RANK" in os.environ


def is_main_process() -> bool:
    """Rank 0 of torchrun's processes, or the one process outside torchrun (no process group needed)."""
    return not under_torchrun() or int(os.environ["RANK"]) == 0


def torchrun_command(nproc_per_node: int, stage_args: list[str]) -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc-per-node N -m stages <stage_args>`:
    torch's own launcher on this node, with a rendezvous on a free local port (--standalone)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc_per_node}",
            "-m", "stages", *stage_args]


def exec_under_torchrun(nproc_per_node: int, stage_args: list[str]) -> None:
    """Replace this process by torchrun running the same stage on `nproc_per_node` processes, unless
    that is 1 or this process is already one of torchrun's workers (then return and go on here).

    exec rather than a child process: DVC, a terminal's Ctrl-C or a kill then reach torchrun
    itself, which stops every worker, and the stage's exit status is torchrun's.
    """
    if nproc_per_node <= 1 or under_torchrun():
        return
    command = torchrun_command(nproc_per_node, stage_args)
    log.info("train.nproc_per_node is %d: %s", nproc_per_node, " ".join(command))
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execv(sys.executable, command)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # the group that carries pickled objects (states to gather, the checkpoint to broadcast): gloo
    # on the CPU, also beside NCCL, whose collectives take CUDA tensors only
    objects: Any = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, exports, records and the progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def share(self, batch: Batch) -> Batch:
        """This rank's rows of the global batch: rows r*B/W .. (r+1)*B/W (B divisible by W, see
        `check_batch_split`), so that the W shares together are the one-process batch."""
        if not self.distributed:
            return batch
        size = batch.a.shape[0]
        lo, hi = self.rank * size // self.world_size, (self.rank + 1) * size // self.world_size
        return Batch(a=batch.a[lo:hi], b=batch.b[lo:hi])

    def mean_losses(self, losses: dict[str, Tensor]) -> dict[str, float]:
        """The losses averaged over the ranks (each rank's loss is a mean over its equal share, so
        this is the global batch's loss), as floats. A collective: every rank calls it at the same step."""
        if not self.distributed:
            return {name: float(value) for name, value in losses.items()}
        names = list(losses)  # the same keys in the same order on every rank: one config
        values = torch.stack([losses[name].detach().float() for name in names]).to(self.device)
        dist.all_reduce(values)
        return dict(zip(names, (values / self.world_size).tolist()))

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj` (tensors moved to the CPU) on rank 0, in rank order; None elsewhere."""
        if not self.distributed:
            return [obj]
        received: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(to_cpu(obj), received, dst=0, group=self.objects)
        return received

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (what the others pass is ignored)."""
        if not self.distributed:
            return obj
        holder = [to_cpu(obj) if self.is_main else None]
        dist.broadcast_object_list(holder, src=0, group=self.objects)
        return holder[0]


def to_cpu(obj: Any) -> Any:
    """`obj` with every tensor in it (nested in dicts, lists and tuples) moved to the CPU."""
    if isinstance(obj, Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {key: to_cpu(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(value) for value in obj)
    return obj


def join(device_name: str, timeout_s: int) -> Ranks:
    """Join torchrun's process group, each rank on its local device; a single-process Ranks outside it.

    The timeout bounds every collective: a rank that dies or hangs makes the others raise within
    it instead of waiting for ever (torchrun then stops them all and exits non-zero).
    """
    device = pick_device(device_name)
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return Ranks(device=device)
    rank, world_size, local_rank = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"train.nproc_per_node: local rank {local_rank} has no GPU of its own "
                              f"(this node has {torch.cuda.device_count()}); start at most one process per GPU")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(seconds=timeout_s)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timeout)
    objects = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else dist.group.WORLD
    log.info("rank %d of %d on %s (%s)", rank, world_size, device, backend)
    return Ranks(rank=rank, world_size=world_size, local_rank=local_rank, device=device, objects=objects)


def leave(ranks: Ranks) -> None:
    """Leave the process group `join` made (nothing outside torchrun)."""
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


def check_batch_split(batch_size: int, world_size: int, key: str, multiple: int = 1) -> None:
    """ConfigError naming `key` unless the global batch splits into `world_size` equal shares, each a
    multiple of `multiple` (2 for BicycleGAN, which halves a share into its cVAE-GAN and cLR-GAN parts)."""
    if batch_size % (world_size * multiple) == 0:
        return
    what = f"{world_size} equal shares" if multiple == 1 else f"{world_size} equal shares of a multiple of {multiple}"
    raise ConfigError(f"{key}: the global batch {batch_size} does not split into {what} (one per rank); "
                      f"use a multiple of {world_size * multiple}")


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d on the statistics of the global batch, for the CPU (gloo), where PyTorch's
    SyncBatchNorm does not run (it takes GPU tensors, and DDP refuses it in CPU modules).

    The same computation as SyncBatchNorm: the mean and the biased variance over every rank's
    rows, from one differentiable all-gather of each rank's statistics (so the backward pass sums
    each statistic's gradient over the ranks, as SyncBatchNorm's does), and the running statistics
    updated with the global mean and unbiased variance, exactly as BatchNorm2d on the whole batch.
    Outside a process group of more than one rank, or in eval mode, it is BatchNorm2d.
    """

    @classmethod
    def sharing(cls, bn: nn.BatchNorm2d) -> GlobalBatchNorm2d:
        """A GlobalBatchNorm2d holding `bn`'s own parameters and buffers (optimisers keep pointing at them)."""
        new = cls(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                  track_running_stats=bn.track_running_stats)
        for name, tensor in [*bn.named_parameters(recurse=False), *bn.named_buffers(recurse=False)]:
            setattr(new, name, tensor)
        return new.train(bn.training)

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed import _functional_collectives as funcol  # the autograd-aware collectives

        dtype = x.dtype
        # statistics in float32 at least: bf16 activations (autocast) would lose them in the sums
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        # one collective: each rank's per-channel mean, sum of squared deviations and count,
        # gathered and combined exactly (Chan et al.'s pairwise update), as SyncBatchNorm gathers
        # each rank's mean and variance; never E[x^2] - E[x]^2, which cancels in float32
        n, channels, h, w = x.shape
        local_mean = x.mean((0, 2, 3))
        local_m2 = (x - local_mean.view(1, -1, 1, 1)).square().sum((0, 2, 3))
        local = torch.stack([local_mean, local_m2, torch.full_like(local_mean, n * h * w)])  # (3, C)
        gathered = funcol.all_gather_single_autograd(local, 0, dist.group.WORLD)  # (3W, C), rank by rank
        means, m2s, counts = gathered.view(-1, 3, channels).unbind(1)  # (W, C) each
        count = counts.sum(0)  # (C,)
        mean = (means * counts).sum(0) / count
        var = (m2s.sum(0) + (counts * (means - mean).square()).sum(0)) / count  # biased
        centred = x - mean.view(1, -1, 1, 1)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - factor).add_(mean.detach() * factor)
                self.running_var.mul_(1 - factor).add_(var.detach() * (count / (count - 1)) * factor)
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out.to(dtype)


def globalise_batch_norm(net: nn.Module, device: torch.device) -> int:
    """Turn `net`'s BatchNorm2d layers into batch norm over the global batch, in place: SyncBatchNorm
    on CUDA, GlobalBatchNorm2d on the CPU; each keeps its layer's parameters and buffers. Returns how
    many layers changed."""
    changed = 0
    for name, child in net.named_children():
        if type(child) is nn.BatchNorm2d:
            if device.type == "cuda":
                replacement: nn.Module = nn.SyncBatchNorm.convert_sync_batchnorm(child)
            else:
                replacement = GlobalBatchNorm2d.sharing(child)
            setattr(net, name, replacement)
            changed += 1
        else:
            changed += globalise_batch_norm(child, device)
    return changed


def replicate(model: Translator, ranks: Ranks, sync_batchnorm: bool) -> None:
    """Wrap every network of `model` in DistributedDataParallel for its training steps (its gradients
    then average over the ranks in each backward pass), batch norm first made global unless
    `sync_batchnorm` is False. Nothing at one process.

    Each network gets its own DDP wrapper, because a GAN step updates several networks with
    optimisers of their own; the model calls a wrapper only in the passes whose backward updates
    that network (see `Replicated`). DDP broadcasts rank 0's weights when it wraps, so call this
    after any weights are loaded. Buffers are not broadcast at every forward: global batch norm
    keeps them equal on every rank, and per-rank batch norm uses batch statistics while training
    (rank 0's running statistics are the ones saved).
    """
    if not ranks.distributed:
        return
    if sync_batchnorm:
        layers = sum(globalise_batch_norm(net, ranks.device) for net in model.networks().values())
        if layers:
            log.info("%d batch-norm layers normalise over the global batch", layers)
    device_ids = [ranks.device] if ranks.device.type == "cuda" else None
    model.replicate(lambda net: DistributedDataParallel(net, device_ids=device_ids, forward_sync_buffers=False))
