"""The curated store: decoded uint8 arrays per split plus a manifest, written by `curate`.

    <curated>/manifest.csv        image_id, split, photo_path, label_path, conversions, <attributes...>
    <curated>/rejects.csv         file, reason
    <curated>/info.json           image_size, has_labels, num_classes, class_names, splits, attributes
    <curated>/<split>/photos.npy  (N, S, S, 3) uint8
    <curated>/<split>/labels.npy  (N, S, S) uint8 train ids (labelled data sets only)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SPLITS: tuple[str, ...] = ("train", "val", "test")
MANIFEST = "manifest.csv"
REJECTS = "rejects.csv"
INFO = "info.json"
PHOTOS = "photos.npy"
LABELS = "labels.npy"
MANIFEST_COLUMNS = ("image_id", "split", "photo_path", "label_path", "conversions")
REJECT_COLUMNS = ("file", "reason")
_INFO_KEYS = ("image_size", "has_labels", "num_classes", "class_names", "splits", "attributes")


class StoreError(ValueError):
    """A curated store is missing or malformed; the message names the path."""


@dataclass(frozen=True)
class SplitArrays:
    photos: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray | None  # (N, S, S) uint8 train ids, or None for unlabelled data sets
    ids: list[str]  # image_id of each row, in array order


def read_info(curated_dir: Path) -> dict[str, Any]:
    """The store's info.json; StoreError if it is missing, not JSON, or lacks a key."""
    path = Path(curated_dir) / INFO
    if not path.is_file():
        raise StoreError(f"{path}: missing; {curated_dir} is not a curated store (run the curate stage)")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(info, dict):
        raise StoreError(f"{path}: must hold a JSON object, got {type(info).__name__}")
    missing = [key for key in _INFO_KEYS if key not in info]
    if missing:
        raise StoreError(f"{path}: missing keys {missing}")
    return info


def load_split(curated_dir: Path, split: str, mmap: bool = True) -> SplitArrays:
    """One split's arrays (memory-mapped read-only by default) and ids, checked against the manifest."""
    curated_dir = Path(curated_dir)
    info = read_info(curated_dir)
    if split not in info["splits"]:
        raise StoreError(f"{curated_dir}: no split {split!r}; the store has {sorted(info['splits'])}")
    size = info["image_size"]
    ids = _manifest_ids(curated_dir, split)
    photos = _load_array(curated_dir / split / PHOTOS, mmap, (len(ids), size, size, 3))
    labels = None
    if info["has_labels"]:
        labels = _load_array(curated_dir / split / LABELS, mmap, (len(ids), size, size))
    return SplitArrays(photos=photos, labels=labels, ids=ids)


# --------------------------------------------------------------------------- writing (used by curate)


def create_split_arrays(curated_dir: Path, split: str, n: int, image_size: int,
                        has_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Writable (N, S, S, 3) and (N, S, S) uint8 .npy files for one split, to be filled in place."""
    folder = Path(curated_dir) / split
    folder.mkdir(parents=True, exist_ok=True)
    photos = _create_array(folder / PHOTOS, (n, image_size, image_size, 3))
    labels = _create_array(folder / LABELS, (n, image_size, image_size)) if has_labels else None
    return photos, labels


def write_manifest(curated_dir: Path, manifest: pd.DataFrame) -> None:
    """manifest.csv; the caller orders rows by split, then array position."""
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing}")
    manifest.to_csv(Path(curated_dir) / MANIFEST, index=False)


def write_rejects(curated_dir: Path, rejects: list[tuple[str, str]]) -> None:
    """rejects.csv (file, reason), with its header even when nothing was rejected."""
    pd.DataFrame(rejects, columns=list(REJECT_COLUMNS)).to_csv(Path(curated_dir) / REJECTS, index=False)


def write_info(curated_dir: Path, info: dict[str, Any]) -> None:
    missing = [key for key in _INFO_KEYS if key not in info]
    if missing:
        raise ValueError(f"info lacks keys {missing}")
    (Path(curated_dir) / INFO).write_text(json.dumps(info, indent=2) + "\n")


# --------------------------------------------------------------------------- internals


def _manifest_ids(curated_dir: Path, split: str) -> list[str]:
    path = curated_dir / MANIFEST
    if not path.is_file():
        raise StoreError(f"{path}: missing; the store is incomplete")
    try:
        manifest = pd.read_csv(path, usecols=["image_id", "split"], dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise StoreError(f"{path}: malformed manifest ({exc})") from None
    return manifest.loc[manifest["split"] == split, "image_id"].tolist()


def _create_array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    if shape[0] == 0:  # a zero-length file cannot be memory-mapped
        np.save(path, np.zeros(shape, np.uint8))
        return np.zeros(shape, np.uint8)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


def _load_array(path: Path, mmap: bool, shape: tuple[int, ...]) -> np.ndarray:
    if not path.is_file():
        raise StoreError(f"{path}: missing; the store is incomplete (re-run the curate stage)")
    try:
        array = np.load(path, mmap_mode="r" if mmap and shape[0] else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise StoreError(f"{path}: not a readable .npy array ({exc})") from None
    if array.dtype != np.uint8 or array.shape != shape:
        raise StoreError(f"{path}: expected uint8 {shape} (from manifest.csv and info.json), "
                         f"got {array.dtype} {array.shape}")
    return array
