"""Translation with exported models: the test split, and any folder of images (sizes, modes, bad files)."""
from __future__ import annotations

import csv
import dataclasses
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.applicability import NotApplicable, write_not_applicable
from pipeline.checkpoint import export_networks
from pipeline.inference import (load_model, network_input_size, read_translated, translate_folder,
                                translate_split)
from pipeline.io import atomic_dir
from pipeline.data.store import load_split
from pipeline.models import METHODS, build_model
from pipeline.translated import MIN_SIDE
from tests.conftest import tiny_params

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """Each method, untrained but exported the way train@<method> exports it."""
    params = tiny_params()
    out = {}
    for method in METHODS:
        model = build_model(method, params, CPU, seed=0)
        folder = tmp_path_factory.mktemp(method)
        export_networks(folder, model.exported_networks(), {"method": method, "params": dataclasses.asdict(params)})
        out[method] = folder
    return out


@pytest.mark.parametrize("method, kinds", [
    ("pix2pix", {"fake_b"}),
    ("cyclegan", {"fake_b", "fake_a"}),
    ("bicyclegan", {"fake_b", "encoded", "samples/0", "samples/1", "samples/2"}),
    ("cut", {"fake_b"}),
    ("fastcut", {"fake_b"}),
])
def test_translate_split_writes_every_output_per_test_image(method, kinds, exported, tiny_curated, tmp_path):
    loaded = load_model(exported[method], CPU)
    out = tmp_path / "translated"
    counts = translate_split(loaded, tiny_curated, "test", out, batch_size=2, n_samples=3, seed=0, device=CPU)
    ids = load_split(tiny_curated, "test").ids
    assert set(counts) == kinds and all(n == len(ids) for n in counts.values())
    assert (out / "ids.txt").read_text().split() == ids
    for kind in kinds:
        images = read_translated(out / kind, ids)
        assert images.shape == (len(ids), 32, 32, 3) and images.dtype == np.uint8


def test_translate_split_is_deterministic_for_a_seed(exported, tiny_curated, tmp_path):
    loaded = load_model(exported["pix2pix"], CPU)  # dropout is on at test time: the seed fixes it
    ids = load_split(tiny_curated, "test").ids
    runs = []
    for name in ("x", "y"):
        translate_split(loaded, tiny_curated, "test", tmp_path / name, batch_size=2, n_samples=1, seed=3, device=CPU)
        runs.append(read_translated(tmp_path / name / "fake_b", ids))
    assert np.array_equal(*runs)


def test_bicyclegan_samples_differ(exported, tiny_curated, tmp_path):
    loaded = load_model(exported["bicyclegan"], CPU)
    translate_split(loaded, tiny_curated, "test", tmp_path / "t", batch_size=4, n_samples=2, seed=0, device=CPU)
    ids = load_split(tiny_curated, "test").ids
    s0, s1 = (read_translated(tmp_path / "t" / "samples" / k, ids) for k in ("0", "1"))
    assert not np.array_equal(s0, s1)


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_translate_folder_handles_sizes_modes_and_bad_files(method, exported, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(src / "wide.png")
    Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(src / "gray.jpg")
    Image.fromarray(rng.integers(0, 255, (33, 20, 4), dtype=np.uint8), "RGBA").save(src / "rgba.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    done, skipped = translate_folder(load_model(exported[method], CPU), src, out, direction="a_to_b", device=CPU,
                                     max_pixels=10**7)
    assert done == 3
    assert {name for name, _ in skipped} == {"broken.png", "notes.txt"}
    for name, size in (("wide.png", (70, 50)), ("gray.png", (40, 40)), ("rgba.png", (20, 33))):
        with Image.open(out / name) as image:
            assert image.size == size and image.mode == "RGB"
    assert "broken.png" in (out / "skipped.csv").read_text()


def test_translate_folder_reads_gifs_and_refuses_links_that_escape(exported, tmp_path):
    src, outside = tmp_path / "in", tmp_path / "elsewhere"
    src.mkdir()
    outside.mkdir()
    Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(src / "anim.gif")  # curated, so translated too
    Image.fromarray(np.full((24, 24, 3), 50, np.uint8)).save(outside / "secret.png")
    (src / "escape.png").symlink_to(outside / "secret.png")
    (src / "inside.png").symlink_to(src / "anim.gif")
    (src / 'say "hi", then.txt').write_text("a name with a quote and a comma")
    out = tmp_path / "out"
    done, skipped = translate_folder(load_model(exported["pix2pix"], CPU), src, out, direction="a_to_b", device=CPU,
                                     max_pixels=10**7)
    assert done == 2 and (out / "anim.png").is_file() and (out / "inside.png").is_file()
    assert not (out / "escape.png").exists()
    with open(out / "skipped.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    assert rows == [{"file": 'say "hi", then.txt', "reason": "not an image file name"},
                    {"file": "escape.png", "reason": f"link resolves outside {src}"}]


def test_translate_folder_refuses_inputs_sharing_an_output_name_before_writing(exported, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.jpg", "a.png", "b.png"):
        Image.fromarray(np.full((16, 16, 3), 60, np.uint8)).save(src / name)
    with pytest.raises(ValueError, match="a.jpg and a.png would both be written as a.png"):
        translate_folder(load_model(exported["pix2pix"], CPU), src, tmp_path / "out", direction="a_to_b", device=CPU,
                         max_pixels=10**7)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


@pytest.mark.parametrize("names, message", [
    (("a.JPG", "a.png"), "a.JPG and a.png would both be written as a.png"),
    (("A.png", "a.png"), "A.png and a.png would both be written as A.png and a.png, one file where case is ignored"),
    (("Photo.jpeg", "photo.GIF"), "would both be written as Photo.png and photo.png"),
])
def test_translate_folder_refuses_names_that_clash_when_case_is_ignored(exported, tmp_path, names, message):
    src = tmp_path / "in"
    src.mkdir()
    for name in names:
        Image.fromarray(np.full((16, 16, 3), 60, np.uint8)).save(src / name, format="PNG")
    if len(list(src.iterdir())) < len(names):
        pytest.skip("this file system ignores letter case")
    with pytest.raises(ValueError, match=re.escape(message)):
        translate_folder(load_model(exported["pix2pix"], CPU), src, tmp_path / "out", direction="a_to_b", device=CPU,
                         max_pixels=10**7)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("height, width", [(1, 10_000), (2, 2000), (10_000, 1), (3, 700), (50, 70), (9, 9)])
def test_network_input_is_bounded_whatever_the_aspect_ratio(height, width):
    h, w = network_input_size(height, width, image_size=64, unet_side=4, max_side=1024)
    assert h % 4 == 0 and w % 4 == 0 and max(h, w) <= 1024 and min(h, w) >= MIN_SIDE
    assert h * w <= 64 * 1024  # image_size x max_side: the same bound for 1x10000 as for a square
    if max(height, width) / min(height, width) <= 1024 / 64:  # fits at the training scale: aspect kept
        assert min(h, w) == 64 and abs(w / h - width / height) < 0.1 * width / height
    assert network_input_size(height, width, image_size=64, unet_side=64) == (64, 64)  # a U-Net's own size


def test_translate_folder_translates_elongated_images_within_max_side(exported, tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    shapes = {"strip.png": (1, 10_000), "thin.png": (2, 2000), "tall.png": (3000, 2), "wide.png": (40, 90)}
    for name, shape in shapes.items():
        Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(src / name)
    loaded = load_model(exported["cyclegan"], CPU)  # a ResNet generator: any size, so the bound matters
    seen = []
    original = loaded.model.test_outputs

    def spy(source, *args, **kwargs):
        seen.append(tuple(source.shape[2:]))
        return original(source, *args, **kwargs)

    monkeypatch.setattr(loaded.model, "test_outputs", spy)
    out = tmp_path / "out"
    done, skipped = translate_folder(loaded, src, out, direction="a_to_b", device=CPU, max_pixels=10**7, max_side=256)
    assert done == 4 and not skipped
    image_size = loaded.params.image_size
    # before: 1x10000 went in at 32x320000 (the training scale's shorter side), 2x2000 at 32x32000
    assert all(max(shape) <= 256 and shape[0] * shape[1] <= image_size * 256 for shape in seen), seen
    assert (32, 72) in seen  # a 40x90 image keeps the training scale and its aspect ratio
    for name, (height, width) in shapes.items():
        with Image.open(out / name) as image:
            assert image.size == (width, height)
    with pytest.raises(ValueError, match="max_side must be >= 16, got 8"):
        translate_folder(loaded, src, tmp_path / "out2", direction="a_to_b", device=CPU, max_pixels=10**7, max_side=8)


def test_translate_folder_never_leaves_a_half_written_folder(exported, tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(src / f"{i}.png")
    loaded = load_model(exported["pix2pix"], CPU)
    calls = {"n": 0}
    original = loaded.model.translate

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("interrupted")
        return original(*args, **kwargs)

    monkeypatch.setattr(loaded.model, "translate", failing)
    with pytest.raises(RuntimeError):
        translate_folder(loaded, src, tmp_path / "out", direction="a_to_b", device=CPU, max_pixels=10**7)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_output_folders_follow_the_users_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "x.txt").write_text("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755  # was 0700, as mkdtemp makes it


def test_load_model_names_a_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_model(tmp_path, CPU)


def test_load_model_refuses_a_not_applicable_record(tmp_path):
    write_not_applicable(tmp_path, "pix2pix needs paired data; horses is unpaired", dataset="horses", method="pix2pix")
    with pytest.raises(NotApplicable, match="no trained model.*pix2pix needs paired data; horses is unpaired"):
        load_model(tmp_path, CPU)
