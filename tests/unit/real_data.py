"""Tiny data sets in the real on-disk formats (CelebA, Cityscapes, pix2pix and CycleGAN folders, a
plain folder), written by the tests that use them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data import palette

LANDMARK_HEADER = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
                   "rightmouth_x rightmouth_y")
MEAN_LANDMARKS = np.array([69, 110, 107, 112, 88, 134, 71, 152, 105, 153])  # about CelebA's aligned mean


def _noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def celeba_attributes(n: int) -> dict[str, np.ndarray]:
    """Blond_Hair on i % 3 == 0; Black_Hair on i % 3 == 1 and on i % 6 == 0 (so those are in both);
    neither on i % 3 == 2."""
    i = np.arange(n)
    blond = i % 3 == 0
    black = (i % 3 == 1) | (i % 6 == 0)
    return {"Blond_Hair": np.where(blond, 1, -1), "Black_Hair": np.where(black, 1, -1),
            "Male": np.where(i % 2 == 0, 1, -1)}


def write_celeba(root: Path, n: int = 36, size: tuple[int, int] = (40, 48)) -> Path:
    """img_align_celeba/ (n jpgs), list_attr_celeba.csv (Kaggle), list_eval_partition.txt and
    list_landmarks_align_celeba.txt (official text): every point of face k shifted by 6 px when
    k % 5 == 0 (misaligned), else by 2 px (even k) or 1 px (odd k); the mean shift is 2.5 px."""
    rng = np.random.default_rng(1)
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    ids = [f"{i + 1:06d}.jpg" for i in range(n)]
    for image_id in ids:
        Image.fromarray(_noise(rng, size[1], size[0])).save(images / image_id, quality=90)
    attrs = celeba_attributes(n)
    lines = ["image_id," + ",".join(attrs)]
    lines += [f"{image_id}," + ",".join(str(v[k]) for v in attrs.values()) for k, image_id in enumerate(ids)]
    (root / "list_attr_celeba.csv").write_text("\n".join(lines) + "\n")
    codes = [0 if k < n * 2 // 3 else (1 if k < n * 5 // 6 else 2) for k in range(n)]
    (root / "list_eval_partition.txt").write_text("".join(f"{i} {c}\n" for i, c in zip(ids, codes)))
    rows = [str(n), LANDMARK_HEADER]
    for k, image_id in enumerate(ids):
        points = MEAN_LANDMARKS + (6 if k % 5 == 0 else 2 if k % 2 == 0 else 1)
        rows.append(f"{image_id} " + " ".join(f"{v:4d}" for v in points))
    (root / "list_landmarks_align_celeba.txt").write_text("\n".join(rows) + "\n")
    return root


def label_ids_map(height: int, width: int, k: int) -> np.ndarray:
    """Cityscapes label ids: sky (23) above, road (7) below, a car (26) and a parking (9, ignored)."""
    ids = np.full((height, width), 23, np.uint8)
    ids[height // 2:] = 7
    ids[height // 2:height * 3 // 4, k % (width // 2):k % (width // 2) + width // 4] = 26
    ids[-2:, :4] = 9
    ids[0, 0] = 1  # ego vehicle: ignored too
    return ids


def write_cityscapes(root: Path, cities: dict[str, dict[str, int]] | None = None,
                     size: tuple[int, int] = (64, 32)) -> Path:
    """leftImg8bit/<split>/<city>/<city>_000000_0000NN_leftImg8bit.png and the matching
    gtFine/<split>/<city>/*_gtFine_labelIds.png (mode L) at 2:1, like Cityscapes' 2048x1024."""
    cities = cities or {"train": {"aachen": 4, "bremen": 3}, "val": {"frankfurt": 3}}
    rng = np.random.default_rng(2)
    width, height = size
    for split, counts in cities.items():
        for city, count in counts.items():
            for k in range(count):
                stem = f"{city}_000000_{k:06d}"
                photo_dir, label_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
                photo_dir.mkdir(parents=True, exist_ok=True)
                label_dir.mkdir(parents=True, exist_ok=True)
                ids = label_ids_map(height, width, k)
                colours = palette.ids_to_colour(palette.label_ids_to_train_ids(ids))
                photo = colours // 2 + _noise(rng, height, width) // 2
                Image.fromarray(photo).save(photo_dir / f"{stem}_leftImg8bit.png")
                Image.fromarray(ids, mode="L").save(label_dir / f"{stem}_gtFine_labelIds.png")
                Image.fromarray(colours).save(label_dir / f"{stem}_gtFine_color.png")  # in the download, unused
    return root


def ab_image(rng: np.random.Generator, half: int, value_a: int) -> np.ndarray:
    """A|B side by side: A flat grey `value_a` on the left, B noise on the right."""
    a = np.full((half, half, 3), value_a, np.uint8)
    return np.concatenate([a, _noise(rng, half, half)], axis=1)


def write_pix2pix(root: Path, counts: dict[str, int] | None = None, half: int = 32) -> Path:
    """train/ test/ (no val/) of A|B jpgs named 1.jpg, 2.jpg, ... in each folder, as facades."""
    counts = counts or {"train": 7, "test": 3}
    rng = np.random.default_rng(3)
    for split, count in counts.items():
        (root / split).mkdir(parents=True)
        for k in range(1, count + 1):
            Image.fromarray(ab_image(rng, half, 10 * k)).save(root / split / f"{k}.png")
    return root


def write_cyclegan(root: Path, counts: dict[str, int] | None = None, size: int = 36) -> Path:
    """trainA/ trainB/ testA/ testB/ of jpgs, different counts per domain (A dark, B bright)."""
    counts = counts or {"trainA": 5, "trainB": 6, "testA": 2, "testB": 3}
    rng = np.random.default_rng(4)
    for folder, count in counts.items():
        (root / folder).mkdir(parents=True)
        for k in range(count):
            base = 40 if folder.endswith("A") else 200
            image = np.clip(base + rng.integers(-30, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / folder / f"{folder[-1].lower()}_{k:03d}.jpg", quality=90)
    return root


def write_image_folder(root: Path, n: int = 5, size: tuple[int, int] = (40, 30)) -> Path:
    """A flat folder of images of mixed modes, plus a file that is not an image."""
    rng = np.random.default_rng(5)
    root.mkdir(parents=True)
    for k in range(n):
        image = Image.fromarray(_noise(rng, size[1], size[0]))
        (image.convert("L") if k == 0 else image).save(root / f"img_{k}.png")
    (root / "notes.txt").write_text("not an image")
    return root
