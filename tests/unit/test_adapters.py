"""The real data set adapters and what they rely on: Cityscapes ids, A|B halves, landmarks, the
unpaired sampler, and clear errors for malformed folders and files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from pipeline.config import ConfigError, CurateConfig, DataConfig, load_params
from pipeline.data import palette
from pipeline.data.sources.adapters import locate, prepare_real
from pipeline.data.curation.attributes import landmark_distances, read_landmarks
from pipeline.data.curation.curate import curate_raw
from pipeline.sampler import BatchSampler, SamplerSpec, domain_arrays
from pipeline.data.images import BadImage, load_label_ids, split_ab
from pipeline.data.sources.layouts import read_layout
from pipeline.data.store import load_split, read_info
from tests.unit import real_data

ROOT = Path(__file__).resolve().parents[2]

# cityscapesScripts labels.py: (name, id, trainId) of every label with a train id
OFFICIAL = [("road", 7, 0), ("sidewalk", 8, 1), ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4),
            ("pole", 17, 5), ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8),
            ("terrain", 22, 9), ("sky", 23, 10), ("person", 24, 11), ("rider", 25, 12), ("car", 26, 13),
            ("truck", 27, 14), ("bus", 28, 15), ("train", 31, 16), ("motorcycle", 32, 17), ("bicycle", 33, 18)]


def test_cityscapes_label_ids_map_to_the_official_train_ids_and_the_palette_names():
    ids = np.arange(256, dtype=np.uint8)
    train_ids = palette.label_ids_to_train_ids(ids)
    expected = np.full(256, 255, np.uint8)
    for name, label_id, train_id in OFFICIAL:
        expected[label_id] = train_id
        assert palette.CLASS_NAMES[train_id] == name
    np.testing.assert_array_equal(train_ids, expected)
    assert train_ids[[0, 1, 6, 9, 10, 14, 15, 16, 18, 29, 30, 34]].tolist() == [255] * 12  # e.g. parking, caravan
    assert palette.NUM_CLASSES == 19 and tuple(palette.PALETTE[13]) == (0, 0, 142)


def test_label_id_maps_must_be_one_channel(tmp_path):
    path = tmp_path / "x_gtFine_labelIds.png"
    Image.fromarray(np.array([[7, 26], [23, 9]], np.uint8), mode="L").save(path)
    assert load_label_ids(path, 10_000).tolist() == [[0, 13], [10, 255]]
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(path)  # a colour map under the ids' name
    with pytest.raises(BadImage, match="mode 'RGB'.*_gtFine_color"):
        load_label_ids(path, 10_000)


def test_ab_images_split_at_the_middle_and_odd_widths_are_refused():
    ab = np.zeros((4, 6, 3), np.uint8)
    ab[:, 3:] = 200
    left, right = split_ab(ab)
    assert left.shape == right.shape == (4, 3, 3) and left.max() == 0 and right.min() == 200
    with pytest.raises(BadImage, match="odd width 7"):
        split_ab(np.zeros((4, 7, 3), np.uint8))


def test_pix2pix_rejects_odd_widths_and_b_to_a_swaps_the_halves(tmp_path):
    root = real_data.write_pix2pix(tmp_path / "maps", {"train": 5, "val": 2})  # no test/: val is the test
    Image.new("RGB", (65, 32)).save(root / "train" / "odd.png")
    for direction in ("a_to_b", "b_to_a"):
        raw, out = tmp_path / f"raw_{direction}", tmp_path / f"curated_{direction}"
        raw.mkdir()
        prepare_real(DataConfig(source="pix2pix_folders", path=str(root), direction=direction), raw,
                     tmp_path / f"{direction}.png")
        summary = curate_raw(raw, out, CurateConfig(), 32, seed=0)
        assert summary.splits == {"train": 4, "val": 1, "test": 2} and summary.n_rejected == 1
        rejects = pd.read_csv(out / "rejects.csv")
        assert rejects["reason"].iat[0].startswith("A|B image of odd width 65")
        test_a = np.load(out / "test" / "images_a.npy")
        flat = test_a if direction == "a_to_b" else np.load(out / "test" / "photos.npy")
        assert flat.std(axis=(1, 2, 3)).max() == 0  # the flat left halves
        assert json.loads((out / "info.json").read_text())["domain_names"]["a"].startswith(
            "A" if direction == "a_to_b" else "B")


def test_cyclegan_b_to_a_makes_the_b_folders_domain_a(tmp_path):
    root = real_data.write_cyclegan(tmp_path / "h2z")
    locate(DataConfig(source="cyclegan_folders", path=str(root), direction="b_to_a"), tmp_path)
    items = pd.read_csv(tmp_path / "items.csv", keep_default_na=False)
    assert set(items.loc[items["domain"] == "a", "image_id"].str[:6]) == {"trainB", "testB/"}


@pytest.mark.parametrize("source, make, message", [
    ("cityscapes", lambda r: (r / "leftImg8bit/train").mkdir(parents=True), "no gtFine/ folder"),
    ("cityscapes", lambda r: [(r / d / "train").mkdir(parents=True) for d in ("leftImg8bit", "gtFine")],
     r"leftImg8bit/val: missing"),
    ("pix2pix_folders", lambda r: (r / "test").mkdir(parents=True), "no train/ folder"),
    ("cyclegan_folders", lambda r: (r / "trainA").mkdir(parents=True), "no trainB/ folder"),
    ("celeba", lambda r: (r / "img_align_celeba").mkdir(parents=True), "no list_attr_celeba.csv"),
    ("image_folder", lambda r: (r / "trainA").mkdir(parents=True), r"no image files.*\['trainA'\]"),
])
def test_malformed_folders_name_what_is_missing(tmp_path, source, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(FileNotFoundError, match=message):
        locate(DataConfig(source=source, path=str(root)), tmp_path)
    with pytest.raises(FileNotFoundError, match="data.path is not a folder"):
        locate(DataConfig(source=source, path=str(tmp_path / "nowhere")), tmp_path)


def test_landmarks_in_both_formats_and_their_distances(tmp_path):
    root = real_data.write_celeba(tmp_path / "celeba", n=6)
    text = read_landmarks(root / "list_landmarks_align_celeba.txt")
    csv = tmp_path / "list_landmarks_align_celeba.csv"
    csv.write_text("image_id," + real_data.LANDMARK_HEADER.replace(" ", ",") + "\n" + "".join(
        f"{i}," + ",".join(str(int(v)) for v in row) + "\n" for i, row in zip(text.index, text.to_numpy())))
    pd.testing.assert_frame_equal(read_landmarks(csv), text)
    # shifts 6, 1, 2, 1, 2, 6 px: mean 3; a face shifted s px lies |s - 3| * sqrt(2) from the mean
    np.testing.assert_allclose(landmark_distances(text).to_numpy(), np.sqrt(2) * np.array([3, 2, 1, 2, 1, 3]))
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n" + real_data.LANDMARK_HEADER + "\n000001.jpg 1 2 3 4 5 6 7 8 9 x\n")
    with pytest.raises(ValueError, match=r"line 3, column 'rightmouth_y': 'x'"):
        read_landmarks(bad)


def test_landmark_filters_without_a_landmarks_file_are_an_error(tmp_path):
    root = real_data.write_celeba(tmp_path / "celeba", n=6)
    (root / "list_landmarks_align_celeba.txt").unlink()
    raw = tmp_path / "raw"
    raw.mkdir()
    prepare_real(DataConfig(source="celeba", path=str(root)), raw, tmp_path / "sheet.png")
    with pytest.raises(ValueError, match="landmarks_keep / landmarks_max_distance need a landmarks table"):
        curate_raw(raw, tmp_path / "out", CurateConfig(landmarks_keep=2), 32, seed=0)
    with pytest.raises(KeyError, match=r"\['Bald'\] named in curate.domain_b"):
        curate_raw(raw, tmp_path / "out", CurateConfig(domain_a={"Male": 1}, domain_b={"Bald": 1}), 32, seed=0)


@pytest.mark.parametrize("data, curate, key", [
    ({"source": "celeba", "path": "/x", "direction": "b_to_a"}, {}, "data.direction"),
    ({"source": "kitti", "path": "/x"}, {}, "data.source"),
    ({}, {"domain_a": {"Blond_Hair": 1}}, "curate.domain_a"),
    ({}, {"domain_a": {"Blond_Hair": 0}, "domain_b": {"Male": 1}}, "curate.domain_a.Blond_Hair"),
    ({}, {"landmarks_keep": 0}, "curate.landmarks_keep"),
])
def test_bad_data_and_curate_params_are_named(tmp_path, data, curate, key):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(data)
    raw["curate"].update(curate)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_params(tmp_path / "params.yaml")


def test_unpaired_sampler_draws_every_image_of_both_domains_independently():
    a = np.zeros((3, 8, 8, 3), np.uint8) + np.arange(3, dtype=np.uint8)[:, None, None, None]
    b = np.zeros((5, 8, 8, 3), np.uint8) + (100 + np.arange(5, dtype=np.uint8))[:, None, None, None]
    spec = SamplerSpec(8, 8, 1, False, 0, paired=False, data_paired=False, a_is_labels=False)
    sampler = BatchSampler(a, b, spec, torch.device("cpu"))
    seen_a, seen_b = set(), set()
    for step in range(15):
        batch = sampler.batch(step)
        seen_a.add(round(float(batch.a.add(1).mul(127.5).mean())))
        seen_b.add(round(float(batch.b.add(1).mul(127.5).mean())))
    assert seen_a == {0, 1, 2} and seen_b == {100, 101, 102, 103, 104}
    with pytest.raises(ValueError, match="paired batches need paired data"):
        BatchSampler(a, b, SamplerSpec(8, 8, 1, False, 0, paired=True, data_paired=False), torch.device("cpu"))


def test_an_old_layout_and_store_still_read(tmp_path, tiny_curated):
    (tmp_path / "layout.json").write_text(json.dumps({"images": "streets/photos", "labels": "streets/labels",
                                                      "attributes": "streets/list_attr.csv", "partition": None}))
    layout = read_layout(tmp_path)
    assert layout.domain_a == "colour_labels" and layout.dataset == "streets"
    old = tmp_path / "curated"
    shutil.copytree(tiny_curated, old)
    info = json.loads((old / "info.json").read_text())
    for key in ("dataset", "domain_a", "paired", "domain_names", "domain_splits"):
        del info[key]
    (old / "info.json").write_text(json.dumps(info))
    pd.read_csv(old / "manifest.csv").drop(columns="domain").to_csv(old / "manifest.csv", index=False)
    a, b = domain_arrays(old, "train")
    assert a.shape == b.shape and read_info(old)["paired"] is True
    assert load_split(old, "test").ids_a == load_split(tiny_curated, "test").ids
