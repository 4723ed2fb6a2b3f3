"""`prepare` adapters for real data sets: each checks a user's folder (an error names the missing
folder) and describes it as a `RawLayout`, listing its inputs in items.csv where the folder is
more than one flat folder of photos. Curation then treats every source the same way.
"""
from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import CurateConfig, DataConfig
from pipeline.data.images import IMAGE_SUFFIXES, BadImage, resize_square
from pipeline.data.curation.inputs import inputs_from_layout, load_input
from pipeline.data.palette import ids_to_colour
from pipeline.data.paths import is_listed
from pipeline.data.sources.layouts import ITEMS_FILE, RawLayout, celeba_layout, write_items, write_layout

log = logging.getLogger(__name__)

CITYSCAPES_PHOTO = "_leftImg8bit.png"
CITYSCAPES_LABEL_IDS = "_gtFine_labelIds.png"
_LIMITS = CurateConfig()


def _root(path: str | None) -> Path:
    root = Path(path or "").expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data.path is not a folder")
    return root


def _images(folder: Path, root: Path) -> list[Path]:
    """The image files of `folder`; links escaping `root` are listed too, for curate to refuse by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                  and is_listed(p, root))


def _write(out_dir: Path, rows: list[tuple[str, str, str, str, str]], source: Path) -> None:
    if not rows:
        raise FileNotFoundError(f"{source}: no images found")
    write_items(out_dir / ITEMS_FILE, pd.DataFrame(rows, columns=["image_id", "split", "domain", "file", "a_file"]))


def cityscapes_layout(root: Path, out_dir: Path) -> RawLayout:
    """Cityscapes: leftImg8bit/{train,val}/<city>/*_leftImg8bit.png with gtFine/{train,val}/<city>/
    *_gtFine_labelIds.png. The official val split is our test split (test's labels are withheld),
    and curate carves val from train by seed. A photo whose label file is missing is rejected."""
    for needed in ("leftImg8bit", "gtFine"):
        if not (root / needed).is_dir():
            raise FileNotFoundError(f"{root}: no {needed}/ folder; expected Cityscapes' leftImg8bit/ and gtFine/ "
                                    "(leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip, unpacked)")
    rows = []
    for official, split in (("train", "train"), ("val", "test")):
        folder = root / "leftImg8bit" / official
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: missing; the official {official} split of Cityscapes")
        for photo in sorted(folder.glob(f"*/*{CITYSCAPES_PHOTO}")):
            stem = photo.name[:-len(CITYSCAPES_PHOTO)]
            label = root / "gtFine" / official / photo.parent.name / f"{stem}{CITYSCAPES_LABEL_IDS}"
            rows.append((photo.name, split, "ab", str(photo), str(label)))
    _write(out_dir, rows, root / "leftImg8bit")
    return RawLayout(items=ITEMS_FILE, a_format="label_ids", dataset="cityscapes",
                     domain_names={"a": "label maps", "b": "photos"}, root=str(root))


def _split_plan(present: set[str]) -> dict[str, str]:
    """Folder -> split: test/ is test (else the official val/ is, as the papers did); a val/ beside
    a test/ is val, otherwise curate carves val from train; train/ alone is split by seed."""
    if "test" in present:
        return {"train": "train", "val": "val", "test": "test"}
    if "val" in present:
        return {"train": "train", "val": "test"}
    return {"train": ""}


def pix2pix_layout(root: Path, out_dir: Path, direction: str) -> RawLayout:
    """pix2pix folders (facades, maps, edges2shoes, night2day, ...): train/ [val/] [test/] of A|B
    images side by side. `direction` b_to_a makes the right half (B) the store's domain A."""
    if not (root / "train").is_dir():
        raise FileNotFoundError(f"{root}: no train/ folder; expected pix2pix's train/ [val/] [test/] of A|B images")
    present = {s for s in ("train", "val", "test") if (root / s).is_dir()}
    rows = [(f"{folder}/{path.name}", split, "ab", str(path), "")
            for folder, split in _split_plan(present).items() if folder in present
            for path in _images(root / folder, root)]
    _write(out_dir, rows, root)
    left, right = "A (left halves)", "B (right halves)"
    names = {"a": left, "b": right} if direction == "a_to_b" else {"a": right, "b": left}
    return RawLayout(items=ITEMS_FILE, a_format="ab_left" if direction == "a_to_b" else "ab_right",
                     dataset="pix2pix_folders", domain_names=names, root=str(root))


def cyclegan_layout(root: Path, out_dir: Path, direction: str) -> RawLayout:
    """CycleGAN folders (horse2zebra, monet2photo, ...): trainA/ trainB/ [valA/ valB/] [testA/ testB/],
    unpaired. `direction` b_to_a makes the B folders the store's domain A."""
    for needed in ("trainA", "trainB"):
        if not (root / needed).is_dir():
            raise FileNotFoundError(f"{root}: no {needed}/ folder; expected CycleGAN's trainA/ trainB/ "
                                    "[testA/ testB/] folders")
    rows = []
    for side in ("A", "B"):
        domain = "a" if (side == "A") == (direction == "a_to_b") else "b"
        present = {s for s in ("train", "val", "test") if (root / f"{s}{side}").is_dir()}
        rows += [(f"{folder}{side}/{path.name}", split, domain, str(path), "")
                 for folder, split in _split_plan(present).items() if folder in present
                 for path in _images(root / f"{folder}{side}", root)]
    _write(out_dir, rows, root)
    names = {"a": "A", "b": "B"} if direction == "a_to_b" else {"a": "B", "b": "A"}
    return RawLayout(items=ITEMS_FILE, a_format="images", dataset="cyclegan_folders", domain_names=names,
                     root=str(root))


def image_folder_layout(root: Path) -> RawLayout:
    """A plain folder of images: one domain, for translation with a trained model only."""
    if not _images(root, root):
        subfolders = sorted(p.name for p in root.iterdir() if p.is_dir())
        hint = f"; it has folders {subfolders[:5]}: a pix2pix or CycleGAN layout?" if subfolders else ""
        raise FileNotFoundError(f"{root}: no image files in the folder{hint}")
    return RawLayout(images=str(root), a_format="none", dataset="image_folder", domain_names={"b": "images"},
                     root=str(root))


def locate(data: DataConfig, out_dir: Path) -> RawLayout:
    """The layout of the real data set named by params `data`; writes items.csv into `out_dir` when needed."""
    root = _root(data.path)
    if data.source == "celeba":
        return celeba_layout(root)
    if data.source == "cityscapes":
        return cityscapes_layout(root, out_dir)
    if data.source == "pix2pix_folders":
        return pix2pix_layout(root, out_dir, data.direction)
    if data.source == "cyclegan_folders":
        return cyclegan_layout(root, out_dir, data.direction)
    if data.source == "image_folder":
        return image_folder_layout(root)
    raise ValueError(f"data.source {data.source!r} is not an imported data set")


def prepare_real(data: DataConfig, out_dir: Path, sheet: Path, cell: int = 96, n: int = 8) -> RawLayout:
    """Write layout.json (and items.csv) for a real data set into `out_dir`, and a contact sheet of
    its first `n` inputs (A | B per row; unreadable ones are left to curate to report)."""
    layout = locate(data, out_dir)
    write_layout(out_dir, layout)
    inputs = inputs_from_layout(out_dir)
    columns: dict[str, list[np.ndarray]] = {"a": [], "b": []}  # unpaired: the first images of each domain
    for domain, file, a_file in zip(inputs.items["domain"], inputs.items["file"], inputs.items["a_file"]):
        if len(columns["a"]) >= n and len(columns["b"]) >= n:
            break
        if domain != "ab" and len(columns[domain]) >= n:
            continue
        try:
            # the sheet is for looking only: curate's limits at their defaults (prepare reads no `curate`)
            loaded = load_input(domain, file, a_file, inputs.a_format, _LIMITS.max_pixels, _LIMITS.palette_tolerance)
        except BadImage:
            continue
        a = ids_to_colour(loaded.labels) if loaded.labels is not None else loaded.a
        for key, image in (("a", a), ("b", loaded.b)):
            if image is not None:
                columns[key].append(resize_square(image, cell))
    rows = [[x for x in pair if x is not None]
            for pair in itertools.zip_longest(columns["a"][:n], columns["b"][:n])]
    _contact_sheet(rows, sheet, cell)
    log.info("%s at %s: %d inputs (%s)", data.source, data.path, len(inputs.items), layout.names)
    return layout


def _contact_sheet(rows: list[list[np.ndarray]], path: Path, cell: int) -> None:
    from PIL import Image

    from pipeline.report_figures import grid_image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = grid_image(rows) if rows else np.full((cell, cell, 3), 255, np.uint8)
    Image.fromarray(image).save(path)
