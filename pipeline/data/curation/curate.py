"""Curation: the inputs of a raw data set (photos, label maps, domain-A images, attributes,
partition, landmarks) -> the compact store of `store.py`.

Every input ends in exactly one place: the manifest (kept), rejects.csv (with the reason), or the
count of inputs filtered out by a rule (attributes, domains, landmarks). The store is written to a
temporary sibling folder and renamed onto `out_dir` only once complete.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import CurateConfig, SplitConfig
from pipeline.data import palette, store
from pipeline.data.images import BadImage, resize_square
from pipeline.data.curation.inputs import Inputs, Loaded, inputs_from_folder, inputs_from_layout, load_input
from pipeline.data.curation.selection import select
from pipeline.data.curation.split_check import say_empty_splits
from pipeline.data.sources.layouts import LABEL_FORMATS
from pipeline.io import atomic_dir

log = logging.getLogger(__name__)

_IN_MEMORY_BYTES = 1 << 30  # above this the decoded images are staged in a memory-mapped file
_CHUNK = 4096  # rows copied at a time from the staging arrays into the split arrays


@dataclass(frozen=True)
class CurateSummary:
    splits: dict[str, int]  # images kept per split (both domains of an unpaired data set)
    n_rejected: int  # in rejects.csv
    n_filtered_out: int  # dropped by a rule: curate.require / exclude, domain_a / domain_b, landmarks
    n_ignored: int  # files in images_dir that the attribute table does not list
    filtered: dict[str, int] = field(default_factory=dict)  # n_filtered_out by rule

    @property
    def n_kept(self) -> int:
        return sum(self.splits.values())


def curate(images_dir: Path, out_dir: Path, cfg: CurateConfig, image_size: int, seed: int,
           labels_dir: Path | None = None, attr_path: Path | None = None,
           partition_path: Path | None = None, landmarks_path: Path | None = None) -> CurateSummary:
    """Filter, check, split and resize a folder of photos into the store at `out_dir` (replaced atomically).

    Args:
        labels_dir: colour label maps named `<photo stem>.png`; a photo without one is rejected.
        attr_path: CelebA-form attribute table; without it every image file in images_dir is an
            input (sorted by name) and there are no attributes to filter on.
        partition_path: CelebA-form partition file, used when cfg.use_partition is true.
        landmarks_path: CelebA-form landmarks table, for the landmark filters.
    """
    inputs = inputs_from_folder(images_dir, labels_dir, attr_path, partition_path, landmarks_path)
    return curate_inputs(inputs, out_dir, cfg, image_size, seed)


def curate_raw(raw_dir: Path, out_dir: Path, cfg: CurateConfig, image_size: int, seed: int) -> CurateSummary:
    """Curate the raw data set that `prepare` described in `raw_dir/layout.json`."""
    return curate_inputs(inputs_from_layout(raw_dir), out_dir, cfg, image_size, seed)


def curate_inputs(inputs: Inputs, out_dir: Path, cfg: CurateConfig, image_size: int, seed: int) -> CurateSummary:
    """The one code path of every source: select, load and check, split, write the store."""
    clash = sorted(set(inputs.attributes.columns) & {*store.MANIFEST_COLUMNS, store.LANDMARK_DISTANCE,
                                                     store.PHOTO_LABEL_FILE})
    if clash:
        raise ValueError(f"{inputs.attr_path}: attribute columns {clash} clash with the manifest's own columns")
    rejects = list(inputs.missing)
    n_inputs = len(inputs.items) + len(rejects)
    chosen = select(inputs, cfg)
    rejects += chosen.rejects
    items = chosen.items

    with atomic_dir(Path(out_dir)) as tmp:
        ok, staged, conversions = _load_all(items, chosen.a_format, cfg, image_size, tmp, rejects,
                                            chosen.photo_labels)
        kept = items.loc[ok]
        if len(kept) == 0:
            raise ValueError(f"{inputs.source}: no images left to curate ({chosen.n_filtered_out} filtered out "
                             f"({chosen.filtered}), {len(rejects)} rejected: {_reason_counts(rejects)})")
        split_of, split_source = assign_splits(kept, cfg.split, seed, chosen.split_origin)
        domain_a = _store_domain_a(chosen.a_format)
        paired = domain_a != "none" and bool((kept["domain"] == "ab").all())
        domain_names = _domain_names(inputs, cfg, domain_a)
        domain_splits = {d: {s: int((in_d & (split_of == s)).sum()) for s in store.SPLITS}
                         for d, in_d in (("a", (kept["domain"] != "b").to_numpy()),
                                         ("b", (kept["domain"] != "a").to_numpy()))}
        say_empty_splits(inputs.source, domain_splits, two_domains=domain_a != "none", paired=paired,
                         names=domain_names)  # before the arrays are written: stops where training cannot work
        rows = np.flatnonzero(ok)  # staging row of each kept input
        domain_order = {"a": 0, "ab": 1, "b": 2}  # within a split: unpaired A rows, then B rows
        order = np.lexsort((np.arange(len(kept)), kept["domain"].map(domain_order).to_numpy(),
                            pd.Series(split_of).map({s: i for i, s in enumerate(store.SPLITS)}).to_numpy()))
        counts = {s: int((split_of == s).sum()) for s in store.SPLITS}
        for split in store.SPLITS:
            in_split = split_of == split
            b_rows = rows[in_split & kept["domain"].isin(["ab", "b"]).to_numpy()]
            a_rows = rows[in_split & kept["domain"].isin(["ab", "a"]).to_numpy()]
            _write_split(tmp, split, b_rows, a_rows, staged, domain_a, image_size, chosen.photo_labels is not None)
        del staged  # release the staging memory maps before their files go
        for staging in tmp.glob("_staging_*.npy"):
            staging.unlink()

        ordered = kept.iloc[order]
        has_a = ordered["domain"] != "b"
        has_b = ordered["domain"] != "a"
        # the file domain A came from: a label map, an A image, or the A|B image itself; a photo of
        # two photo domains keeps its label map's file in a column of its own
        a_source = ordered["file"] if chosen.photo_labels else \
            np.where(ordered["a_file"] != "", ordered["a_file"], ordered["file"])
        manifest = pd.DataFrame({
            "image_id": ordered.index,
            "split": split_of[order],
            "domain": ordered["domain"].to_numpy(),
            "a_path": np.where(has_a, a_source, ""),
            "b_path": np.where(has_b, ordered["file"], ""),
            "conversions": [conversions[r] for r in rows[order]],
        })
        if chosen.distances is not None:
            manifest[store.LANDMARK_DISTANCE] = chosen.distances.reindex(ordered.index).round(3).to_numpy()
        if chosen.photo_labels:
            manifest[store.PHOTO_LABEL_FILE] = ordered["a_file"].to_numpy()
        attrs = chosen.attributes.loc[ordered.index]
        for column in attrs.columns:
            manifest[column] = attrs[column].to_numpy()
        store.write_manifest(tmp, manifest)
        store.write_rejects(tmp, rejects)
        has_labels = chosen.a_format in LABEL_FORMATS
        labelled = has_labels or chosen.photo_labels is not None
        # photo_labels only where true: the info of every other store keeps its bytes
        photo_labels = {"photo_labels": True} if chosen.photo_labels else {}
        store.write_info(tmp, {
            "image_size": image_size,
            "has_labels": has_labels,
            "num_classes": palette.NUM_CLASSES if labelled else 0,
            "class_names": list(palette.CLASS_NAMES) if labelled else [],
            "splits": counts,
            "attributes": [str(c) for c in inputs.attributes.columns],
            "split_source": split_source,
            "dataset": inputs.dataset,
            "domain_a": domain_a,
            "paired": paired,
            "domain_names": domain_names,
            "domain_splits": domain_splits,
            **photo_labels,
        })
        if len(manifest) + len(rejects) + chosen.n_filtered_out != n_inputs:  # the never-drop-silently invariant
            raise RuntimeError(f"curate lost track of images: {len(manifest)} kept + {len(rejects)} rejected + "
                               f"{chosen.n_filtered_out} filtered out != {n_inputs} inputs")

    if rejects:
        log.warning("rejected %d images: %s (see %s)", len(rejects), _reason_counts(rejects),
                    Path(out_dir) / store.REJECTS)
    log.info("kept %s (%s)", counts, split_source)
    return CurateSummary(splits=counts, n_rejected=len(rejects), n_filtered_out=chosen.n_filtered_out,
                         n_ignored=inputs.n_ignored, filtered=dict(chosen.filtered))


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


def assign_splits(items: pd.DataFrame, fractions: SplitConfig, seed: int,
                  origin: str = "the data set's own splits") -> tuple[np.ndarray, str]:
    """The split of each input (rows sorted by image_id), and how it was chosen.

    Per domain: inputs without a split from the data set are split by seed with the fractions; if
    the data set gives splits but no val (Cityscapes, whose official val serves as test; pix2pix
    folders without val/), val is carved from train by seed, val / (train + val) of it.
    """
    split_of = items["split"].to_numpy(dtype=object).copy()
    notes = set()
    for domain in sorted(set(items["domain"])):
        rows = np.flatnonzero(items["domain"].to_numpy() == domain)
        blank, given = rows[split_of[rows] == ""], rows[split_of[rows] != ""]
        if len(blank):
            split_of[blank] = split_by_seed(len(blank), fractions, seed)
            notes.add(f"seed {seed}")
        if len(given):
            notes.add(origin)
        train = given[split_of[given] == "train"]
        if len(blank) == 0 and len(train) and not (split_of[given] == "val").any() and fractions.val > 0:
            n_val = round(len(train) * fractions.val / (fractions.train + fractions.val))
            split_of[train[np.random.default_rng(seed).permutation(len(train))[:n_val]]] = "val"
            notes.add(f"val carved from train by seed {seed}")
            log.info("domain %s has no val split: %d of its %d train images become val (seed %d)",
                     domain, n_val, len(train), seed)
    return split_of, "; ".join(sorted(notes))


# --------------------------------------------------------------------------- internals


def _domain_names(inputs: Inputs, cfg: CurateConfig, domain_a: str) -> dict[str, str]:
    if cfg.domain_a:  # two domains picked by attributes: name them by their filters
        # {Night: -1} reads "not Night", {Blond_Hair: 1} "Blond_Hair": the filter in words
        names = {d: ", ".join(k if v == 1 else f"not {k}" for k, v in values.items())
                 for d, values in (("a", cfg.domain_a), ("b", cfg.domain_b))}
        # photos picked from a labelled source: say so, as both domains are photos
        return {d: f"photos ({n})" for d, n in names.items()} if inputs.a_format in LABEL_FORMATS else names
    return {"a": inputs.domain_names.get("a", "A") if domain_a != "none" else "",
            "b": inputs.domain_names.get("b", "B")}


def _store_domain_a(a_format: str) -> str:
    if a_format in LABEL_FORMATS:
        return "labels"
    return "none" if a_format == "none" else "images"


@dataclass
class _Staged:
    photos: np.ndarray | None  # (N, S, S, 3): domain B of each input that has one
    labels: np.ndarray | None  # (N, S, S) train ids
    images_a: np.ndarray | None  # (N, S, S, 3) domain-A images


def _load_all(items: pd.DataFrame, a_format: str, cfg: CurateConfig, image_size: int, tmp: Path,
              rejects: list[tuple[str, str]], photo_labels: str | None = None,
              ) -> tuple[np.ndarray, _Staged, list[str]]:
    """Decode, check and resize every input once into staging arrays (row i = items row i); with
    `photo_labels` (the source's label format) each photo's label map too.

    Returns (ok mask, staged arrays, conversions per row).
    """
    n, size = len(items), image_size
    domains = set(items["domain"])
    staged = _Staged(
        photos=_staging(tmp / "_staging_photos.npy", (n, size, size, 3)) if domains - {"a"} else None,
        labels=_staging(tmp / "_staging_labels.npy", (n, size, size))
        if a_format in LABEL_FORMATS or photo_labels else None,
        images_a=_staging(tmp / "_staging_a.npy", (n, size, size, 3))
        if a_format not in (*LABEL_FORMATS, "none") and domains - {"b"} else None)
    ok = np.zeros(n, dtype=bool)
    conversions = [""] * n
    for row, (domain, file, a_file) in enumerate(zip(items["domain"], items["file"], items["a_file"])):
        try:
            loaded = load_input(domain, file, a_file, a_format, cfg.max_pixels, cfg.palette_tolerance) \
                if photo_labels is None else _photo_with_labels(domain, file, a_file, photo_labels, cfg)
        except BadImage as exc:
            rejects.append((file, str(exc)))
            continue
        steps = loaded.conversions
        shapes = [x.shape[:2] for x in (loaded.b, loaded.a, loaded.labels) if x is not None]
        steps += _geometry_steps(shapes, cfg.resize)
        for name, image in (("photos", loaded.b), ("images_a", loaded.a)):
            if image is None:
                continue
            if min(image.shape[:2]) < size and not any(s.startswith("upscaled") for s in steps):
                steps.append(f"upscaled from {image.shape[1]}x{image.shape[0]}")
            getattr(staged, name)[row] = resize_square(image, size, mode=cfg.resize)
        if loaded.labels is not None:  # the same geometry as its photo; nearest never interpolates ids
            staged.labels[row] = resize_square(loaded.labels, size, nearest=True, mode=cfg.resize)
        conversions[row] = "; ".join(steps)
        ok[row] = True
    return ok, staged, conversions


def _photo_with_labels(domain: str, file: str, a_file: str, labels_format: str, cfg: CurateConfig) -> Loaded:
    """A photo of one of two photo domains picked from a labelled source, with its label map: the
    photo is domain A's image (domain "a") or domain B's photo."""
    pair = load_input("ab", file, a_file, labels_format, cfg.max_pixels, cfg.palette_tolerance)
    if domain == "a":
        return Loaded(b=None, a=pair.b, labels=pair.labels, conversions=pair.conversions)
    return pair


def _geometry_steps(shapes: list[tuple[int, int]], resize: str) -> list[str]:
    """How resize_square changes a non-square input (photo and A share one geometry): cropping drops
    pixels and stretching distorts, so both are recorded, as every other change is."""
    height, width = next(((h, w) for h, w in shapes if h != w), (0, 0))
    if not height:
        return []
    if resize == "stretch":
        return [f"stretched from {width}x{height} (aspect not kept)"]
    side = min(height, width)
    return [f"centre-cropped from {width}x{height} to {side}x{side}"]


def _staging(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A preallocated uint8 array, memory-mapped in the temporary folder when it is large."""
    if int(np.prod(shape)) <= _IN_MEMORY_BYTES or shape[0] == 0:
        return np.empty(shape, dtype=np.uint8)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


def _write_split(tmp: Path, split: str, b_rows: np.ndarray, a_rows: np.ndarray, staged: _Staged, domain_a: str,
                 image_size: int, photo_labels: bool = False) -> None:
    outs = store.create_split_arrays(tmp, split, len(b_rows), len(a_rows), image_size, domain_a, photo_labels)
    sources = ((outs.photos, staged.photos, b_rows), (outs.labels, staged.labels, a_rows),
               (outs.images_a, staged.images_a, a_rows), (outs.labels_a, staged.labels, a_rows),
               (outs.labels_b, staged.labels, b_rows))
    for out, staging, rows in sources:
        if out is None:
            continue
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start:start + _CHUNK]
            out[start:start + len(chunk)] = staging[chunk]
        if isinstance(out, np.memmap):
            out.flush()


def _reason_counts(rejects: list[tuple[str, str]]) -> str:
    """'file not found: 3, truncated or corrupt: 1', grouping reasons by the text before ':'."""
    counts = Counter(reason.split(":")[0] for _, reason in rejects)
    return ", ".join(f"{kind}: {count}" for kind, count in counts.most_common())
