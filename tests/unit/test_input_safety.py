"""The link policy of every importer: a link that resolves outside the folder the user named is
refused by name (rejects.csv), its target never read or measured; a link that stays inside is allowed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.config import CurateConfig, DataConfig
from pipeline.data.sources.adapters import prepare_real
from pipeline.data.curation.curate import curate, curate_raw
from pipeline.data.paths import is_listed, link_refusal
from tests.unit import real_data

SECRET_TEXT = "a private file outside the data folder\n"


def _outside(tmp_path: Path) -> Path:
    """A folder beside the data: a text file and an image that must never become data."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET_TEXT)
    Image.fromarray(np.full((32, 64, 3), 77, np.uint8)).save(folder / "secret.png")
    return folder


def _curate_real(tmp_path: Path, data: DataConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw, out = tmp_path / "raw", tmp_path / "curated"
    raw.mkdir()
    prepare_real(data, raw, tmp_path / "sheet.png")
    curate_raw(raw, out, CurateConfig(), 32, seed=0)
    return pd.read_csv(out / "manifest.csv", keep_default_na=False), pd.read_csv(out / "rejects.csv")


def test_the_policy_resolves_names_only(tmp_path):
    root, outside = tmp_path / "data", _outside(tmp_path)
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "real.png").write_bytes(b"x")
    links = {"inside.png": root / "sub" / "real.png", "escape.png": outside / "secret.png",
             "dangling.png": outside / "gone.png", "up.png": Path("..") / "elsewhere" / "secret.txt",
             "linked_dir": outside}
    for name, target in links.items():
        (root / name).symlink_to(target)
    assert link_refusal(root / "inside.png", root) is None and link_refusal(root / "sub" / "real.png", root) is None
    for name in ("escape.png", "dangling.png", "up.png", "linked_dir"):
        assert link_refusal(root / name, root) == f"link resolves outside {root}"
    assert link_refusal(root / "linked_dir" / "secret.png", root) is not None  # a file in a linked folder
    # a dangling escaping link is listed (to be refused by name), not skipped unseen
    assert is_listed(root / "dangling.png", root) and not is_listed(root / "sub", root)
    # the folder the user named may itself be a link: it is the root, not an escape
    (tmp_path / "alias").symlink_to(root)
    assert link_refusal(tmp_path / "alias" / "inside.png", tmp_path / "alias") is None


def test_plain_folder_refuses_links_that_escape_and_never_reports_their_size(tmp_path):
    images = real_data.write_image_folder(tmp_path / "photos", n=3)
    outside = _outside(tmp_path)
    (images / "secret.png").symlink_to(outside / "secret.txt")  # was "not a recognised image format (39 bytes"
    (images / "other.png").symlink_to(outside / "secret.png")
    (images / "dangling.png").symlink_to(outside / "gone.png")
    (images / "again.png").symlink_to(images / "img_1.png")  # stays inside: allowed
    out = tmp_path / "curated"
    summary = curate(images, out, CurateConfig(), 32, seed=0)
    rejects = pd.read_csv(out / "rejects.csv")
    assert sorted(Path(f).name for f in rejects["file"]) == ["dangling.png", "other.png", "secret.png"]
    assert set(rejects["reason"]) == {f"link resolves outside {images}"}
    assert summary.n_kept == 4  # img_0..2 and the inside link
    assert str(len(SECRET_TEXT)) not in (out / "rejects.csv").read_text()


def test_pix2pix_folder_never_trains_on_an_image_from_outside(tmp_path):
    root = real_data.write_pix2pix(tmp_path / "facades", {"train": 4, "test": 2})
    outside = _outside(tmp_path)
    (root / "train" / "evil.png").symlink_to(outside / "secret.png")  # a valid A|B image: was training data
    (root / "train" / "copy.png").symlink_to(root / "test" / "1.png")
    manifest, rejects = _curate_real(tmp_path, DataConfig(source="pix2pix_folders", path=str(root)))
    assert rejects.to_dict("list") == {"file": [str(root.resolve() / "train" / "evil.png")],
                                       "reason": [f"link resolves outside {root.resolve()}"]}
    assert "train/copy.png" in set(manifest["image_id"]) and "train/evil.png" not in set(manifest["image_id"])


def test_cyclegan_folder_refuses_an_escaping_link(tmp_path):
    root = real_data.write_cyclegan(tmp_path / "h2z")
    (root / "trainB" / "b_999.jpg").symlink_to(_outside(tmp_path) / "secret.png")
    manifest, rejects = _curate_real(tmp_path, DataConfig(source="cyclegan_folders", path=str(root)))
    assert [Path(f).name for f in rejects["file"]] == ["b_999.jpg"]
    assert rejects["reason"].iat[0] == f"link resolves outside {root.resolve()}"
    assert len(manifest) == 5 + 6 + 2 + 3


def test_cityscapes_refuses_a_label_map_linked_from_outside(tmp_path):
    root = real_data.write_cityscapes(tmp_path / "cityscapes")
    label = next((root / "gtFine" / "train" / "aachen").glob("*_gtFine_labelIds.png"))
    outside = _outside(tmp_path)
    label.rename(outside / "ids.png")
    label.symlink_to(outside / "ids.png")
    _, rejects = _curate_real(tmp_path, DataConfig(source="cityscapes", path=str(root)))
    assert len(rejects) == 1 and rejects["file"].iat[0].endswith("_leftImg8bit.png")
    assert rejects["reason"].iat[0].endswith(f"_gtFine_labelIds.png: link resolves outside {root.resolve()}")


def test_celeba_allows_links_inside_its_folder_and_refuses_the_others(tmp_path):
    root = real_data.write_celeba(tmp_path / "celeba", n=6)
    images = root / "img_align_celeba"
    (root / "extra").mkdir()
    (images / "000001.jpg").rename(root / "extra" / "000001.jpg")
    (images / "000001.jpg").symlink_to(Path("..") / "extra" / "000001.jpg")  # inside data.path: allowed
    (images / "000002.jpg").unlink()
    (images / "000002.jpg").symlink_to(_outside(tmp_path) / "secret.txt")
    manifest, rejects = _curate_real(tmp_path, DataConfig(source="celeba", path=str(root)))
    assert [Path(f).name for f in rejects["file"]] == ["000002.jpg"]
    assert rejects["reason"].iat[0] == f"link resolves outside {root.resolve()}"
    assert "000001.jpg" in set(manifest["image_id"]) and len(manifest) == 5



def _official_text(root: Path, kind: str) -> None:
    """Rewrite one of the fixture's CelebA tables in the other published format (official text <-> Kaggle CSV)."""
    if kind == "attributes":  # fixture: Kaggle CSV -> official text (count line, names line, rows)
        table = pd.read_csv(root / "list_attr_celeba.csv", dtype={"image_id": str})
        rows = [" ".join([i, *map(str, values)]) for i, *values in table.itertuples(index=False)]
        (root / "list_attr_celeba.txt").write_text("\n".join([str(len(table)), " ".join(table.columns[1:]), *rows]))
        (root / "list_attr_celeba.csv").unlink()
    elif kind == "partition":  # fixture: official text -> Kaggle CSV
        lines = (root / "list_eval_partition.txt").read_text().split()
        pairs = [f"{i},{c}" for i, c in zip(lines[::2], lines[1::2])]
        (root / "list_eval_partition.csv").write_text("\n".join(["image_id,partition", *pairs]) + "\n")
        (root / "list_eval_partition.txt").unlink()
    else:
        lines = (root / "list_landmarks_align_celeba.txt").read_text().splitlines()
        header = "image_id," + ",".join(lines[1].split())
        rows = [",".join(line.split()) for line in lines[2:]]
        (root / "list_landmarks_align_celeba.csv").write_text("\n".join([header, *rows]) + "\n")
        (root / "list_landmarks_align_celeba.txt").unlink()


CELEBA_TABLES = {"attributes": ("list_attr_celeba", "attribute table"),
                 "partition": ("list_eval_partition", "partition file"),
                 "landmarks": ("list_landmarks_align_celeba", "landmarks table")}


@pytest.mark.parametrize("kind", sorted(CELEBA_TABLES))
@pytest.mark.parametrize("other_format", [False, True])
def test_celeba_refuses_an_annotation_file_linked_from_outside(tmp_path, kind, other_format):
    root = real_data.write_celeba(tmp_path / "celeba", n=6)
    if other_format:
        _official_text(root, kind)
    stem, what = CELEBA_TABLES[kind]
    table = next(root.glob(f"{stem}.*"))
    outside = _outside(tmp_path) / table.name
    table.rename(outside)
    table.symlink_to(outside)  # the same content, outside data.path: was read as the data set's table
    with pytest.raises(ValueError, match=f"{table}: the {what} is refused: link resolves outside") as caught:
        _curate_real(tmp_path, DataConfig(source="celeba", path=str(root)))
    assert f"Copy the file into {root.resolve()}" in str(caught.value)
    assert not (tmp_path / "curated").exists()

    # the same table linked from inside the folder is read
    table.unlink()
    (root / "tables").mkdir()
    outside.rename(root / "tables" / table.name)
    table.symlink_to(Path("tables") / table.name)
    (tmp_path / "again").mkdir()
    manifest, _ = _curate_real(tmp_path / "again", DataConfig(source="celeba", path=str(root)))
    assert len(manifest) == 6


def test_a_dangling_annotation_link_is_refused_by_the_policy_not_reported_missing(tmp_path):
    root = real_data.write_celeba(tmp_path / "celeba", n=6)
    (root / "list_attr_celeba.csv").unlink()
    (root / "list_attr_celeba.csv").symlink_to(tmp_path / "gone.csv")
    with pytest.raises(ValueError, match="attribute table is refused: link resolves outside"):
        _curate_real(tmp_path, DataConfig(source="celeba", path=str(root)))


def test_curate_refuses_an_annotation_file_linked_from_outside_after_prepare(tmp_path):
    root = real_data.write_celeba(tmp_path / "celeba", n=6)
    raw = tmp_path / "raw"
    raw.mkdir()
    prepare_real(DataConfig(source="celeba", path=str(root)), raw, tmp_path / "sheet.png")
    table = root / "list_landmarks_align_celeba.txt"
    table.rename(_outside(tmp_path) / table.name)
    table.symlink_to(tmp_path / "elsewhere" / table.name)
    with pytest.raises(ValueError, match="landmarks table is refused: link resolves outside"):
        curate_raw(raw, tmp_path / "curated", CurateConfig(), 32, seed=0)
