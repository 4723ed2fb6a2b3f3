"""The MLflow server (what the UI reads) serves a study's runs, their tags and metrics over REST.

Runs are written by the project's own tracking code, as the train and evaluate stages write them;
the server is started on a free loopback port and always stopped.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from pipeline.ablations import (PRESETS, apply_overrides, exp_name, method_params, row_overrides, row_run_tags,
                                run_labels, study_tag)
from pipeline.config import Params
from pipeline.tracking import EXPERIMENT_KIND_TAG, MODEL_TRAINING, MlflowTracker, add_to_finished_run, tag_runs

STUDY = PRESETS["pix2pix_loss"]
EXPERIMENT = "i2i-server-test"
# (row label, DVC experiment name or None for the workspace, labels -> photo per-pixel accuracy)
ROWS = (("L1", "pix2pix_loss-l1", 0.61), ("GAN", "pix2pix_loss-gan", 0.42), ("L1+cGAN", None, 0.80))
START_TIMEOUT_S = 120  # a cold start takes ~7 s alone and far longer on a busy 2-core machine


def _write_runs(uri: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Three pix2pix_loss rows as the train and evaluate stages record them; label -> run id.
    The L1+cGAN row has the default params: DVC reuses the workspace's run for it, which
    `ablation-report` then tags (here through the same functions)."""
    baseline = Params()
    ids = {}
    for label, experiment, acc in ROWS:
        cfg = apply_overrides(baseline, row_overrides(STUDY, label, baseline))
        if experiment:
            monkeypatch.setenv("DVC_EXP_NAME", experiment)
        else:
            monkeypatch.delenv("DVC_EXP_NAME", raising=False)
        name, labels = run_labels("pix2pix", cfg, experiment)
        train = MlflowTracker(EXPERIMENT, run_name=name, tags={"method": "pix2pix", **labels}, uri=uri)
        train.log_params({"method": "pix2pix", **method_params(cfg, "pix2pix")})
        for step in (10, 20, 30):
            train.log_metrics({"g_l1": 30.0 / step}, step=step)
        train.finish()
        assert add_to_finished_run(train.run_id, {"pixel_acc": acc}, [], uri=uri)  # as evaluate@ does
        ids[label] = train.run_id
    # as ablation-report finds them: the L1+cGAN row's experiment points at the workspace's run
    experiments = [{"name": exp_name(STUDY, label), "status": "success", "timestamp": "t",
                    "run_ids": {STUDY.metrics_file: ids[label]}} for label, _, _ in ROWS]
    assert tag_runs(row_run_tags([STUDY], experiments), uri=uri) == len(ROWS)
    return ids


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(base: str, path: str, **query: str) -> dict:
    with urllib.request.urlopen(f"{base}{path}?{urllib.parse.urlencode(query)}", timeout=30) as response:
        return json.load(response)


def _post(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole process group (the CLI and its uvicorn worker), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, label -> run id) of an MLflow server on a free loopback port over a fresh store."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        ids = _write_runs(uri, mp)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no job-runner processes: lighter, faster start
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log_path = tmp / "server.log"
    port = _free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--default-artifact-root", (tmp / "artifacts").as_uri(),
               "--no-serve-artifacts"]
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group, stopped as one
    try:
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            waited = time.monotonic() - started
            if proc.poll() is not None or waited > START_TIMEOUT_S:
                state = f"exited with {proc.returncode}" if proc.poll() is not None else f"no /health in {waited:.0f} s"
                pytest.fail(f"mlflow server on port {port} {state}; its output:\n"
                            f"{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.2)
        print(f"mlflow server answered /health after {time.monotonic() - started:.1f} s")
        yield base, ids
    finally:
        _stop(proc)


def test_the_server_serves_a_studys_runs_with_tags_and_evaluation_metrics(server):
    base, ids = server
    experiment = _get(base, "/api/2.0/mlflow/experiments/get-by-name", experiment_name=EXPERIMENT)["experiment"]
    # marked as model training, so the UI opens on the runs table rather than its GenAI screens
    assert {t["key"]: t["value"] for t in experiment["tags"]}[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    # the filter the README gives for one study: every row, the reused baseline run included
    found = _post(base, "/api/2.0/mlflow/runs/search", {
        "experiment_ids": [experiment["experiment_id"]], "max_results": 100,
        "filter": f"tags.`{study_tag(STUDY)}` LIKE '%'"})["runs"]
    runs = {run["info"]["run_id"]: run for run in found}
    assert set(runs) == set(ids.values())
    for label, experiment_name, acc in ROWS:
        run = runs[ids[label]]
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert tags[study_tag(STUDY)] == label
        assert tags["dvc_experiment"] == (experiment_name or "workspace") and tags["method"] == "pix2pix"
        assert run["info"]["status"] == "FINISHED"
        assert metrics["pixel_acc"] == pytest.approx(acc)  # evaluation joined the run
        assert params["lambda_L1"] == str(row_overrides(STUDY, label, Params())["lambda_L1"])
        if experiment_name:
            assert run["info"]["run_name"] == f"pix2pix_loss: {label}"
        else:  # made in the workspace before the study
            assert run["info"]["run_name"] == "pix2pix" and tags["changed_params"] == "none"
    gan = {t["key"]: t["value"] for t in runs[ids["GAN"]]["data"]["tags"]}
    assert gan["changed_params"] == "lambda_L1=0.0, pix2pix.conditional_d=false"


def test_the_server_serves_per_step_loss_history(server):
    base, ids = server
    history = _get(base, "/api/2.0/mlflow/metrics/get-history", run_id=ids["L1"], metric_key="g_l1")["metrics"]
    assert [(m["step"], m["value"]) for m in history] == [(10, 3.0), (20, 1.5), (30, 1.0)]
