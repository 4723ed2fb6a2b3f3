"""Evaluation as in the papers: FCN-scores both ways, paired image metrics, diversity, realism,
the real-photos upper bound and trivial baselines, each where the data set allows it (labels,
pairs). Writes the metrics JSON the report reads."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.data.palette import CLASS_NAMES, IGNORE_ID, NUM_CLASSES, ids_to_colour
from pipeline.data.store import load_split, read_info
from pipeline.inference import read_translated
from pipeline.metrics.fcn_score import ConfusionAccumulator, colours_to_ids
from pipeline.metrics.image import diversity, diversity_lpips, frechet_distance, paired_image_metrics
from pipeline.metrics.segmenter import feature_maps, features, predict

log = logging.getLogger(__name__)

FEATURE_SPACE = "segmenter_features"  # named honestly: not Inception, not LPIPS


def fcn_score(segmenter: nn.Module, photos: np.ndarray, labels: np.ndarray, *, batch_size: int,
              device: torch.device) -> dict[str, Any]:
    """labels -> photo FCN-score: segment the (generated) photos, compare with the labels they came from."""
    acc = ConfusionAccumulator(NUM_CLASSES)
    for start in range(0, len(photos), batch_size):
        pred = predict(segmenter, np.asarray(photos[start:start + batch_size]), batch_size, device)
        acc.update(np.asarray(labels[start:start + batch_size]), pred)
    return acc.scores(CLASS_NAMES).as_dict()


def label_score(generated_labels: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """photo -> labels: generated colour label maps snapped to the palette, compared with the truth."""
    acc = ConfusionAccumulator(NUM_CLASSES)
    acc.update(np.asarray(labels), colours_to_ids(generated_labels))
    return acc.scores(CLASS_NAMES).as_dict()


def baselines(curated: Path, segmenter: nn.Module, *, batch_size: int, device: torch.device) -> dict[str, Any]:
    """Trivial rows. labels -> photo: the label map itself (its palette colours) handed to the
    segmenter as the photo (no learning at all), and the labels painted with each class's mean
    and median train-photo colour (one colour per class fitted; they keep the label's exact
    boundaries, so a segmenter that reads colour and layout alone scores them high); the median
    painting's SSIM, PSNR and L1 too, the row a method's L1 must beat. photo -> labels: each pixel
    given the class most frequent there in the train labels."""
    train, test = load_split(curated, "train"), load_split(curated, "test")
    colour_sum = np.zeros((256, 3))
    counts = np.zeros(256)
    # per class, channel and value: a histogram gives the exact median without holding every pixel
    value_counts = np.zeros(256 * 3 * 256, dtype=np.int64)
    per_position = np.zeros((NUM_CLASSES + 1, *train.labels.shape[1:]), dtype=np.int64)
    for start in range(0, len(train.labels), 256):
        ids = np.asarray(train.labels[start:start + 256]).astype(np.int64)
        photos = np.asarray(train.photos[start:start + 256])
        np.add.at(colour_sum, ids.ravel(), photos.reshape(-1, 3))
        counts += np.bincount(ids.ravel(), minlength=256)
        slots = (ids[..., None] * 3 + np.arange(3)) * 256 + photos  # (n, H, W, 3)
        value_counts += np.bincount(slots.ravel(), minlength=value_counts.size)
        clipped = np.where(ids == IGNORE_ID, NUM_CLASSES, ids)
        for c in range(NUM_CLASSES + 1):
            per_position[c] += (clipped == c).sum(0)
    mean_colour = (colour_sum / np.maximum(counts, 1)[:, None]).round().astype(np.uint8)
    cumulative = value_counts.reshape(256, 3, 256).cumsum(-1)  # (class, channel, value)
    median_colour = (cumulative >= (cumulative[..., -1:] + 1) // 2).argmax(-1).astype(np.uint8)  # (256, 3)
    test_labels = np.asarray(test.labels)
    painted, painted_median = mean_colour[test_labels], median_colour[test_labels]
    majority = per_position[:NUM_CLASSES].argmax(0).astype(np.uint8)
    prior = np.broadcast_to(majority, test.labels.shape)
    return {
        "labels_to_photo": fcn_score(segmenter, painted, test.labels, batch_size=batch_size, device=device),
        "labels_to_photo_median": fcn_score(segmenter, painted_median, test.labels, batch_size=batch_size,
                                            device=device),
        "labels_to_photo_label_colours": fcn_score(segmenter, ids_to_colour(test_labels), test.labels,
                                                   batch_size=batch_size, device=device),
        "photo_to_labels": label_score(ids_to_colour(np.ascontiguousarray(prior)), test.labels),
        "image_median_painting": paired_image_metrics(np.asarray(test.photos), painted_median),
        "name_labels_to_photo": "per-class mean colour painting",
        "name_labels_to_photo_median": "per-class median colour painting",
        "name_labels_to_photo_label_colours": "the label map's own colours as the photo",
        "name_photo_to_labels": "per-pixel majority class",
        "name_image_median_painting": "per-class median colour painting",
    }


def evaluate_translations(translated: Path, curated: Path, segmenter: nn.Module | None, *, batch_size: int,
                          device: torch.device, lpips_weights: Path | None = None) -> dict[str, Any]:
    """Every metric that applies to one method's translations of the test split (LPIPS diversity
    too when its weights are stored locally); `not_applicable` names the others and why.

    FCN-scores need label maps and the segmenter (None for a data set without labels); SSIM, PSNR
    and L1 need pairs; the Fréchet distance needs the segmenter's feature space.
    """
    info = read_info(curated)
    test = load_split(curated, "test")
    ids_a, ids_b = _listed(translated / "ids.txt", test.ids_a or []), None
    ids_file_b = translated / "ids_b.txt"
    ids_b = _listed(ids_file_b if ids_file_b.is_file() else translated / "ids.txt", test.ids)
    real_photos, labels, paired = np.asarray(test.photos), test.labels, bool(info["paired"])
    labels = None if labels is None else np.asarray(labels)
    scored = labels is not None and segmenter is not None
    metrics: dict[str, Any] = {}
    if (translated / "fake_b").is_dir():
        fake_b = read_translated(translated / "fake_b", ids_a)
        if scored:
            metrics["labels_to_photo"] = fcn_score(segmenter, fake_b, labels, batch_size=batch_size, device=device)
        if paired:
            metrics.update(paired_image_metrics(real_photos, fake_b))
        if segmenter is not None and len(real_photos) >= 2 and len(fake_b) >= 2:
            real_feats = features(segmenter, real_photos, batch_size, device)
            fake_feats = features(segmenter, fake_b, batch_size, device)
            metrics["fid"] = {FEATURE_SPACE: frechet_distance(real_feats, fake_feats)}
    if (translated / "fake_a").is_dir():
        fake_a = read_translated(translated / "fake_a", ids_b)
        if labels is not None:
            metrics["photo_to_labels"] = label_score(fake_a, labels)
        elif paired and test.images_a is not None:
            metrics["photo_to_a"] = paired_image_metrics(np.asarray(test.images_a), fake_a)
    sample_dirs = sorted((translated / "samples").glob("*"), key=lambda p: int(p.name)) \
        if (translated / "samples").is_dir() else []
    if len(sample_dirs) >= 2:
        samples = np.stack([read_translated(d, ids_a) for d in sample_dirs])  # (K, N, H, W, 3)
        maps = (lambda x: feature_maps(segmenter, x, batch_size, device)) if segmenter is not None else None
        metrics["diversity"] = diversity(samples, maps)
        if lpips_weights is not None:
            metrics["diversity"]["lpips"] = diversity_lpips(samples, lpips_weights)
        if scored:  # every sample is a labels -> photo output: the FCN-score over all of them, too
            metrics["labels_to_photo_samples"] = fcn_score(
                segmenter, samples.reshape(-1, *samples.shape[2:]), np.tile(labels, (len(samples), 1, 1)),
                batch_size=batch_size, device=device)
    if (translated / "encoded").is_dir() and paired:
        encoded = read_translated(translated / "encoded", ids_a)
        metrics["encoded"] = paired_image_metrics(real_photos, encoded)
    if not any((translated / kind).is_dir() for kind in ("fake_b", "fake_a", "samples")):
        raise ValueError(f"{translated}: holds no translations (fake_b/, fake_a/, samples/)")
    skipped = not_applicable_metrics(info, segmenter is not None)
    if skipped:
        metrics["not_applicable"] = skipped
    metrics["dataset"] = info["dataset"]  # the report leaves out rows of another data set's run
    return metrics


def not_applicable_metrics(info: dict[str, Any], has_segmenter: bool) -> dict[str, str]:
    """The papers' metrics that do not apply to a curated data set, each with the reason."""
    reasons = {}
    name = info.get("dataset", "this data set")
    if not info["has_labels"]:
        reasons["fcn_score"] = f"{name} has no label maps"
    elif not has_segmenter:
        reasons["fcn_score"] = "no segmenter"
    if not info["paired"]:
        reasons["ssim_psnr_l1"] = f"{name} is unpaired: no ground truth for an output"
    if not has_segmenter:
        reasons["fid"] = "no feature network: the segmenter needs label maps to be trained"
    return reasons


def _listed(path: Path, expected: list[str]) -> list[str]:
    """The ids a translation folder lists, which must be the test split's, in order."""
    ids = path.read_text().split() if path.is_file() else []
    if ids != expected:
        raise ValueError(f"{path} does not list the curated test split's images in order; translate again")
    return ids
