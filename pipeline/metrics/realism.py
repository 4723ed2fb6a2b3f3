"""FID and KID with the standard protocol (torch-fidelity's port of the TensorFlow FID Inception),
the weights checked by SHA-256 and never downloaded unasked, and the protocol each number carries.

torch-fidelity is the implementation: its InceptionV3 is the TF 2015-12-05 graph that the FID
paper's code (TTUR) uses, with TensorFlow 1.x's bilinear resize to 299 px reproduced, and it
exposes the feature network and the two formulas separately, so in-memory uint8 arrays and a
local weights file go straight in (torchmetrics' FID wraps the same network).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.io import sha256_of

log = logging.getLogger(__name__)

IMPLEMENTATION = "torch-fidelity"
DOWNLOAD = "download"  # evaluate.inception_weights: the one value that fetches (once, into torch's hub cache)
# torch-fidelity's published weights; the name ends in the first 8 hex digits of their SHA-256
# (torch.hub's convention), the digest a file is checked against when evaluate.inception_sha256 is unset
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
PUBLISHED_SHA256_PREFIX = "6726825d"
FEATURE = "2048"  # pool3, the FID paper's features
INPUT_SIZE = 299  # the network's input, after the resize
RESIZE = "bilinear, TensorFlow 1.x compatible (torch-fidelity), inside the network"
KID_KERNEL = "polynomial, degree 3, gamma 1/2048, coef0 1"
KID_ESTIMATOR = "unbiased MMD^2 (Binkowski et al. 2018), mean and std over random subsets"
HOW_TO_GET_WEIGHTS = (
    "set `evaluate.inception_weights` to a local copy of torch-fidelity's "
    f"`{INCEPTION_URL.rsplit('/', 1)[1]}` (from {INCEPTION_URL}), or to `download` to fetch it once into "
    "torch's hub cache; both are checked by SHA-256")


def library_version() -> str:
    import torch_fidelity

    return torch_fidelity.__version__


def _checked(path: Path, expected_sha256: str | None) -> str:
    """The file's SHA-256, which must equal `expected_sha256` (or start with the published prefix)."""
    digest = sha256_of(path)
    if expected_sha256 is not None:
        if digest != expected_sha256.lower():
            raise ValueError(f"{path}: SHA-256 {digest} is not evaluate.inception_sha256 {expected_sha256}")
    elif not digest.startswith(PUBLISHED_SHA256_PREFIX):
        raise ValueError(f"{path}: SHA-256 {digest} does not start with {PUBLISHED_SHA256_PREFIX}, the digest of "
                         "torch-fidelity's published FID Inception weights; for other weights set "
                         "evaluate.inception_sha256 to their full digest")
    return digest


def resolve_weights(setting: str | None, expected_sha256: str | None) -> tuple[Path, str] | None:
    """(weights file, its SHA-256) for `evaluate.inception_weights`, or None where it is unset.

    A path must exist; `download` fetches INCEPTION_URL once into torch's hub cache
    (`$TORCH_HOME/hub/checkpoints`, where torch-fidelity itself would keep it) and reuses it after.
    Either way the file's digest is checked before the network is built from it.
    """
    if setting is None:
        return None
    if setting == DOWNLOAD:
        path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[1]
        if not path.is_file():
            log.info("downloading the FID Inception weights (evaluate.inception_weights: download) to %s", path)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(INCEPTION_URL, str(path), hash_prefix=PUBLISHED_SHA256_PREFIX)
    else:
        path = Path(setting)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: evaluate.inception_weights not found ({HOW_TO_GET_WEIGHTS})")
    return path, _checked(path, expected_sha256)


@dataclass(frozen=True)
class Inception:
    """The FID network, built from checked weights, and what a number computed with it must carry."""

    net: torch.nn.Module
    weights: Path
    sha256: str
    device: torch.device

    def protocol(self) -> dict[str, Any]:
        return {"implementation": f"{IMPLEMENTATION} {library_version()}",
                "network": f"InceptionV3 (FID, TF 2015-12-05), pool3 features ({FEATURE})",
                "weights": self.weights.name, "weights_sha256": self.sha256,
                "resize": RESIZE, "network_input": f"{INPUT_SIZE}x{INPUT_SIZE}"}


def load_inception(weights: Path, sha256: str, device: torch.device) -> Inception:
    """torch-fidelity's InceptionV3 from a weights file whose digest `resolve_weights` checked (the
    library unpickles it: the digest check is what makes that safe)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3("inception-v3-compat", [FEATURE], feature_extractor_weights_path=str(weights))
    return Inception(net.to(device).eval(), Path(weights), sha256, device)


def inception_features(inception: Inception, images: np.ndarray, batch_size: int) -> torch.Tensor:
    """(N, 2048) float32 pool3 features of (N, H, W, 3) uint8 images (resized to 299 px in the net)."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    feats = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = np.array(images[start:start + batch_size])  # a copy: the store's memmaps are read-only
            x = torch.from_numpy(batch).permute(0, 3, 1, 2)
            (f,) = inception.net(x.to(inception.device))  # (B, 3, H, W) uint8 -> (B, 2048)
            feats.append(f.float().cpu())
    return torch.cat(feats)


def fid(real_feats: torch.Tensor, fake_feats: torch.Tensor) -> float:
    """FID between two (N, C) feature sets: torch-fidelity's statistics and formula (TTUR's)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    for name, f in (("real", real_feats), ("fake", fake_feats)):
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"FID needs (N, C) {name} features with N >= 2, got {tuple(f.shape)}")
    stats = [fid_features_to_statistics(f.cpu()) for f in (real_feats, fake_feats)]
    return float(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID])


def kid(real_feats: torch.Tensor, fake_feats: torch.Tensor, *, subset_size: int, subsets: int,
        seed: int) -> dict[str, Any]:
    """KID: torch-fidelity's unbiased MMD^2 with the cubic polynomial kernel over `subsets` random
    subsets of min(subset_size, n_real, n_fake) images each (a small test set uses all its images
    in every subset, where the library's default of 1000 would refuse it)."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(subset_size, len(real_feats), len(fake_feats))
    if size < 2:
        raise ValueError(f"KID needs at least 2 images per side, got {len(real_feats)} real, {len(fake_feats)} fake")
    out = kid_features_to_metric(real_feats.cpu(), fake_feats.cpu(), kid_subsets=subsets, kid_subset_size=size,
                                 kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                 kid_kernel_poly_coef0=1, rng_seed=seed, verbose=False)
    return {"mean": float(out[KEY_METRIC_KID_MEAN]), "std": float(out[KEY_METRIC_KID_STD]),
            "subset_size": size, "subsets": subsets, "seed": seed}


@dataclass(frozen=True)
class RealismSettings:
    """How FID and KID are computed for one evaluation: the network, KID's subsets, and which
    split and checkpoint the generated images came from (they go into the protocol)."""

    inception: Inception
    kid_subset_size: int
    kid_subsets: int
    seed: int
    checkpoint: str
    split: str = "test"


def realism(settings: RealismSettings, real: np.ndarray, fake: np.ndarray, *, batch_size: int) -> dict[str, Any]:
    """FID and KID of `fake` against `real` (uint8 (N, H, W, 3) images), with their whole protocol."""
    real_feats = inception_features(settings.inception, real, batch_size)
    fake_feats = inception_features(settings.inception, fake, batch_size)
    kid_value = kid(real_feats, fake_feats, subset_size=settings.kid_subset_size, subsets=settings.kid_subsets,
                    seed=settings.seed)
    sizes = {f"{a.shape[1]}x{a.shape[2]}" for a in (real, fake)}
    protocol = settings.inception.protocol() | {
        "source_size": " and ".join(sorted(sizes)), "n_real": len(real_feats), "n_generated": len(fake_feats),
        "split": settings.split, "checkpoint": settings.checkpoint,
        "kid": {"estimator": KID_ESTIMATOR, "kernel": KID_KERNEL,
                **{k: kid_value[k] for k in ("subset_size", "subsets", "seed")}}}
    return {"fid": fid(real_feats, fake_feats), "kid": kid_value["mean"], "kid_std": kid_value["std"],
            "protocol": protocol}


def protocol_line(protocol: dict[str, Any]) -> str:
    """One line a table's numbers are printed under."""
    k = protocol.get("kid", {})
    return (f"{protocol['implementation']}, {protocol['network']}, weights {protocol['weights']} "
            f"(SHA-256 {protocol['weights_sha256']}), resize {protocol['resize']} from {protocol['source_size']} to "
            f"{protocol['network_input']}, {protocol['n_real']} real and {protocol['n_generated']} generated "
            f"{protocol['split']} images, checkpoint {protocol['checkpoint']}; KID {k.get('estimator')}, "
            f"{k.get('subsets')} subsets of {k.get('subset_size')}, seed {k.get('seed')}")
