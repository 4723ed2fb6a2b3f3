"""DVC stages `train_segmenter` (the FCN-score's network, the real-photos upper bound and the
trivial baselines) and `evaluate@<method>` (every metric of one method's test translations)."""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from stages.common import ParamsOption, domain_errors, read_params

log = logging.getLogger("stages.evaluate")


def train_segmenter(
    data_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Curated data set.")],
    out_dir: Annotated[Path, typer.Option(help="The trained segmenter (safetensors + config.json).")],
    real_metrics: Annotated[Path, typer.Option(help="JSON: FCN-score of the real test photos (upper bound).")],
    baseline_metrics: Annotated[Path, typer.Option(help="JSON: trivial baselines, both directions.")],
    params: Path = ParamsOption,
) -> None:
    """Train (or load, with segmenter.weights) the segmentation network behind the FCN-score."""
    import torch

    from pipeline.applicability import write_not_applicable
    from pipeline.data.palette import CLASS_NAMES, NUM_CLASSES
    from pipeline.data.store import load_split
    from pipeline.evaluation import baselines, fcn_score
    from pipeline.io import atomic_dir, write_metrics
    from pipeline.metrics.segmenter import load_segmenter, save_segmenter, train_segmenter as fit
    from pipeline.tracking import MlflowTracker, NullTracker
    from stages.train import pick_device

    cfg = read_params(params)
    seg = cfg.segmenter
    started = time.perf_counter()
    with domain_errors(ValueError, FileNotFoundError):
        device = pick_device(cfg.train.device)
        train, test = load_split(data_dir, "train"), load_split(data_dir, "test")
        if train.labels is None:  # not an error: the FCN-score and its rows just do not apply
            reason = f"{data_dir} has no label maps: the FCN-score and its baselines do not apply"
            with atomic_dir(out_dir) as tmp:
                record = write_not_applicable(tmp, reason)
            write_metrics(real_metrics, record)
            write_metrics(baseline_metrics, record)
            log.info("%s", reason)
            return
        tracker = NullTracker()
        if seg.weights:
            net, _ = load_segmenter(Path(seg.weights))
            net.to(device)
            log.info("using the user's segmenter from %s", seg.weights)
        else:
            tracker = MlflowTracker(cfg.train.mlflow_experiment, run_name="segmenter",
                                    tags={"method": "segmenter", "dataset": cfg.data.source})
            tracker.log_params({"seed": cfg.seed, "image_size": cfg.image_size,
                                **{f"segmenter.{k}": v for k, v in dataclasses.asdict(seg).items()}})
            net, _ = fit(train.photos, train.labels, num_classes=NUM_CLASSES, arch=seg.arch, width=seg.width,
                         steps=seg.steps, batch_size=seg.batch_size, lr=seg.lr, seed=cfg.seed, device=device,
                         tracker=tracker, log_every=50)
        net.eval()
        real = fcn_score(net, test.photos, test.labels, batch_size=cfg.evaluate.batch_size, device=device)
        base = baselines(data_dir, net, batch_size=cfg.evaluate.batch_size, device=device)
    seconds = time.perf_counter() - started
    with atomic_dir(out_dir) as tmp:
        save_segmenter(net, tmp, {"class_names": list(CLASS_NAMES), "trained_on": str(data_dir),
                                  "segmenter": dataclasses.asdict(seg), "seed": cfg.seed})
    tracker.log_metrics({f"real_photos.{k}": v for k, v in real.items() if k != "per_class_iou"}, step=seg.steps)
    tracker.log_artifact(out_dir / "segmenter.safetensors", "model")
    tracker.finish()
    write_metrics(real_metrics, {"labels_to_photo": real, "mlflow_run_id": tracker.run_id, "seconds": seconds,
                              "device": str(device)})
    write_metrics(baseline_metrics, base)
    log.info("segmenter on real test photos: per-pixel %.3f, per-class %.3f, class IoU %.3f (%.0f s)",
             real["per_pixel_acc"], real["per_class_acc"], real["class_iou"], seconds)


def evaluate(
    method: Annotated[str, typer.Argument(help="pix2pix | cyclegan | bicyclegan")],
    data_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Curated data set.")],
    translated_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Output of translate.")],
    segmenter_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Output of train_segmenter.")],
    model_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Output of train (its MLflow run).")],
    out: Annotated[Path, typer.Option(help="Metrics JSON (DVC metrics).")],
    params: Path = ParamsOption,
) -> None:
    """FCN-scores, image metrics, diversity and realism of one method; added to its MLflow run.
    A method that did not apply to the data set gets `{"applicable": false, "reason": ...}`."""
    from pipeline.applicability import not_applicable_reason
    from pipeline.config import flatten
    from pipeline.data.store import read_info
    from pipeline.evaluation import evaluate_translations
    from pipeline.io import details_path, write_metrics
    from pipeline.metrics.segmenter import load_segmenter
    from pipeline.tracking import MlflowTracker
    from stages.train import pick_device

    cfg = read_params(params)
    started = time.perf_counter()
    with domain_errors(ValueError, FileNotFoundError, RuntimeError):
        reason = not_applicable_reason(translated_dir) or not_applicable_reason(model_dir)
        if reason is not None:  # the data set's name lets the report leave out another data set's record
            write_metrics(out, {"applicable": False, "reason": reason, "dataset": read_info(data_dir)["dataset"]})
            log.warning("%s: not evaluated: %s", method, reason)
            return
        device = pick_device(cfg.train.device)
        net = None
        if not_applicable_reason(segmenter_dir) is None:  # no segmenter for a data set without labels
            net, _ = load_segmenter(segmenter_dir)
            net.to(device).eval()
        lpips = Path(cfg.evaluate.lpips_weights) if cfg.evaluate.lpips_weights else None
        metrics = evaluate_translations(translated_dir, data_dir, net, batch_size=cfg.evaluate.batch_size,
                                        device=device, lpips_weights=lpips)
        model_config = json.loads((model_dir / "config.json").read_text())
    run_id = model_config.get("mlflow_run_id")
    metrics.update(mlflow_run_id=run_id, seconds=time.perf_counter() - started)
    write_metrics(out, metrics)
    if run_id:  # the evaluation joins the training's run, so the MLflow UI compares both
        tracker = MlflowTracker(cfg.train.mlflow_experiment, run_name=method, run_id=run_id)
        scalars = {k: v for k, v in flatten(metrics).items()
                   if isinstance(v, (int, float)) and v is not None and ".per_class_iou." not in k and k != "seconds"}
        tracker.log_metrics(scalars, step=0)
        tracker.log_artifact(out, "metrics")
        tracker.log_artifact(details_path(out), "metrics/per_class")
        tracker.finish()
    l2p = metrics.get("labels_to_photo", {})
    log.info("%s: labels->photo per-pixel %s, class IoU %s", method, l2p.get("per_pixel_acc"), l2p.get("class_iou"))
