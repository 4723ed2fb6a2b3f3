"""Robust image loading: every awkward input is either converted (and named) or refused with a reason."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.data import palette
from pipeline.data.images import BadImage, _open_header, load_label, load_rgb, resize_square

MAX_PIXELS = 50_000_000


def _png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None = None) -> bytes:
    """A PNG written by hand, so that headers (sizes, bit depths) can say anything we like.

    rows: the filtered scanlines; None means all zeros, compressed in pieces to stay cheap.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    if rows is None:
        channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
        row = bytes(1 + (width * channels * bit_depth + 7) // 8)  # filter byte + zero pixels
        compressor = zlib.compressobj(9)
        idat = b"".join(compressor.compress(row * 1000) for _ in range(height // 1000))
        idat += compressor.compress(row * (height % 1000)) + compressor.flush()
    else:
        idat = zlib.compress(rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- refused


def test_zero_byte_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(BadImage, match="empty file"):
        load_rgb(path, MAX_PIXELS)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadImage, match="file not found"):
        load_rgb(tmp_path / "nope.png", MAX_PIXELS)


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    Image.fromarray(_random_rgb(48, 40)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImage, match="truncated"):
        load_rgb(path, MAX_PIXELS)


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    Image.fromarray(_random_rgb(48, 40)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImage, match="truncated"):
        load_rgb(path, MAX_PIXELS)


def test_text_named_jpg_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n")
    with pytest.raises(BadImage, match="not a recognised image format"):
        load_rgb(path, MAX_PIXELS)


def test_image_over_max_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(_random_rgb(48, 40)).save(path)
    with pytest.raises(BadImage, match=r"decompression bomb: 40x48 = 1920 pixels exceeds max_pixels 1000"):
        load_rgb(path, max_pixels=1000)
    # a truncated file says "bomb", not "truncated": the header alone decided, nothing was decoded
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImage, match="decompression bomb"):
        load_rgb(path, max_pixels=1000)


@pytest.mark.parametrize("side, max_pixels", [
    (8_000, MAX_PIXELS),  # 64 M pixels: over our limit, under PIL's
    (10_000, MAX_PIXELS),  # 100 M: over PIL's warning limit too
    (20_000, 10**8),  # 400 M: over twice PIL's limit, where PIL itself would raise
])
def test_real_decompression_bomb_is_refused(tmp_path: Path, side: int, max_pixels: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bytes(side, side, bit_depth=1, colour_type=0))  # zeros: a few KB on disk
    assert path.stat().st_size < 100_000
    # the user's limit is quoted, never PIL's 89.5 M
    with pytest.raises(BadImage, match=f"decompression bomb: {side}x{side} = .* exceeds max_pixels {max_pixels}$"):
        load_rgb(path, max_pixels)


def test_max_pixels_is_the_one_limit_not_pillows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small.png"
    Image.fromarray(_random_rgb(48, 40)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL's ceiling, made tiny: 1920 px is over twice it
    out, _ = load_rgb(path, max_pixels=10_000)
    assert out.shape == (48, 40, 3)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored: no process-wide state left changed
    with pytest.raises(BadImage, match="exceeds max_pixels 1000$"):
        load_rgb(path, max_pixels=1000)


def test_image_over_pillows_ceiling_passes_the_header_check_under_max_pixels(tmp_path: Path) -> None:
    path = tmp_path / "large.png"
    path.write_bytes(_png_bytes(20_000, 20_000, bit_depth=1, colour_type=0))  # 400 M px: PIL alone raises
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    image = _open_header(path, max_pixels=10**9)  # the header only: decoding it would take 1.2 GB as RGB
    try:
        assert image.size == (20_000, 20_000)
    finally:
        image.close()


# --------------------------------------------------------------------------- converted


def test_rgb_needs_no_conversion(tmp_path: Path) -> None:
    path = tmp_path / "rgb.png"
    rgb = _random_rgb(48, 40)
    Image.fromarray(rgb).save(path)
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert conversions == []
    assert out.dtype == np.uint8 and out.shape == (48, 40, 3)
    np.testing.assert_array_equal(out, rgb)


def test_grayscale_l_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "gray.png"
    gray = _random_rgb(48, 40)[:, :, 0]
    Image.fromarray(gray, mode="L").save(path)
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert conversions == ["grayscale->rgb"]
    assert out.shape == (48, 40, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], gray)


def test_grayscale_la_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "gray_alpha.png"
    la = np.zeros((4, 4, 2), np.uint8)
    la[:, :, 0] = 100
    la[:2, :, 1] = 255  # top half opaque, bottom half transparent
    Image.fromarray(la, mode="LA").save(path)
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert conversions == ["grayscale->rgb", "rgba composited on white"]
    assert (out[:2] == 100).all() and (out[2:] == 255).all()


def test_palette_without_transparency(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    img = Image.new("P", (4, 4))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((0, 0), 1)
    img.save(path)
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert conversions == ["palette->rgb"]
    assert tuple(out[0, 0]) == (0, 0, 255) and tuple(out[1, 1]) == (255, 0, 0)


def test_palette_with_transparency_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "palette_t.png"
    img = Image.new("P", (4, 4))
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 1)
    img.save(path, transparency=0)  # index 0 (black) is transparent
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert conversions == ["palette->rgb", "rgba composited on white"]
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[2, 2]) == (255, 255, 255)


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "rgba.png"
    rgba = np.zeros((2, 3, 4), np.uint8)  # black everywhere
    rgba[:, 0, 3] = 255  # opaque
    rgba[:, 1, 3] = 128  # half
    rgba[:, 2, 3] = 0  # transparent
    Image.fromarray(rgba, mode="RGBA").save(path)
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert conversions == ["rgba composited on white"]
    assert out.shape == (2, 3, 3)
    assert (out[:, 0] == 0).all() and (out[:, 2] == 255).all()
    assert (np.abs(out[:, 1].astype(int) - 127) <= 1).all()


def test_opaque_rgba_just_drops_alpha(tmp_path: Path) -> None:
    path = tmp_path / "opaque.png"
    rgb = _random_rgb(5, 6)
    Image.fromarray(np.dstack([rgb, np.full((5, 6), 255, np.uint8)]), mode="RGBA").save(path)
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert conversions == ["opaque alpha dropped"]
    np.testing.assert_array_equal(out, rgb)


def test_16_bit_grayscale_is_scaled_to_8_bit(tmp_path: Path) -> None:
    path = tmp_path / "gray16.png"
    wide = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(wide).save(path)  # PIL writes mode I;16 as a 16-bit PNG
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert "16-bit->8-bit" in conversions and "grayscale->rgb" in conversions
    np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255])


@pytest.mark.parametrize("values, expected, conversion", [
    ([[0.0, 0.5, 1.0]], [0, 128, 255], "float [0, 1]->8-bit"),
    ([[0.0, 7.0, 255.0]], [0, 7, 255], "float integer values->8-bit (kept)"),
])
def test_floating_point_images_are_converted(tmp_path: Path, values, expected, conversion) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.array(values, np.float32)).save(path)  # mode F, a 32-bit float TIFF
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert conversion in conversions and "grayscale->rgb" in conversions
    np.testing.assert_array_equal(out[0, :, 0], expected)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


@pytest.mark.parametrize("values, found", [
    ([[0.0, 0.5, 2.0]], r"\[0, 2\]"),  # neither [0, 1] nor integers
    ([[-1.0, 0.0, 200.0]], r"\[-1, 200\]"),
    ([[0.0, 300.0, 1000.0]], r"\[0, 1000\]"),
])
def test_floating_point_images_of_unknown_scale_are_refused_with_their_range(tmp_path: Path, values, found) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.array(values, np.float32)).save(path)
    with pytest.raises(BadImage, match=f"floating-point image .*values in {found}"):
        load_rgb(path, MAX_PIXELS)


def test_32_bit_integer_images_keep_8_bit_values_and_refuse_others(tmp_path: Path) -> None:
    path = tmp_path / "int32.tif"
    Image.fromarray(np.array([[0, 9, 255]], np.int32)).save(path)  # mode I, raw I;32S: not 16-bit data
    out, conversions = load_rgb(path, MAX_PIXELS)
    np.testing.assert_array_equal(out[0, :, 0], [0, 9, 255])
    assert "32-bit integer values->8-bit (kept)" in conversions
    Image.fromarray(np.array([[-5, 0, 70_000]], np.int32)).save(path)  # was clipped silently to 0..65535
    with pytest.raises(BadImage, match=r"32-bit integer image .*values in \[-5, 70000\]"):
        load_rgb(path, MAX_PIXELS)


def test_16_bit_pgm_read_as_mode_i_is_still_scaled_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "gray16.pgm"
    path.write_bytes(b"P5\n3 1\n65535\n" + np.array([0, 257 * 100, 65535], ">u2").tobytes())
    assert Image.open(path).mode == "I"  # 32-bit mode, 16-bit data (raw mode I;16B)
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert "16-bit->8-bit" in conversions
    np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255])


def test_16_bit_rgb_is_reduced_to_8_bit(tmp_path: Path) -> None:
    path = tmp_path / "rgb16.png"
    wide = np.random.default_rng(0).integers(0, 65536, (3, 4, 3)).astype(">u2")
    rows = b"".join(b"\x00" + wide[y].tobytes() for y in range(3))
    path.write_bytes(_png_bytes(4, 3, bit_depth=16, colour_type=2, rows=rows))
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert conversions == ["16-bit->8-bit"]
    np.testing.assert_array_equal(out, (wide.astype(np.uint16) >> 8).astype(np.uint8))


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # red in CMYK
    assert Image.open(path).mode == "CMYK"
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert conversions == ["cmyk->rgb"]
    red = out.reshape(-1, 3).mean(0)
    assert red[0] > 230 and red[1] < 25 and red[2] < 25


def test_exif_rotated_jpeg_is_transposed(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    stored = np.zeros((24, 40, 3), np.uint8)  # stored 40 wide x 24 high
    stored[:, :20] = (255, 0, 0)  # left half red, right half blue
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: rotate 90 degrees clockwise to display
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    out, conversions = load_rgb(path, MAX_PIXELS)
    assert conversions == ["exif-rotated"]
    assert out.shape == (40, 24, 3)  # displayed 24 wide x 40 high
    decoded = np.asarray(Image.open(path).convert("RGB"))  # the stored pixels, not rotated
    np.testing.assert_array_equal(out, np.rot90(decoded, k=-1))
    assert out[:15, :, 0].mean() > 200 and out[25:, :, 2].mean() > 200  # the left half is now on top


# --------------------------------------------------------------------------- resizing


def test_smaller_than_image_size_is_upscaled_to_square() -> None:
    small = _random_rgb(30, 20)
    out = resize_square(small, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8


def test_resize_crops_the_centre_and_keeps_label_ids() -> None:
    ids = np.zeros((48, 40), np.uint8)
    ids[:, 20:] = 13  # left half road, right half car
    ids[:4] = 10  # a strip of sky outside the central 40x40 crop
    out = resize_square(ids, 32, nearest=True)
    assert out.shape == (32, 32)
    assert set(np.unique(out)) == {0, 13}  # nearest: no interpolated ids; the sky strip was cropped away
    assert (out[:, :16] == 0).all() and (out[:, 16:] == 13).all()


def test_resize_is_identity_at_size() -> None:
    rgb = _random_rgb(32, 32)
    assert resize_square(rgb, 32) is rgb


def test_stretch_keeps_the_whole_frame_and_label_ids() -> None:
    ids = np.zeros((32, 64), np.uint8)  # a 2:1 frame, as Cityscapes
    ids[:, :8] = 10  # sky in the left eighth, which a centre crop removes
    ids[16:, 32:] = 13
    out = resize_square(ids, 16, nearest=True, mode="stretch")
    assert out.shape == (16, 16) and set(np.unique(out)) == {0, 10, 13}  # nearest: no interpolated ids
    assert (out[:, :2] == 10).all() and (out[8:, 8:] == 13).all() and (out[:, 2:8] == 0).all()
    assert set(np.unique(resize_square(ids, 16, nearest=True))) == {0, 13}  # crop: the sky is gone
    rgb = _random_rgb(32, 64)
    np.testing.assert_array_equal(resize_square(rgb, 16, mode="stretch"),
                                  np.asarray(Image.fromarray(rgb).resize((16, 16), Image.Resampling.LANCZOS)))


def test_unknown_resize_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="'pad'"):
        resize_square(_random_rgb(8, 16), 8, mode="pad")


# --------------------------------------------------------------------------- label maps


def _colour_map(ids: np.ndarray) -> np.ndarray:
    return palette.ids_to_colour(ids)


def test_label_map_maps_colours_to_train_ids(tmp_path: Path) -> None:
    ids = np.array([[0, 13], [10, 255]], np.uint8).repeat(4, 0).repeat(4, 1)
    path = tmp_path / "label.png"
    Image.fromarray(_colour_map(ids)).save(path)
    np.testing.assert_array_equal(load_label(path, MAX_PIXELS, tolerance=0.0), ids)


def test_label_map_within_tolerance_snaps(tmp_path: Path) -> None:
    ids = np.array([[0, 13], [8, 11]], np.uint8).repeat(4, 0).repeat(4, 1)
    noisy = _colour_map(ids).astype(int) + np.array([3, -2, 4])  # as a lossy save would leave them
    path = tmp_path / "noisy.png"
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path)
    np.testing.assert_array_equal(load_label(path, MAX_PIXELS, tolerance=24.0), ids)
    with pytest.raises(BadImage, match="off-palette"):
        load_label(path, MAX_PIXELS, tolerance=1.0)


def test_label_map_off_palette_is_refused_with_count_and_example(tmp_path: Path) -> None:
    rgb = _colour_map(np.zeros((8, 8), np.uint8))
    rgb[:4, :4] = (10, 200, 10)  # 16 of 64 pixels: no Cityscapes colour is near
    path = tmp_path / "off.png"
    Image.fromarray(rgb).save(path)
    with pytest.raises(BadImage) as info:
        load_label(path, MAX_PIXELS, tolerance=24.0)
    message = str(info.value)
    assert "16 of 64 pixels (25.00%)" in message and "(10, 200, 10)" in message


def test_label_map_alpha_is_dropped_not_composited(tmp_path: Path) -> None:
    ids = np.full((4, 4), 13, np.uint8)
    rgba = np.dstack([_colour_map(ids), np.zeros((4, 4), np.uint8)])  # fully transparent
    path = tmp_path / "rgba_label.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    np.testing.assert_array_equal(load_label(path, MAX_PIXELS, tolerance=0.0), ids)


def test_single_channel_id_map_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "ids.png"
    Image.fromarray(np.full((4, 4), 13, np.uint8), mode="L").save(path)
    with pytest.raises(BadImage, match="id map rather than a colour map"):
        load_label(path, MAX_PIXELS, tolerance=24.0)


def test_bad_label_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(BadImage, match="empty file"):
        load_label(path, MAX_PIXELS, tolerance=24.0)
