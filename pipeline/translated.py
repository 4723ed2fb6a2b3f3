"""The output layout of `translate`, defined once: one folder of PNGs per output kind, the id lists
that order them, and the record of the run. Written by pipeline.inference, read by evaluation and
the report's figures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

FAKE_B = "fake_b"  # A -> B, e.g. labels -> photo (every method that maps from A)
FAKE_A = "fake_a"  # B -> A (a method that maps from B)
SAMPLES = "samples"  # samples/<k>/: the k-th random-latent sample of every input (a sampling method)
ENCODED = "encoded"  # the reconstruction from the target's encoded latent (needs pairs)
IDS_A = "ids.txt"  # the domain-A inputs, in order (of fake_b, samples, encoded)
IDS_B = "ids_b.txt"  # the domain-B inputs (of fake_a): the same list when paired
RECORD = "translation.json"
TRANSLATIONS = (FAKE_B, FAKE_A, SAMPLES)  # a translated folder holds at least one of these


DIRECTIONS = ("a_to_b", "b_to_a")

# translate-folder: the longest side a generator that takes any size (ResNet) is given, in pixels. An
# image is scaled to the training scale, then down until its longer side fits, so that memory stays
# bounded whatever the image's aspect ratio (a 2x2000 image once took 2.7 GB with CycleGAN's model).
MAX_SIDE = 1024
MIN_SIDE = 16  # and its shorter side at least this (a ResNet's innermost maps are then 4 px wide)


def fake_kind(direction: str) -> str:
    """The folder of the translations in `direction` ("a_to_b" or "b_to_a")."""
    kinds = dict(zip(DIRECTIONS, (FAKE_B, FAKE_A)))
    if direction not in kinds:
        raise ValueError(f"unknown direction {direction!r}; expected one of {list(DIRECTIONS)}")
    return kinds[direction]


def sample_kind(k: int) -> str:
    return f"{SAMPLES}/{k}"


def sample_folders(translated: Path) -> list[Path]:
    """samples/<k>/ in the order of k (2 before 10); none when the method does not sample."""
    root = Path(translated) / SAMPLES
    folders = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    return sorted(folders, key=lambda p: (0, int(p.name)) if p.name.isdigit() else (1, p.name))


def png_name(image_id: str) -> str:
    return Path(image_id).with_suffix(".png").name


def read_translated(folder: Path, ids: list[str]) -> np.ndarray:
    """(N, H, W, 3) uint8 from `folder/<id>.png`, in the order of `ids`; a missing file is an error."""
    images = []
    for image_id in ids:
        path = folder / png_name(image_id)
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing translation for {image_id}")
        images.append(np.asarray(Image.open(path).convert("RGB")))
    return np.stack(images)
