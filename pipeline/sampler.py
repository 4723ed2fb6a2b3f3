"""Training batches from the curated store, kept on the training device as uint8.

Batches are a pure function of (seed, step): which images, the random crops and the flips.
A resumed run therefore needs only its step to continue exactly where it stopped, and the GPU
never waits on a Python data loader: the store is uploaded once when it fits the stated share of
the device's memory (`store_placement`), else it stays in pinned host memory and each batch is
copied (the same batches either way).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.applicability import method_not_applicable
from pipeline.data.palette import ids_to_colour
from pipeline.data.store import load_split, read_info

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """One training batch, (B, 3, H, W) in [-1, 1] each.

    `a` is domain A (label colour maps by default), `b` domain B (photos); paired for pix2pix and
    BicycleGAN, unpaired for CycleGAN.
    """

    a: Tensor
    b: Tensor

    def to(self, device: torch.device, memory_format: torch.memory_format = torch.contiguous_format) -> Batch:
        return Batch(self.a.to(device, non_blocking=True, memory_format=memory_format),
                     self.b.to(device, non_blocking=True, memory_format=memory_format))


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8 on the CPU."""
    return images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def domain_arrays(curated: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Domain A (label maps painted in Cityscapes colours, or A images) and domain B (photos) of one
    split; in an unpaired store the two differ in length and row i of one is not row i of the other."""
    info = read_info(curated)
    if info["domain_a"] == "none":
        raise ValueError(f"{curated}: data set {info['dataset']!r} holds one domain only "
                         f"({info['domain_names'].get('b') or 'photos'}); there is nothing to translate from")
    arrays = load_split(curated, split)
    a = ids_to_colour(np.asarray(arrays.labels)) if arrays.labels is not None else np.asarray(arrays.images_a)
    return a, np.asarray(arrays.photos)


@dataclass(frozen=True)
class TrainingData:
    a: np.ndarray  # (N, S, S, 3) uint8 domain A
    b: np.ndarray  # (M, S, S, 3) uint8 domain B
    paired: bool  # row i of A and row i of B are a pair
    a_is_labels: bool  # A is label maps painted in palette colours (resized nearest, never blended)


def training_arrays(curated: Path, split: str, method: str, needs_pairs: bool) -> TrainingData:
    """Domains A and B of a split for training `method` (which learns from pairs only if `needs_pairs`).

    Raises ValueError naming the data set and the method when the method cannot learn from it
    (`method_not_applicable`: a data set of one domain, or a paired method on unpaired data).
    """
    info = read_info(curated)
    reason = method_not_applicable(info, method, needs_pairs)
    if reason is not None:
        raise ValueError(f"{curated}: {reason}")
    a, b = domain_arrays(curated, split)
    return TrainingData(a=a, b=b, paired=bool(info["paired"]), a_is_labels=info["domain_a"] == "labels")


def _resize(images: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, size, size) uint8, in chunks to bound memory."""
    out = []
    for chunk in images.split(256):
        x = chunk.permute(0, 3, 1, 2).float()
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode=mode, **({"antialias": True} if mode == "bicubic" else {}))
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def store_bytes(n_images: int, load_size: int) -> int:
    """Bytes of `n_images` resized uint8 images as the sampler keeps them (3 x load_size^2 each)."""
    return n_images * 3 * load_size * load_size


def store_placement(nbytes: int, device: torch.device, fraction: float,
                    total_bytes: int | None = None) -> tuple[torch.device, str | None]:
    """Where the sampler keeps a store of `nbytes`: on a CUDA `device` when it takes at most
    `fraction` of the device's memory (`total_bytes`, else the device's own total), else on the
    host, with the reason. A CPU device keeps it where it is."""
    if device.type != "cuda":
        return device, None
    total = total_bytes if total_bytes is not None else torch.cuda.get_device_properties(device).total_memory
    if nbytes <= fraction * total:
        return device, None
    return torch.device("cpu"), (f"the curated store's {nbytes / 2**30:.2f} GiB (resized uint8) is more than "
                                 f"train.device_data_fraction {fraction} of {device}'s {total / 2**30:.1f} GiB; "
                                 f"it stays in host memory and each batch is copied to the device")


@dataclass(frozen=True)
class SamplerSpec:
    image_size: int
    load_size: int
    batch_size: int
    flip: bool
    seed: int
    paired: bool  # draw (A[i], B[i]) pairs; False: A and B independently (CycleGAN never sees pairs)
    data_paired: bool = True  # A[i] and B[i] are a pair: unpaired draws then use disjoint halves
    a_is_labels: bool = True  # A is painted label maps: resized nearest so that colours stay palette colours


class BatchSampler:
    """Deterministic batches (A, B) for training step `step`, on `device`.

    The store lives on `store_device` (default: `device`); batches are cropped and flipped there
    and copied to `device` when the two differ, so where the store lives never changes a batch.
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, spec: SamplerSpec, device: torch.device,
                 store_device: torch.device | None = None):
        if spec.paired and not spec.data_paired:
            raise ValueError("paired batches need paired data; these domains are unpaired")
        if spec.data_paired and len(a) != len(b):
            raise ValueError(f"domain A has {len(a)} images but domain B has {len(b)}")
        if spec.paired:
            self.index_a = self.index_b = torch.arange(len(a))
        elif spec.data_paired:
            half = len(a) // 2
            if half < 1:
                raise ValueError(f"unpaired training needs at least 2 images, got {len(a)}")
            # disjoint halves: no photo's own label map is ever in the other domain
            self.index_a, self.index_b = torch.arange(0, half), torch.arange(half, 2 * half)
        else:  # truly unpaired data: every image of each domain, in independent orders
            if min(len(a), len(b)) < 1:
                raise ValueError(f"unpaired training needs images in both domains, got A {len(a)}, B {len(b)}")
            self.index_a, self.index_b = torch.arange(len(a)), torch.arange(len(b))
        self.spec = spec
        self.device = device
        self.store_device = device if store_device is None else store_device
        self._perm: dict[int, torch.Tensor] = {}
        self._perm_key: dict[int, tuple[int, int]] = {}
        # labels are resized with nearest so that every pixel stays a palette colour
        mode_a = "nearest" if spec.a_is_labels else "bicubic"
        self.a = self._place(_resize(torch.from_numpy(np.array(a)), spec.load_size, mode_a))
        self.b = self._place(_resize(torch.from_numpy(np.array(b)), spec.load_size, "bicubic"))

    def _place(self, images: torch.Tensor) -> torch.Tensor:
        if self.store_device.type == "cpu" and self.device.type == "cuda" and torch.cuda.is_available():
            return images.pin_memory()  # page-locked: the per-batch crops copy out of it without paging
        return images.to(self.store_device)

    def _indices(self, pool: torch.Tensor, step: int, stream: int) -> torch.Tensor:
        """Items step*B .. step*B+B-1 of an endless sequence of per-epoch permutations."""
        n, bs = len(pool), self.spec.batch_size
        out = []
        for pos in range(step * bs, step * bs + bs):
            epoch, offset = divmod(pos, n)
            out.append(int(pool[self._permutation(n, stream, epoch)[offset]]))
        return torch.tensor(out)

    def _permutation(self, n: int, stream: int, epoch: int) -> torch.Tensor:
        """The epoch's order, drawn once per (stream, epoch) rather than once per item."""
        key = (stream, epoch)
        if self._perm_key.get(stream) != key:
            # hash of a tuple of ints is the same in every process (no string hashing involved)
            g = torch.Generator().manual_seed(hash((self.spec.seed, stream, epoch)) & 0x7FFF_FFFF_FFFF)
            self._perm[stream], self._perm_key[stream] = torch.randperm(n, generator=g), key
        return self._perm[stream]

    def batch(self, step: int) -> Batch:
        spec = self.spec
        idx_a = self._indices(self.index_a, step, 0)
        idx_b = idx_a if spec.paired else self._indices(self.index_b, step, 1)
        g = torch.Generator().manual_seed(hash((spec.seed, 2, step)) & 0x7FFF_FFFF_FFFF)
        span = spec.load_size - spec.image_size + 1
        offsets = torch.randint(0, span, (2, spec.batch_size, 2), generator=g).tolist()
        flips = (torch.rand(2, spec.batch_size, generator=g) < 0.5).tolist()

        def crops(images: torch.Tensor, index: torch.Tensor, which: int) -> torch.Tensor:
            # a pair shares its crop and flip (which=0 for both when paired)
            parts = []
            for i, k in enumerate(index.tolist()):
                y, x = offsets[which][i]
                part = images[k, :, y:y + spec.image_size, x:x + spec.image_size]
                if spec.flip and flips[which][i]:
                    part = part.flip(-1)
                parts.append(part)
            # uint8 over the link (a quarter of float32's bytes), normalised on the training device
            return torch.stack(parts).to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)

        return Batch(a=crops(self.a, idx_a, 0), b=crops(self.b, idx_b, 0 if spec.paired else 1))


def placed_sampler(a: np.ndarray, b: np.ndarray, spec: SamplerSpec, device: torch.device,
                   fraction: float, total_bytes: int | None = None) -> BatchSampler:
    """A `BatchSampler` whose store is on `device` when it fits `fraction` of its memory
    (`store_placement`), else on the host, with one warning that says why."""
    store, reason = store_placement(store_bytes(len(a) + len(b), spec.load_size), device, fraction, total_bytes)
    if reason is not None:
        log.warning(reason)
    return BatchSampler(a, b, spec, device, store_device=store)


def fixed_batch(curated: Path, split: str, n: int, device: torch.device) -> Batch:
    """The first `n` images of a split, uncropped: the inputs of sample grids (in an unpaired store
    row i of B is not row i's target, only an example of domain B)."""
    a, b = domain_arrays(curated, split)
    n = min(n, len(a), len(b))
    if n == 0:
        raise ValueError(f"{curated}: split {split!r} is empty (domain A {len(a)}, domain B {len(b)} images)")
    return Batch(a=to_unit(torch.from_numpy(np.array(a[:n]))).to(device),
                 b=to_unit(torch.from_numpy(np.array(b[:n]))).to(device))
