"""The curated store: decoded uint8 arrays per split plus a manifest, written by `curate`.

    <curated>/manifest.csv          image_id, split, domain, a_path, b_path, conversions,
                                    [landmark_distance], [label_file], <attributes...>
    <curated>/rejects.csv           file, reason
    <curated>/info.json             image_size, has_labels, num_classes, class_names, splits, attributes,
                                    dataset, domain_a, paired, domain_names, domain_splits, photo_labels
    <curated>/<split>/photos.npy    (N, S, S, 3) uint8: domain B
    <curated>/<split>/labels.npy    (N, S, S) uint8 train ids: domain A of a labelled data set
    <curated>/<split>/images_a.npy  (M, S, S, 3) uint8: domain A as images (domain_a "images")
    <curated>/<split>/labels_a.npy  (M, S, S) uint8 train ids of the A images    } photo_labels
    <curated>/<split>/labels_b.npy  (N, S, S) uint8 train ids of the B photos    } only

Domain A is label maps (`domain_a: labels`, painted in Cityscapes colours for the networks), RGB
images (`images`), or absent (`none`: photos only). A manifest row is a pair (domain "ab": row i of
both arrays) or, in an unpaired data set (`paired: false`), one image of domain "a" or "b"; each
array's rows follow the manifest's rows of its domain. `a_path` is the file domain A came from (a
label map, an A image, or the A|B image itself), `b_path` domain B's; each is empty where the row
has no such domain. Stores written before domains existed lack the domain keys and column and read
as paired, labelled or photos-only by `has_labels`; their manifests' `label_path` and `photo_path`
read as `a_path` and `b_path` (read_manifest).

Two photo domains picked by attributes from a labelled source (day and night street scenes) are an
unpaired store of domain_a "images" (`has_labels` false: domain A is not label maps) with
`photo_labels` true: each photo keeps its label map, row for row in labels_a.npy and labels_b.npy,
and the manifest's `label_file` names its file, so both directions get an FCN-score. Stores
written before `photo_labels` read as false.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.io import read_json_object

SPLITS: tuple[str, ...] = ("train", "val", "test")
MANIFEST = "manifest.csv"
REJECTS = "rejects.csv"
INFO = "info.json"
PHOTOS = "photos.npy"
LABELS = "labels.npy"
IMAGES_A = "images_a.npy"
LABELS_A = "labels_a.npy"
LABELS_B = "labels_b.npy"
MANIFEST_COLUMNS = ("image_id", "split", "domain", "a_path", "b_path", "conversions")
PHOTO_LABEL_FILE = "label_file"  # the label map of a photo_labels store's photo (either domain)
# the columns' names before they were domain-neutral (a CelebA domain-A face was a "label_path")
_LEGACY_COLUMNS = {"label_path": "a_path", "photo_path": "b_path"}
LANDMARK_DISTANCE = "landmark_distance"
DOMAIN_A_KINDS = ("labels", "images", "none")
REJECT_COLUMNS = ("file", "reason")
_INFO_KEYS = ("image_size", "has_labels", "num_classes", "class_names", "splits", "attributes")


class StoreError(ValueError):
    """A curated store is missing or malformed; the message names the path."""


@dataclass(frozen=True)
class SplitArrays:
    photos: np.ndarray  # (N, S, S, 3) uint8, domain B
    labels: np.ndarray | None  # (N, S, S) uint8 train ids, or None for unlabelled data sets
    ids: list[str]  # image_id of each row of photos (and labels), in array order
    images_a: np.ndarray | None = None  # (M, S, S, 3) uint8 domain-A images (domain_a "images")
    ids_a: list[str] | None = None  # image_id of each domain-A row (== ids for a paired store)
    # photo_labels stores: the train ids of each A image and of each B photo, row for row
    labels_a: np.ndarray | None = None  # (M, S, S) uint8
    labels_b: np.ndarray | None = None  # (N, S, S) uint8


def read_info(curated_dir: Path) -> dict[str, Any]:
    """The store's info.json, with the domain keys filled in for stores written before them;
    StoreError if it is missing, not JSON, or lacks a key."""
    path = Path(curated_dir) / INFO
    if not path.is_file():
        raise StoreError(f"{path}: missing; {curated_dir} is not a curated store (run the curate stage)")
    info = read_json_object(path, StoreError)
    missing = [key for key in _INFO_KEYS if key not in info]
    if missing:
        raise StoreError(f"{path}: missing keys {missing}")
    info.setdefault("domain_a", "labels" if info["has_labels"] else "none")
    info.setdefault("paired", info["domain_a"] != "none")
    info.setdefault("dataset", "streets" if info["has_labels"] else "unknown")
    info.setdefault("domain_names", {"a": "label maps" if info["has_labels"] else "", "b": "photos"})
    info.setdefault("photo_labels", False)
    if info["domain_a"] not in DOMAIN_A_KINDS:
        raise StoreError(f"{path}: domain_a {info['domain_a']!r} is not one of {list(DOMAIN_A_KINDS)}")
    if info["photo_labels"] and info["domain_a"] != "images":
        raise StoreError(f"{path}: photo_labels needs domain_a 'images' (two photo domains), got {info['domain_a']!r}")
    return info


def load_split(curated_dir: Path, split: str, mmap: bool = True) -> SplitArrays:
    """One split's arrays (memory-mapped read-only by default) and ids, checked against the manifest."""
    curated_dir = Path(curated_dir)
    info = read_info(curated_dir)
    if split not in info["splits"]:
        raise StoreError(f"{curated_dir}: no split {split!r}; the store has {sorted(info['splits'])}")
    size = info["image_size"]
    ids_b, ids_a = _manifest_ids(curated_dir, split)
    photos = _load_array(curated_dir / split / PHOTOS, mmap, (len(ids_b), size, size, 3))
    labels = images_a = None
    if info["domain_a"] == "labels":
        labels = _load_array(curated_dir / split / LABELS, mmap, (len(ids_a), size, size))
    elif info["domain_a"] == "images":
        images_a = _load_array(curated_dir / split / IMAGES_A, mmap, (len(ids_a), size, size, 3))
    labels_a = labels_b = None
    if info["photo_labels"]:
        labels_a = _load_array(curated_dir / split / LABELS_A, mmap, (len(ids_a), size, size))
        labels_b = _load_array(curated_dir / split / LABELS_B, mmap, (len(ids_b), size, size))
    return SplitArrays(photos=photos, labels=labels, ids=ids_b, images_a=images_a,
                       ids_a=ids_a if info["domain_a"] != "none" else [], labels_a=labels_a, labels_b=labels_b)


def read_manifest(curated_dir: Path) -> pd.DataFrame:
    """manifest.csv with MANIFEST_COLUMNS (as text; "" where empty) whatever version wrote it, then its
    landmark distances and attributes; StoreError naming the file where it is missing, unreadable or
    lacks a column."""
    path = Path(curated_dir) / MANIFEST
    if not path.is_file():
        raise StoreError(f"{path}: missing; the store is incomplete (re-run the curate stage)")
    try:
        manifest = pd.read_csv(path, dtype={c: str for c in (*MANIFEST_COLUMNS, *_LEGACY_COLUMNS)},
                               keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise StoreError(f"{path}: malformed manifest ({exc})") from None
    manifest = manifest.rename(columns={old: new for old, new in _LEGACY_COLUMNS.items()
                                        if old in manifest.columns and new not in manifest.columns})
    if "domain" not in manifest.columns:  # written before domains existed: every row a pair
        manifest.insert(2, "domain", "ab")
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise StoreError(f"{path}: lacks columns {missing}; re-run the curate stage")
    return manifest


# --------------------------------------------------------------------------- writing (used by curate)


@dataclass(frozen=True)
class SplitOutputs:
    photos: np.ndarray  # (N, S, S, 3)
    labels: np.ndarray | None  # (M, S, S) when domain A is labels
    images_a: np.ndarray | None  # (M, S, S, 3) when domain A is images
    labels_a: np.ndarray | None = None  # (M, S, S) and (N, S, S): the photos' label maps (photo_labels)
    labels_b: np.ndarray | None = None


def create_split_arrays(curated_dir: Path, split: str, n_b: int, n_a: int, image_size: int,
                        domain_a: str, photo_labels: bool = False) -> SplitOutputs:
    """Writable uint8 .npy files for one split (N domain-B rows, M domain-A rows), to be filled in
    place; with `photo_labels`, the label maps of both domains' photos too."""
    if domain_a not in DOMAIN_A_KINDS:
        raise ValueError(f"domain_a must be one of {list(DOMAIN_A_KINDS)}, got {domain_a!r}")
    if photo_labels and domain_a != "images":
        raise ValueError(f"photo_labels needs domain_a 'images' (two photo domains), got {domain_a!r}")
    folder = Path(curated_dir) / split
    folder.mkdir(parents=True, exist_ok=True)
    size = image_size
    return SplitOutputs(
        photos=_create_array(folder / PHOTOS, (n_b, size, size, 3)),
        labels=_create_array(folder / LABELS, (n_a, size, size)) if domain_a == "labels" else None,
        images_a=_create_array(folder / IMAGES_A, (n_a, size, size, 3)) if domain_a == "images" else None,
        labels_a=_create_array(folder / LABELS_A, (n_a, size, size)) if photo_labels else None,
        labels_b=_create_array(folder / LABELS_B, (n_b, size, size)) if photo_labels else None)


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


def _manifest_ids(curated_dir: Path, split: str) -> tuple[list[str], list[str]]:
    """The ids of a split's domain-B rows and of its domain-A rows, in manifest order."""
    path = curated_dir / MANIFEST
    if not path.is_file():
        raise StoreError(f"{path}: missing; the store is incomplete")
    try:
        manifest = pd.read_csv(path, usecols=lambda c: c in ("image_id", "split", "domain"), dtype=str,
                               keep_default_na=False)
        rows = manifest.loc[manifest["split"] == split]
    except (ValueError, KeyError, pd.errors.ParserError) as exc:
        raise StoreError(f"{path}: malformed manifest ({exc})") from None
    domain = rows["domain"] if "domain" in rows.columns else pd.Series("ab", index=rows.index)
    return (rows.loc[domain != "a", "image_id"].tolist(), rows.loc[domain != "b", "image_id"].tolist())


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
