"""Where a raw data set's files are: one `RawLayout` per source, written by `prepare` as layout.json.

The curate stage reads only the layout, so the embedded scenes and every real data set go through
one code path. Two forms: a folder of photos (domain B) with optional colour label maps and a
CelebA-form attribute table; or `items.csv`, one row per input naming its split, domain and files
(written by the adapters in `adapters.py` for Cityscapes and the pix2pix / CycleGAN folders).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

LAYOUT_FILE = "layout.json"
ITEMS_FILE = "items.csv"
ITEM_COLUMNS = ("image_id", "split", "domain", "file", "a_file")

# How an input's domain A is stored:
#   colour_labels  a label map in Cityscapes colours beside each photo (a_file)
#   label_ids      a Cityscapes `*_labelIds.png` beside each photo (a_file), mapped to train ids
#   images         an RGB image: beside the photo (paired, a_file) or a domain-"a" row of its own
#   ab_left        one side-by-side image per input (file): A the left half, B the right
#   ab_right       the same with the halves swapped (A the right half)
#   none           no domain A: photos only
A_FORMATS = ("colour_labels", "label_ids", "images", "ab_left", "ab_right", "none")
LABEL_FORMATS = ("colour_labels", "label_ids")


@dataclass(frozen=True)
class RawLayout:
    images: str | None = None  # folder of photos (domain B)
    labels: str | None = None  # folder of colour label maps (domain A), same stems as the photos
    attributes: str | None = None  # CelebA-form attribute table (csv or txt)
    partition: str | None = None  # CelebA-form partition file (0 train, 1 val, 2 test)
    landmarks: str | None = None  # CelebA-form landmarks table (5 points per aligned face)
    items: str | None = None  # items.csv (ITEM_COLUMNS), instead of `images`
    a_format: str | None = None  # one of A_FORMATS; None: colour_labels with `labels`, else none
    dataset: str = "streets"  # the source's name, for messages and info.json
    domain_names: dict[str, str] = field(default_factory=dict)  # {"a": ..., "b": ...}
    # the folder the user named (data.path): every input must resolve inside it (paths.link_refusal);
    # None for a folder layout: the images and labels folders are each their own root
    root: str | None = None

    def __post_init__(self) -> None:
        if (self.images is None) == (self.items is None):
            raise ValueError("a layout names either an images folder or an items file")
        if self.items is not None and self.root is None:
            # items.csv names files anywhere: without the folder the user named, links could not be checked
            raise ValueError("a layout with an items file must name its root folder; run the prepare stage again")
        if self.a_format is not None and self.a_format not in A_FORMATS:
            raise ValueError(f"unknown a_format {self.a_format!r}; expected one of {list(A_FORMATS)}")

    @property
    def domain_a(self) -> str:
        """The resolved a_format."""
        if self.a_format is not None:
            return self.a_format
        return "colour_labels" if self.labels is not None else "none"

    @property
    def names(self) -> dict[str, str]:
        default = {"a": "label maps", "b": "photos"} if self.domain_a in LABEL_FORMATS else {"a": "A", "b": "photos"}
        return {**default, **self.domain_names}

    def resolve(self, base: Path) -> dict[str, Path | None]:
        """Paths; relative entries are relative to the layout file's folder (kept relative, so
        that manifests do not depend on where the repository lies)."""
        keys = ("images", "labels", "attributes", "partition", "landmarks", "items", "root")
        return {k: (None if getattr(self, k) is None else base / getattr(self, k)) for k in keys}


def streets_layout() -> RawLayout:
    return RawLayout(images="streets/photos", labels="streets/labels", attributes="streets/list_attr.csv")


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    # a dangling link counts as present, so that the link policy refuses it by name (not "no such file")
    return next((folder / n for n in names if (folder / n).exists() or (folder / n).is_symlink()), None)


def celeba_layout(root: Path) -> RawLayout:
    """CelebA as distributed: img_align_celeba/ with list_attr_celeba.(csv|txt) and, optionally,
    list_eval_partition.(csv|txt) and list_landmarks_align_celeba.(csv|txt); the Kaggle copy nests
    images one folder deeper."""
    root = root.resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data.path is not a folder")
    images = root / "img_align_celeba"
    if (images / "img_align_celeba").is_dir():
        images = images / "img_align_celeba"
    if not images.is_dir():
        raise FileNotFoundError(f"{root}: no img_align_celeba/ folder; expected the CelebA aligned images there")
    attributes = _first(root, ("list_attr_celeba.csv", "list_attr_celeba.txt"))
    if attributes is None:
        raise FileNotFoundError(f"{root}: no list_attr_celeba.csv or list_attr_celeba.txt")
    partition = _first(root, ("list_eval_partition.csv", "list_eval_partition.txt"))
    landmarks = _first(root, ("list_landmarks_align_celeba.csv", "list_landmarks_align_celeba.txt"))
    return RawLayout(images=str(images), attributes=str(attributes),
                     partition=None if partition is None else str(partition),
                     landmarks=None if landmarks is None else str(landmarks),
                     dataset="celeba", domain_names={"b": "faces"}, root=str(root))


def write_layout(folder: Path, layout: RawLayout) -> None:
    (folder / LAYOUT_FILE).write_text(json.dumps(asdict(layout), indent=2) + "\n")


def read_layout(folder: Path) -> RawLayout:
    path = folder / LAYOUT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the prepare stage first")
    try:
        return RawLayout(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid layout ({exc})") from None


def write_items(path: Path, items: pd.DataFrame) -> None:
    """items.csv: image_id (unique), split (train|val|test, or empty: split by seed), domain (ab for a
    pair, a or b for an unpaired image), file, a_file (a pair's separate A file, else empty)."""
    missing = [c for c in ITEM_COLUMNS if c not in items.columns]
    if missing:
        raise ValueError(f"items lack columns {missing}")
    if items["image_id"].duplicated().any():
        raise ValueError(f"duplicate image ids {items.loc[items['image_id'].duplicated(), 'image_id'].tolist()[:3]}")
    items[list(ITEM_COLUMNS)].to_csv(path, index=False)


def read_items(path: Path) -> pd.DataFrame:
    try:
        items = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: not a valid items file ({exc})") from None
    missing = [c for c in ITEM_COLUMNS if c not in items.columns]
    if missing:
        raise ValueError(f"{path}: lacks columns {missing}; run the prepare stage again")
    return items
