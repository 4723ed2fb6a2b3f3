"""FCN-score: a confusion matrix over label ids, and per-pixel acc, per-class acc and class IoU.

The formulas are those of the papers' evaluation code (pix2pix/CycleGAN `scripts/eval_cityscapes`,
after Long et al.'s FCN `score.py`): `hist = bincount(n*a + b).reshape(n, n)` summed over the test
set, then trace/sum, nanmean(diag / rows) and nanmean(diag / (rows + cols - diag)).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import torch
from torch import nn

from pipeline.data.palette import CLASS_NAMES, NUM_CLASSES, PALETTE
from pipeline.metrics.segmenter import predict

_COLOUR_CHUNK = 1 << 18  # pixels per chunk in colours_to_ids: bounds the (P, 19) distance table


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(n, n) int64 counts, rows = truth, columns = prediction, over pixels with 0 <= truth < n.

    Truth values outside 0..n-1 (IGNORE_ID 255 among them) are ignored, as in the reference code.
    A prediction outside 0..n-1 at a pixel that counts raises ValueError: an (n, n) matrix has no
    cell for it, so it could neither count as wrong nor be dropped without changing the scores
    silently (the reference code let it fall into a neighbouring cell, or broke the reshape).
    """
    if truth.shape != pred.shape:  # the reference code silently returned 0 here
        raise ValueError(f"truth and prediction shapes differ: truth {truth.shape}, prediction {pred.shape}")
    for name, array in (("truth", truth), ("prediction", pred)):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integer label ids, got dtype {array.dtype}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    n = num_classes
    a = np.asarray(truth).reshape(-1).astype(np.int64)  # int64: n*a overflows uint8 (a bug in the reference)
    b = np.asarray(pred).reshape(-1).astype(np.int64)
    keep = (a >= 0) & (a < n)
    a, b = a[keep], b[keep]
    bad = (b < 0) | (b >= n)
    if bad.any():
        raise ValueError(f"predictions must be class ids in 0..{n - 1}; got {bad.sum()} pixels with values "
                         f"{np.unique(b[bad])[:10].tolist()} where the truth is a class")
    return np.bincount(n * a + b, minlength=n * n).reshape(n, n)


@dataclass(frozen=True)
class FcnScores:
    """The papers' three FCN-scores, plus the IoU of each class (None: absent from truth and prediction)."""

    per_pixel_acc: float
    per_class_acc: float
    class_iou: float
    per_class_iou: dict[str, float | None]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with stable keys (they are also the DVC metric and MLflow names)."""
        return {"per_pixel_acc": self.per_pixel_acc, "per_class_acc": self.per_class_acc,
                "class_iou": self.class_iou, "per_class_iou": dict(self.per_class_iou)}


def fcn_scores(hist: np.ndarray, class_names: Sequence[str]) -> FcnScores:
    """Per-pixel acc, per-class acc and class IoU of a confusion matrix (rows = truth).

    A class absent from the truth has no accuracy and is left out of the per-class mean. A class
    absent from both truth and prediction has no IoU (None) and is left out of the IoU mean; a class
    predicted but absent from the truth has IoU 0 and counts.
    """
    hist = np.asarray(hist)
    n = len(class_names)
    if hist.shape != (n, n):
        raise ValueError(f"confusion matrix shape {hist.shape} does not match {n} class names")
    if not np.issubdtype(hist.dtype, np.integer) or (hist < 0).any():
        raise ValueError(f"confusion matrix must hold non-negative integer counts, got dtype {hist.dtype}")
    total = hist.sum()
    if total == 0:
        raise ValueError("confusion matrix is empty: no pixel had a truth label in 0..n-1")
    diag = np.diag(hist).astype(np.float64)
    rows, cols = hist.sum(1).astype(np.float64), hist.sum(0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 -> nan marks an absent class
        acc = diag / rows
        iou = diag / (rows + cols - diag)
    return FcnScores(
        per_pixel_acc=float(diag.sum() / total),
        per_class_acc=float(np.nanmean(acc)),  # rows > 0 for some class since total > 0
        class_iou=float(np.nanmean(iou)),
        per_class_iou={name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, iou)},
    )


class ConfusionAccumulator:
    """Sums confusion matrices over batches; `scores` equals `fcn_scores` of the one big matrix."""

    def __init__(self, num_classes: int):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.hist = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, truth: np.ndarray, pred: np.ndarray) -> None:
        self.hist += confusion_matrix(truth, pred, self.num_classes)

    def scores(self, class_names: Sequence[str]) -> FcnScores:
        return fcn_scores(self.hist, class_names)


def colours_to_ids(images: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 colour label maps -> (..., H, W) uint8 ids of the nearest Cityscapes colour.

    For generated label maps (photo -> labels): every pixel gets one of the 19 classes (Euclidean
    RGB distance; ties go to the lower id), none is ignored, black included.
    """
    if images.dtype != np.uint8 or images.ndim < 3 or images.shape[-1] != 3:
        raise ValueError(f"colour label maps must be uint8 (..., H, W, 3), got {images.dtype} {images.shape}")
    palette = PALETTE.astype(np.int32)  # (19, 3)
    # argmin |x - c|^2 = argmin (|c|^2 - 2 x.c): exact in int32, no (P, 19, 3) temporary
    palette_sq = (palette**2).sum(1)  # (19,)
    flat = images.reshape(-1, 3)
    ids = np.empty(len(flat), dtype=np.uint8)
    for start in range(0, len(flat), _COLOUR_CHUNK):
        x = flat[start:start + _COLOUR_CHUNK].astype(np.int32)
        ids[start:start + _COLOUR_CHUNK] = (palette_sq[None, :] - 2 * x @ palette.T).argmin(1)  # (P, 19) -> (P,)
    return ids.reshape(images.shape[:-1])


def fcn_score(segmenter: nn.Module, photos: np.ndarray, labels: np.ndarray, *, batch_size: int,
              device: torch.device) -> dict[str, Any]:
    """The FCN-score of (generated) photos: segment them, compare with the labels they came from."""
    acc = ConfusionAccumulator(NUM_CLASSES)
    for start in range(0, len(photos), batch_size):
        pred = predict(segmenter, np.asarray(photos[start:start + batch_size]), batch_size, device)
        acc.update(np.asarray(labels[start:start + batch_size]), pred)
    return acc.scores(CLASS_NAMES).as_dict()
