"""Curation: raw images (+ label maps, attributes, partition) -> the compact store of `store.py`.

Every input image ends in exactly one place: the manifest (kept), rejects.csv (with the reason), or
the count of images filtered out by attributes. The store is written to a temporary sibling folder
and renamed onto `out_dir` only once complete.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import CurateConfig, SplitConfig
from pipeline.data import palette, store
from pipeline.data.attributes import filter_by_attributes, filter_counts, read_attr_table, read_partition
from pipeline.data.images import BadImage, load_label, load_rgb, resize_square
from pipeline.io import atomic_dir

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
_IN_MEMORY_BYTES = 1 << 30  # above this the decoded images are staged in a memory-mapped file
_CHUNK = 4096  # rows copied at a time from the staging arrays into the split arrays


@dataclass(frozen=True)
class CurateSummary:
    splits: dict[str, int]  # images kept per split
    n_rejected: int  # in rejects.csv
    n_filtered_out: int  # dropped by curate.require / curate.exclude
    n_ignored: int  # files in images_dir that the attribute table does not list

    @property
    def n_kept(self) -> int:
        return sum(self.splits.values())


def curate(images_dir: Path, out_dir: Path, cfg: CurateConfig, image_size: int, seed: int,
           labels_dir: Path | None = None, attr_path: Path | None = None,
           partition_path: Path | None = None) -> CurateSummary:
    """Filter, check, split and resize `images_dir` into the store at `out_dir` (replaced atomically).

    Args:
        labels_dir: colour label maps named `<photo stem>.png`; a photo without one is rejected.
        attr_path: CelebA-form attribute table; without it every image file in images_dir is an
            input (sorted by name) and there are no attributes to filter on.
        partition_path: CelebA-form partition file, used when cfg.use_partition is true.
    """
    images_dir = Path(images_dir)
    labels_dir = None if labels_dir is None else Path(labels_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: images folder not found")
    if labels_dir is not None and not labels_dir.is_dir():
        raise FileNotFoundError(f"{labels_dir}: label maps folder not found")
    rejects: list[tuple[str, str]] = []

    table, files, n_ignored = _inputs(images_dir, attr_path, rejects)
    clash = sorted(set(table.columns) & set(store.MANIFEST_COLUMNS))
    if clash:
        raise ValueError(f"{attr_path}: attribute columns {clash} clash with the manifest's own columns")
    n_inputs = len(table) + len(rejects)
    kept = filter_by_attributes(table, cfg.require, cfg.exclude).sort_index()
    n_filtered_out = len(table) - len(kept)
    for rule, count in filter_counts(table, cfg.require, cfg.exclude).items():
        log.info("filter %s removes %d of %d images", rule, count, len(table))
    log.info("%d images pass the attribute filters, %d filtered out", len(kept), n_filtered_out)

    partition = _partition(cfg, partition_path)
    if partition is not None:
        unlisted = ~kept.index.isin(partition.index)
        rejects += [(str(files[i]), f"not listed in the partition file {partition_path}") for i in kept.index[unlisted]]
        kept = kept.loc[~unlisted]

    with atomic_dir(Path(out_dir)) as tmp:
        ok, photos, labels, conversions = _load_all(kept.index.tolist(), files, labels_dir, cfg, image_size,
                                                    tmp, rejects)
        kept_ids = kept.index[ok]
        if len(kept_ids) == 0:
            raise ValueError(f"{images_dir}: no images left to curate ({n_filtered_out} filtered out by "
                             f"attributes, {len(rejects)} rejected: {_reason_counts(rejects)})")
        if partition is not None:
            split_of = partition.reindex(kept_ids).to_numpy()
        else:
            split_of = split_by_seed(len(kept_ids), cfg.split, seed)
        rows = np.flatnonzero(ok)  # staging row of each kept image
        counts, order = {}, []
        for split in store.SPLITS:
            members = np.flatnonzero(split_of == split)  # ascending: sorted by image_id
            counts[split] = len(members)
            order.append(members)
            _write_split(tmp, split, rows[members], photos, labels, image_size)
        del photos, labels  # release the staging memory maps before their files go
        for staging in tmp.glob("_staging_*.npy"):
            staging.unlink()

        order = np.concatenate(order)
        ids = kept_ids[order]
        manifest = pd.DataFrame({
            "image_id": ids,
            "split": split_of[order],
            "photo_path": [str(files[i]) for i in ids],
            "label_path": [str(_label_path(labels_dir, files[i])) if labels_dir is not None else "" for i in ids],
            "conversions": [conversions[r] for r in rows[order]],
        })
        attrs = kept.loc[ids]
        for column in attrs.columns:
            manifest[column] = attrs[column].to_numpy()
        store.write_manifest(tmp, manifest)
        store.write_rejects(tmp, rejects)
        store.write_info(tmp, {
            "image_size": image_size,
            "has_labels": labels_dir is not None,
            "num_classes": palette.NUM_CLASSES if labels_dir is not None else 0,
            "class_names": list(palette.CLASS_NAMES) if labels_dir is not None else [],
            "splits": counts,
            "attributes": [str(c) for c in table.columns],
            "split_source": "partition" if partition is not None else f"seed {seed}",
        })
        if len(manifest) + len(rejects) + n_filtered_out != n_inputs:  # the never-drop-silently invariant
            raise RuntimeError(f"curate lost track of images: {len(manifest)} kept + {len(rejects)} rejected + "
                               f"{n_filtered_out} filtered out != {n_inputs} inputs")

    if rejects:
        log.warning("rejected %d images: %s (see %s)", len(rejects), _reason_counts(rejects),
                    Path(out_dir) / store.REJECTS)
    log.info("kept %s", counts)
    return CurateSummary(splits=counts, n_rejected=len(rejects), n_filtered_out=n_filtered_out,
                         n_ignored=n_ignored)


def split_by_seed(n: int, fractions: SplitConfig, seed: int) -> np.ndarray:
    """Split names for items 0..n-1: a permutation from `seed`, cut at the cumulative fractions."""
    permutation = np.random.default_rng(seed).permutation(n)
    # cumulative boundaries, so a zero fraction always gets zero items and the counts sum to n
    end_train = round(n * fractions.train)
    end_val = max(end_train, min(n, round(n * (fractions.train + fractions.val))))
    split_of = np.empty(n, dtype=object)
    split_of[permutation[:end_train]] = "train"
    split_of[permutation[end_train:end_val]] = "val"
    split_of[permutation[end_val:]] = "test"
    return split_of


# --------------------------------------------------------------------------- internals


def _inputs(images_dir: Path, attr_path: Path | None,
            rejects: list[tuple[str, str]]) -> tuple[pd.DataFrame, dict[str, Path], int]:
    """The input table (index image_id, attribute columns), each id's file, and how many files
    on disk the table ignores. Ids whose file is missing go to `rejects`."""
    names = sorted(entry.name for entry in os.scandir(images_dir)
                   if entry.is_file() and not entry.name.startswith("."))
    if attr_path is None:
        images = [n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
        if len(images) < len(names):
            log.info("%s: ignoring %d files that are not named as images", images_dir, len(names) - len(images))
        table = pd.DataFrame(index=pd.Index(images, name="image_id", dtype=str))
        return table, {n: images_dir / n for n in images}, 0

    table = read_attr_table(Path(attr_path))
    on_disk = set(names)
    by_stem: dict[str, list[str]] = {}
    for name in names:
        by_stem.setdefault(Path(name).stem, []).append(name)
    files: dict[str, Path] = {}
    present = np.zeros(len(table), dtype=bool)
    for row, image_id in enumerate(table.index):
        if image_id in on_disk:
            files[image_id] = images_dir / image_id
        elif not Path(image_id).suffix and len(by_stem.get(image_id, [])) == 1:  # ids without extension
            files[image_id] = images_dir / by_stem[image_id][0]
        elif len(by_stem.get(image_id, [])) > 1:
            rejects.append((str(images_dir / image_id), f"ambiguous: several files {by_stem[image_id]}"))
            continue
        else:
            rejects.append((str(images_dir / image_id), "file not found"))
            continue
        present[row] = True
    n_ignored = len(on_disk - {p.name for p in files.values()})
    if n_ignored:
        log.info("%s: ignoring %d files that %s does not list", images_dir, n_ignored, attr_path)
    return table.loc[present], files, n_ignored


def _partition(cfg: CurateConfig, partition_path: Path | None) -> pd.Series | None:
    if partition_path is None:
        log.info("splitting by seed with fractions %s (no partition file)", cfg.split)
        return None
    if not cfg.use_partition:
        log.info("ignoring the partition file %s (curate.use_partition is false)", partition_path)
        return None
    return read_partition(Path(partition_path))


def _label_path(labels_dir: Path, photo: Path) -> Path:
    return labels_dir / f"{photo.stem}.png"


def _load_all(ids: list[str], files: dict[str, Path], labels_dir: Path | None, cfg: CurateConfig,
              image_size: int, tmp: Path, rejects: list[tuple[str, str]],
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """Decode, check and resize every image once into staging arrays.

    Returns (ok mask, photos (N, S, S, 3), labels (N, S, S) or None, conversions per row).
    """
    n, size = len(ids), image_size
    photos = _staging(tmp / "_staging_photos.npy", (n, size, size, 3))
    labels = _staging(tmp / "_staging_labels.npy", (n, size, size)) if labels_dir is not None else None
    ok = np.zeros(n, dtype=bool)
    conversions = [""] * n
    for row, image_id in enumerate(ids):
        path = files[image_id]
        try:
            rgb, steps = load_rgb(path, cfg.max_pixels)
        except BadImage as exc:
            rejects.append((str(path), str(exc)))
            continue
        height, width = rgb.shape[:2]
        if labels is not None:
            label_path = _label_path(labels_dir, path)
            if not label_path.is_file():
                rejects.append((str(path), f"label map {label_path} not found"))
                continue
            try:
                ids_map = load_label(label_path, cfg.max_pixels, cfg.palette_tolerance)
            except BadImage as exc:
                rejects.append((str(path), f"label map {label_path}: {exc}"))
                continue
            if ids_map.shape != (height, width):
                rejects.append((str(path), f"label map {label_path} is {ids_map.shape[1]}x{ids_map.shape[0]} "
                                           f"but the photo is {width}x{height}"))
                continue
            labels[row] = resize_square(ids_map, size, nearest=True)  # never interpolate ids
        if min(height, width) < size:
            steps.append(f"upscaled from {width}x{height}")
        photos[row] = resize_square(rgb, size)
        conversions[row] = "; ".join(steps)
        ok[row] = True
    return ok, photos, labels, conversions


def _staging(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A preallocated uint8 array, memory-mapped in the temporary folder when it is large."""
    if int(np.prod(shape)) <= _IN_MEMORY_BYTES or shape[0] == 0:
        return np.empty(shape, dtype=np.uint8)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


def _write_split(tmp: Path, split: str, rows: np.ndarray, photos: np.ndarray, labels: np.ndarray | None,
                 image_size: int) -> None:
    out_photos, out_labels = store.create_split_arrays(tmp, split, len(rows), image_size, labels is not None)
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        out_photos[start:start + len(chunk)] = photos[chunk]
        if out_labels is not None:
            out_labels[start:start + len(chunk)] = labels[chunk]
    for array in (out_photos, out_labels):
        if isinstance(array, np.memmap):
            array.flush()


def _reason_counts(rejects: list[tuple[str, str]]) -> str:
    """'file not found: 3, truncated or corrupt: 1', grouping reasons by the text before ':'."""
    counts = Counter(reason.split(":")[0] for _, reason in rejects)
    return ", ".join(f"{kind}: {count}" for kind, count in counts.most_common())
