"""The inputs of curation: every image a raw layout names, as one table, and the loader that decodes
one input into its domain A and B arrays, or raises BadImage saying why it cannot.

Both layout forms (a folder of photos with an attribute table; `items.csv`) become the same
`Inputs`, so curation, its filters and its bookkeeping are one code path for every source.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.curation.attributes import read_attr_table
from pipeline.data.images import IMAGE_SUFFIXES, BadImage, load_label, load_label_ids, load_rgb, split_ab
from pipeline.data.paths import is_listed, link_refusal, require_inside
from pipeline.data.sources.layouts import RawLayout, read_items, read_layout

log = logging.getLogger(__name__)

DOMAINS = ("ab", "a", "b")  # a pair; an unpaired domain-A image; a domain-B image (photo) alone


@dataclass
class Inputs:
    items: pd.DataFrame  # index image_id (sorted); columns split ("" = by seed), domain, file, a_file
    attributes: pd.DataFrame  # the same index; one int8 column of 1/-1 per attribute (maybe none)
    a_format: str  # one of sources.A_FORMATS
    dataset: str
    domain_names: dict[str, str]
    source: Path  # the folder or items file, for messages
    attr_path: Path | None = None
    partition_path: Path | None = None
    landmarks_path: Path | None = None
    missing: list[tuple[str, str]] = field(default_factory=list)  # listed but not usable: (file, reason)
    n_ignored: int = 0  # files on disk that the attribute table does not list


@dataclass(frozen=True)
class Loaded:
    """One decoded input at full resolution; what its domain lacks is None."""

    b: np.ndarray | None  # (H, W, 3) uint8 photo
    a: np.ndarray | None  # (H, W, 3) uint8 domain-A image
    labels: np.ndarray | None  # (H, W) uint8 train ids
    conversions: list[str]


def inputs_from_layout(raw_dir: Path) -> Inputs:
    """The inputs named by `raw_dir/layout.json` (the prepare stage's output)."""
    layout = read_layout(Path(raw_dir))
    paths = layout.resolve(Path(raw_dir))
    if paths["items"] is not None:
        return _inputs_from_items(paths["items"], layout, paths["root"])
    return inputs_from_folder(paths["images"], paths["labels"], paths["attributes"], paths["partition"],
                              paths["landmarks"], layout=layout)


def inputs_from_folder(images_dir: Path, labels_dir: Path | None = None, attr_path: Path | None = None,
                       partition_path: Path | None = None, landmarks_path: Path | None = None,
                       layout: RawLayout | None = None) -> Inputs:
    """A folder of photos, with colour label maps named `<photo stem>.png` in `labels_dir`.

    With `attr_path` the table's ids are the inputs (an id whose file is missing or ambiguous is
    listed in `missing`); without it, every file named as an image is one (sorted by name). A link
    that resolves outside `layout.root` (without one: outside its own folder) is listed in `missing`;
    an attribute, partition or landmarks table that does so raises LinkOutsideError.
    """
    images_dir = Path(images_dir)
    labels_dir = None if labels_dir is None else Path(labels_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: images folder not found")
    if labels_dir is not None and not labels_dir.is_dir():
        raise FileNotFoundError(f"{labels_dir}: label maps folder not found")
    layout = layout or RawLayout(images=str(images_dir), labels=None if labels_dir is None else str(labels_dir),
                                 dataset="folder")
    root = images_dir if layout.root is None else Path(layout.root)
    for table_path, what in ((attr_path, "attribute table"), (partition_path, "partition file"),
                             (landmarks_path, "landmarks table")):
        if table_path is not None:
            require_inside(Path(table_path), Path(table_path).parent if layout.root is None else root, what)
    table, files, missing, n_ignored = _table_and_files(images_dir, attr_path, root)
    ids = table.index
    a_files = [str(labels_dir / f"{files[i].stem}.png") if labels_dir is not None else "" for i in ids]
    items = pd.DataFrame({"split": "", "domain": "ab" if labels_dir is not None else "b",
                          "file": [str(files[i]) for i in ids], "a_file": a_files}, index=ids)
    refused = _refuse_escaping_links(items, root, labels_dir if layout.root is None else root)
    missing += refused
    keep = ~items["file"].isin({file for file, _ in refused})
    items, table = items.loc[keep], table.loc[keep.to_numpy()]
    return Inputs(items=items, attributes=table, a_format="colour_labels" if labels_dir is not None else "none",
                  dataset=layout.dataset, domain_names=layout.names, source=images_dir, attr_path=attr_path,
                  partition_path=partition_path, landmarks_path=landmarks_path, missing=missing,
                  n_ignored=n_ignored)


def _inputs_from_items(path: Path, layout: RawLayout, root: Path) -> Inputs:
    frame = read_items(path)
    bad = sorted(set(frame["domain"]) - set(DOMAINS))
    if bad:
        raise ValueError(f"{path}: unknown domain {bad[0]!r}; expected one of {list(DOMAINS)}")
    bad = sorted(set(frame["split"]) - {"", "train", "val", "test"})
    if bad:
        raise ValueError(f"{path}: unknown split {bad[0]!r}; expected train, val, test or empty")
    if frame["image_id"].duplicated().any():
        raise ValueError(f"{path}: duplicate image id {frame.loc[frame['image_id'].duplicated(), 'image_id'].iat[0]!r}")
    items = frame.set_index("image_id").sort_index()
    items.index = items.index.astype(str)
    missing = _refuse_escaping_links(items, root, root)
    items = items.loc[~items["file"].isin({file for file, _ in missing})]
    return Inputs(items=items[["split", "domain", "file", "a_file"]], attributes=pd.DataFrame(index=items.index),
                  a_format=layout.domain_a, dataset=layout.dataset, domain_names=layout.names, source=path,
                  missing=missing)


def _refuse_escaping_links(items: pd.DataFrame, root: Path, a_root: Path | None) -> list[tuple[str, str]]:
    """(file, reason) of each input whose file (checked against `root`) or A file (against `a_root`)
    is a link resolving outside it: listed, as curation lists every input it cannot use."""
    refused = []
    for file, a_file in zip(items["file"], items["a_file"]):
        reason = link_refusal(Path(file), root)
        if reason is None and a_file and a_root is not None:
            reason = link_refusal(Path(a_file), a_root)
            reason = None if reason is None else f"A file {a_file}: {reason}"
        if reason is not None:
            refused.append((file, reason))
    return refused


def _table_and_files(images_dir: Path, attr_path: Path | None, root: Path,
                     ) -> tuple[pd.DataFrame, dict[str, Path], list[tuple[str, str]], int]:
    """The attribute table (index image_id) of the inputs present, each id's file, the ids that
    are missing or ambiguous with their reasons, and how many files on disk the table ignores."""
    names = sorted(entry.name for entry in os.scandir(images_dir)
                   if not entry.name.startswith(".") and is_listed(images_dir / entry.name, root))
    if attr_path is None:
        images = [n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
        if len(images) < len(names):
            log.info("%s: ignoring %d files that are not named as images", images_dir, len(names) - len(images))
        table = pd.DataFrame(index=pd.Index(images, name="image_id", dtype=str))
        return table, {n: images_dir / n for n in images}, [], 0

    table = read_attr_table(Path(attr_path))
    on_disk = set(names)
    by_stem: dict[str, list[str]] = {}
    for name in names:
        by_stem.setdefault(Path(name).stem, []).append(name)
    files: dict[str, Path] = {}
    missing: list[tuple[str, str]] = []
    present = np.zeros(len(table), dtype=bool)
    for row, image_id in enumerate(table.index):
        if image_id in on_disk:
            files[image_id] = images_dir / image_id
        elif not Path(image_id).suffix and len(by_stem.get(image_id, [])) == 1:  # ids without extension
            files[image_id] = images_dir / by_stem[image_id][0]
        elif len(by_stem.get(image_id, [])) > 1:
            missing.append((str(images_dir / image_id), f"ambiguous: several files {by_stem[image_id]}"))
            continue
        else:
            missing.append((str(images_dir / image_id), "file not found"))
            continue
        present[row] = True
    n_ignored = len(on_disk - {p.name for p in files.values()})
    if n_ignored:
        log.info("%s: ignoring %d files that %s does not list", images_dir, n_ignored, attr_path)
    return table.loc[present].sort_index(), files, missing, n_ignored


# --------------------------------------------------------------------------- loading one input


def load_input(domain: str, file: str, a_file: str, a_format: str, max_pixels: int,
               palette_tolerance: float) -> Loaded:
    """Decode one input (a row of `Inputs.items`); BadImage names the file and the problem."""
    if domain == "a":
        a, steps = load_rgb(Path(file), max_pixels)
        return Loaded(b=None, a=a, labels=None, conversions=steps)
    rgb, steps = load_rgb(Path(file), max_pixels)
    if domain == "b" or a_format == "none":
        return Loaded(b=rgb, a=None, labels=None, conversions=steps)
    if a_format in ("ab_left", "ab_right"):
        left, right = split_ab(rgb)
        a, b = (left, right) if a_format == "ab_left" else (right, left)
        return Loaded(b=b, a=a, labels=None, conversions=steps)
    height, width = rgb.shape[:2]
    what = {"colour_labels": "label map", "label_ids": "label id map", "images": "A image"}[a_format]
    a_path = Path(a_file)
    if not a_path.is_file():
        raise BadImage(f"{what} {a_path} not found")
    try:
        if a_format == "colour_labels":
            a_array = load_label(a_path, max_pixels, palette_tolerance)
        elif a_format == "label_ids":
            a_array = load_label_ids(a_path, max_pixels)
        else:
            a_array, a_steps = load_rgb(a_path, max_pixels)
            steps = steps + [f"A: {step}" for step in a_steps]
    except BadImage as exc:
        raise BadImage(f"{what} {a_path}: {exc}") from None
    if a_array.shape[:2] != (height, width):
        raise BadImage(f"{what} {a_path} is {a_array.shape[1]}x{a_array.shape[0]} but the photo is {width}x{height}")
    if a_format == "images":
        return Loaded(b=rgb, a=a_array, labels=None, conversions=steps)
    return Loaded(b=rgb, a=None, labels=a_array, conversions=steps)
