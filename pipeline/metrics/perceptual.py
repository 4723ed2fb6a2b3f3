"""LPIPS diversity as BicycleGAN measured it: the `lpips` package's distance between pairs of
samples of one input, averaged over pairs and inputs; version (0.0 / 0.1) and backbone are params,
and every weight comes from a local file (nothing is downloaded)."""
from __future__ import annotations

import importlib.metadata
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.io import sha256_of

log = logging.getLogger(__name__)

# (N, 3, H, W) in [-1, 1], twice -> (N,) distances: LPIPS, or a toy net in the tests
PairDistance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# torchvision's file for each backbone (the classifier's weights too; only `features.*` is read)
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth",
                  "squeeze": "squeezenet1_1-b8a52dc0.pth"}


def sample_pairs(k: int, pairs: str) -> list[tuple[int, int]]:
    """Which samples of one input are compared. `consecutive`: (0, 1), (1, 2), ..., as BicycleGAN's
    README states its diversity (20 samples, 19 pairs per input, 100 inputs, LPIPS v0.0) and as the
    LPIPS authors' compute_dists_pair.py (now lpips_1dir_allpairs.py) does by default;
    `all`: every one of the K(K-1)/2 pairs (that script's --all-pairs)."""
    if k < 2:
        raise ValueError(f"diversity needs at least 2 samples per input, got {k}")
    if pairs == "consecutive":
        return [(i, i + 1) for i in range(k - 1)]
    if pairs == "all":
        return list(itertools.combinations(range(k), 2))
    raise ValueError(f"unknown pairs {pairs!r}; expected 'consecutive' or 'all'")


def pair_averaged(samples: np.ndarray, distance: PairDistance, pairs: str, batch_size: int) -> dict[str, float]:
    """Mean (and standard error, as compute_dists_pair.py prints) of `distance` over the chosen
    pairs of samples of every input. samples: (K, N, H, W, 3) uint8, K samples of N inputs; each
    input has the same number of pairs, so this is also the mean over inputs of each input's mean."""
    if samples.dtype != np.uint8 or samples.ndim != 5 or samples.shape[-1] != 3:
        raise ValueError(f"samples must be uint8 (K, N, H, W, 3), got {samples.dtype} {samples.shape}")
    chosen = sample_pairs(samples.shape[0], pairs)
    dists = []
    with torch.inference_mode():
        for i, j in chosen:
            for start in range(0, samples.shape[1], batch_size):
                x = [torch.from_numpy(np.array(samples[s, start:start + batch_size])).permute(0, 3, 1, 2).float()
                     / 127.5 - 1.0 for s in (i, j)]  # (B, H, W, 3) uint8 -> (B, 3, H, W) in [-1, 1]
                dists.append(distance(*x).reshape(-1).double())
    values = torch.cat(dists)
    return {"mean": float(values.mean()), "stderr": float(values.std(unbiased=False) / len(values) ** 0.5),
            "n_pairs": len(values), "pairs_per_input": len(chosen), "n_inputs": samples.shape[1]}


@dataclass(frozen=True)
class Lpips:
    """The LPIPS network and what its numbers must carry."""

    net: torch.nn.Module
    protocol: dict[str, Any]

    def __call__(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return self.net(x0, x1)


def load_lpips(version: str, backbone: str, *, backbone_weights: Path | None, linear_weights: Path | None,
               whole_weights: Path | None = None) -> Lpips:
    """The `lpips` package's LPIPS(net=backbone, version=version), its weights from local files only.

    Either `whole_weights` (a safetensors file of the whole LPIPS state dict), or `backbone_weights`
    (torchvision's ImageNet file of the backbone, e.g. alexnet-owt-7be5be79.pth, which the package
    would download) with `linear_weights` (the learned layers; None: the package's own bundled
    weights/v<version>/<backbone>.pth).
    """
    try:
        import lpips
    except ImportError:
        raise RuntimeError("LPIPS needs the `lpips` package (pip install -c constraints.txt lpips)") from None
    if whole_weights is None and backbone_weights is None:
        raise ValueError("LPIPS needs evaluate.lpips_backbone_weights (or evaluate.lpips_weights)")
    files = [p for p in (whole_weights, backbone_weights, linear_weights) if p is not None]
    for path in files:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: LPIPS weights not found (they are never downloaded)")
    if whole_weights is not None:
        # random backbone and no packaged linear weights: everything comes from the one file
        from safetensors.torch import load_file

        model = lpips.LPIPS(net=backbone, version=version, pretrained=False, pnet_rand=True, verbose=False)
        model.load_state_dict(load_file(str(whole_weights)), strict=True)
        linear = whole_weights
    else:
        linear = Path(linear_weights) if linear_weights is not None else \
            Path(lpips.__file__).parent / "weights" / f"v{version}" / f"{backbone}.pth"
        model = lpips.LPIPS(net=backbone, version=version, pretrained=True, pnet_rand=True, model_path=str(linear),
                            verbose=False)
        state = torch.load(backbone_weights, map_location="cpu", weights_only=True)
        # the package splits torchvision's `features` into slices that keep its layer indices
        wanted = model.net.state_dict()
        mapped = {key: state[f"features.{key.split('.', 1)[1]}"] for key in wanted}
        model.net.load_state_dict(mapped, strict=True)
        files.append(linear)
    model.eval()
    protocol = {"implementation": f"lpips {importlib.metadata.version('lpips')}", "version": version,
                "backbone": backbone, "input": "the generated images' own size, scaled to [-1, 1]",
                "weights": {Path(p).name: sha256_of(Path(p)) for p in files}}
    return Lpips(model, protocol)


def lpips_diversity(samples: np.ndarray, model: Lpips, *, pairs: str, batch_size: int) -> dict[str, Any]:
    """BicycleGAN's diversity: mean LPIPS between pairs of samples of one input, with its protocol."""
    out = pair_averaged(samples, model, pairs, batch_size)
    return {**out, "protocol": {**model.protocol, "pairs": pairs}}
