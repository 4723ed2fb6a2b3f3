"""Robust image loading for curation: every file is either converted to (H, W, 3) uint8 RGB, with
the conversions named, or refused with BadImage whose message is the reason.
"""
from __future__ import annotations

import contextlib
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.config import ResizeMode
from pipeline.data import palette

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
_EXIF_ORIENTATION = 0x0112
# other colour spaces, which PIL converts to RGB
_COLOUR_TO_RGB = {"CMYK": "cmyk->rgb", "YCbCr": "ycbcr->rgb", "LAB": "lab->rgb", "HSV": "hsv->rgb",
                  "RGBX": "rgbx->rgb"}
_LABEL_MODES = ("RGB", "RGBA", "RGBX", "P", "PA")
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)


class BadImage(ValueError):
    """A file that cannot be used as an image; the message is the reason."""


def load_rgb(path: Path, max_pixels: int) -> tuple[np.ndarray, list[str]]:
    """Decode `path` fully into an (H, W, 3) uint8 RGB array.

    Returns the array and the conversions applied, e.g. ["grayscale->rgb"], ["exif-rotated"],
    ["rgba composited on white"], ["16-bit->8-bit"], ["cmyk->rgb"], ["palette->rgb"],
    ["float [0, 1]->8-bit"]. Raises BadImage for empty, truncated, unreadable or oversized
    (> max_pixels) files, and for numeric images whose values have no known scale.
    """
    img, conversions = _open_decoded(Path(path), max_pixels)
    try:
        rgb = _to_rgb(img, conversions)
    finally:
        img.close()
    return rgb, conversions


def load_label(path: Path, max_pixels: int, tolerance: float) -> np.ndarray:
    """Decode a Cityscapes colour label map into (H, W) uint8 train ids (255 = ignore).

    Alpha is dropped, never composited. Colours within `tolerance` (RGB distance) of a palette
    colour snap to it; any pixel farther from every colour raises BadImage, and so does a
    single-channel map (an id map read as grey would snap to black, i.e. to "ignore").
    """
    path = Path(path)
    img, _ = _open_decoded(path, max_pixels)
    try:
        if img.mode in ("1", "L", "LA", "I", "F") or img.mode.startswith("I;16"):
            # small train ids (0..18) read as grey would all snap to black, i.e. silently to "ignore"
            raise BadImage(f"single-channel label map (mode {img.mode!r}): is it an id map rather than "
                           "a colour map? expected Cityscapes colours")
        if img.mode not in _LABEL_MODES:
            raise BadImage(f"unsupported label map mode {img.mode!r}: expected an 8-bit colour map "
                           f"(one of {list(_LABEL_MODES)})")
        rgb = np.asarray(img.convert("RGB"))
    finally:
        img.close()
    ids, off = palette.colour_to_ids(rgb, max_distance=tolerance)
    n_off = int(off.sum())
    if n_off:
        row, col = (int(i) for i in np.argwhere(off)[0])
        example = tuple(int(v) for v in rgb[row, col])
        raise BadImage(f"off-palette label colours: {n_off} of {off.size} pixels "
                       f"({100.0 * n_off / off.size:.2f}%) are farther than {tolerance:g} from every "
                       f"Cityscapes colour, e.g. RGB {example} at (row {row}, col {col})")
    return ids


def load_label_ids(path: Path, max_pixels: int) -> np.ndarray:
    """Decode a Cityscapes `*_gtFine_labelIds.png` (one channel of label ids) into (H, W) uint8 train
    ids (255 = ignore). A colour or 16-bit map raises BadImage: its values would not be label ids."""
    path = Path(path)
    img, _ = _open_decoded(path, max_pixels)
    try:
        if img.mode not in ("L", "P"):
            raise BadImage(f"label id map of mode {img.mode!r}: expected one 8-bit channel of Cityscapes "
                           "label ids (a *_gtFine_labelIds.png; colour maps are *_gtFine_color.png)")
        label_ids = np.asarray(img)  # mode P: the palette indices are the ids
    finally:
        img.close()
    return palette.label_ids_to_train_ids(np.ascontiguousarray(label_ids, dtype=np.uint8))


def split_ab(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A side-by-side A|B image (H, 2W, 3) -> its left and right halves (H, W, 3) each.

    Raises BadImage for an odd width, which has no middle to cut at.
    """
    height, width = rgb.shape[:2]
    if width % 2:
        raise BadImage(f"A|B image of odd width {width} (height {height}): cannot be cut into two equal halves")
    half = width // 2
    return np.ascontiguousarray(rgb[:, :half]), np.ascontiguousarray(rgb[:, half:])


def resize_square(image: np.ndarray, size: int, nearest: bool = False, mode: ResizeMode = "crop") -> np.ndarray:
    """Resize to (size, size): centre-crop the largest square first (mode "crop"), or take the whole
    image and let the aspect ratio go (mode "stretch", as the papers resized Cityscapes' 2:1 frames).

    Photos use LANCZOS (antialiased when shrinking); label maps must pass nearest=True so that
    ids are never interpolated. Works for (H, W) and (H, W, C) uint8 arrays.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {list(RESIZE_MODES)}, got {mode!r}")
    height, width = image.shape[:2]
    if height == width == size:
        return image
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS
    if mode == "stretch":
        return np.asarray(Image.fromarray(image).resize((size, size), resample))
    side = min(height, width)
    left, top = (width - side) // 2, (height - side) // 2
    # resizing from a box crops and resizes in one pass, with the filter seeing the pixels
    # just outside the box, as a crop followed by a resize would not
    resized = Image.fromarray(image).resize((size, size), resample, box=(left, top, left + side, top + side))
    return np.asarray(resized)


# --------------------------------------------------------------------------- internals


def _open_decoded(path: Path, max_pixels: int) -> tuple[Image.Image, list[str]]:
    """Open, size-check, fully decode and EXIF-transpose; returns the image and the conversions."""
    try:
        n_bytes = path.stat().st_size
    except FileNotFoundError:
        raise BadImage("file not found") from None
    if n_bytes == 0:
        raise BadImage("empty file (0 bytes)")
    conversions: list[str] = []
    img = None
    try:
        with warnings.catch_warnings():
            # PIL warns (rather than raises) between its limit and twice its limit
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _open_header(path, max_pixels)
            is_16_bit = any(";16" in str(tile[3]) for tile in img.tile)  # the raw mode, e.g. "RGB;16B"
            with _pillow_ceiling(max_pixels):  # PIL's own checks while decoding (e.g. of GIF frames)
                if getattr(img, "is_animated", False):  # asked before load(): it seeks between frames
                    conversions.append("first frame of animation")
                img.load()  # force the full decode here so that truncation is caught
            if _orientation(img) in range(2, 9):  # 1 is upright; other values are invalid
                transposed = ImageOps.exif_transpose(img)
                img.close()
                img = transposed
                conversions.append("exif-rotated")
    except BadImage:
        _close(img)
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        _close(img)
        raise BadImage(f"decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        _close(img)
        raise BadImage(f"not a recognised image format ({n_bytes} bytes; is it an image at all?)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        _close(img)
        raise BadImage(f"truncated or corrupt: {exc}") from None
    if is_16_bit or img.mode.startswith("I;16"):
        conversions.append("16-bit->8-bit")
    return img, conversions


def _open_header(path: Path, max_pixels: int) -> Image.Image:
    """Open `path` (header only, nothing decoded) and refuse it when it has more than `max_pixels`.

    `max_pixels` (curate.max_pixels) is the one limit, both ways: PIL's own ceiling (89.5 M pixels)
    is lifted for the open, so that it neither refuses an image the user allows nor quotes its own number.
    """
    with _pillow_ceiling(None):
        img = Image.open(path)
    width, height = img.size
    if width * height > max_pixels:  # before decoding: the header alone tells
        img.close()
        raise BadImage(f"decompression bomb: {width}x{height} = {width * height} pixels "
                       f"exceeds max_pixels {max_pixels}")
    return img


@contextlib.contextmanager
def _pillow_ceiling(max_pixels: int | None) -> Iterator[None]:
    """PIL's process-wide Image.MAX_IMAGE_PIXELS set to `max_pixels` inside, restored after.

    PIL has no per-call limit; curation reads one file at a time, so no other read sees the change.
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright); an unreadable EXIF block counts as upright."""
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except (OSError, SyntaxError, ValueError, TypeError, struct.error):
        return 1


def _close(img: Image.Image | None) -> None:
    if img is not None:
        img.close()


def _to_rgb(img: Image.Image, conversions: list[str]) -> np.ndarray:
    """Convert a decoded image of any supported mode to (H, W, 3) uint8, naming each step."""
    mode = img.mode
    if mode == "RGB":
        out = np.asarray(img)
    elif mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in img.info):
        if mode in ("LA", "La"):
            conversions.append("grayscale->rgb")
        elif mode in ("P", "PA"):
            conversions.append("palette->rgb")
        out = _composite_on_white(np.asarray(img.convert("RGBA")), conversions)
    elif mode == "P":
        conversions.append("palette->rgb")
        out = np.asarray(img.convert("RGB"))
    elif mode == "L":
        conversions.append("grayscale->rgb")
        out = np.asarray(img.convert("RGB"))
    elif mode == "1":
        conversions.append("bilevel->rgb")
        out = np.asarray(img.convert("RGB"))
    elif mode.startswith("I;16") or (mode == "I" and "16-bit->8-bit" in conversions):
        # 16-bit grayscale (PNG opens as I;16, a 16-bit PGM as I, whose raw mode _open_decoded
        # recorded): 0..65535 -> 0..255, rounded; PIL's convert("L") would clip instead of scale
        wide = np.asarray(img, dtype=np.int64) if mode == "I" else np.asarray(img).astype(np.int64)
        if "16-bit->8-bit" not in conversions:
            conversions.append("16-bit->8-bit")
        conversions.append("grayscale->rgb")
        gray = ((np.clip(wide, 0, 65535) + 128) // 257).astype(np.uint8)
        out = np.repeat(gray[:, :, None], 3, axis=2)
    elif mode in ("I", "F"):
        gray = _numeric_to_uint8(np.asarray(img), mode, conversions)
        conversions.append("grayscale->rgb")
        out = np.repeat(gray[:, :, None], 3, axis=2)
    elif mode in _COLOUR_TO_RGB:
        conversions.append(_COLOUR_TO_RGB[mode])
        out = np.asarray(img.convert("RGB"))
    else:
        raise BadImage(f"unsupported image mode {mode!r}")
    if out.dtype != np.uint8 or out.ndim != 3 or out.shape[2] != 3:
        raise BadImage(f"decoded to an unexpected array {out.dtype} {out.shape} from mode {mode!r}")
    return np.ascontiguousarray(out)


def _numeric_to_uint8(values: np.ndarray, mode: str, conversions: list[str]) -> np.ndarray:
    """A 32-bit integer (mode I) or float (mode F) channel -> uint8, only where its scale is known:
    floats in [0, 1] scale to 0..255; integer values in 0..255 are kept; anything else is refused."""
    kind = "floating-point" if mode == "F" else "32-bit integer"
    if not np.isfinite(values).all():
        raise BadImage(f"{kind} image (mode {mode!r}) holds NaN or infinite values")
    low, high = (values.min(), values.max()) if values.size else (0, 0)
    if mode == "F" and 0 <= low and high <= 1:
        conversions.append("float [0, 1]->8-bit")
        return np.rint(values.astype(np.float64) * 255).astype(np.uint8)
    if 0 <= low and high <= 255 and (mode == "I" or (values == np.round(values)).all()):
        conversions.append(f"{'float' if mode == 'F' else '32-bit'} integer values->8-bit (kept)")
        return values.astype(np.uint8)
    # an unknown scale: a guess (clip, or stretch min..max) would change the pixels without a trace
    raise BadImage(f"{kind} image (mode {mode!r}) with values in [{low:g}, {high:g}]: expected floats in "
                   "[0, 1] or integer values in 0..255")


def _composite_on_white(rgba: np.ndarray, conversions: list[str]) -> np.ndarray:
    """(H, W, 4) -> (H, W, 3) over a white background; a fully opaque alpha is just dropped."""
    alpha = rgba[:, :, 3:4]
    if (alpha == 255).all():
        conversions.append("opaque alpha dropped")
        return rgba[:, :, :3]
    conversions.append("rgba composited on white")
    a = alpha.astype(np.uint32)
    blended = (rgba[:, :, :3].astype(np.uint32) * a + 255 * (255 - a) + 127) // 255
    return blended.astype(np.uint8)
