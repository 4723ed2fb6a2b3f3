"""Run records: the Tracker protocol, MLflow behind it, and a NullTracker for tests.

Only this module imports mlflow. The store resolves to an absolute location at the repository
root so that `dvc exp run --queue` (which runs in temporary copies) records into the same store.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Tracker(Protocol):
    run_id: str | None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Records nothing; for tests and for runs that opt out."""

    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


def repo_root(start: Path | None = None) -> Path:
    """The DVC repository root: $DVC_ROOT (set by dvc, the parent repo for queued experiments),
    else the nearest folder upwards holding dvc.yaml, else the current folder."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists() or (folder / ".dvc").is_dir():
            return folder
    return here


def tracking_uri(root: Path | None = None) -> str:
    """$MLFLOW_TRACKING_URI if set (a server or another store), else sqlite at the repo root."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(root or repo_root()) / 'mlflow.db'}"


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def known_commits(root: Path, commits: set[str]) -> set[str]:
    """The commits of `commits` that the repository at `root` holds."""
    found = set()
    for commit in commits:
        done = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=root, capture_output=True)
        if done.returncode == 0:
            found.add(commit)
    return found


def dvc_experiment() -> str | None:
    """The DVC experiment being run: dvc sets $DVC_EXP_NAME for `dvc exp run`, queued or not."""
    return os.environ.get("DVC_EXP_NAME") or None


def tag_runs(tags_by_run: dict[str, dict[str, str]], uri: str | None = None) -> int:
    """Adds tags to runs already in the store; returns how many runs were tagged. A run that is
    missing, or a store that cannot be written, is reported and skipped."""
    uri = uri or tracking_uri()
    tagged = 0
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        for run_id, tags in tags_by_run.items():
            try:
                for key, value in tags.items():
                    client.set_tag(run_id, key, _stringify(value))
                tagged += 1
            except Exception as exc:  # noqa: BLE001 - one missing run must not hide the others
                log.warning("MLflow run %s in %s not tagged (%s: %s)", run_id, uri, type(exc).__name__, exc)
    except Exception as exc:  # noqa: BLE001
        log.warning("MLflow store %s cannot be written (%s: %s); runs not tagged", uri, type(exc).__name__, exc)
    return tagged


def _stringify(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."  # MLflow's param value limit


# MLflow 3's UI opens an experiment on its GenAI screens (traces, usage, evaluations). MLflow marks a
# model-training experiment with this tag (what the UI's experiment-type choice writes); 3.17's UI
# still follows its own "GenAI / Model training" switch (default GenAI) over the tag, so runs_url()
# sets that switch in the link, which lands on the runs table.
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def open_experiment(client: Any, name: str, uri: str) -> str:
    """The id of experiment `name`, created if missing (artifacts beside a sqlite store, not under
    the working folder) and marked as a model-training experiment."""
    found = client.get_experiment_by_name(name)
    if found is None:
        artifacts = None
        if uri.startswith("sqlite:///"):
            artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
        experiment_id = client.create_experiment(name, artifact_location=artifacts)
    else:
        experiment_id = found.experiment_id
    if found is None or found.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:  # stores made before the tag too
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    return experiment_id


def runs_url(base: str, experiment_id: str) -> str:
    """The UI page that lists the experiment's runs (the table to compare them in)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def serve_ui(experiment: str, host: str, port: int, uri: str | None = None) -> int:
    """Run `mlflow ui` on the store until interrupted, after marking `experiment` as model training
    (for stores made before the mark) and logging the link to its runs table; returns its exit code."""
    from mlflow.tracking import MlflowClient

    uri = uri or tracking_uri()
    experiment_id = open_experiment(MlflowClient(tracking_uri=uri), experiment, uri)
    log.info("the runs of %r: %s", experiment, runs_url(f"http://{host}:{port}", experiment_id))
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    try:
        return subprocess.run(command).returncode
    except KeyboardInterrupt:
        return 0


def runs_in_store(run_ids: list[str], uri: str | None = None) -> set[str] | None:
    """Which of `run_ids` the store holds; None where the store cannot be read. A sqlite store
    that does not exist holds none (and is not created by asking)."""
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return set()
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
    except Exception as exc:  # noqa: BLE001 - the report notes it and goes on
        log.warning("MLflow store %s cannot be read (%s: %s)", uri, type(exc).__name__, exc)
        return None
    found = set()
    for run_id in run_ids:
        try:
            client.get_run(run_id)
            found.add(run_id)
        except Exception:  # noqa: BLE001 - not in this store
            continue
    return found


def add_to_finished_run(run_id: str, metrics: dict[str, float], artifacts: list[tuple[Path, str]],
                        uri: str | None = None, tags: dict[str, str] | None = None) -> bool:
    """Log `metrics` (at step 0), `tags` and `artifacts` ((file, folder) pairs) to a run that has
    already ended, without reopening it: its status, start and end time stay those of the training.
    Returns whether the run was written; a missing run or an unwritable store is reported, never raised."""
    uri = uri or tracking_uri()
    try:
        from mlflow.entities import Metric, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                         tags=[RunTag(k, v) for k, v in (tags or {}).items()])
        for path, folder in artifacts:
            client.log_artifact(run_id, str(path), folder)
        return True
    except Exception as exc:  # noqa: BLE001 - a record that cannot be written must not fail the stage
        log.warning("MLflow run %s in %s not updated (%s: %s)", run_id, uri, type(exc).__name__, exc)
        return False


class MlflowTracker:
    """One MLflow run. Every call is guarded: if the store cannot be written, the run goes on
    without records and says so once (training must never die for want of a log)."""

    def __init__(self, experiment: str, run_name: str, tags: dict[str, str] | None = None,
                 run_id: str | None = None, uri: str | None = None):
        self.run_id: str | None = None
        self._client = None
        self._failed = False
        self._reopened = True  # finish() ends the run; not for a finished run continued with nothing to add
        root = repo_root()
        self.uri = uri or tracking_uri(root)
        try:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
            experiment_id = open_experiment(self._client, experiment, self.uri)
            all_tags = {"git_commit": git_commit(root),
                        "dvc_experiment": dvc_experiment() or "workspace",
                        **(tags or {})}
            if run_id is not None:  # a resumed training continues its own run
                # a finished run keeps its status and times (a resume at the last step trains nothing)
                self._reopened = self._client.get_run(run_id).info.status != "FINISHED"
                if self._reopened:
                    self._client.update_run(run_id, status="RUNNING")
                self.run_id = run_id
            else:
                self.run_id = self._client.create_run(experiment_id, run_name=run_name, tags=all_tags).info.run_id
        except Exception as exc:  # noqa: BLE001 - any store failure must not stop training
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        if not self._failed:
            log.warning("MLflow store %s cannot be written (%s: %s); training goes on without run records",
                        self.uri, type(exc).__name__, exc)
        self._failed = True

    def _call(self, name: str, *args: Any, **kwargs: Any) -> None:
        if self._failed or self._client is None or self.run_id is None:
            return
        try:
            getattr(self._client, name)(self.run_id, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _stringify(v)) for k, v in sorted(params.items())]
        for start in range(0, len(items), 100):  # log_batch takes at most 100 params a call
            self._call("log_batch", params=items[start:start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._call("log_batch", metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._call("log_artifact", str(path), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._call("set_tag", key, _stringify(value))

    def finish(self, status: str = "FINISHED") -> None:
        if self._reopened or status != "FINISHED":
            self._call("set_terminated", status=status)
