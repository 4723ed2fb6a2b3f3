"""Cityscapes train ids, names and colours, and conversions between id maps and colour maps.

The table is the official one (cityscapesScripts `labels.py`, trainId 0..18); 255 is ignored.
"""
from __future__ import annotations

import numpy as np

IGNORE_ID = 255

# (train id, name, RGB) as in cityscapesScripts/helpers/labels.py
CITYSCAPES_CLASSES: tuple[tuple[int, str, tuple[int, int, int]], ...] = (
    (0, "road", (128, 64, 128)),
    (1, "sidewalk", (244, 35, 232)),
    (2, "building", (70, 70, 70)),
    (3, "wall", (102, 102, 156)),
    (4, "fence", (190, 153, 153)),
    (5, "pole", (153, 153, 153)),
    (6, "traffic light", (250, 170, 30)),
    (7, "traffic sign", (220, 220, 0)),
    (8, "vegetation", (107, 142, 35)),
    (9, "terrain", (152, 251, 152)),
    (10, "sky", (70, 130, 180)),
    (11, "person", (220, 20, 60)),
    (12, "rider", (255, 0, 0)),
    (13, "car", (0, 0, 142)),
    (14, "truck", (0, 0, 70)),
    (15, "bus", (0, 60, 100)),
    (16, "train", (0, 80, 100)),
    (17, "motorcycle", (0, 0, 230)),
    (18, "bicycle", (119, 11, 32)),
)
NUM_CLASSES = len(CITYSCAPES_CLASSES)

# Cityscapes label id -> train id (cityscapesScripts labels.py, the `id` and `trainId` columns);
# the 15 other ids (unlabeled, ego vehicle, ground, parking, rail track, guard rail, bridge,
# tunnel, polegroup, caravan, trailer, ...) and every value above 33 are ignored (255)
LABEL_ID_TO_TRAIN_ID_PAIRS: tuple[tuple[int, int], ...] = (
    (7, 0), (8, 1), (11, 2), (12, 3), (13, 4), (17, 5), (19, 6), (20, 7), (21, 8), (22, 9), (23, 10),
    (24, 11), (25, 12), (26, 13), (27, 14), (28, 15), (31, 16), (32, 17), (33, 18),
)
LABEL_ID_TO_TRAIN_ID = np.full(256, 255, dtype=np.uint8)
for _label_id, _train_id in LABEL_ID_TO_TRAIN_ID_PAIRS:
    LABEL_ID_TO_TRAIN_ID[_label_id] = _train_id
CLASS_NAMES: tuple[str, ...] = tuple(name for _, name, _ in CITYSCAPES_CLASSES)
IGNORE_COLOUR = (0, 0, 0)

# (256, 3) lookup: id -> colour; every id that is not a class (255 included) paints black
_ID_TO_COLOUR = np.zeros((256, 3), dtype=np.uint8)
for _tid, _name, _rgb in CITYSCAPES_CLASSES:
    _ID_TO_COLOUR[_tid] = _rgb
PALETTE = _ID_TO_COLOUR[:NUM_CLASSES].copy()  # (19, 3) uint8


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """(H, W) uint8 Cityscapes label ids (`*_gtFine_labelIds.png`) -> train ids 0..18, others 255."""
    if label_ids.dtype != np.uint8:
        raise ValueError(f"label ids must be uint8, got {label_ids.dtype}")
    return LABEL_ID_TO_TRAIN_ID[label_ids]


def ids_to_colour(ids: np.ndarray) -> np.ndarray:
    """(..., H, W) uint8 train ids -> (..., H, W, 3) uint8 Cityscapes colours (ignore -> black)."""
    if ids.dtype != np.uint8:
        raise ValueError(f"label ids must be uint8, got {ids.dtype}")
    return _ID_TO_COLOUR[ids]


def colour_to_ids(rgb: np.ndarray, max_distance: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Map an (H, W, 3) colour label map to train ids by the nearest palette colour.

    Black maps to IGNORE_ID. Pixels farther than `max_distance` (Euclidean, in 0..255 units)
    from every palette colour and from black are returned as IGNORE_ID and flagged in the mask,
    so that callers can reject a map whose colours are not Cityscapes colours.

    Returns:
        ids: (H, W) uint8 train ids; off: (H, W) bool, True where no palette colour was close.
    """
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"colour label map must have shape (H, W, 3), got {rgb.shape}")
    table = np.concatenate([PALETTE, np.array([IGNORE_COLOUR], np.uint8)]).astype(np.int32)
    ids_of_table = np.array([*range(NUM_CLASSES), IGNORE_ID], dtype=np.uint8)
    flat = rgb.reshape(-1, 3).astype(np.int32)
    # exact matches first (the common case, and cheap): pack RGB into one int per pixel
    key = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    table_key = (table[:, 0] << 16) | (table[:, 1] << 8) | table[:, 2]
    order = np.argsort(table_key)
    pos = np.searchsorted(table_key[order], key).clip(0, len(table_key) - 1)
    exact = table_key[order][pos] == key
    ids = np.full(key.shape, IGNORE_ID, dtype=np.uint8)
    ids[exact] = ids_of_table[order][pos[exact]]
    off = ~exact
    if off.any():
        d2 = ((flat[off, None, :] - table[None, :, :]) ** 2).sum(-1)  # (M, 20)
        nearest = d2.argmin(1)
        close = d2[np.arange(len(nearest)), nearest] <= max_distance**2
        idx = np.flatnonzero(off)
        ids[idx[close]] = ids_of_table[nearest[close]]
        still_off = np.zeros_like(off)
        still_off[idx[~close]] = True
        off = still_off
    return ids.reshape(rgb.shape[:2]), off.reshape(rgb.shape[:2])
