"""FCN-scores between two labelled photo domains (day and night street scenes; a store with
`photo_labels`): the outputs of each direction are segmented by the segmenter of their *target*
domain, trained on its real train photos, and compared with the label maps of the source photos
they came from, since a translation keeps the layout. Record keys: `a_to_b`, `b_to_a`."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.data.store import SplitArrays
from pipeline.metrics.fcn_score import fcn_score
from pipeline.metrics.image import frechet_distance
from pipeline.metrics.segmenter import FEATURE_SPACE, features

SEGMENTER_A = "domain_a"  # the domain-A segmenter, a folder inside the train_segmenter output
IDENTITY = "identity: the source photo, untranslated"


def direction_scores(test: SplitArrays, fake_b: np.ndarray | None, fake_a: np.ndarray | None,
                     segmenter_b: nn.Module, segmenter_a: nn.Module | None, *, batch_size: int,
                     device: torch.device) -> dict[str, Any]:
    """`a_to_b`: segmenter_b on the A -> B outputs (rows of test.images_a) against the A photos'
    labels; `b_to_a`: segmenter_a on the B -> A outputs (rows of test.photos) against the B photos'
    labels, with their Fréchet distance to the real A photos in segmenter_a's features (`fid_a`;
    A -> B's `fid` is the evaluation's own). A direction without outputs or segmenter is left out."""
    _require_photo_labels(test)
    scores: dict[str, Any] = {}
    if fake_b is not None:
        scores["a_to_b"] = fcn_score(segmenter_b, fake_b, test.labels_a, batch_size=batch_size, device=device)
    if fake_a is not None and segmenter_a is not None:
        scores["b_to_a"] = fcn_score(segmenter_a, fake_a, test.labels_b, batch_size=batch_size, device=device)
        if len(fake_a) >= 2 and len(test.images_a) >= 2:
            real_a = np.asarray(test.images_a)
            scores["fid_a"] = {FEATURE_SPACE: _frechet(segmenter_a, real_a, fake_a, batch_size, device)}
    return scores


def upper_bounds(test: SplitArrays, segmenter_b: nn.Module, segmenter_a: nn.Module, *, batch_size: int,
                 device: torch.device) -> dict[str, Any]:
    """Each direction's upper bound: its target segmenter on the real target test photos."""
    _require_photo_labels(test)
    return {"a_to_b": fcn_score(segmenter_b, test.photos, test.labels_b, batch_size=batch_size, device=device),
            "b_to_a": fcn_score(segmenter_a, test.images_a, test.labels_a, batch_size=batch_size, device=device)}


def identity_baselines(test: SplitArrays, segmenter_b: nn.Module, segmenter_a: nn.Module, *, batch_size: int,
                       device: torch.device) -> dict[str, Any]:
    """The baseline that learns nothing, per direction: the source test photos handed over as the
    translation (scored by the target segmenter against their own labels), and their Fréchet
    distance to the real target photos; what a method adds is its gain over these rows."""
    _require_photo_labels(test)
    real_a, real_b = np.asarray(test.images_a), np.asarray(test.photos)
    record: dict[str, Any] = {
        "a_to_b_identity": fcn_score(segmenter_b, real_a, test.labels_a, batch_size=batch_size, device=device),
        "name_a_to_b_identity": IDENTITY,
        "b_to_a_identity": fcn_score(segmenter_a, real_b, test.labels_b, batch_size=batch_size, device=device),
        "name_b_to_a_identity": IDENTITY,
    }
    if len(real_a) >= 2 and len(real_b) >= 2:
        record["frechet_identity"] = {"a_to_b": _frechet(segmenter_b, real_b, real_a, batch_size, device),
                                      "b_to_a": _frechet(segmenter_a, real_a, real_b, batch_size, device)}
    return record


def _frechet(segmenter: nn.Module, real: np.ndarray, fake: np.ndarray, batch_size: int,
             device: torch.device) -> float:
    return frechet_distance(features(segmenter, real, batch_size, device), features(segmenter, fake, batch_size, device))


def _require_photo_labels(test: SplitArrays) -> None:
    if test.labels_a is None or test.labels_b is None or test.images_a is None:
        raise ValueError("the FCN-score between photo domains needs a store of two labelled photo domains "
                         "(photo_labels: curate.domain_a / domain_b on the street scenes)")
