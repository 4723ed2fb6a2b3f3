"""Each real data set format, written tiny by the test, through the stages as DVC runs them:
prepare -> curate -> train_segmenter -> train (a few steps) -> translate -> evaluate (and report);
a method that does not apply to the data set leaves a not-applicable record at every stage."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

from pipeline.applicability import NotApplicable, not_applicable_reason, write_not_applicable
from pipeline.data.store import load_split, read_info
from pipeline.inference import load_model
from pipeline.io import read_metrics, write_metrics
from pipeline.models import METHODS
from stages.curate import curate
from stages.evaluate import evaluate, train_segmenter
from stages.prepare import prepare
from stages.report import report
from stages.train import train
from stages.translate import translate, translate_folder
from tests.conftest import tiny_params
from tests.unit import real_data

app = typer.Typer()
for _name, _command in (("prepare", prepare), ("curate", curate), ("train_segmenter", train_segmenter),
                        ("train", train), ("translate", translate), ("translate-folder", translate_folder),
                        ("evaluate", evaluate), ("report", report)):
    app.command(_name)(_command)


def write_params(folder: Path, data: dict, curate_section: dict | None = None) -> Path:
    raw = dataclasses.asdict(tiny_params())
    raw["data"].update(data)
    raw["curate"].update(curate_section or {})
    for spec in METHODS.values():
        raw[spec.section].update(iters=1, iters_decay=1)  # 2 steps
    raw["bicyclegan"]["n_samples"] = 2
    raw["segmenter"].update(steps=2, width=4, batch_size=4)
    raw["evaluate"]["batch_size"] = 4
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class Run:
    """The repository's stage commands with the paths of dvc.yaml, under one temporary folder."""

    def __init__(self, root: Path, params: Path):
        self.root, self.params = root, params
        self.curated, self.metrics = root / "data/curated", root / "reports/metrics"

    def __call__(self, *args: object, ok: bool = True, params: bool = True) -> str:
        result = CliRunner().invoke(app, [*map(str, args), *(["--params", str(self.params)] if params else [])])
        output = result.output + (repr(result.exception) if result.exception else "")
        assert (result.exit_code == 0) == ok, output
        return output

    def data(self) -> None:
        self("prepare", "--out-dir", self.root / "data/raw", "--sheet", self.root / "reports/figures/contact_sheet.png")
        self("curate", "--raw-dir", self.root / "data/raw", "--out-dir", self.curated,
             "--summary", self.metrics / "data.json")

    def segmenter(self) -> None:
        self("train_segmenter", "--data-dir", self.curated, "--out-dir", self.root / "data/models/segmenter",
             "--real-metrics", self.metrics / "real_photos.json", "--baseline-metrics", self.metrics / "baseline.json")

    def train(self, method: str, ok: bool = True) -> str:
        return self("train", method, "--data-dir", self.curated, "--out-dir", self.root / f"data/models/{method}",
                    "--state-dir", self.root / f"data/checkpoints/{method}", "--losses-csv",
                    self.root / f"reports/losses/{method}.csv", "--samples-dir",
                    self.root / f"reports/samples/{method}", "--no-progress", ok=ok)

    def translate(self, method: str, model_dir: Path | None = None) -> Path:
        out = self.root / f"data/translated/{method}"
        self("translate", method, "--data-dir", self.curated, "--model-dir",
             model_dir or self.root / f"data/models/{method}", "--out-dir", out)
        return out

    def evaluate(self, method: str, model_dir: Path | None = None) -> dict:
        self("evaluate", method, "--data-dir", self.curated, "--translated-dir",
             self.root / f"data/translated/{method}", "--segmenter-dir", self.root / "data/models/segmenter",
             "--model-dir", model_dir or self.root / f"data/models/{method}", "--out", self.metrics / f"{method}.json")
        return read_metrics(self.metrics / f"{method}.json")  # the whole record behind the scores

    def report(self) -> str:
        self("report", "--metrics-dir", self.metrics, "--losses-dir", self.root / "reports/losses",
             "--translated-dir", self.root / "data/translated", "--curated-dir", self.curated,
             "--models-dir", self.root / "data/models", "--figures-dir", self.root / "reports/figures/report",
             "--contact-sheet", self.root / "reports/figures/contact_sheet.png", "--out", self.root / "report.md")
        return (self.root / "report.md").read_text()

    def through(self, method: str) -> dict:
        self.train(method)
        self.translate(method)
        return self.evaluate(method)


def manifest(curated: Path) -> pd.DataFrame:
    return pd.read_csv(curated / "manifest.csv", dtype=str, keep_default_na=False)


def test_celeba_two_domains_by_attributes_and_landmarks(tmp_path, caplog):
    root = real_data.write_celeba(tmp_path / "celeba")
    params = write_params(tmp_path, {"source": "celeba", "path": str(root)},
                          {"domain_a": {"Blond_Hair": 1}, "domain_b": {"Black_Hair": 1},
                           "landmarks_max_distance": 3.0, "landmarks_keep": 5})
    run = Run(tmp_path, params)
    run.data()
    info, rows = read_info(run.curated), manifest(run.curated)
    assert (info["dataset"], info["domain_a"], info["paired"]) == ("celeba", "images", False)
    summary = json.loads((run.metrics / "data.json").read_text())
    curation = summary["curation"]
    # 36 faces: 6 in both domains and 12 in neither are dropped, leaving A 6 and B 12; of those, 3
    # are misaligned (4.95 px from the mean); then B keeps its 5 closest (0.71 px, shifted 2 px)
    assert curation["filtered"] == {"in both domains": 6, "in neither domain": 12,
                                    "landmarks farther than landmarks_max_distance": 3,
                                    "landmarks beyond landmarks_keep": 5}
    assert len(rows) + curation["n_rejected"] + curation["n_filtered_out"] == 36
    assert rows["domain"].value_counts().to_dict() == {"a": 5, "b": 5}
    assert (rows.loc[rows["domain"] == "b", "landmark_distance"].astype(float) < 1.0).all()
    assert summary["images_by_domain"]["a"]["train"] + summary["images_by_domain"]["b"]["train"] == \
        summary["images"]["train"]
    test = load_split(run.curated, "test")
    assert len(test.ids_a) == 1 and len(test.ids) == 1 and test.images_a.shape == (1, 32, 32, 3)
    run.train("pix2pix")  # not an error: the stage records why and exits 0
    assert "pix2pix needs paired data; celeba is unpaired (Blond_Hair vs Black_Hair)" in caplog.text
    assert not_applicable_reason(tmp_path / "data/models/pix2pix").startswith("pix2pix needs paired data")
    run.segmenter()
    assert read_metrics(run.metrics / "real_photos.json")["applicable"] is False
    metrics = run.through("cyclegan")
    assert set(metrics["not_applicable"]) == {"fcn_score", "ssim_psnr_l1", "fid"}
    translated = tmp_path / "data/translated/cyclegan"
    assert [len(list((translated / kind).glob("*.png"))) for kind in ("fake_b", "fake_a")] == [1, 1]


def test_cityscapes_labels_to_photos_with_the_fcn_score(tmp_path):
    root = real_data.write_cityscapes(tmp_path / "cityscapes")
    broken = root / "gtFine/train/aachen/aachen_000000_000003_gtFine_labelIds.png"
    broken.unlink()  # a photo without its label file
    real_data.Image.new("L", (10, 10)).save(root / "gtFine/train/bremen/bremen_000000_000002_gtFine_labelIds.png")
    run = Run(tmp_path, write_params(tmp_path, {"source": "cityscapes", "path": str(root)}))
    run.data()
    info = read_info(run.curated)
    assert (info["domain_a"], info["paired"], info["has_labels"]) == ("labels", True, True)
    assert info["splits"] == {"train": 4, "val": 1, "test": 3}  # official val -> test; val carved from train
    assert "val carved from train" in info["split_source"]
    rejects = pd.read_csv(run.curated / "rejects.csv")
    assert sorted(rejects["reason"].str.split(" ").str[:3].str.join(" ")) == ["label id map", "label id map"]
    assert any("not found" in r for r in rejects["reason"]) and any("is 10x10 but the photo is 64x32" in r
                                                                    for r in rejects["reason"])
    labels = np.asarray(load_split(run.curated, "test").labels)
    assert set(np.unique(labels)) <= {0, 10, 13, 255}  # road, sky, car; parking and ego vehicle ignored
    run.segmenter()
    metrics = run.through("pix2pix")
    assert {"labels_to_photo", "ssim", "psnr", "l1", "fid"} <= set(metrics) and "not_applicable" not in metrics
    assert 0 <= metrics["labels_to_photo"]["per_pixel_acc"] <= 1


@pytest.mark.parametrize("direction", ["a_to_b", "b_to_a"])
def test_pix2pix_folders_in_either_direction(tmp_path, direction):
    root = real_data.write_pix2pix(tmp_path / "facades")
    run = Run(tmp_path, write_params(tmp_path, {"source": "pix2pix_folders", "path": str(root),
                                                "direction": direction}))
    run.data()
    info = read_info(run.curated)
    assert (info["domain_a"], info["paired"], info["has_labels"]) == ("images", True, False)
    assert info["splits"] == {"train": 6, "val": 1, "test": 3}
    test = load_split(run.curated, "test")
    assert test.ids == test.ids_a == ["test/1.png", "test/2.png", "test/3.png"]
    flat = test.images_a if direction == "a_to_b" else test.photos  # A (left) is flat grey 10 * k
    np.testing.assert_array_equal(np.asarray(flat)[:, :, :, 0].reshape(3, -1).max(1), [10, 20, 30])
    run.segmenter()
    metrics = run.through("pix2pix")
    assert {"ssim", "psnr", "l1"} <= set(metrics) and "labels_to_photo" not in metrics
    assert set(metrics["not_applicable"]) == {"fcn_score", "fid"}
    if direction == "a_to_b":  # and BicycleGAN, on the same store: diversity in pixels only
        metrics = run.through("bicyclegan")
        assert set(metrics["diversity"]) == {"pixel_l1"} and {"ssim", "encoded"} <= set(metrics)
        text = run.report()
        assert "## Labels → photo" not in text and "## Per-class IoU" not in text
        assert "## Image similarity (A (left halves) → B (right halves))" in text
        assert "- FCN-score: pix2pix_folders has no label maps" in text and "Missing inputs" in text  # cyclegan
        assert "pix2pix_a_to_b.png" in text and "bicyclegan_a_to_b.png" in text


def assert_not_trained(root: Path, method: str, reason: str) -> None:
    """Every output of train@<method> holds the record; translate@ and evaluate@ passed it on."""
    for folder in (f"data/models/{method}", f"data/checkpoints/{method}", f"reports/samples/{method}",
                   f"data/translated/{method}"):
        assert [p.name for p in (root / folder).iterdir()] == ["not_applicable.json"], folder
        record = json.loads((root / folder / "not_applicable.json").read_text())
        assert record["applicable"] is False and reason in record["reason"] and record["method"] == method
    assert (root / f"reports/losses/{method}.csv").read_text() == "step,lr,images_per_s\n"
    metrics = read_metrics(root / f"reports/metrics/{method}.json")
    assert metrics["applicable"] is False and reason in metrics["reason"]
    with pytest.raises(NotApplicable, match="holds no trained model, only a not-applicable record"):
        load_model(root / f"data/models/{method}", torch.device("cpu"))


def test_cyclegan_folders_then_a_plain_folder_translated_with_the_model(tmp_path, caplog):
    root = real_data.write_cyclegan(tmp_path / "horse2zebra")
    cyc = Run(tmp_path / "cyc", write_params(tmp_path, {"source": "cyclegan_folders", "path": str(root)}))
    cyc.data()
    info = read_info(cyc.curated)
    assert (info["domain_a"], info["paired"]) == ("images", False)
    assert info["domain_splits"] == {"a": {"train": 4, "val": 1, "test": 2}, "b": {"train": 5, "val": 1, "test": 3}}
    cyc.train("pix2pix_gan", ok=False)  # misconfiguration still fails
    assert "unknown method 'pix2pix_gan'" in caplog.text
    (tmp_path / "empty").mkdir()
    cyc("train", "cyclegan", "--data-dir", tmp_path / "empty", "--out-dir", tmp_path / "x", "--state-dir",
        tmp_path / "x", "--losses-csv", tmp_path / "x.csv", "--samples-dir", tmp_path / "x", ok=False)
    assert "is not a curated store" in caplog.text and not (tmp_path / "x").exists()
    # as `dvc repro`: every stage of every method, then the report
    cyc.segmenter()
    write_not_applicable(tmp_path / "cyc/reports/samples/cyclegan", "an earlier data set's record")
    metrics = {method: cyc.through(method) for method in METHODS}
    assert not (tmp_path / "cyc/reports/samples/cyclegan/not_applicable.json").exists()
    for method in ("pix2pix", "bicyclegan"):
        assert_not_trained(tmp_path / "cyc", method, f"{method} needs paired data; cyclegan_folders is unpaired")
    assert set(metrics["cyclegan"]["not_applicable"]) == {"fcn_score", "ssim_psnr_l1", "fid"}
    out = tmp_path / "cyc/data/translated/cyclegan"
    assert (out / "ids.txt").read_text().split() == ["testA/a_000.jpg", "testA/a_001.jpg"]
    assert len(list((out / "fake_a").glob("*.png"))) == 3
    text = cyc.report()
    assert "- pix2pix (not trained): pix2pix needs paired data; cyclegan_folders is unpaired" in text
    assert "- BicycleGAN (not trained): bicyclegan needs paired data; cyclegan_folders is unpaired" in text
    assert "Missing inputs" not in text and "No method applies" not in text
    assert "## Image similarity" not in text and "cyclegan_a_to_b.png" in text and "cyclegan_b_to_a.png" in text
    assert "pix2pix_a_to_b.png" not in text and "losses_pix2pix.png" not in text and "losses_cyclegan.png" in text
    # an earlier data set's pix2pix scores are left out of this one's report, with a note
    write_metrics(cyc.metrics / "pix2pix.json", {"ssim": 0.5}, {"dataset": "streets", "ssim": 0.5})
    assert "`pix2pix.json` scores data set `streets`, not `cyclegan_folders`" in cyc.report()

    folder = real_data.write_image_folder(tmp_path / "mine")
    (tmp_path / "plain").mkdir()
    plain = Run(tmp_path / "plain", write_params(tmp_path / "plain", {"source": "image_folder", "path": str(folder)}))
    plain.data()
    info = read_info(plain.curated)
    assert (info["domain_a"], info["splits"]) == ("none", {"train": 4, "val": 0, "test": 1})
    # one domain: nothing trains, every branch carries the record through to the report
    plain.segmenter()
    for method in METHODS:
        plain.through(method)
        assert_not_trained(tmp_path / "plain", method, f"{method} needs two domains; image_folder holds one")
    text = plain.report()
    assert "No method applies to `image_folder`, so nothing was trained on it" in text
    assert "- CycleGAN (not trained): cyclegan needs two domains" in text and "_No translations to show._" in text
    assert "_No loss curves._" in text
    assert "Missing inputs" not in text
    # a model trained on another data set still translates these images
    model = tmp_path / "cyc/data/models/cyclegan"
    plain.translate("cyclegan", model)  # B -> A with the backward generator
    metrics = plain.evaluate("cyclegan", model)
    assert "fcn_score" in metrics["not_applicable"]
    plain("translate-folder", "--model-dir", model, "--input", folder, "--output", tmp_path / "out",
          "--direction", "b_to_a", "--device", "cpu", params=False)
    assert len(list((tmp_path / "out").glob("*.png"))) == 5
    plain("translate-folder", "--model-dir", tmp_path / "plain/data/models/pix2pix", "--input", folder,
          "--output", tmp_path / "out2", "--device", "cpu", params=False, ok=False)
    assert "only a not-applicable record" in caplog.text and not (tmp_path / "out2").exists()
