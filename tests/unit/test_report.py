"""The report: table builders on fixture metrics, the markdown renderer, and build_report on a fixture tree."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.config import Params
from pipeline.evaluation import scores_of
from pipeline.io import read_metrics, record_path, write_metrics
from pipeline.models import METHODS
from pipeline.report import (UPPER_BOUND, class_frequency_table, diversity_table, fmt,
                             image_metrics_table, labels_to_photo_table, load_metrics, markdown_table,
                             load_timings, not_applicable_notes, of_upper_bound, params_diff_table,
                             per_class_iou_table, photo_to_labels_table, provenance_table)
from pipeline.report_build import build_report
from pipeline.report_sections import ablation_section, read_ablations

SIZE = 16
IDS = ["s0003", "s0001", "s0007"]


def fcn(acc: float, iou: dict | None = None) -> dict:
    return {"per_pixel_acc": acc, "per_class_acc": acc / 2, "class_iou": acc / 3,
            "per_class_iou": iou or {"road": 0.9, "sidewalk": 0.5, "wall": None}}


def fixture_metrics() -> dict[str, dict]:
    return {
        "pix2pix": {"labels_to_photo": fcn(0.71), "ssim": 0.41, "psnr": 17.234, "l1": 0.12,
                    "fid": {"segmenter_features": 12.3}, "mlflow_run_id": "run-p", "seconds": 12.5},
        "cyclegan": {"labels_to_photo": fcn(0.52), "photo_to_labels": fcn(0.6), "ssim": 0.3, "psnr": 15.0,
                     "l1": 0.2, "fid": {"segmenter_features": 20.0}, "mlflow_run_id": "run-c", "seconds": 3.0},
        "bicyclegan": {"labels_to_photo": fcn(0.65, {"road": 0.8, "car": 0.1}), "labels_to_photo_samples": fcn(0.68),
                       "ssim": 0.35, "psnr": 16.0,
                       "l1": 0.15, "diversity": {"pixel_l1": 0.08, "segmenter_features": 0.21},
                       "fid": {"segmenter_features": 14.0}, "mlflow_run_id": "run-b", "seconds": 4.0},
        # switched off, as in the default run
        **{m: {"applicable": False, "reason": METHODS[m].switched_off(Params()), "dataset": "streets"}
           for m in ("cut", "fastcut")},
        "real_photos": {"labels_to_photo": fcn(0.9), "mlflow_run_id": "run-r", "seconds": 1.0},
        "baseline": {"labels_to_photo": fcn(0.3), "photo_to_labels": fcn(0.4),
                     "labels_to_photo_label_colours": fcn(0.2),
                     "name_labels_to_photo_label_colours": "label colours as the photo",
                     "name_labels_to_photo": "per-class mean colour painting",
                     "name_photo_to_labels": "per-pixel majority class"},
        "data": {"images": {"train": 19, "val": 2, "test": 3},
                 "class_coverage": {"train": {"road": 0.31, "sky": 0.2}, "test": {"road": 0.3, "car": None}},
                 "seconds": 2.0},
    }


# --------------------------------------------------------------------------- tables


def test_metrics_files_keep_scalars_and_per_class_tables_apart(tmp_path):
    record = fixture_metrics()["data"] | {"labels_to_photo": fcn(0.5), "diversity": {"pixel_l1": 0.1}}
    path = tmp_path / "m.json"
    write_metrics(path, scores_of(record), record)
    shown = json.loads(path.read_text())  # what `dvc metrics show` flattens
    assert "class_coverage" not in shown and "per_class_iou" not in shown
    assert shown == {"pixel_acc": 0.5, "class_acc": 0.25, "class_iou": 0.5 / 3}  # pixel diversity: record only
    assert {"class_coverage", "labels_to_photo"} <= set(json.loads(record_path(path).read_text()))
    assert read_metrics(path) == json.loads(json.dumps(record))
    record_path(path).unlink()  # a metrics file alone still reads
    assert read_metrics(path) == shown


def test_metrics_files_hold_scores_only(tmp_path):
    """Run ids, names, times, per-class tables and data sets live in the record, never in the file
    DVC compares, so that `dvc metrics diff` reports score changes alone; a score keeps one name."""
    metrics = fixture_metrics()
    for name in ("pix2pix", "cyclegan", "bicyclegan", "real_photos"):
        path = tmp_path / f"{name}.json"
        write_metrics(path, scores_of(metrics[name]), {**metrics[name], "dataset": "streets"})
        shown = json.loads(path.read_text())
        assert shown and all(type(v) is float for v in shown.values()), shown  # flat: name -> number
        assert not {"mlflow_run_id", "seconds", "dataset", "device"} & set(shown)
        assert shown["pixel_acc"] == metrics[name]["labels_to_photo"]["per_pixel_acc"]  # upper bound too
        assert read_metrics(path)["mlflow_run_id"] == metrics[name]["mlflow_run_id"]
    with pytest.raises(ValueError, match="numbers only"):
        write_metrics(tmp_path / "bad.json", {"mlflow_run_id": "abc"}, {})


def test_labels_to_photo_table_rows_in_the_papers_order():
    table = labels_to_photo_table(fixture_metrics())
    assert list(table.columns) == ["Method", "Per-pixel acc.", "Per-class acc.", "Class IOU"]
    assert list(table["Method"]) == ["Trivial baseline (label colours as the photo)",
                                     "Trivial baseline (per-class mean colour painting)", "pix2pix", "CycleGAN",
                                     "BicycleGAN (one fixed z)", "BicycleGAN (all random-z samples)", UPPER_BOUND]
    assert table.iloc[2].tolist() == ["pix2pix", "0.710", "0.355", "0.237"]
    assert table.iloc[5].tolist()[:2] == ["BicycleGAN (all random-z samples)", "0.680"]


def test_missing_method_row_is_omitted():
    metrics = fixture_metrics()
    del metrics["cyclegan"], metrics["real_photos"]
    assert list(labels_to_photo_table(metrics)["Method"])[2:] == ["pix2pix", "BicycleGAN (one fixed z)",
                                                                  "BicycleGAN (all random-z samples)"]


def test_a_method_that_does_not_apply_is_a_note_not_a_row():
    metrics = fixture_metrics()
    metrics["pix2pix"] = {"applicable": False, "reason": "pix2pix needs paired data; h2z is unpaired",
                          "dataset": "h2z"}
    metrics["real_photos"] = {"applicable": False, "reason": "h2z has no label maps"}
    assert "pix2pix" not in list(labels_to_photo_table(metrics)["Method"])
    assert "pix2pix" not in list(image_metrics_table(metrics)["Method"])
    assert "pix2pix" not in list(diversity_table(metrics)["Method"])
    assert not_applicable_notes(metrics) == ["pix2pix (not trained): pix2pix needs paired data; h2z is unpaired",
                                             *(f"{METHODS[m].title} (not trained): {metrics[m]['reason']}"
                                               for m in ("cut", "fastcut")),
                                             "FCN-score: h2z has no label maps"]


def test_photo_to_labels_has_only_the_rows_that_translate_that_way():
    table = photo_to_labels_table(fixture_metrics())
    assert list(table["Method"]) == ["Trivial baseline (per-pixel majority class)", "CycleGAN"]


def test_per_class_iou_dashes_nulls_and_drops_classes_absent_everywhere():
    table = per_class_iou_table(fixture_metrics())
    assert list(table["Class"]) == ["road", "sidewalk", "car"]  # palette order; "wall" is null everywhere
    car = table.set_index("Class").loc["car"]
    assert car["BicycleGAN (one fixed z)"] == "0.100" and car["pix2pix"] == "–"


def test_image_and_diversity_tables_name_the_feature_space_honestly():
    assert image_metrics_table(fixture_metrics()).iloc[0].tolist() == ["pix2pix", "0.410", "17.23", "0.120"]
    table = diversity_table(fixture_metrics())
    headers = " ".join(table.columns)
    assert "Fréchet distance (segmenter features)" in headers and "Diversity (pixel L1)" in headers
    assert "LPIPS" not in headers and "FID" not in headers and "Inception" not in headers
    row = table.set_index("Method").loc["pix2pix"]
    assert row["Diversity (pixel L1) ↑"] == "–" and row["Fréchet distance (segmenter features) ↓"] == "12.300"


def test_class_frequencies_in_percent():
    table = class_frequency_table(fixture_metrics()["data"])
    assert list(table.columns) == ["Class", "train", "test"]
    assert table.set_index("Class").loc["road"].tolist() == ["31.0 %", "30.0 %"]
    assert table.set_index("Class").loc["car"].tolist() == ["–", "–"]


def test_params_diff_lists_only_changed_keys():
    p = Params()
    changed = dataclasses.replace(p, lambda_cyc=5.0, cyclegan=dataclasses.replace(p.cyclegan, use_gan=False))
    table = params_diff_table(changed)
    assert table.to_dict("records") == [{"Param": "cyclegan.use_gan", "Value": "false", "Default": "true"},
                                        {"Param": "lambda_cyc", "Value": "5.0", "Default": "10.0"}]
    assert params_diff_table(p).empty


def test_provenance_table_collects_seconds_devices_and_runs():
    summaries = {"pix2pix": {"steps": 6, "seconds": 30.0, "images_per_second": 2.5, "device": "cpu",
                             "mlflow_run_id": "run-p"}}
    table = provenance_table(fixture_metrics(), summaries).set_index("Stage")
    assert table.loc["train@pix2pix"].tolist() == ["30.0", "cpu", "run-p", "6 steps, 2.5 images/s"]
    assert table.loc["evaluate@cyclegan", "MLflow run"] == "run-c"
    assert table.loc["curate", "Wall time (s)"] == "2.0"


def test_provenance_table_says_where_an_imported_model_came_from():
    summaries = {"cyclegan": {"steps": 0, "seconds": 0.0, "images_per_second": None, "device": None,
                              "mlflow_run_id": None, "pretrained_from": "data/models/imported/h2z",
                              "imported_from": {"G_A": "h2z/latest_net_G.pth", "G_B": "z2h/latest_net_G.pth"}},
                 "pix2pix": {"steps": 0, "pretrained_from": "runs/p2p", "imported_from": {}}}
    table = provenance_table(fixture_metrics(), summaries).set_index("Stage")
    assert table.loc["train@cyclegan", "Details"] == (
        "not trained: the model in data/models/imported/h2z (G_A imported from h2z/latest_net_G.pth, "
        "G_B imported from z2h/latest_net_G.pth)")
    assert table.loc["train@pix2pix", "Details"] == "not trained: the model in runs/p2p (trained elsewhere)"


def test_provenance_table_takes_each_stages_recorded_wall_time_in_pipeline_order(tmp_path, monkeypatch):
    import stages.__main__ as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["stages", "report", "--help"])
    monkeypatch.setenv("DVC_STAGE", "dvc.yaml:translate@pix2pix")
    with pytest.raises(SystemExit):
        cli.main()
    monkeypatch.setattr("sys.argv", ["stages", "report", "--no-such-option"])  # a failed stage: no record
    monkeypatch.setenv("DVC_STAGE", "prepare")
    with pytest.raises(SystemExit):
        cli.main()
    (tmp_path / "reports/timings/broken.json").write_text("{")  # skipped with a warning
    (tmp_path / "reports/timings/report.json").write_text(json.dumps({"stage": "report", "seconds": 9.0}))
    (tmp_path / "reports/timings/train@pix2pix.json").write_text(
        json.dumps({"stage": "train@pix2pix", "seconds": 41.0}))
    timings = load_timings(tmp_path / "reports/timings")
    assert set(timings) == {"translate@pix2pix", "report", "train@pix2pix"}
    assert 0 <= timings["translate@pix2pix"] < 60

    summaries = {"pix2pix": {"steps": 6, "seconds": 30.0, "images_per_second": 2.5, "device": "cpu",
                             "mlflow_run_id": "run-p"}}
    table = provenance_table(fixture_metrics(), summaries, timings).set_index("Stage")
    # the whole command's time replaces the training loop's own; the summary's device and run stay
    assert table.loc["train@pix2pix"].tolist() == ["41.0", "cpu", "run-p", "6 steps, 2.5 images/s"]
    assert "report" not in table.index  # recorded after the report was written
    order = list(table.index)
    assert order.index("curate") < order.index("train@pix2pix") < order.index("translate@pix2pix") \
        < order.index("evaluate@pix2pix") < order.index("evaluate@cyclegan")
    assert load_timings(None) == {} and load_timings(tmp_path / "nowhere") == {}


def test_fmt_and_markdown_table():
    assert [fmt(None), fmt(float("nan")), fmt(0.12345), fmt(17.2, 2), fmt(3)] == ["–", "–", "0.123", "17.20", "3.000"]
    text = markdown_table(pd.DataFrame([{"a": "x|y", "b": "1"}]))
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]


# --------------------------------------------------------------------------- build_report


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((SIZE, SIZE, 3), value, np.uint8)).save(path)


def write_tree(root: Path, metrics: dict[str, dict]) -> dict[str, Path]:
    """A fixture of every input the report reads, in the repository's layout under `root`."""
    from pipeline.data.store import write_info, write_manifest

    paths = {name: root / rel for name, rel in [
        ("metrics_dir", "reports/metrics"), ("losses_dir", "reports/losses"), ("translated_dir", "data/translated"),
        ("curated_dir", "data/curated"), ("models_dir", "data/models"), ("figures_dir", "reports/figures/report"),
        ("contact_sheet", "reports/figures/contact_sheet.png"), ("out", "reports/report.md")]}
    paths["metrics_dir"].mkdir(parents=True)
    for name, value in metrics.items():  # as the stages write them: baselines and data statistics whole
        path = paths["metrics_dir"] / f"{name}.json"
        if name in ("baseline", "data"):
            path.write_text(json.dumps(value))
        else:
            write_metrics(path, scores_of(value), value)
    rng = np.random.default_rng(0)
    test = paths["curated_dir"] / "test"
    test.mkdir(parents=True)
    np.save(test / "photos.npy", rng.integers(0, 256, (len(IDS), SIZE, SIZE, 3), dtype=np.uint8))
    np.save(test / "labels.npy", rng.integers(0, 19, (len(IDS), SIZE, SIZE), dtype=np.uint8))
    write_manifest(paths["curated_dir"], pd.DataFrame({"image_id": IDS, "split": "test", "domain": "ab",
                                                      "a_path": "l", "b_path": "p", "conversions": ""}))
    write_info(paths["curated_dir"], {"image_size": SIZE, "has_labels": True, "num_classes": 19,
                                      "class_names": [], "splits": {"test": len(IDS)}, "attributes": []})
    keys = {"pix2pix": ["g_gan", "g_l1", "d_real", "d_fake"], "cyclegan": ["g_gan_a", "cycle_a", "d_a"],
            "bicyclegan": ["g_gan_vae", "kl", "d_vae"]}
    for method, kinds in {"pix2pix": ["fake_b"], "cyclegan": ["fake_b", "fake_a"],
                          "bicyclegan": ["fake_b", "encoded", "samples/0", "samples/1", "samples/10"]}.items():
        folder = paths["translated_dir"] / method
        for k, kind in enumerate(kinds):
            for image_id in IDS[::-1]:  # ids.txt order, not the store's
                _png(folder / kind / f"{image_id}.png", 40 * k)
        (folder / "ids.txt").write_text("".join(f"{i}\n" for i in IDS[::-1]))
        steps = np.arange(0, 200, 10)
        losses = pd.DataFrame({"step": steps, **{k: 1.0 + rng.random(len(steps)) * (100 if k == "g_l1" else 1)
                                                 for k in keys[method]}, "lr": 2e-4, "images_per_s": 50.0})
        paths["losses_dir"].mkdir(parents=True, exist_ok=True)
        losses.to_csv(paths["losses_dir"] / f"{method}.csv", index=False)
        (paths["models_dir"] / method).mkdir(parents=True)
        (paths["models_dir"] / method / "train_summary.json").write_text(json.dumps(
            {"steps": 6, "seconds": 30.0, "images_per_second": 2.5, "device": "cpu", "mlflow_run_id": f"run-{method}"}))
    _png(paths["contact_sheet"], 128)
    return paths


def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", text)


def write_ablations(path: Path, studies: dict[str, dict]) -> Path:
    """reports/ablations.json as `ablation-report` writes it: study name -> the params its rows ran with."""
    from pipeline.ablations import PRESETS, as_json, exp_name

    record = {}
    for name, flat in studies.items():
        study = PRESETS[name]
        experiments = [{"name": exp_name(study, label), "status": "success", "timestamp": "2026-12-01T10:00:00",
                        "baseline": "abc1234def0", "params": flat,
                        "metrics": {study.metrics_file: {"pixel_acc": 0.5 + i / 10, "class_acc": 0.3,
                                                         "class_iou": 0.2, "l1": 0.1}},
                        "run_ids": {study.metrics_file: f"run-{name}-{i}"}}
                       for i, (label, _) in enumerate(study.rows)]
        record[name] = as_json(study, experiments)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_build_report_writes_every_section_with_existing_image_links(tmp_path):
    paths = write_tree(tmp_path, fixture_metrics())
    ablations = write_ablations(tmp_path / "reports/ablations.json", {"pix2pix_loss": Params().as_flat_dict()})
    params = dataclasses.replace(Params(), lambda_cyc=5.0)
    out = build_report(**paths, params=params, commit="abc1234", ablations=ablations, n_images=2)
    text = out.read_text()
    for heading in ["# Image-to-image translation: results", "## Labels → photo (FCN-score)", "## Photo → labels",
                    "## Per-class IoU (labels → photo)", "## Image similarity (labels → photo)",
                    "## Diversity and realism", "## Example translations", "## Training losses", "## Data",
                    "## Ablations", "### pix2pix loss ablation", "## Provenance"]:
        assert f"\n{heading}\n" in f"\n{text}", heading
    assert "Missing inputs" not in text and "`abc1234`" in text and "| lambda_cyc | 5.0 | 10.0 |" in text
    links = _links(text)
    assert {Path(link).name for link in links} >= {
        "pix2pix_labels_to_photo.png", "cyclegan_labels_to_photo.png", "cyclegan_photo_to_labels.png",
        "bicyclegan_labels_to_photo.png", "losses_pix2pix.png", "losses_cyclegan.png", "losses_bicyclegan.png",
        "contact_sheet.png"}
    for link in links:
        assert not Path(link).is_absolute() and (out.parent / link).is_file(), link
    # BicycleGAN: label | encoded | 3 samples | real photo, 2 rows of 16 px cells with 2 px padding,
    # enlarged 8x to 128 px cells
    with Image.open(paths["figures_dir"] / "bicyclegan_labels_to_photo.png") as grid:
        assert grid.size == (8 * (6 * (SIZE + 2) + 2), 8 * (2 * (SIZE + 2) + 2))
    assert "sample 3" in text and "encoded z" in text


def test_build_report_leaves_out_missing_inputs_with_a_note(tmp_path):
    metrics = fixture_metrics()
    del metrics["cyclegan"]
    paths = write_tree(tmp_path, metrics)
    (paths["losses_dir"] / "bicyclegan.csv").write_text("")  # an empty CSV must not stop the report
    import shutil
    shutil.rmtree(paths["translated_dir"] / "pix2pix")
    paths["contact_sheet"].unlink()
    text = build_report(**paths, params=Params(), commit="unknown", ablations=tmp_path / "nope.json",
                        n_images=1).read_text()
    assert "Missing inputs" in text and "cyclegan.json` is missing" in text
    assert "no pix2pix example grid" in text and "contact_sheet.png` is missing" in text
    assert "BicycleGAN loss curves left out" in text
    l2p = text.split("## Labels → photo (FCN-score)")[1].split("##")[0]
    assert "| CycleGAN |" not in l2p and "| BicycleGAN (one fixed z) |" in l2p
    assert "## Ablations" not in text and "every param is at its default" in text
    for link in _links(text):
        assert (paths["out"].parent / link).is_file(), link


def test_load_metrics_notes_bad_json(tmp_path):
    (tmp_path / "pix2pix.json").write_text("{not json")
    metrics, notes = load_metrics(tmp_path)
    assert metrics == {} and any("pix2pix.json` is not valid JSON" in n for n in notes)


def test_report_stage_runs_through_the_cli(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from stages.__main__ import app
    if "report" not in {c.name for c in app.registered_commands}:
        import typer

        from stages.report import report
        app = typer.Typer()
        app.command("report")(report)
        app.command("other")(lambda: None)  # a second command keeps "report" a subcommand
    paths = write_tree(tmp_path, fixture_metrics())
    params_file = tmp_path / "params.yaml"
    params_file.write_text("lambda_L1: 50.0\n")
    args = ["report", "--params", str(params_file)]
    for name, path in paths.items():
        args += [f"--{name.replace('_', '-')}", str(path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| lambda_L1 | 50.0 | 100.0 |" in paths["out"].read_text()


def test_grid_rows_follow_ids_txt_and_match_the_store(tmp_path):
    from pipeline.report_figures import translation_grids

    paths = write_tree(tmp_path, fixture_metrics())
    grids = translation_grids("cyclegan", paths["translated_dir"] / "cyclegan", paths["curated_dir"],
                              tmp_path / "figs", n=2)
    assert [g.direction for g in grids] == ["labels → photo", "photo → labels"]
    with Image.open(grids[0].path) as img:
        grid = np.asarray(img)[::8, ::8]  # undo the 8x nearest enlargement
    photos = np.load(paths["curated_dir"] / "test/photos.npy")
    first = IDS.index(IDS[::-1][0])  # ids.txt lists the store's ids in reverse
    cell = grid[2:2 + SIZE, 2 + 2 * (SIZE + 2):2 + 2 * (SIZE + 2) + SIZE]  # row 0, column 2: the real photo
    np.testing.assert_array_equal(cell, photos[first])


def test_build_report_refuses_a_figures_folder_holding_the_contact_sheet(tmp_path):
    paths = write_tree(tmp_path, fixture_metrics())
    paths["figures_dir"] = paths["contact_sheet"].parent  # reports/figures: would be replaced whole
    with pytest.raises(ValueError, match="contact sheet"):
        build_report(**paths, params=Params(), commit="x")
    assert paths["contact_sheet"].is_file()


def test_facades_b_to_a_report_names_each_domain_one_way(tmp_path):
    """With direction b_to_a the store's domain A is the folders' right halves: headings, captions and
    grid columns all say so by the same names (captions said "photos" and "domain A")."""
    from pipeline.config import CurateConfig, DataConfig
    from pipeline.data.sources.adapters import prepare_real
    from pipeline.data.curation.curate import curate_raw
    from pipeline.data.store import load_split
    from tests.unit import real_data

    root = real_data.write_pix2pix(tmp_path / "facades")
    paths = write_tree(tmp_path / "repo", {})
    raw = tmp_path / "raw"
    raw.mkdir()
    prepare_real(DataConfig(source="pix2pix_folders", path=str(root), direction="b_to_a"), raw,
                 paths["contact_sheet"])
    import shutil
    shutil.rmtree(paths["curated_dir"])
    curate_raw(raw, paths["curated_dir"], CurateConfig(), SIZE, seed=0)
    test = load_split(paths["curated_dir"], "test")
    shutil.rmtree(paths["translated_dir"])
    for method, kinds in {"pix2pix": ["fake_b"], "cyclegan": ["fake_b", "fake_a"],
                          "bicyclegan": ["fake_b", "encoded", "samples/0", "samples/1"]}.items():
        folder = paths["translated_dir"] / method
        for kind in kinds:
            for image_id in test.ids:
                _png(folder / kind / f"{Path(image_id).stem}.png", 90)
        (folder / "ids.txt").write_text("".join(f"{i}\n" for i in test.ids_a))
        (folder / "ids_b.txt").write_text("".join(f"{i}\n" for i in test.ids))
    scores = {"dataset": "pix2pix_folders", "ssim": 0.4, "psnr": 15.0, "l1": 0.2}
    metrics = {"pix2pix": scores, "cyclegan": {**scores, "photo_to_a": {"ssim": 0.2, "psnr": 12.0, "l1": 0.3}},
               "bicyclegan": {**scores, "diversity": {"pixel_l1": 0.1}}}
    for name, value in metrics.items():
        write_metrics(paths["metrics_dir"] / f"{name}.json", scores_of(value), value)
    text = build_report(**paths, params=Params(), commit="x", n_images=2).read_text()
    right, left = "B (right halves)", "A (left halves)"

    def section(heading: str) -> str:
        return text.split(f"## {heading}\n")[1].split("\n## ")[0]

    assert f"scored against the real test {left}." in section(f"Image similarity ({right} → {left})")
    assert f"scored against the real test {right}." in section(f"Image similarity ({left} → {right})")
    assert f"of the real {left}" in section("Diversity and realism")
    # each grid's title names its direction as its columns name the input and the real image
    grids = re.findall(r"\*\*\w+: (.+?) → (.+?)\*\* \(columns: input \((.+?)\) \|.*\| real \((.+)\)\)", text)
    assert len(grids) == 4 and all(source == column_in and target == column_real
                                   for source, target, column_in, column_real in grids), grids
    body = text.split("\n## ", 1)[1].split("## Data\n")[0]  # the sections, before the data and provenance
    assert "domain A" not in body and "domain B" not in body and "photo" not in body.lower()


# --------------------------------------------------------------------------- a report that stands alone


def test_labels_to_photo_rows_give_their_share_of_the_upper_bound():
    metrics = fixture_metrics()
    table = of_upper_bound(labels_to_photo_table(metrics), metrics).set_index("Method")
    assert table.loc["pix2pix", "Of the upper bound"] == "0.79"  # 0.71 / 0.9
    assert table.loc[UPPER_BOUND, "Of the upper bound"] == "1.00"
    del metrics["real_photos"]
    assert "Of the upper bound" not in of_upper_bound(labels_to_photo_table(metrics), metrics)


def test_the_report_states_its_setup_and_explains_its_baselines(tmp_path):
    paths = write_tree(tmp_path, fixture_metrics())
    text = build_report(**paths, params=Params(), commit="abc1234", n_images=1).read_text()
    l2p = text.split("## Labels → photo (FCN-score)")[1].split("\n## ")[0]
    assert "Of the upper bound" in l2p and "Trivial baselines learn nothing" in l2p
    setup = text.split("\n## Setup\n")[1].split("\n## ")[0]
    p = Params()
    assert f"| Image size | {p.image_size} px" in setup and "256 px" in setup
    for spec in METHODS.values():  # every method of the table: its networks, steps and batch, weights
        cfg = spec.config(p)
        assert f"| {spec.title}: networks | generator {cfg.generator}, " in setup
        assert f"| {spec.title}: training | {cfg.iters + cfg.iters_decay} steps" in setup
        assert f"batch {cfg.batch_size}" in setup and f"| {spec.title}: loss weights |" in setup
    assert f"seed {p.seed}" in setup and "cpu" in setup and "FCN-8s" in setup
    assert "_None: every param is at its default._" not in text
    # a default that departs from the paper says so, with the paper's value and the reason
    bicycle = next(line for line in setup.splitlines() if line.startswith("| BicycleGAN: loss weights |"))
    assert "lambda_img 100" in bicycle and "| lambda_img 10 |" in bicycle and "GAN terms in charge" in bicycle
    nets = next(line for line in setup.splitlines() if line.startswith("| BicycleGAN: networks |"))
    assert "upsample nearest" in nets and "upsample basic" in nets and "chequered blotches" in nets
    assert "n_layers_D 2" in nets and "n_layers_D 3" in nets and "whole image at both" in nets
    pix2pix = next(line for line in setup.splitlines() if line.startswith("| pix2pix: loss weights |"))
    assert "| as here | the papers' values" in pix2pix
    changed = build_report(**paths, params=dataclasses.replace(Params(), lambda_img=10.0), commit="abc1234",
                           n_images=1).read_text()
    assert "| BicycleGAN: loss weights | lambda_img 10, " in changed and "changed for this run: lambda_img" in changed
    nearest = dataclasses.replace(Params(), cyclegan=dataclasses.replace(Params().cyclegan, upsample="nearest"))
    setup = build_report(**paths, params=nearest, commit="abc1234", n_images=1).read_text()
    cycle = next(line for line in setup.splitlines() if line.startswith("| CycleGAN: networks |"))
    assert "upsample nearest" in cycle and "changed for this run: upsample" in cycle
    shallow = dataclasses.replace(Params(), pix2pix=dataclasses.replace(Params().pix2pix, n_layers_D=1))
    setup = build_report(**paths, params=shallow, commit="abc1234", n_images=1).read_text()
    pix = next(line for line in setup.splitlines() if line.startswith("| pix2pix: networks |"))
    assert "n_layers_D 1" in pix and "n_layers_D 3" in pix and "changed for this run: n_layers_D" in pix


def test_the_ablation_section_shows_studies_of_this_data_set_with_their_provenance(tmp_path, monkeypatch):
    other_data = {**Params().as_flat_dict(), "data.styles": "all"}
    path = write_ablations(tmp_path / "ablations.json", {"pix2pix_loss": Params().as_flat_dict(),
                                                         "cyclegan_table4": other_data})
    studies = read_ablations(path)
    present = {"run-pix2pix_loss-0", "run-pix2pix_loss-1"}
    text = "\n".join(ablation_section(studies, Params(), present, "reports/ablations.json", None, set()))
    assert "### pix2pix loss ablation" in text and "### CycleGAN loss ablation" not in text
    assert "Not shown (run on another data set, or not run): CycleGAN loss ablation" in text
    assert "budget `default` (1400 steps per row), from commit `abc1234de`, on 2026-12-01" in text
    assert "2 of 5 MLflow runs are in this store" in text and "run-pix2pix_loss-4 (not in this store)" in text
    assert "not in this repository's history" in text
    # a changed generator changes the curated store, not the params: rows of another store are not shown
    studies["pix2pix_loss"]["rows"][0]["data_hash"] = "old.dir"
    assert "### pix2pix loss ablation" not in "\n".join(
        ablation_section(studies, Params(), present, "reports/ablations.json", "new.dir", set()))
