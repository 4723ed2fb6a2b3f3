"""DDP end to end: `dvc repro train@pix2pix` with train.nproc_per_node 2 restarts the stage under
torchrun (2 gloo processes) and records one MLflow run; a rank that hangs fails the job after the
collective timeout instead of hanging it."""
from __future__ import annotations

import csv
import json
import time

import pytest
from safetensors.torch import load_file

from tests.smoke.test_repro import copy_repo, env, run, tiny_yaml
from tests.unit.test_distributed import finish, start

pytestmark = pytest.mark.slow


def test_dvc_repro_of_a_train_stage_at_two_processes_records_one_run(tmp_path, monkeypatch):
    params = tiny_yaml()  # pix2pix: batch 2 (one image a rank), 2 + 2 steps, a loss row every step
    params["train"]["nproc_per_node"] = 2
    repo = copy_repo(tmp_path / "repo", params)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one thread per rank (torchrun's own default, made explicit)
    done = run(repo, "dvc", "repro", "train@pix2pix")
    assert "train.nproc_per_node is 2" in done.stdout + done.stderr
    summary = json.loads((repo / "data/models/pix2pix/train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4
    assert set(load_file(repo / "data/models/pix2pix/G.safetensors"))
    rows = list(csv.DictReader((repo / "reports/losses/pix2pix.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]  # rank 0's rows alone
    assert json.loads((repo / "reports/timings/train@pix2pix.json").read_text())["seconds"] > 0

    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=env(repo)["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("i2i").experiment_id])
    assert len(runs) == 1, [r.data.tags for r in runs]  # not one run per rank
    (record,) = runs
    assert record.info.status == "FINISHED" and record.data.tags["world_size"] == "2"
    history = client.get_metric_history(record.info.run_id, "g_gan")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]  # one value per step, not one per rank
    assert [float(r["g_gan"]) for r in rows] == pytest.approx([m.value for m in sorted(history, key=lambda m: m.step)])
    assert "changed" not in run(repo, "dvc", "status", "train@pix2pix").stdout


def test_a_rank_that_hangs_fails_the_job_after_the_collective_timeout(tiny_curated, tmp_path):
    """Rank 1 sleeps at its third step; rank 0 gives up on the gradient all-reduce after the
    collective timeout (5 s in this case), and torchrun stops rank 1 and exits 1."""
    def timed_out(output: str) -> bool:  # gloo's recv in the all-reduce, as RuntimeError
        return any(line.startswith("[rank0]: RuntimeError") and "Timed out" in line for line in output.splitlines())

    outputs = []
    for attempt in range(2):
        started = time.time()
        code, output = finish(start(tiny_curated, tmp_path / f"attempt{attempt}", "fail_hang"), 120)
        assert time.time() - started < 120
        assert code != 0, output[-4000:]
        outputs.append(output)
        if timed_out(output):
            break
        # once, a CI run's rank 0 failed otherwise (its output was cut off; not reproduced in 10 runs
        # since). Likely cause: with a 5 s timeout, a rank that starts late on a cold machine fails the
        # job before the hang, which says nothing of the hang; so such a run is repeated once, and
        # both outputs are shown if the second fails too
    assert timed_out(outputs[-1]), "\n---\n".join(
        "\n".join(line for line in o.splitlines() if line.startswith("[rank"))[-3000:] for o in outputs)
