"""Every data-set snippet of the README's "Real data sets" section runs as written: its keys, set in
the repository's params.yaml, parse; `prepare` and `curate` run on a small copy of that layout; and
each method's networks translate an image at the snippet's `image_size`."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest
import torch
import yaml

from pipeline.config import params_from_dict
from pipeline.data.store import read_info
from pipeline.models import METHODS, build_model
from tests.conftest import ROOT
from tests.unit import real_data
from tests.unit.test_real_datasets import Run


def deep_merge(base: dict, extra: dict) -> dict:
    """`base` with `extra`'s keys set, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def _celeba(root: Path) -> Path:
    """The CelebA fixture with the attributes the README's snippet filters on (no glasses, none blurry)."""
    real_data.write_celeba(root)
    table = pd.read_csv(root / "list_attr_celeba.csv", dtype={"image_id": str})
    table.assign(Eyeglasses=-1, Blurry=-1).to_csv(root / "list_attr_celeba.csv", index=False)
    return root


FIXTURES: dict[str, Callable[[Path], Path]] = {
    "CelebA": _celeba,
    "Cityscapes": real_data.write_cityscapes,
    "pix2pix folders": real_data.write_pix2pix,
    "CycleGAN folders": real_data.write_cyclegan,
    "A plain folder of images": real_data.write_image_folder,
}


def readme_snippets() -> dict[str, dict[str, Any]]:
    """Subsection title -> its yaml snippet, for every ```yaml block under "## Real data sets"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Real data sets\n", 1)[1].split("\n## ", 1)[0]
    snippets = {}
    for part in section.split("\n### ")[1:]:
        title, body = part.split("\n", 1)
        blocks = re.findall(r"```yaml\n(.*?)```", body, flags=re.S)
        assert len(blocks) <= 1, f"README section {title!r}: one yaml snippet expected"
        if blocks:
            snippets[title.strip()] = yaml.safe_load(blocks[0])
    return snippets


def test_every_data_set_snippet_has_a_fixture():
    assert set(readme_snippets()) == set(FIXTURES)


@pytest.mark.parametrize("title", sorted(FIXTURES))
def test_readme_snippet_runs_as_written(title, tmp_path):
    snippet = readme_snippets()[title]
    # params.yaml with the snippet's keys set, each in its section (as a user edits the file)
    raw = deep_merge(yaml.safe_load((ROOT / "params.yaml").read_text()), snippet)
    data_root = FIXTURES[title](tmp_path / "dataset")
    raw["data"]["path"] = str(data_root)  # the one key a user changes: where the data set lies
    params = params_from_dict(raw)  # the error the Cityscapes snippet gave: train.load_size < image_size
    assert params.data.source == snippet["data"]["source"]
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))

    run = Run(tmp_path, params_file)
    run.data()  # prepare and curate, through the stages
    info = read_info(run.curated)
    assert info["image_size"] == params.image_size and info["dataset"] == snippet["data"]["source"]
    # the networks the params name work at the snippet's size: one translation each
    x = torch.zeros(1, 3, params.image_size, params.image_size)
    with torch.no_grad():
        for method in METHODS:
            model = build_model(method, params, torch.device("cpu"), seed=0)
            for direction in model.directions():
                out = model.test_outputs(x, direction, x, seed=0, n_samples=1)
                assert all(v.shape == x.shape for v in out.values()), (method, direction)
