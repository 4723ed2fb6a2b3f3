"""Empty splits said early: `curate` names each split of each domain that ends up empty, with the
counts and what will not happen because of it, and stops where training cannot work."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline.config import CurateConfig, DataConfig
from pipeline.data.sources.adapters import prepare_real
from pipeline.data.curation.curate import curate_raw
from pipeline.data.curation.split_check import EmptySplitError, empty_split_problems
from pipeline.data.store import read_info
from tests.unit import real_data

TWO_DOMAINS = {"domain_a": {"Blond_Hair": 1}, "domain_b": {"Black_Hair": 1}}


def _curate(tmp_path: Path, root: Path, **curate_section) -> Path:
    raw, out = tmp_path / "raw", tmp_path / "curated"
    raw.mkdir()
    prepare_real(DataConfig(source="celeba", path=str(root)), raw, tmp_path / "sheet.png")
    curate_raw(raw, out, CurateConfig(**curate_section), 32, seed=0)
    return out


def test_celeba_without_its_partition_on_a_small_set_stops_naming_the_split_and_domain(tmp_path):
    # 6 faces: domain A holds one (face 4; face 1 is in both domains), B two; split by seed, A's one
    # face goes to train and its val and test are empty: train@cyclegan used to fail on val later
    root = real_data.write_celeba(tmp_path / "celeba", n=6)
    with pytest.raises(EmptySplitError) as caught:
        _curate(tmp_path, root, use_partition=False, **TWO_DOMAINS)
    message = str(caught.value)
    assert "split 'val' of domain A (Blond_Hair) is empty (train 1, val 0, test 0)" in message
    assert "train@<method> would fail" in message
    assert not (tmp_path / "curated").exists()  # nothing half-made is left for the next stage


def test_celeba_test_split_without_black_haired_faces_is_said_with_what_it_rules_out(tmp_path, caplog):
    root = real_data.write_celeba(tmp_path / "celeba")
    partition = root / "list_eval_partition.txt"
    lines = partition.read_text().splitlines()
    black = {f"{k + 1:06d}.jpg" for k in range(36) if k % 3 == 1}  # real_data.celeba_attributes' Black_Hair only
    # the test split's black-haired faces move to val: the test split holds blond faces alone
    partition.write_text("".join(f"{i} {'1' if c == '2' and i in black else c}\n"
                                 for i, c in (line.split() for line in lines)))
    with caplog.at_level(logging.WARNING):
        out = _curate(tmp_path, root, **TWO_DOMAINS)
    info = read_info(out)
    assert info["domain_splits"]["b"]["test"] == 0 and info["domain_splits"]["a"]["test"] == 1
    assert ("split 'test' of domain B (Black_Hair) is empty (train 8, val 4, test 0): no B -> A translations "
            "of the test split (fake_a/) and no scores of that direction") in caplog.text


def test_a_store_with_both_domains_complete_says_nothing(tmp_path, caplog):
    root = real_data.write_celeba(tmp_path / "celeba")
    with caplog.at_level(logging.WARNING):
        _curate(tmp_path, root, **TWO_DOMAINS)
    assert "is empty" not in caplog.text


def test_curate_stage_exits_1_with_the_message(tmp_path, caplog):
    from tests.unit.test_real_datasets import Run, write_params

    root = real_data.write_celeba(tmp_path / "celeba", n=6)
    run = Run(tmp_path, write_params(tmp_path, {"source": "celeba", "path": str(root)},
                                     {"use_partition": False, **TWO_DOMAINS}))
    run("prepare", "--out-dir", tmp_path / "data/raw", "--sheet", tmp_path / "sheet.png")
    run("curate", "--raw-dir", tmp_path / "data/raw", "--out-dir", run.curated, "--summary", tmp_path / "data.json",
        ok=False)
    assert "split 'val' of domain A (Blond_Hair) is empty" in caplog.text and not run.curated.exists()


SPLITS = {"train": 5, "val": 1, "test": 1}
NAMES = {"a": "label maps", "b": "photos"}


@pytest.mark.parametrize("domain_splits, paired, fatal, warning", [
    ({"a": SPLITS, "b": SPLITS}, True, [], []),
    ({"a": {**SPLITS, "train": 0}, "b": {**SPLITS, "train": 0}}, True,
     ["split 'train' of both domains (label maps and photos) is empty (train 0, val 1, test 1): no method can "
      "train"], []),
    ({"a": {**SPLITS, "test": 0}, "b": {**SPLITS, "test": 0}}, True,
     ["split 'test' of both domains (label maps and photos) is empty"], []),
    ({"a": {**SPLITS, "test": 0}, "b": SPLITS}, False, [],
     ["split 'test' of domain A (label maps) is empty (train 5, val 1, test 0): no A -> B translations"]),
    ({"a": SPLITS, "b": {**SPLITS, "val": 0, "test": 0}}, False,
     ["split 'val' of domain B (photos) is empty (train 5, val 0, test 0)"],
     ["split 'test' of domain B (photos) is empty (train 5, val 0, test 0): no B -> A translations"]),
])
def test_each_empty_split_is_named_with_its_counts_and_effect(domain_splits, paired, fatal, warning):
    found_fatal, found_warnings = empty_split_problems(domain_splits, two_domains=True, paired=paired, names=NAMES)
    assert len(found_fatal) == len(fatal) and len(found_warnings) == len(warning)
    for expected, found in zip(fatal + warning, found_fatal + found_warnings):
        assert found.startswith(expected), found


def test_a_one_domain_store_only_warns_that_its_test_split_is_empty():
    empty_test = {"a": dict.fromkeys(SPLITS, 0), "b": {"train": 4, "val": 0, "test": 0}}
    fatal, warnings = empty_split_problems(empty_test, two_domains=False, paired=False, names={"b": "images"})
    assert fatal == [] and warnings == ["split 'test' of domain B (images) is empty (train 4, val 0, test 0): "
                                        "translate@<method>, with a model trained on another data set, has "
                                        "nothing to translate"]
