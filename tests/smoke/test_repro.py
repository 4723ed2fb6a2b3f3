"""End to end: `dvc repro` in a temporary copy of the repository with tiny params; a killed
training resumes; `dvc exp run -S lambda_cyc=5` re-runs only the CycleGAN branch."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def tiny_yaml(n_images: int = 24, steps: int = 2) -> dict:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["image_size"] = 32
    p["data"]["n_images"] = n_images
    p["data"]["workers"] = 1
    p["train"].update(load_size=36, log_every=1, sample_every=2, checkpoint_every=2, device="cpu")
    for method, gen in (("pix2pix", "unet_32"), ("cyclegan", "resnet_6blocks"), ("bicyclegan", "unet_32")):
        p[method].update(iters=steps, iters_decay=steps, ngf=4, ndf=4, generator=gen)
    p["bicyclegan"].update(nef=4, n_layers_D=2, batch_size=2)
    p["pix2pix"]["batch_size"] = 2
    p["bicyclegan"]["n_samples"] = 2
    p["segmenter"].update(steps=4, width=8, batch_size=4)
    return p


def copy_repo(dest: Path, params: dict) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if rel.startswith(("data/", "reports/")) or not (ROOT / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def env(repo: Path) -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e['PATH']}"
    e["MLFLOW_TRACKING_URI"] = f"sqlite:///{repo / 'mlflow.db'}"
    e.pop("DVC_ROOT", None)
    return e


def run(repo: Path, *cmd: str, timeout: int = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=repo, env=env(repo), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_dvc_repro_runs_every_stage_and_exp_run_touches_only_cyclegan(tmp_path):
    repo = copy_repo(tmp_path / "repo", tiny_yaml())
    run(repo, "dvc", "repro")
    assert (repo / "reports/figures/contact_sheet.png").stat().st_size > 0
    data = json.loads((repo / "reports/metrics/data.json").read_text())
    assert sum(data["images"].values()) == 24
    for method, nets in (("pix2pix", {"G"}), ("cyclegan", {"G_A", "G_B"}), ("bicyclegan", {"G", "E"})):
        model_dir = repo / "data/models" / method
        assert {p.stem for p in model_dir.glob("*.safetensors")} == nets
        config = json.loads((model_dir / "config.json").read_text())
        assert config["method"] == method and config["mlflow_run_id"]
        assert (repo / "reports/losses" / f"{method}.csv").read_text().startswith("step,")
    real = json.loads((repo / "reports/metrics/real_photos.json").read_text())
    assert 0 <= real["pixel_acc"] <= 1  # the upper bound, under the methods' score names
    baseline = json.loads((repo / "reports/metrics/baseline.json").read_text())
    assert {"labels_to_photo", "photo_to_labels"} <= set(baseline)
    expected = {"pix2pix": {"labels_to_photo", "ssim", "psnr", "l1", "fid"},
                "cyclegan": {"labels_to_photo", "photo_to_labels", "ssim", "psnr", "fid"},
                "bicyclegan": {"labels_to_photo", "diversity", "encoded", "fid"}}
    for method, keys in expected.items():
        # the whole record (per-class tables, run id, time) sits beside the scores, out of `dvc metrics show`
        record = json.loads((repo / "reports/metrics/per_class" / f"{method}.json").read_text())
        assert keys <= set(record), f"{method}: {sorted(record)}"
        assert {"per_pixel_acc", "per_class_acc", "class_iou"} <= set(record["labels_to_photo"])
        assert set(record["labels_to_photo"]["per_class_iou"]) >= {"road", "car"}
        scores = json.loads((repo / "reports/metrics" / f"{method}.json").read_text())
        assert {"pixel_acc", "class_acc", "class_iou", "frechet"} <= set(scores)
        assert all(type(v) is float for v in scores.values()), scores  # scores only
    shown = run(repo, "dvc", "metrics", "show").stdout
    assert "pixel_acc" in shown and "per_class_iou" not in shown and "mlflow_run_id" not in shown
    assert max(map(len, shown.splitlines())) <= 160, shown  # fits a terminal
    status = run(repo, "dvc", "status").stdout
    assert "changed" not in status

    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=env(repo)["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("i2i").experiment_id])
    assert {r.data.tags["method"] for r in runs} == {"pix2pix", "cyclegan", "bicyclegan", "segmenter"}
    trained = [r for r in runs if r.data.tags["method"] != "segmenter"]
    assert all(r.info.status == "FINISHED" and "g_gan" in "".join(r.data.metrics) for r in trained)
    assert all("pixel_acc" in r.data.metrics for r in trained)  # evaluation joined the run

    run(repo, "git", "add", "-A")
    run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "repro")
    out = run(repo, "dvc", "exp", "run", "-S", "lambda_cyc=5").stdout
    assert "train@cyclegan" in out and "evaluate@cyclegan" in out
    for stage in ("train@pix2pix", "train@bicyclegan", "curate", "prepare", "train_segmenter", "evaluate@pix2pix"):
        assert f"Running stage '{stage}'" not in out
    # dvc passes the experiment's name to the stage ($DVC_EXP_NAME): it names and tags the new run
    before = {r.info.run_id for r in runs}
    new = [r for r in client.search_runs([runs[0].info.experiment_id]) if r.info.run_id not in before]
    assert len(new) == 1 and new[0].data.tags["dvc_experiment"] not in ("", "workspace")
    assert new[0].info.run_name == f"cyclegan {new[0].data.tags['dvc_experiment']}"
    assert "lambda_cyc=5.0" in new[0].data.tags["changed_params"].split(", ")
    assert "pixel_acc" in new[0].data.metrics


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    params = tiny_yaml(steps=15)
    params["train"].update(checkpoint_every=3, sample_every=100)
    repo = copy_repo(tmp_path / "repo", params)
    run(repo, "dvc", "repro", "curate")
    cmd = ["python", "-m", "stages", "train", "pix2pix", "--data-dir", "data/curated", "--out-dir", "data/models/p",
           "--state-dir", "data/checkpoints/p", "--losses-csv", "reports/losses/p.csv", "--samples-dir",
           "reports/samples/p", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=repo, env=env(repo), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = repo / "data/checkpoints/p/last.pt"
    deadline = time.time() + 300
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists() and not (repo / "data/models/p").exists(), "the run finished before it was killed"
    run(repo, *cmd)  # resumes
    unbroken = [*cmd]
    unbroken[unbroken.index("data/models/p")] = "data/models/q"
    unbroken[unbroken.index("data/checkpoints/p")] = "data/checkpoints/q"
    run(repo, *unbroken)
    resumed, fresh = load_file(repo / "data/models/p/G.safetensors"), load_file(repo / "data/models/q/G.safetensors")
    assert all((resumed[k] == fresh[k]).all() for k in fresh)
    summary = json.loads((repo / "data/models/p/train_summary.json").read_text())
    assert summary["resumed_from"] > 0 and summary["steps"] == 30
