"""Curation on a tiny CelebA-format fixture: attribute tables, filters, splits, rejects, the store."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.config import CurateConfig, SplitConfig
from pipeline.data.curation import inputs as inputs_module
from pipeline.data import palette, store
from pipeline.data.curation.attributes import filter_by_attributes, read_attr_table, read_partition
from pipeline.data.curation.curate import curate, split_by_seed
from pipeline.data.store import StoreError, load_split, read_info, read_manifest

N_IMAGES = 12
ATTRIBUTES = ("Smiling", "Male", "Eyeglasses")
SIZE = 32


def _ids() -> list[str]:
    return [f"{i:06d}.jpg" for i in range(1, N_IMAGES + 1)]


def _attribute_values() -> np.ndarray:
    """(12, 3) of 1/-1: Smiling on odd numbers, Male on 1..6, Eyeglasses on multiples of 4."""
    numbers = np.arange(1, N_IMAGES + 1)
    columns = [numbers % 2 == 1, numbers <= 6, numbers % 4 == 0]
    return np.where(np.stack(columns, axis=1), 1, -1)


def _partition_codes() -> list[int]:
    return [0] * 8 + [1] * 2 + [2] * 2


@pytest.fixture()
def celeba(tmp_path: Path) -> Path:
    """img_align_celeba/*.jpg (40x48), list_attr_celeba.csv/.txt, list_eval_partition.txt."""
    root = tmp_path / "celeba"
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for image_id in _ids():
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(images / image_id, quality=90)
    values = _attribute_values()
    csv_lines = ["image_id," + ",".join(ATTRIBUTES)]
    csv_lines += [f"{i}," + ",".join(str(v) for v in row) for i, row in zip(_ids(), values)]
    (root / "list_attr_celeba.csv").write_text("\n".join(csv_lines) + "\n")
    # the official text layout: count, names (trailing space), rows padded with runs of spaces
    txt_lines = [str(N_IMAGES), " ".join(ATTRIBUTES) + " "]
    txt_lines += [f"{i} " + "".join(f"{v:>3}" for v in row) for i, row in zip(_ids(), values)]
    (root / "list_attr_celeba.txt").write_text("\n".join(txt_lines) + "\n")
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{i} {p}\n" for i, p in zip(_ids(), _partition_codes())))
    return root


def _cfg(**changes) -> CurateConfig:
    return replace(CurateConfig(use_partition=False), **changes)


def _manifest(out: Path) -> pd.DataFrame:
    return read_manifest(out)


def _rejects(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "rejects.csv", dtype=str, keep_default_na=False)


# --------------------------------------------------------------------------- attribute tables


def test_both_attribute_formats_give_identical_tables(celeba: Path) -> None:
    from_csv = read_attr_table(celeba / "list_attr_celeba.csv")
    from_txt = read_attr_table(celeba / "list_attr_celeba.txt")
    pd.testing.assert_frame_equal(from_csv, from_txt)
    assert from_csv.index.name == "image_id" and list(from_csv.index) == _ids()
    assert list(from_csv.columns) == list(ATTRIBUTES)
    assert all(dtype == np.int8 for dtype in from_csv.dtypes)
    np.testing.assert_array_equal(from_csv.to_numpy(), _attribute_values())


def test_format_is_sniffed_from_content_not_extension(celeba: Path, tmp_path: Path) -> None:
    misnamed = tmp_path / "attributes.csv"
    misnamed.write_text((celeba / "list_attr_celeba.txt").read_text())
    pd.testing.assert_frame_equal(read_attr_table(misnamed), read_attr_table(celeba / "list_attr_celeba.csv"))


def test_zero_is_read_as_minus_one(tmp_path: Path) -> None:
    path = tmp_path / "list_attr.csv"
    path.write_text("image_id,Night\na.png,0\nb.png,1\n")
    assert read_attr_table(path)["Night"].tolist() == [-1, 1]


@pytest.mark.parametrize("text, expected", [
    ("image_id,Night,Foggy\na.png,1,-1\nb.png,2,1\n", r"line 3, column 'Night': value 2"),
    ("image_id,Night,Foggy\na.png,1,yes\n", r"line 2, column 'Foggy': value 'yes'"),
    ("2\nNight Foggy\na.png 1 -1\nb.png 1\n", r"line 4, column 'Foggy': missing value"),
    ("2\nNight Foggy\na.png 1 -1 1\nb.png 1 1\n", r"line 3 has 4 fields, expected 3"),
    ("3\nNight Foggy\na.png 1 -1\nb.png 1 1\n", r"declares 3 images but 2 rows follow"),
    ("image_id,Night\na.png,1\na.png,-1\n", r"line 3: duplicate image id 'a.png'"),
])
def test_bad_attribute_tables_name_file_line_and_value(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "list_attr.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=expected) as info:
        read_attr_table(path)
    assert str(path) in str(info.value)


def test_partition_formats(celeba: Path, tmp_path: Path) -> None:
    csv = tmp_path / "list_eval_partition.csv"
    csv.write_text("image_id,partition\n" + "".join(f"{i},{p}\n" for i, p in zip(_ids(), _partition_codes())))
    from_txt = read_partition(celeba / "list_eval_partition.txt")
    pd.testing.assert_series_equal(read_partition(csv), from_txt)
    assert from_txt.value_counts().to_dict() == {"train": 8, "val": 2, "test": 2}
    bad = tmp_path / "bad.txt"
    bad.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(ValueError, match=r"line 2: partition 3"):
        read_partition(bad)


def test_filters_keep_exactly_the_expected_ids(celeba: Path) -> None:
    table = read_attr_table(celeba / "list_attr_celeba.csv")
    kept = filter_by_attributes(table, require={"Smiling": 1}, exclude={"Eyeglasses": 1})
    assert list(kept.index) == ["000001.jpg", "000003.jpg", "000005.jpg", "000007.jpg", "000009.jpg", "000011.jpg"]
    kept = filter_by_attributes(table, require={"Male": -1, "Smiling": -1}, exclude={"Eyeglasses": 1})
    assert list(kept.index) == ["000010.jpg"]
    assert len(filter_by_attributes(table, {}, {})) == N_IMAGES


def test_filter_on_a_missing_column_names_it_and_the_available_ones(celeba: Path) -> None:
    table = read_attr_table(celeba / "list_attr_celeba.csv")
    with pytest.raises(KeyError) as info:
        filter_by_attributes(table, require={"Blond_Hair": 1}, exclude={})
    message = str(info.value)
    assert "Blond_Hair" in message and "available: ['Eyeglasses', 'Male', 'Smiling']" in message


# --------------------------------------------------------------------------- splits


def test_seed_split_is_deterministic_and_follows_the_fractions() -> None:
    fractions = SplitConfig(train=0.8, val=0.1, test=0.1)
    first = split_by_seed(1000, fractions, seed=3)
    np.testing.assert_array_equal(first, split_by_seed(1000, fractions, seed=3))
    assert not np.array_equal(first, split_by_seed(1000, fractions, seed=4))
    assert {s: int((first == s).sum()) for s in store.SPLITS} == {"train": 800, "val": 100, "test": 100}
    no_test = split_by_seed(5, SplitConfig(train=0.5, val=0.5, test=0.0), seed=0)
    assert (no_test == "test").sum() == 0 and len(no_test) == 5


def test_partition_file_is_honoured(celeba: Path, tmp_path: Path) -> None:
    out = tmp_path / "curated"
    summary = curate(celeba / "img_align_celeba", out, CurateConfig(use_partition=True), SIZE, seed=0,
                     attr_path=celeba / "list_attr_celeba.txt", partition_path=celeba / "list_eval_partition.txt")
    assert summary.splits == {"train": 8, "val": 2, "test": 2}
    manifest = _manifest(out)
    expected = dict(zip(_ids(), ["train"] * 8 + ["val"] * 2 + ["test"] * 2))
    assert dict(zip(manifest["image_id"], manifest["split"])) == expected
    assert read_info(out)["split_source"] == "partition"


def test_curate_without_partition_splits_deterministically(celeba: Path, tmp_path: Path) -> None:
    args = dict(images_dir=celeba / "img_align_celeba", cfg=_cfg(), image_size=SIZE,
                attr_path=celeba / "list_attr_celeba.csv", partition_path=celeba / "list_eval_partition.txt")
    curate(out_dir=tmp_path / "a", seed=1, **args)  # use_partition false: the file is ignored
    curate(out_dir=tmp_path / "b", seed=1, **args)
    first, second = _manifest(tmp_path / "a"), _manifest(tmp_path / "b")
    pd.testing.assert_frame_equal(first, second)
    assert first["split"].value_counts().to_dict() == {"train": 10, "val": 1, "test": 1}  # round(9.6), ...
    np.testing.assert_array_equal(load_split(tmp_path / "a", "train").photos,
                                  load_split(tmp_path / "b", "train").photos)


# --------------------------------------------------------------------------- the store


def test_store_is_consistent_with_the_manifest(celeba: Path, tmp_path: Path) -> None:
    out = tmp_path / "curated"
    summary = curate(celeba / "img_align_celeba", out, _cfg(require={"Smiling": 1}), SIZE, seed=0,
                     attr_path=celeba / "list_attr_celeba.csv")
    manifest, info = _manifest(out), read_info(out)
    assert summary.n_filtered_out == 6 and summary.n_rejected == 0 and summary.n_kept == 6
    assert len(manifest) + len(_rejects(out)) + summary.n_filtered_out == N_IMAGES  # all accounted for
    assert list(manifest.columns) == [*store.MANIFEST_COLUMNS, *ATTRIBUTES]
    assert (manifest["Smiling"] == 1).all()
    assert info["image_size"] == SIZE and info["has_labels"] is False and info["attributes"] == list(ATTRIBUTES)
    assert info["splits"] == summary.splits
    order = {s: i for i, s in enumerate(store.SPLITS)}
    assert manifest["split"].map(order).is_monotonic_increasing  # rows ordered by split
    for split in store.SPLITS:
        arrays = load_split(out, split)
        rows = manifest[manifest["split"] == split]
        assert arrays.ids == rows["image_id"].tolist() == sorted(rows["image_id"])
        assert arrays.photos.shape == (len(rows), SIZE, SIZE, 3) and arrays.photos.dtype == np.uint8
        assert arrays.labels is None
        assert not (out / split / "labels.npy").exists()
    # each row is the photo it names: the centre 40x40 box of the 40x48 original, resized to SIZE
    first = manifest.iloc[0]
    photo = Image.open(first["b_path"]).convert("RGB")
    expected = np.asarray(photo.resize((SIZE, SIZE), Image.Resampling.LANCZOS, box=(0, 4, 40, 44)))
    np.testing.assert_array_equal(load_split(out, first["split"], mmap=False).photos[0], expected)
    assert not list(tmp_path.glob(".curated.*"))  # no temporary folders left behind


def test_small_images_are_upscaled_and_say_so(celeba: Path, tmp_path: Path) -> None:
    out = tmp_path / "curated"
    curate(celeba / "img_align_celeba", out, _cfg(), 64, seed=0, attr_path=celeba / "list_attr_celeba.csv")
    assert (_manifest(out)["conversions"] == "centre-cropped from 40x48 to 40x40; upscaled from 40x48").all()
    assert load_split(out, "train").photos.shape[1:] == (64, 64, 3)


def test_centre_cropping_says_so_and_square_inputs_say_nothing(celeba: Path, tmp_path: Path) -> None:
    images = celeba / "img_align_celeba"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(images / "000001.jpg")  # already square
    out = tmp_path / "curated"
    curate(images, out, _cfg(), SIZE, seed=0)
    conversions = _manifest(out).set_index("image_id")["conversions"]
    assert conversions["000001.jpg"] == ""
    assert (conversions.drop("000001.jpg") == "centre-cropped from 40x48 to 40x40").all()


def test_without_a_table_every_image_file_is_an_input(celeba: Path, tmp_path: Path) -> None:
    images = celeba / "img_align_celeba"
    (images / "README.txt").write_text("not an image name, ignored")
    out = tmp_path / "curated"
    summary = curate(images, out, _cfg(), SIZE, seed=0)
    assert summary.n_kept == N_IMAGES
    assert sorted(_manifest(out)["image_id"]) == _ids() and read_info(out)["attributes"] == []


def test_bad_files_go_to_rejects_with_their_reasons(celeba: Path, tmp_path: Path) -> None:
    images = celeba / "img_align_celeba"
    (images / "000013.jpg").write_bytes(b"")
    (images / "000014.jpg").write_text("hello, I am text\n")
    data = (images / "000001.jpg").read_bytes()
    (images / "000015.jpg").write_bytes(data[: len(data) // 2])
    Image.new("L", (40, 48), 128).save(images / "000016.jpg")  # fine after conversion
    (images / "999999.jpg").write_bytes(data)  # on disk but not in the table: ignored
    extra = ["000013.jpg", "000014.jpg", "000015.jpg", "000016.jpg", "000017.jpg"]  # 17: listed, not on disk
    attr = tmp_path / "list_attr.csv"
    attr.write_text((celeba / "list_attr_celeba.csv").read_text() + "".join(f"{i},1,1,-1\n" for i in extra))
    out = tmp_path / "curated"
    summary = curate(images, out, _cfg(), SIZE, seed=0, attr_path=attr)

    reasons = dict(zip(_rejects(out)["file"].map(lambda f: Path(f).name), _rejects(out)["reason"]))
    assert set(reasons) == {"000013.jpg", "000014.jpg", "000015.jpg", "000017.jpg"}
    assert reasons["000013.jpg"] == "empty file (0 bytes)"
    assert reasons["000014.jpg"].startswith("not a recognised image format")
    assert reasons["000015.jpg"].startswith("truncated or corrupt")
    assert reasons["000017.jpg"] == "file not found"
    manifest = _manifest(out)
    assert manifest.set_index("image_id").loc["000016.jpg", "conversions"] == (
        "grayscale->rgb; centre-cropped from 40x48 to 40x40")
    assert summary.n_rejected == 4 and summary.n_kept == N_IMAGES + 1 and summary.n_ignored == 1
    assert len(manifest) + summary.n_rejected + summary.n_filtered_out == N_IMAGES + len(extra)


def test_rejects_has_a_header_when_empty(celeba: Path, tmp_path: Path) -> None:
    out = tmp_path / "curated"
    curate(celeba / "img_align_celeba", out, _cfg(), SIZE, seed=0)
    assert (out / "rejects.csv").read_text().strip() == "file,reason"


def test_label_maps_become_train_ids(celeba: Path, tmp_path: Path) -> None:
    images, labels = celeba / "img_align_celeba", tmp_path / "labels"
    labels.mkdir()
    ids = np.zeros((48, 40), np.uint8)
    ids[:, 20:] = 13  # left half road, right half car
    ids[:4] = 10  # sky in the rows the centre crop removes
    for image_id in _ids()[:-3]:
        Image.fromarray(palette.ids_to_colour(ids)).save(labels / f"{Path(image_id).stem}.png")
    # the last three: a missing map, a map of the wrong size, a map with off-palette colours
    Image.fromarray(palette.ids_to_colour(ids[:40])).save(labels / "000011.png")
    off = palette.ids_to_colour(ids)
    off[:10, :10] = (10, 200, 10)
    Image.fromarray(off).save(labels / "000012.png")
    out = tmp_path / "curated"
    summary = curate(images, out, _cfg(), SIZE, seed=0, labels_dir=labels, attr_path=celeba / "list_attr_celeba.csv")

    reasons = dict(zip(_rejects(out)["file"].map(lambda f: Path(f).name), _rejects(out)["reason"]))
    assert set(reasons) == {"000010.jpg", "000011.jpg", "000012.jpg"}
    assert reasons["000010.jpg"].endswith("000010.png not found")
    assert "is 40x40 but the photo is 40x48" in reasons["000011.jpg"]
    assert "off-palette" in reasons["000012.jpg"] and "100 of 1920 pixels" in reasons["000012.jpg"]
    info = read_info(out)
    assert info["has_labels"] and info["num_classes"] == palette.NUM_CLASSES
    expected = np.zeros((SIZE, SIZE), np.uint8)
    expected[:, SIZE // 2:] = 13
    for split in store.SPLITS:
        arrays = load_split(out, split)
        assert arrays.labels.shape == (summary.splits[split], SIZE, SIZE) and arrays.labels.dtype == np.uint8
        for label in arrays.labels:
            np.testing.assert_array_equal(label, expected)
    manifest = _manifest(out)
    assert all(Path(p).name == f"{Path(i).stem}.png" for i, p in zip(manifest["image_id"], manifest["a_path"]))


def test_stretch_resizes_photos_and_label_maps_whole_and_says_so(celeba: Path, tmp_path: Path) -> None:
    images, labels = celeba / "img_align_celeba", tmp_path / "labels"
    labels.mkdir()
    ids = np.zeros((48, 40), np.uint8)
    ids[:, 20:] = 13
    ids[:6] = 10  # sky in the rows the centre crop removes; stretch keeps it
    for image_id in _ids():
        Image.fromarray(palette.ids_to_colour(ids)).save(labels / f"{Path(image_id).stem}.png")
    out = tmp_path / "curated"
    curate(images, out, _cfg(resize="stretch"), SIZE, seed=0, labels_dir=labels,
           attr_path=celeba / "list_attr_celeba.csv")
    manifest = _manifest(out)
    assert (manifest["conversions"] == "stretched from 40x48 (aspect not kept)").all()
    first = manifest.iloc[0]
    arrays = load_split(out, first["split"], mmap=False)
    photo = Image.open(first["b_path"]).convert("RGB")
    np.testing.assert_array_equal(arrays.photos[0],
                                  np.asarray(photo.resize((SIZE, SIZE), Image.Resampling.LANCZOS)))
    expected = np.asarray(Image.fromarray(ids).resize((SIZE, SIZE), Image.Resampling.NEAREST))
    np.testing.assert_array_equal(arrays.labels[0], expected)
    assert (arrays.labels[0][:4] == 10).all()  # 6 of 48 rows -> 4 of 32


# --------------------------------------------------------------------------- atomic writes


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_an_interrupted_curate_leaves_the_previous_store_intact(celeba: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "curated"
    args = dict(images_dir=celeba / "img_align_celeba", out_dir=out, image_size=SIZE, seed=0,
                attr_path=celeba / "list_attr_celeba.csv")
    curate(cfg=_cfg(require={"Male": 1}), **args)
    before = _snapshot(out)
    real_load_rgb, calls = inputs_module.load_rgb, []

    def failing_load_rgb(path, max_pixels):
        calls.append(path)
        if len(calls) == 5:
            raise RuntimeError("simulated crash mid-way")
        return real_load_rgb(path, max_pixels)

    monkeypatch.setattr(inputs_module, "load_rgb", failing_load_rgb)
    with pytest.raises(RuntimeError, match="simulated crash"):
        curate(cfg=_cfg(), **args)
    assert _snapshot(out) == before
    assert not list(tmp_path.glob(".curated.*"))

    monkeypatch.setattr(inputs_module, "load_rgb", real_load_rgb)
    monkeypatch.setattr(store, "write_info", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        curate(cfg=_cfg(), **args)
    assert _snapshot(out) == before and not list(tmp_path.glob(".curated.*"))

    monkeypatch.undo()
    curate(cfg=_cfg(), **args)  # a complete run replaces the old store
    assert read_info(out)["splits"] == {"train": 10, "val": 1, "test": 1}


def test_nothing_left_to_curate_raises_and_writes_nothing(celeba: Path, tmp_path: Path) -> None:
    out = tmp_path / "curated"
    with pytest.raises(ValueError, match="no images left"):
        curate(celeba / "img_align_celeba", out, _cfg(require={"Male": 1}, exclude={"Male": 1}), SIZE, seed=0,
               attr_path=celeba / "list_attr_celeba.csv")
    assert not out.exists() and not list(tmp_path.glob(".curated.*"))


def test_missing_or_malformed_store_raises_naming_the_path(celeba: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="nowhere"):
        load_split(tmp_path / "nowhere", "train")
    out = tmp_path / "curated"
    curate(celeba / "img_align_celeba", out, _cfg(), SIZE, seed=0)
    (out / "val" / "photos.npy").write_bytes(b"garbage")
    with pytest.raises(StoreError, match=r"val/photos.npy"):
        load_split(out, "val")
    np.save(out / "val" / "photos.npy", np.zeros((5, SIZE, SIZE, 3), np.uint8))  # N differs from the manifest
    with pytest.raises(StoreError, match=r"expected uint8 \(1, 32, 32, 3\)"):
        load_split(out, "val")
    with pytest.raises(StoreError, match="no split 'extra'"):
        load_split(out, "extra")


def test_manifest_columns_say_which_domain_each_file_holds(tmp_path: Path) -> None:
    # CelebA's two domains by attribute: domain A is faces, not label maps; the old manifest put a
    # domain-A face's file under `label_path` and left `photo_path` empty
    from tests.unit import real_data

    root = real_data.write_celeba(tmp_path / "celeba")
    out = tmp_path / "curated"
    curate(root / "img_align_celeba", out, _cfg(domain_a={"Blond_Hair": 1}, domain_b={"Black_Hair": 1},
                                                use_partition=True),
           SIZE, seed=0, attr_path=root / "list_attr_celeba.csv", partition_path=root / "list_eval_partition.txt")
    header = (out / "manifest.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["image_id", "split", "domain", "a_path", "b_path", "conversions"]
    assert "label_path" not in header and "photo_path" not in header
    manifest = read_manifest(out)
    for domain, filled, empty in (("a", "a_path", "b_path"), ("b", "b_path", "a_path")):
        rows = manifest[manifest["domain"] == domain]
        assert len(rows) and (rows[empty] == "").all()
        assert [Path(f).name for f in rows[filled]] == list(rows["image_id"])


def test_a_manifest_written_before_the_rename_still_reads(tiny_curated: Path, tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tiny_curated, old)
    current = read_manifest(old)
    legacy = current.rename(columns={"a_path": "label_path", "b_path": "photo_path"})
    legacy[["image_id", "split", "photo_path", "label_path", "conversions"]].to_csv(old / "manifest.csv", index=False)
    again = read_manifest(old)
    pd.testing.assert_frame_equal(again[list(store.MANIFEST_COLUMNS)], current[list(store.MANIFEST_COLUMNS)])
    assert load_split(old, "test").ids == load_split(tiny_curated, "test").ids
    pd.DataFrame({"image_id": ["x"], "split": ["test"]}).to_csv(old / "manifest.csv", index=False)
    with pytest.raises(StoreError, match=r"manifest.csv: lacks columns \['a_path', 'b_path', 'conversions'\]"):
        read_manifest(old)
