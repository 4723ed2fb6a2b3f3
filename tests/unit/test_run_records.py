"""MLflow run records as the stages write them: evaluate@ adds its scores to the finished training
run without reopening it (status, start and end stay the training's), each run logs the shared
params and its own method's only, and the experiment opens on the UI's runs table."""
from __future__ import annotations

import dataclasses
import json
import time

import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline.ablations import method_params
from pipeline.config import Params
from pipeline.evaluation import SCORES, evaluate_method, train_fcn_segmenter
from pipeline.inference import translate_method
from pipeline.io import read_metrics, record_path
from pipeline.models import METHODS
from pipeline.tracking import EXPERIMENT_KIND_TAG, MODEL_TRAINING, runs_url
from pipeline.training import train_method
from tests.conftest import tiny_params

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def trained(tiny_curated, tmp_path_factory, mlflow_uri):
    """A tiny pix2pix trained, translated and evaluated as `dvc repro` runs the stages; returns
    (folder, params, run id, the training run as it stood before evaluate@, the metrics file)."""
    with pytest.MonkeyPatch.context() as mp:  # the store of the tests (set per test only after this)
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
        mp.delenv("DVC_EXP_NAME", raising=False)
        mp.delenv("DVC_ROOT", raising=False)
        return _train_translate_evaluate(tiny_curated, tmp_path_factory.mktemp("records"))


def _train_translate_evaluate(tiny_curated, root):
    params = tiny_params()
    params = dataclasses.replace(params, segmenter=dataclasses.replace(params.segmenter, steps=2, width=4))
    kwargs = dict(out_dir=root / "model", state_dir=root / "state", losses_csv=root / "losses.csv",
                  samples_dir=root / "samples", params=params, progress=False)
    train_method("pix2pix", tiny_curated, **kwargs)
    run_id = json.loads((root / "model" / "config.json").read_text())["mlflow_run_id"]
    client = MlflowClient()
    before = client.get_run(run_id).info
    time.sleep(0.05)  # a reopened run would get a later end time
    train_method("pix2pix", tiny_curated, **kwargs)  # `dvc repro -f`: resumes at the last step, trains nothing
    translate_method("pix2pix", tiny_curated, root / "model", root / "translated", split="test", params=params,
                     device=CPU)
    train_fcn_segmenter(tiny_curated, root / "segmenter", real_metrics=root / "metrics" / "real_photos.json",
                        baseline_metrics=root / "metrics" / "baseline.json", params=params)
    out = root / "metrics" / "pix2pix.json"
    evaluate_method("pix2pix", tiny_curated, root / "translated", segmenter_dir=root / "segmenter",
                    model_dir=root / "model", out=out, params=params)
    return root, params, run_id, before, out


def test_evaluate_adds_scores_to_the_finished_run_and_keeps_its_times(trained):
    _, _, run_id, before, out = trained
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED" == before.status
    assert (run.info.start_time, run.info.end_time) == (before.start_time, before.end_time)
    scores = json.loads(out.read_text())
    assert scores and run.data.metrics.items() >= scores.items()  # every score, under its one name
    artifacts = {a.path for a in MlflowClient().list_artifacts(run_id, "metrics")}
    assert "metrics/pix2pix.json" in artifacts


def test_each_run_logs_the_shared_params_and_its_own_methods_only(trained):
    _, params, run_id, _, _ = trained
    logged = MlflowClient().get_run(run_id).data.params
    assert set(logged) == {"method", *method_params(params, "pix2pix")}
    flat = Params().as_flat_dict()
    for name, spec in METHODS.items():  # derived from the method table: a new method needs no edit here
        own = method_params(Params(), name)
        assert {k for k in flat if k.split(".")[0] == spec.section} <= set(own)
        assert set(spec.loss_weights) <= set(own)
        assert {"seed", "image_size", "train.lr", "data.source"} <= set(own)
        for other_name, other in METHODS.items():
            if other_name != name:
                assert not any(k.split(".")[0] == other.section for k in own), (name, other_name)
                assert not (set(other.loss_weights) - set(spec.loss_weights)) & set(own), (name, other_name)


def test_the_upper_bound_and_the_methods_share_score_names(trained):
    root, _, _, _, out = trained
    real = json.loads((root / "metrics" / "real_photos.json").read_text())
    method = json.loads(out.read_text())
    assert set(real) == {"pixel_acc", "class_acc", "class_iou"} <= set(method)
    assert set(method) <= set(SCORES.values())
    record = read_metrics(out)  # the whole record beside the scores: run id, time, per-class tables
    assert record["mlflow_run_id"] and record["seconds"] > 0 and record_path(out).is_file()
    segmenter_run = MlflowClient().get_run(read_metrics(root / "metrics" / "real_photos.json")["mlflow_run_id"])
    assert segmenter_run.data.metrics["pixel_acc"] == real["pixel_acc"]


def test_the_experiment_opens_on_the_runs_table(trained):
    _, params, run_id, _, _ = trained
    experiment = MlflowClient().get_experiment_by_name(params.train.mlflow_experiment)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    assert runs_url("http://127.0.0.1:5000/", experiment.experiment_id) == \
        f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
