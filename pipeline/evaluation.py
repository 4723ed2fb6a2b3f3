"""Evaluation as in the papers: FCN-scores both ways, paired image metrics, diversity, realism,
the real-photos upper bound and trivial baselines. Writes the metrics JSON the report reads."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.data.palette import CLASS_NAMES, IGNORE_ID, NUM_CLASSES, ids_to_colour
from pipeline.data.store import load_split
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
    """"No learning" rows: labels painted with each class's mean train-photo colour (labels -> photo),
    and each pixel given the class most frequent there in the train labels (photo -> labels)."""
    train, test = load_split(curated, "train"), load_split(curated, "test")
    colour_sum = np.zeros((256, 3))
    counts = np.zeros(256)
    per_position = np.zeros((NUM_CLASSES + 1, *train.labels.shape[1:]), dtype=np.int64)
    for start in range(0, len(train.labels), 256):
        ids = np.asarray(train.labels[start:start + 256]).astype(np.int64)
        photos = np.asarray(train.photos[start:start + 256]).reshape(-1, 3)
        np.add.at(colour_sum, ids.ravel(), photos)
        counts += np.bincount(ids.ravel(), minlength=256)
        clipped = np.where(ids == IGNORE_ID, NUM_CLASSES, ids)
        for c in range(NUM_CLASSES + 1):
            per_position[c] += (clipped == c).sum(0)
    mean_colour = (colour_sum / np.maximum(counts, 1)[:, None]).round().astype(np.uint8)
    painted = mean_colour[np.asarray(test.labels)]
    majority = per_position[:NUM_CLASSES].argmax(0).astype(np.uint8)
    prior = np.broadcast_to(majority, test.labels.shape)
    return {
        "labels_to_photo": fcn_score(segmenter, painted, test.labels, batch_size=batch_size, device=device),
        "photo_to_labels": label_score(ids_to_colour(np.ascontiguousarray(prior)), test.labels),
        "name_labels_to_photo": "per-class mean colour painting",
        "name_photo_to_labels": "per-pixel majority class",
    }


def evaluate_translations(translated: Path, curated: Path, segmenter: nn.Module, *, batch_size: int,
                          device: torch.device, lpips_weights: Path | None = None) -> dict[str, Any]:
    """Every metric that applies to one method's translations of the test split (LPIPS diversity
    too when its weights are stored locally)."""
    test = load_split(curated, "test")
    ids = (translated / "ids.txt").read_text().split()
    if ids != test.ids:
        raise ValueError(f"{translated / 'ids.txt'} does not list the curated test split's images in order; "
                         "translate again")
    real_photos, labels = np.asarray(test.photos), np.asarray(test.labels)
    metrics: dict[str, Any] = {}
    if (translated / "fake_b").is_dir():
        fake_b = read_translated(translated / "fake_b", ids)
        metrics["labels_to_photo"] = fcn_score(segmenter, fake_b, labels, batch_size=batch_size, device=device)
        metrics.update(paired_image_metrics(real_photos, fake_b))
        real_feats = features(segmenter, real_photos, batch_size, device)
        fake_feats = features(segmenter, fake_b, batch_size, device)
        metrics["fid"] = {FEATURE_SPACE: frechet_distance(real_feats, fake_feats)}
    if (translated / "fake_a").is_dir():
        metrics["photo_to_labels"] = label_score(read_translated(translated / "fake_a", ids), labels)
    sample_dirs = sorted((translated / "samples").glob("*"), key=lambda p: int(p.name)) \
        if (translated / "samples").is_dir() else []
    if len(sample_dirs) >= 2:
        samples = np.stack([read_translated(d, ids) for d in sample_dirs])  # (K, N, H, W, 3)
        metrics["diversity"] = diversity(samples, lambda x: feature_maps(segmenter, x, batch_size, device))
        if lpips_weights is not None:
            metrics["diversity"]["lpips"] = diversity_lpips(samples, lpips_weights)
        # every sample is a labels -> photo output: the FCN-score over all of them, too
        metrics["labels_to_photo_samples"] = fcn_score(
            segmenter, samples.reshape(-1, *samples.shape[2:]), np.tile(labels, (len(samples), 1, 1)),
            batch_size=batch_size, device=device)
    if (translated / "encoded").is_dir():
        encoded = read_translated(translated / "encoded", ids)
        metrics["encoded"] = paired_image_metrics(real_photos, encoded)
    if not metrics:
        raise ValueError(f"{translated}: holds no translations (fake_b/, fake_a/, samples/)")
    return metrics
