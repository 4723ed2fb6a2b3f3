"""Checkpoints chosen without the test set: training keeps the checkpoints train.keep_every asks
for, `select` ranks them and the final one on val, and the report gives the test scores of the
final and of the val-selected checkpoint, labelled."""
from __future__ import annotations

import json

import typer
import yaml
from typer.testing import CliRunner

from pipeline.kept import collect_kept, keep_checkpoint, kept_folders
from stages.select import select
from tests.unit.test_real_datasets import Run, write_params


def test_kept_checkpoints_of_another_config_are_left_out(tmp_path):
    import torch

    nets = {"generator": torch.nn.Linear(2, 2)}
    keep_checkpoint(tmp_path / "state", 1, nets, {"params": {"a": 1}})
    keep_checkpoint(tmp_path / "state", 2, nets, {"params": {"a": 2}})  # an earlier run with other params
    keep_checkpoint(tmp_path / "state", 3, nets, {"params": {"a": 1}})  # the last step: the final model
    assert collect_kept(tmp_path / "state", tmp_path / "model", {"params": {"a": 1}}, total=3) == [1]
    assert [step for step, _ in kept_folders(tmp_path / "model")] == [1]


def test_select_ranks_kept_checkpoints_on_val_and_the_report_labels_both(tmp_path):
    params = write_params(tmp_path, {"source": "streets", "n_images": 30})
    raw = yaml.safe_load(params.read_text())
    raw["train"]["keep_every"] = 1
    raw["pix2pix"].update(iters=2, iters_decay=1)  # 3 steps: kept 1 and 2, final 3
    raw["select"]["enabled"] = True
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    run = Run(tmp_path / "run", params)
    run.data()
    run.segmenter()
    run.through("pix2pix")
    assert [s for s, _ in kept_folders(run.root / "data/models/pix2pix")] == [1, 2]
    for method in ("cyclegan", "bicyclegan", "cut", "fastcut"):  # not trained here: their folders say so
        from pipeline.applicability import write_not_applicable

        write_not_applicable(run.root / f"data/models/{method}", "not trained in this test")
    app = typer.Typer()
    app.command("select")(select)
    app.command("other")(select)  # two commands, so that typer takes the first argument as the command's name
    args = ["select", "--data-dir", run.curated, "--models-dir", run.root / "data/models", "--segmenter-dir",
            run.root / "data/models/segmenter", "--out-dir", run.root / "reports/selection", "--params", params]
    result = CliRunner().invoke(app, list(map(str, args)))
    assert result.exit_code == 0, result.output + repr(result.exception)
    record = json.loads((run.root / "reports/selection/pix2pix.json").read_text())
    assert record["criterion"] == {"score": "pixel_acc", "record_key": "labels_to_photo.per_pixel_acc",
                                   "higher_is_better": True, "split": "val"}
    assert [c["checkpoint"] for c in record["candidates"]] == ["kept (step 1)", "kept (step 2)", "final (step 3)"]
    best = max(record["candidates"], key=lambda c: c["val"])
    assert record["selected"]["checkpoint"] == best["checkpoint"] and record["final"]["step"] == 3
    final_scores = json.loads((run.metrics / "pix2pix.json").read_text())
    assert record["final"]["test"]["pixel_acc"] == final_scores["pixel_acc"]  # as evaluate@pix2pix scored it
    assert json.loads((run.root / "reports/selection/cyclegan.json").read_text())["enabled"] is False
    run("report", "--metrics-dir", run.metrics, "--losses-dir", run.root / "reports/losses", "--translated-dir",
        run.root / "data/translated", "--curated-dir", run.curated, "--models-dir", run.root / "data/models",
        "--figures-dir", run.root / "reports/figures/report", "--contact-sheet",
        run.root / "reports/figures/contact_sheet.png", "--out", run.root / "report.md", "--selection-dir",
        run.root / "reports/selection")
    text = (run.root / "report.md").read_text()
    assert "## Checkpoints chosen on the val split" in text and "| pix2pix | final: final (step 3) |" in text
    assert f"val-selected (best val pixel_acc): {record['selected']['checkpoint']}" in text
