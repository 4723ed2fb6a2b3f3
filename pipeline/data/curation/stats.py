"""Statistics of a curated data set: images per split (and per domain when unpaired) and the class
coverage of its label maps."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.palette import CLASS_NAMES, IGNORE_ID, NUM_CLASSES
from pipeline.data.store import load_split, read_info

SPLITS = ("train", "val", "test")


def class_frequencies(labels: np.ndarray) -> dict[str, float]:
    """Fraction of labelled pixels per class (ignored pixels left out), over a stack of id maps."""
    counts = np.zeros(256, dtype=np.int64)
    for chunk in range(0, len(labels), 256):  # bounded memory on memory-mapped stores
        counts += np.bincount(np.asarray(labels[chunk:chunk + 256]).ravel(), minlength=256)
    counts[IGNORE_ID] = 0
    total = counts.sum()
    return {CLASS_NAMES[i]: float(counts[i] / total) if total else 0.0 for i in range(NUM_CLASSES)}


def data_summary(curated: Path) -> dict[str, Any]:
    info = read_info(curated)
    summary: dict[str, Any] = {"images": {s: int(info["splits"].get(s, 0)) for s in SPLITS}}
    if not info["paired"] and info["domain_a"] != "none" and "domain_splits" in info:
        summary["images_by_domain"] = info["domain_splits"]  # unpaired: A and B counted apart
    if info["has_labels"] or info["photo_labels"]:
        coverage = {}
        for split in SPLITS:
            if info["splits"].get(split, 0):
                arrays = load_split(curated, split)
                # two photo domains: the label maps of both, A's then B's
                labels = arrays.labels if info["has_labels"] else \
                    np.concatenate([np.asarray(arrays.labels_a), np.asarray(arrays.labels_b)])
                coverage[split] = class_frequencies(labels)
        summary["class_coverage"] = coverage
    return summary
