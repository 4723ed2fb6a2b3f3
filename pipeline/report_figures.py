"""Figures of the report: image grids of test translations (PIL) and loss curves (matplotlib, Agg)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pipeline.translated import ENCODED, FAKE_A, FAKE_B, IDS_A, IDS_B, png_name, sample_folders

MAX_SAMPLES = 5  # BicycleGAN samples shown per row
_PAD = 2  # white pixels between grid cells
MIN_CELL = 128  # grids of smaller images are enlarged by a whole factor to about this size


@dataclass(frozen=True)
class Grid:
    direction: str  # "labels → photo" | "photo → labels"
    path: Path
    columns: tuple[str, ...]  # what each column shows, for the caption


def grid_image(rows: list[list[np.ndarray]], pad: int = _PAD) -> np.ndarray:
    """Tile (H, W, 3) uint8 images, one list per row, on white; every cell takes the first's size."""
    if not rows or not rows[0]:
        raise ValueError("grid_image needs at least one row of one image")
    h, w = rows[0][0].shape[:2]
    n_cols = max(len(row) for row in rows)
    canvas = np.full((len(rows) * (h + pad) + pad, n_cols * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            if image.shape[:2] != (h, w):
                image = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.NEAREST))
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            canvas[y:y + h, x:x + w] = image
    return canvas


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _first_ids(translated: Path, store_ids: list[str], n: int, name: str = IDS_A) -> list[tuple[str, int]]:
    """The first `n` ids that translated/<name> lists (ids_b.txt falls back on ids.txt, as written
    before domains were counted apart), with their rows in the curated test split."""
    ids_file = translated / name
    if not ids_file.is_file() and name != IDS_A:
        ids_file = translated / IDS_A
    if not ids_file.is_file():
        raise FileNotFoundError(f"{ids_file}: missing (run translate)")
    index = {image_id: i for i, image_id in enumerate(store_ids)}
    listed = [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    unknown = [i for i in listed[:n] if i not in index]
    if unknown:
        raise ValueError(f"{ids_file}: ids {unknown[:3]} are not in the curated test split")
    return [(i, index[i]) for i in listed[:n]]


def translation_grids(method: str, translated: Path, curated: Path, figures_dir: Path, n: int) -> list[Grid]:
    """One grid per direction the method translated, first `n` test images, one image per row:
    input | output(s) | target, the target being the real image of the other domain where the data
    set is paired (label map | output | real photo; photo | output | true label map).
    """
    from pipeline.data.palette import ids_to_colour
    from pipeline.data.store import load_split, read_info

    info = read_info(curated)
    test = load_split(curated, "test")
    labelled, paired = test.labels is not None, bool(info["paired"])
    names = info["domain_names"]
    a_name, b_name = (names.get("a") or "A"), (names.get("b") or "B")

    def real_a(i: int) -> np.ndarray:
        return ids_to_colour(np.asarray(test.labels[i])) if labelled else np.asarray(test.images_a[i])

    cell = test.photos.shape[1]
    grids = []
    sample_dirs = sample_folders(translated)
    if ((translated / FAKE_B).is_dir() or sample_dirs) and info["domain_a"] != "none":
        chosen = _first_ids(translated, test.ids_a or [], n)
        if sample_dirs:  # BicycleGAN: the encoded reconstruction, then K random-z samples
            outputs = [("encoded z", translated / ENCODED)] if (translated / ENCODED).is_dir() else []
            outputs += [(f"sample {k + 1}", d) for k, d in enumerate(sample_dirs[:MAX_SAMPLES])]
        else:
            outputs = [("output", translated / FAKE_B)]
        rows = [[real_a(i), *(_read_png(d / png_name(image_id)) for _, d in outputs),
                 *([np.asarray(test.photos[i])] if paired else [])] for image_id, i in chosen]
        columns = ("input label map" if labelled else f"input ({a_name})", *(c for c, _ in outputs),
                   *(["real photo" if labelled else f"real ({b_name})"] if paired else []))
        direction, stem = ("labels → photo", "labels_to_photo") if labelled else (f"{a_name} → {b_name}", "a_to_b")
        if rows:
            grids.append(_save(grid_image(rows), cell, figures_dir / f"{method}_{stem}.png", direction, columns))
    if (translated / FAKE_A).is_dir():
        chosen = _first_ids(translated, test.ids, n, IDS_B)
        rows = [[np.asarray(test.photos[i]), _read_png(translated / FAKE_A / png_name(image_id)),
                 *([real_a(i)] if paired else [])] for image_id, i in chosen]
        columns = ("input photo" if labelled else f"input ({b_name})", "output",
                   *(["true label map" if labelled else f"real ({a_name})"] if paired else []))
        direction, stem = ("photo → labels", "photo_to_labels") if labelled else (f"{b_name} → {a_name}", "b_to_a")
        if rows:
            grids.append(_save(grid_image(rows), cell, figures_dir / f"{method}_{stem}.png", direction, columns))
    return grids


def _save(image: np.ndarray, cell: int, path: Path, direction: str, columns: tuple[str, ...]) -> Grid:
    path.parent.mkdir(parents=True, exist_ok=True)
    scale = max(1, MIN_CELL // cell)  # small test images are enlarged (nearest) to be legible
    grid = Image.fromarray(image)
    grid.resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST).save(path)
    return Grid(direction, path, columns)


# --------------------------------------------------------------------------- loss curves

_NOT_LOSSES = ("step", "lr", "images_per_s")


def _use_log_scale(values: pd.DataFrame) -> bool:
    """Log y when every value is positive and they span more than ~1.5 decades."""
    finite = values.to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    return finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > 30


def loss_figure(csv_path: Path, png_path: Path, title: str) -> Path:
    """Generator and discriminator losses against step: raw (faint) and a moving average."""
    from matplotlib.figure import Figure  # the OO API renders with Agg and touches no global pyplot state

    losses = pd.read_csv(csv_path)
    if "step" not in losses.columns or losses.empty:
        raise ValueError(f"{csv_path}: expected a 'step' column and at least one row")
    keys = [c for c in losses.columns if c not in _NOT_LOSSES]
    groups = [(name, cols) for name, cols in (("generator", [k for k in keys if not k.startswith("d_")]),
                                              ("discriminator", [k for k in keys if k.startswith("d_")])) if cols]
    if not groups:
        raise ValueError(f"{csv_path}: no loss columns besides {list(_NOT_LOSSES)}")
    window = max(1, len(losses) // 20)  # a light smoothing: 5 % of the logged points
    fig = Figure(figsize=(5 * len(groups), 3.4), layout="constrained")
    for n, (name, cols) in enumerate(groups):
        ax = fig.add_subplot(1, len(groups), n + 1)
        for col in cols:
            raw = losses[col].astype(float)
            (line,) = ax.plot(losses["step"], raw, alpha=0.25, linewidth=0.8)
            ax.plot(losses["step"], raw.rolling(window, min_periods=1).mean(), color=line.get_color(),
                    linewidth=1.5, label=col)
        if _use_log_scale(losses[cols]):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{title}: {name}", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    return png_path
