"""MLflow run records: params, metrics and artifacts land in the store; a broken store never stops training."""
from __future__ import annotations

import logging
from pathlib import Path

from mlflow.tracking import MlflowClient

from pipeline.tracking import MlflowTracker, repo_root, tag_runs, tracking_uri


def test_run_is_recorded_with_params_metrics_tags_and_artifacts(tmp_path, mlflow_uri, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-abc")
    tracker = MlflowTracker("test-tracking", run_name="pix2pix", tags={"method": "pix2pix"})
    tracker.log_params({"lambda_L1": 100.0, "train.lr": 2e-4})
    for step in (1, 2, 3):
        tracker.log_metrics({"g_l1": 10.0 / step}, step=step)
    artifact = tmp_path / "grid.png"
    artifact.write_bytes(b"png")
    tracker.log_artifact(artifact, "samples")
    tracker.finish()

    client = MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(tracker.run_id)
    assert run.data.params["lambda_L1"] == "100.0"
    assert run.data.tags["method"] == "pix2pix" and run.data.tags["dvc_experiment"] == "exp-abc"
    assert "git_commit" in run.data.tags
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(tracker.run_id, "g_l1")
    assert [(m.step, m.value) for m in history] == [(1, 10.0), (2, 5.0), (3, 10.0 / 3)]
    assert [a.path for a in client.list_artifacts(tracker.run_id, "samples")] == ["samples/grid.png"]


def test_a_resumed_training_continues_its_run(mlflow_uri):
    first = MlflowTracker("test-tracking", run_name="cyclegan")
    first.log_metrics({"d_a": 1.0}, step=1)
    again = MlflowTracker("test-tracking", run_name="cyclegan", run_id=first.run_id)
    again.log_metrics({"d_a": 0.5}, step=2)
    again.finish()
    history = MlflowClient(tracking_uri=mlflow_uri).get_metric_history(first.run_id, "d_a")
    assert [m.step for m in history] == [1, 2]


def test_unwritable_store_warns_once_and_goes_on(tmp_path, caplog):
    locked = tmp_path / "a-file"  # a folder cannot be made under a file, even by root
    locked.write_text("")
    with caplog.at_level(logging.WARNING, logger="pipeline.tracking"):
        tracker = MlflowTracker("x", run_name="r", uri=f"sqlite:///{locked / 'sub' / 'mlflow.db'}")
        tracker.log_params({"a": 1})
        tracker.log_metrics({"loss": 1.0}, step=1)
        tracker.finish()
    warnings = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(warnings) == 1 and tracker.run_id is None


def test_store_resolves_to_the_repo_root_even_from_a_subfolder(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert repo_root() == tmp_path.resolve()
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "a"))  # dvc's queued experiments point here
    assert repo_root() == (tmp_path / "a").resolve()


def test_tag_runs_tags_existing_runs_and_skips_missing_ones(mlflow_uri, caplog):
    tracker = MlflowTracker("test-tracking", run_name="pix2pix")
    tracker.finish()
    with caplog.at_level(logging.WARNING, logger="pipeline.tracking"):
        tagged = tag_runs({tracker.run_id: {"ablation.pix2pix_loss": "L1+cGAN"}, "no-such-run": {"a": "b"}})
    assert tagged == 1 and any("no-such-run" in r.getMessage() for r in caplog.records)
    tags = MlflowClient(tracking_uri=mlflow_uri).get_run(tracker.run_id).data.tags
    assert tags["ablation.pix2pix_loss"] == "L1+cGAN"
