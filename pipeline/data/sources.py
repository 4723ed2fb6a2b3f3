"""Where a raw data set's files are: one `RawLayout` per source, written by `prepare` as layout.json.

The curate stage reads only the layout, so the embedded scenes and a user's CelebA download go
through one code path.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

LAYOUT_FILE = "layout.json"


@dataclass(frozen=True)
class RawLayout:
    images: str  # folder of photos (domain B)
    labels: str | None = None  # folder of colour label maps (domain A), same stems as the photos
    attributes: str | None = None  # CelebA-form attribute table (csv or txt)
    partition: str | None = None  # CelebA-form partition file (0 train, 1 val, 2 test)

    def resolve(self, base: Path) -> dict[str, Path | None]:
        """Paths; relative entries are relative to the layout file's folder (kept relative, so
        that manifests do not depend on where the repository lies)."""
        return {k: (None if v is None else base / v) for k, v in asdict(self).items()}


def streets_layout() -> RawLayout:
    return RawLayout(images="streets/photos", labels="streets/labels", attributes="streets/list_attr.csv")


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).exists()), None)


def celeba_layout(root: Path) -> RawLayout:
    """CelebA as distributed: img_align_celeba/ with list_attr_celeba.(csv|txt) and, optionally,
    list_eval_partition.(csv|txt); the Kaggle copy nests images one folder deeper."""
    root = root.resolve()
    images = root / "img_align_celeba"
    if (images / "img_align_celeba").is_dir():
        images = images / "img_align_celeba"
    if not images.is_dir():
        raise FileNotFoundError(f"{root}: no img_align_celeba/ folder; expected the CelebA aligned images there")
    attributes = _first(root, ("list_attr_celeba.csv", "list_attr_celeba.txt"))
    if attributes is None:
        raise FileNotFoundError(f"{root}: no list_attr_celeba.csv or list_attr_celeba.txt")
    partition = _first(root, ("list_eval_partition.csv", "list_eval_partition.txt"))
    return RawLayout(images=str(images), attributes=str(attributes),
                     partition=None if partition is None else str(partition))


def write_layout(folder: Path, layout: RawLayout) -> None:
    (folder / LAYOUT_FILE).write_text(json.dumps(asdict(layout), indent=2) + "\n")


def read_layout(folder: Path) -> dict[str, Path | None]:
    path = folder / LAYOUT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the prepare stage first")
    try:
        layout = RawLayout(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path}: not a valid layout ({exc})") from None
    return layout.resolve(folder)
