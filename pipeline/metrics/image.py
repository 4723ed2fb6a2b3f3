"""Image metrics: paired SSIM/PSNR/L1, sample diversity (BicycleGAN), and the Fréchet distance.

LPIPS needs pretrained weights that cannot be fetched offline, so the diversity measures here
are honest stand-ins named for what they compute; pipeline.metrics.perceptual runs the real LPIPS
from local weight files.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

PSNR_CAP_DB = 100.0  # identical images (MSE 0, PSNR inf) count as this, so that the mean stays finite
SSIM_WIN_SIZE = 7  # skimage's default uniform window; narrowed (odd) for images smaller than this

# A feature extractor for `diversity`: (M, H, W, 3) uint8 -> one (M, C, h, w) array per layer
FeatureMaps = Callable[[np.ndarray], Sequence[np.ndarray]]


def _check_images(name: str, images: np.ndarray, ndim: int) -> None:
    if images.dtype != np.uint8 or images.ndim != ndim or images.shape[-1] != 3:
        lead = "(K, N, H, W, 3)" if ndim == 5 else "(N, H, W, 3)"
        raise ValueError(f"{name} must be uint8 {lead}, got {images.dtype} {images.shape}")


def paired_image_metrics(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    """Means over N pairs of SSIM, PSNR (dB) and L1 on the [0, 1] scale, for (N, H, W, 3) uint8.

    SSIM is skimage's (uniform 7x7 window, data_range 255, channels averaged); the window narrows
    to the largest odd size that fits images under 7 px. A pair of identical images has PSNR inf;
    it counts as PSNR_CAP_DB (100 dB; any finite PSNR of uint8 images up to 226x226 px is lower).
    """
    _check_images("real", real, 4)
    _check_images("fake", fake, 4)
    if real.shape != fake.shape:
        raise ValueError(f"real and fake shapes differ: real {real.shape}, fake {fake.shape}")
    n, h, w = real.shape[:3]
    if n == 0:
        raise ValueError("no images to compare")
    win_size = min(SSIM_WIN_SIZE, h, w)
    win_size -= 1 - win_size % 2  # odd, as skimage requires
    if win_size < 3:
        raise ValueError(f"images of {h}x{w} px are too small for SSIM (need at least 3x3)")
    ssim, psnr, l1 = [], [], []
    for real_i, fake_i in zip(real, fake):
        diff = real_i.astype(np.float64) - fake_i.astype(np.float64)
        l1.append(np.abs(diff).mean() / 255.0)
        if not diff.any():
            psnr.append(PSNR_CAP_DB)
        else:
            psnr.append(min(PSNR_CAP_DB, peak_signal_noise_ratio(real_i, fake_i, data_range=255)))
        ssim.append(structural_similarity(real_i, fake_i, win_size=win_size, channel_axis=-1, data_range=255))
    return {"ssim": float(np.mean(ssim)), "psnr": float(np.mean(psnr)), "l1": float(np.mean(l1))}


def _unit_normalise(maps: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """Unit length along channels at every pixel, as LPIPS does before comparing: (M, C, h, w)."""
    return maps / (np.sqrt((maps**2).sum(1, keepdims=True)) + eps)


def diversity(samples: np.ndarray, features: FeatureMaps | None = None) -> dict[str, float]:
    """Mean distance between pairs of samples drawn for the same input (BicycleGAN's diversity).

    Args:
        samples: (K, N, H, W, 3) uint8, K >= 2 samples for each of N inputs.
        features: optional feature maps (e.g. the segmenter's encoder, `segmenter.feature_maps`).

    Returns `pixel_l1` (mean |x_i - x_j| on the [0, 1] scale) and, with `features`,
    `segmenter_features`: LPIPS's recipe without its learned weights or its pretrained network:
    channels unit-normalised per pixel, squared differences summed over channels, averaged over
    pixels, summed over layers. Both average over the K(K-1)/2 pairs and the N inputs. Not LPIPS.
    """
    _check_images("samples", samples, 5)
    k = samples.shape[0]
    if k < 2:
        raise ValueError(f"diversity needs at least 2 samples per input, got {k}")
    pairs = list(itertools.combinations(range(k), 2))
    pixel_l1 = np.mean([np.abs(samples[i].astype(np.float32) - samples[j].astype(np.float32)).mean() / 255.0
                        for i, j in pairs])
    out = {"pixel_l1": float(pixel_l1)}
    if features is not None:
        layers = [[_unit_normalise(np.asarray(m, dtype=np.float64)) for m in features(samples[i])] for i in range(k)]
        distances = [sum(((a - b) ** 2).sum(1).mean() for a, b in zip(layers[i], layers[j])) for i, j in pairs]
        out["segmenter_features"] = float(np.mean(distances))
    return out


def _mean_cov(feats: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    if feats.ndim != 2 or len(feats) < 2:
        raise ValueError(f"{name} must be (N, C) with N >= 2, got shape {feats.shape}")
    feats = feats.astype(np.float64)
    return feats.mean(0), np.cov(feats, rowvar=False).reshape(feats.shape[1], feats.shape[1])


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (tiny negative eigenvalues -> 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def frechet_distance(real_feats: np.ndarray, fake_feats: np.ndarray) -> float:
    """|mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^1/2) between Gaussians fitted to (N, C) features (FID).

    tr((S_r S_f)^1/2) is computed as the sum of square roots of the eigenvalues of the symmetric
    S_r^1/2 S_f S_r^1/2 (same spectrum), which is stable where scipy's sqrtm of S_r S_f goes complex.
    """
    if real_feats.ndim == 2 and fake_feats.ndim == 2 and real_feats.shape[1] != fake_feats.shape[1]:
        raise ValueError(f"feature sizes differ: real {real_feats.shape}, fake {fake_feats.shape}")
    mu_r, cov_r = _mean_cov(real_feats, "real_feats")
    mu_f, cov_f = _mean_cov(fake_feats, "fake_feats")
    sqrt_r = _sqrt_psd(cov_r)
    middle = sqrt_r @ cov_f @ sqrt_r
    tr_sqrt = np.sqrt(np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)).sum()
    value = ((mu_r - mu_f) ** 2).sum() + np.trace(cov_r) + np.trace(cov_f) - 2.0 * tr_sqrt
    return float(max(value, 0.0))  # rounding can leave -1e-12 for identical sets
