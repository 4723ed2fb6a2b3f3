"""Ablation presets, their DVC commands, `dvc exp show --json` parsing and the result tables."""
from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest
import yaml

from pipeline.ablations import (BUDGETS, NOT_RUN, PRESETS, ablation_table, apply_overrides,
                                changed_params, deepest_patch_layers, dvc_commands, exp_name, generator_pair,
                                parse_exp_show, render_value, row_overrides, row_run_tags, run_labels, study_for,
                                study_row)
from pipeline.config import ConfigError, Params, flatten

DEFAULT_KEYS = set(flatten(dataclasses.asdict(Params())))


def _metrics(acc: float) -> dict:
    """A metrics file as DVC shows it: scores only (the MLflow run is in its record, RECORDS)."""
    return {"reports/metrics/cyclegan.json": {"data": {
        "pixel_acc": acc, "class_acc": acc / 2, "class_iou": acc / 4, "ssim": 0.4}}}


# experiment commit -> the MLflow run named by its record (reports/metrics/per_class/cyclegan.json)
RECORDS = {"17249dde": "run-cycle", "ad9128a7": "run-gan", "97f52637": "base", "0ld": "old"}


def _experiments() -> list[dict]:
    """parse_exp_show(EXP_SHOW) with each experiment's run ids, as attach_run_ids reads them."""
    experiments = parse_exp_show(EXP_SHOW)
    for exp in experiments:
        if exp["status"] == "success" and exp["rev"] in RECORDS:
            exp["run_ids"] = {"reports/metrics/cyclegan.json": RECORDS[exp["rev"]]}
    return experiments


def _params(lambda_cyc: float, use_gan: bool = True, forward: bool = True, backward: bool = True) -> dict:
    return {"params.yaml": {"data": {"seed": 0, "lambda_cyc": lambda_cyc, "curate": {"require": {"Foggy": -1}},
                                     "cyclegan": {"use_gan": use_gan, "cycle_forward": forward,
                                                  "cycle_backward": backward, "iters": 1500}}}}


def _rev(rev: str, name: str, timestamp: str, params: dict, metrics: dict, error=None) -> dict:
    return {"rev": rev, "name": name, "error": error, "experiments": None,
            "data": {"rev": rev, "timestamp": timestamp, "params": params, "metrics": metrics,
                     "deps": {"data/curated": {"hash": "d41d8cd98f00b204e9800998ecf8427e.dir", "size": 1, "nfiles": 2}},
                     "outs": {}, "meta": {}}}


def _exp(name: str, rev: dict, state: str | None) -> dict:
    executor = None if state is None else {
        "state": state, "name": "dvc-task",
        "local": {"root": None, "log": f"/repo/.dvc/tmp/exps/run/{rev['rev']}/{rev['rev']}.out", "pid": 13881,
                  "returncode": {"success": 0, "failed": 255}.get(state), "task_id": rev["rev"]}}
    return {"revs": [rev], "executor": executor, "name": name}


# The shape of DVC 3.67's `dvc exp show --json -A` (recorded from a scratch repository, trimmed):
# the workspace, then one entry per baseline commit with its experiments.
EXP_SHOW = json.dumps([
    {"rev": "workspace", "name": None, "error": None, "experiments": None,
     "data": {"rev": "workspace", "timestamp": None, "params": _params(10.0), "metrics": _metrics(0.6),
              "deps": {}, "outs": {}, "meta": {}}},
    {"rev": "6a8f50987b93c596200f08112782b7c0f83d0f6f", "name": "main", "error": None,
     "data": {"rev": "6a8f50987b93c596200f08112782b7c0f83d0f6f", "timestamp": "2026-11-23T09:43:47",
              "params": _params(10.0), "metrics": _metrics(0.6), "deps": {}, "outs": {}, "meta": {}},
     "experiments": [
         # run in the workspace (dvc exp run, no queue): no executor
         _exp("cyclegan_table4-cycle-alone", _rev("17249dde", "cyclegan_table4-cycle-alone", "2026-11-23T09:43:53",
                                                  _params(10, use_gan=False), _metrics(0.41)), None),
         # run from the queue
         _exp("cyclegan_table4-gan-alone", _rev("ad9128a7", "cyclegan_table4-gan-alone", "2026-11-23T09:50:00",
                                                _params(0), _metrics(0.52)), "success"),
         # failed: DVC still shows the baseline's metrics, which must not be taken for the row's
         _exp("cyclegan_table4-gan-forward-cycle",
              _rev("97f52637", "cyclegan_table4-gan-forward-cycle", "2026-11-23T09:44:24",
                   _params(10, backward=False), _metrics(0.6),
                   error={"msg": "Experiment run failed", "type": ""}), "failed"),
         # queued: no metrics yet
         _exp("cyclegan_table4-gan-backward-cycle",
              _rev("d4640988", "cyclegan_table4-gan-backward-cycle", "2026-11-23T09:44:24",
                   _params(10, forward=False), {}), "queued"),
         None,  # tolerated: not an experiment
         {"revs": [], "name": None},  # tolerated: no revision data
     ]},
    {"rev": "1111111111111111111111111111111111111111", "name": None, "error": None,
     "data": {"rev": "1111111111111111111111111111111111111111", "timestamp": "2026-11-20T08:00:00"},
     # an older run of the same name, under an older baseline: the newer one wins
     "experiments": [_exp("cyclegan_table4-gan-alone", _rev("0ld", "cyclegan_table4-gan-alone",
                                                            "2026-11-20T09:00:00", _params(0), _metrics(0.1)),
                          "success")]},
])


def _all_rows():
    return [(study, label, overrides) for study in PRESETS.values() for label, overrides in study.rows]


# --------------------------------------------------------------------------- presets


@pytest.mark.parametrize("budget", sorted(BUDGETS))
def test_every_override_key_exists_and_every_row_validates(budget):
    for study, label, _ in _all_rows():
        overrides = row_overrides(study, label, Params(), budget)
        assert set(overrides) <= DEFAULT_KEYS, (study.name, label, set(overrides) - DEFAULT_KEYS)
        apply_overrides(Params(), overrides)  # raises ConfigError on a bad value


def test_rows_set_what_the_paper_names():
    def resolved(study: str, label: str) -> Params:
        return apply_overrides(Params(), row_overrides(PRESETS[study], label, Params()))

    assert not resolved("cyclegan_table4", "Cycle alone").cyclegan.use_gan
    gan_alone = resolved("cyclegan_table4", "GAN alone")
    assert gan_alone.lambda_cyc == 0 and gan_alone.lambda_cyc * gan_alone.lambda_idt == 0  # identity off too
    assert not resolved("cyclegan_table4", "GAN + forward cycle").cyclegan.cycle_backward
    assert not resolved("cyclegan_table4", "GAN + backward cycle").cyclegan.cycle_forward
    assert resolved("cyclegan_table4", "CycleGAN") == Params()
    assert resolved("pix2pix_loss", "L1+cGAN") == Params()
    gan = resolved("pix2pix_loss", "GAN")
    assert (gan.lambda_L1, gan.pix2pix.conditional_d, gan.pix2pix.use_gan) == (0, False, True)
    assert not resolved("pix2pix_loss", "L1").pix2pix.use_gan
    assert resolved("pix2pix_generator", "Encoder-decoder (L1+cGAN)").pix2pix.generator == "encdec_64"
    assert resolved("pix2pix_patch", "1x1 (PixelGAN)").pix2pix.discriminator == "pixel"
    assert resolved("pix2pix_patch", "16x16").pix2pix.n_layers_D == 1


def test_studies_follow_the_baseline_params():
    p = Params()
    big = dataclasses.replace(p, image_size=256, lambda_cyc=5.0, train=dataclasses.replace(p.train, load_size=286),
                              pix2pix=dataclasses.replace(p.pix2pix, generator="unet_256"))
    generators = {o["pix2pix.generator"] for _, o in study_for("pix2pix_generator", big).rows}
    assert generators == {"unet_256", "encdec_256"}
    assert dict(study_for("pix2pix_patch", big).rows)["286x286 (ImageGAN)"]["pix2pix.n_layers_D"] == 5
    assert dict(PRESETS["pix2pix_patch"].rows)["286x286 (ImageGAN)"]["pix2pix.n_layers_D"] == 4  # 64 px
    assert "does not fit 64 px" in PRESETS["pix2pix_patch"].caption
    assert row_overrides(study_for("cyclegan_table4", big), "CycleGAN", big)["lambda_cyc"] == 5.0
    with pytest.raises(ValueError, match="resnet_6blocks"):
        generator_pair("resnet_6blocks")
    with pytest.raises(ValueError, match="unknown study"):
        study_for("nope", p)


def test_preset_generator_names_exist_in_the_network_table():
    from typing import get_args

    from pipeline.nets import GeneratorName

    for _, overrides in PRESETS["pix2pix_generator"].rows:
        assert overrides["pix2pix.generator"] in get_args(GeneratorName)


@pytest.mark.parametrize("image_size", [32, 64, 256])
def test_deepest_patch_layers_is_the_deepest_discriminator_that_runs(image_size):
    import torch

    from pipeline.nets import build_discriminator

    n = deepest_patch_layers(image_size)
    x = torch.zeros(2, 2, image_size, image_size)
    assert build_discriminator("patch", 2, 2, n, "none")(x).shape[-1] >= 1
    with pytest.raises(RuntimeError):
        build_discriminator("patch", 2, 2, n + 1, "none")(x)


# --------------------------------------------------------------------------- commands


def test_exp_names_are_unique_and_valid_git_refs():
    from dulwich.refs import check_ref_format

    names = [exp_name(study, label, budget) for study, label, _ in _all_rows() for budget in BUDGETS]
    assert len(names) == len(set(names))
    for name in names:
        assert check_ref_format(f"refs/exps/6a/8f50987b93c596200f08112782b7c0f83d0f6f/{name}".encode()), name
        assert "/" not in name and name == name.lower()
    assert exp_name(PRESETS["cyclegan_table4"], "GAN + forward cycle") == "cyclegan_table4-gan-forward-cycle"
    assert exp_name(PRESETS["pix2pix_patch"], "1x1 (PixelGAN)", "small") == "pix2pix_patch-small-1x1-pixelgan"


def test_every_experiment_name_maps_back_to_its_study_row():
    for study, label, _ in _all_rows():
        for budget in BUDGETS:
            found = study_row(exp_name(study, label, budget))
            assert found is not None and (found[0].name, found[1], found[2]) == (study.name, label, budget)
    assert study_row("exp-abc12") is None and study_row(None) is None


def test_run_labels_name_a_studys_row_and_its_changed_params():
    study = PRESETS["cyclegan_table4"]
    cfg = apply_overrides(Params(), {**row_overrides(study, "GAN alone", Params(), "small"), "lambda_L1": 1.0})
    name, tags = run_labels("cyclegan", cfg, exp_name(study, "GAN alone", "small"))
    assert name == "cyclegan_table4-small: GAN alone" and tags["ablation.cyclegan_table4-small"] == "GAN alone"
    # pix2pix's weight cannot change a CycleGAN run, so it is left out
    assert tags["changed_params"] == "cyclegan.iters=250, cyclegan.iters_decay=250, lambda_cyc=0.0"
    assert changed_params(cfg, "pix2pix") == "lambda_L1=1.0"
    other = run_labels("pix2pix", cfg, exp_name(study, "GAN alone", "small"))  # not the study's method
    assert other[0] == "pix2pix cyclegan_table4-small-gan-alone" and len(other[1]) == 1
    assert run_labels("pix2pix", Params(), "exp-abc12") == ("pix2pix exp-abc12", {"changed_params": "none"})
    assert run_labels("pix2pix", Params(), None)[0] == "pix2pix"


def test_row_run_tags_put_a_shared_run_in_every_study_it_serves():
    runs = {"L1+cGAN": "base", "L1": "run-l1", "U-Net (L1+cGAN)": "base"}
    experiments = [{"name": exp_name(PRESETS[s], label), "status": "success", "timestamp": "t",
                    "run_ids": {"reports/metrics/pix2pix.json": runs[label]}}
                   for s, label in (("pix2pix_loss", "L1+cGAN"), ("pix2pix_loss", "L1"),
                                    ("pix2pix_generator", "U-Net (L1+cGAN)"))]
    tags = row_run_tags([PRESETS["pix2pix_loss"], PRESETS["pix2pix_generator"]], experiments)
    assert tags == {"base": {"ablation.pix2pix_loss": "L1+cGAN", "ablation.pix2pix_generator": "U-Net (L1+cGAN)"},
                    "run-l1": {"ablation.pix2pix_loss": "L1"}}


def test_render_value_round_trips_through_yaml():
    for value in [True, False, None, 0, 3, 0.0, 100.0, 2e-4, 1e-5, 1e20, "encdec_64", "true", "a b", "yes"]:
        assert render_value(value) in {"true", "false"} or not isinstance(value, bool)
        assert yaml.safe_load(render_value(value)) == value and type(yaml.safe_load(render_value(value))) is type(value)


def test_queued_commands_then_queue_start():
    study = PRESETS["cyclegan_table4"]
    commands = dvc_commands(study, Params(), jobs=2)
    assert commands[-1] == ["dvc", "queue", "start", "-j", "2"]
    first = commands[0]
    assert first[:6] == ["dvc", "exp", "run", "--queue", "-n", "cyclegan_table4-cycle-alone"]
    assert "cyclegan.use_gan=false" in first and "cyclegan.cycle_forward=true" in first
    assert all("True" not in arg and "False" not in arg for command in commands for arg in command)


def test_sequential_commands_pass_every_touched_key_and_the_budget():
    study = PRESETS["pix2pix_loss"]
    commands = dvc_commands(study, Params(), budget="small", queue=False, targets=("evaluate@pix2pix",))
    assert len(commands) == len(study.rows) and all("--queue" not in c for c in commands)
    for command in commands:
        assert command[-1] == "evaluate@pix2pix"
        keys = {command[i + 1].split("=")[0] for i, arg in enumerate(command) if arg == "-S"}
        assert keys == set(study.touched_keys) | {"pix2pix.iters", "pix2pix.iters_decay"}
    full = commands[-1]  # "L1+cGAN" resets what the rows before it changed
    assert {"lambda_L1=100.0", "pix2pix.use_gan=true", "pix2pix.conditional_d=true"} <= set(full)


def test_a_row_that_does_not_validate_fails_before_any_command():
    study = dataclasses.replace(PRESETS["pix2pix_loss"], rows=(("bad", {"lambda_L1": -1.0}),))
    with pytest.raises(ConfigError, match="lambda_L1"):
        dvc_commands(study, Params())
    with pytest.raises(ConfigError, match="pix2pix.nope"):
        apply_overrides(Params(), {"pix2pix.nope": 1})
    with pytest.raises(ValueError, match="unknown budget"):
        dvc_commands(PRESETS["pix2pix_loss"], Params(), budget="huge")


# --------------------------------------------------------------------------- results


def test_parse_exp_show_reads_names_status_params_and_metrics():
    exps = {(e["name"], e["baseline"][:4]): e for e in parse_exp_show(EXP_SHOW)}
    cycle = exps[("cyclegan_table4-cycle-alone", "6a8f")]
    assert cycle["status"] == "success" and cycle["rev"] == "17249dde"
    assert cycle["params"]["cyclegan.use_gan"] is False and cycle["params"]["curate.require"] == {"Foggy": -1}
    assert cycle["metrics"]["reports/metrics/cyclegan.json"]["pixel_acc"] == 0.41
    assert cycle["metrics"]["reports/metrics/cyclegan.json"]["class_acc"] == 0.205
    assert exps[("cyclegan_table4-gan-forward-cycle", "6a8f")]["status"] == "failed"
    assert exps[("cyclegan_table4-gan-forward-cycle", "6a8f")]["metrics"] == {}  # the baseline's, dropped
    assert exps[("cyclegan_table4-gan-backward-cycle", "6a8f")]["status"] == "queued"
    assert len(parse_exp_show(EXP_SHOW)) == 6  # the None entry is skipped; the empty one is kept, nameless
    assert parse_exp_show("[]") == []
    with pytest.raises(ValueError, match="list"):
        parse_exp_show('{"workspace": {}}')


def test_ablation_table_in_the_papers_layout():
    table = ablation_table(PRESETS["cyclegan_table4"], _experiments()).set_index("Loss")
    assert list(table.index) == ["Cycle alone", "GAN alone", "GAN + forward cycle", "GAN + backward cycle",
                                 "CycleGAN"]
    assert list(table.columns) == ["Per-pixel acc.", "Per-class acc.", "Class IOU", "DVC experiment", "MLflow run"]
    assert table.loc["Cycle alone"].tolist() == ["0.410", "0.205", "0.102", "cyclegan_table4-cycle-alone",
                                                 "run-cycle"]
    assert table.loc["GAN alone", "Per-pixel acc."] == "0.520"  # the newer of two runs of that name
    assert table.loc["GAN + forward cycle", "Per-pixel acc."] == "failed"
    assert table.loc["GAN + backward cycle", "Class IOU"] == "queued"
    assert table.loc["CycleGAN"].tolist()[:3] == [NOT_RUN] * 3 and table.loc["CycleGAN", "MLflow run"] == "–"
    small = ablation_table(PRESETS["cyclegan_table4"], _experiments(), budget="small")
    assert set(small["Per-pixel acc."]) == {NOT_RUN}


# --------------------------------------------------------------------------- stages


def _app():
    import typer

    from stages.ablate import ablate, ablation_report

    app = typer.Typer()
    app.command("ablate")(ablate)
    app.command("ablation-report")(ablation_report)
    return app


def test_ablate_dry_run_prints_the_commands(tmp_path):
    from typer.testing import CliRunner

    params = tmp_path / "params.yaml"
    params.write_text("seed: 0\n")
    result = CliRunner().invoke(_app(), ["ablate", "pix2pix_patch", "--dry-run", "--params", str(params)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("dvc exp run --queue -n pix2pix_patch-1x1-pixelgan -S pix2pix.discriminator=pixel")
    assert lines[-1] == "dvc queue start -j 1"
    bad = CliRunner().invoke(_app(), ["ablate", "nope", "--dry-run", "--params", str(params)])
    assert bad.exit_code == 1


def test_sequential_ablate_puts_params_yaml_back(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import pipeline.experiments

    params = tmp_path / "params.yaml"
    params.write_text("seed: 0  # the user's comment\n")
    ran = []

    def fake_run(command, cwd=None, **kwargs):
        ran.append(command)
        params.write_text("seed: 0\npix2pix: {use_gan: false}\n")  # what dvc exp run -S leaves behind
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(pipeline.experiments.subprocess, "run", fake_run)
    result = CliRunner().invoke(_app(), ["ablate", "pix2pix_loss", "--no-queue", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert len(ran) == 5 and params.read_text() == "seed: 0  # the user's comment\n"


def test_ablation_report_writes_markdown_and_json(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import pipeline.experiments

    params = tmp_path / "params.yaml"
    params.write_text("seed: 0\n")
    calls = []
    real_run = subprocess.run

    def fake_run(command, cwd=None, **kwargs):
        if command[:2] == ["git", "show"]:  # an experiment's record, for its MLflow run id
            rev, _, path = command[2].partition(":")
            assert path == "reports/metrics/per_class/cyclegan.json"
            record = json.dumps({"mlflow_run_id": RECORDS[rev]}) if rev in RECORDS else ""
            return subprocess.CompletedProcess(command, 0 if record else 128, stdout=record, stderr="")
        if command[0] != "dvc":  # the patch is process-wide: platform.processor() runs `uname -p` once
            return real_run(command, cwd=cwd, **kwargs)
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, stdout=EXP_SHOW, stderr="")

    monkeypatch.setattr(pipeline.experiments.subprocess, "run", fake_run)
    out, json_out = tmp_path / "ablations.md", tmp_path / "ablations.json"
    result = CliRunner().invoke(_app(), ["ablation-report", "cyclegan_table4", "--out", str(out), "--json-out",
                                         str(json_out), "--params", str(params), "--all-commits"])
    assert result.exit_code == 0, result.output
    assert calls == [["dvc", "exp", "show", "--json", "-A"]]
    assert "| Cycle alone | 0.410 |" in out.read_text()
    rows = json.loads(json_out.read_text())["cyclegan_table4"]["rows"]
    assert rows[0]["metrics"]["pixel_acc"] == 0.41 and rows[-1]["status"] == NOT_RUN
    assert rows[0]["mlflow_run_id"] == "run-cycle"  # from the experiment's record


def test_ablation_report_without_experiments_on_head_points_to_all_commits(tmp_path, monkeypatch, caplog):
    import pipeline.experiments

    workspace_only = json.dumps([{"rev": "workspace", "name": None, "data": {"rev": "workspace"},
                                  "experiments": None}])
    monkeypatch.setattr(pipeline.experiments.subprocess, "run", lambda command, cwd=None, **kw:
                        subprocess.CompletedProcess(command, 0, stdout=workspace_only, stderr=""))
    out, json_out = tmp_path / "ablations.md", tmp_path / "ablations.json"
    with caplog.at_level("WARNING", logger="pipeline.experiments"):
        found = pipeline.experiments.write_ablation_report(
            "cyclegan_table4", Params(), out=out, json_out=json_out, budget="default", all_commits=False, tag=False)
    assert found == 0
    assert "--all-commits" in caplog.text
