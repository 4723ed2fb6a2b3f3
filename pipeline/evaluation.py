"""Evaluation as in the papers: FCN-scores both ways, paired image metrics, diversity, realism,
the real-photos upper bound and trivial baselines, each where the data set allows it (labels,
pairs). Writes the metrics JSON the report reads: the `train_segmenter` and `evaluate@` stages."""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.applicability import not_applicable_reason, write_not_applicable
from pipeline.config import Params, flatten
from pipeline.data.palette import CLASS_NAMES, IGNORE_ID, NUM_CLASSES, ids_to_colour
from pipeline.data.store import load_split, read_info
from pipeline.metrics.fcn_score import ConfusionAccumulator, colours_to_ids, fcn_score
from pipeline.metrics.photo_domains import SEGMENTER_A, direction_scores, identity_baselines, upper_bounds
from pipeline.metrics.image import diversity, frechet_distance, paired_image_metrics
from pipeline.metrics.perceptual import Lpips, load_lpips, lpips_diversity
from pipeline.metrics.realism import HOW_TO_GET_WEIGHTS, RealismSettings, load_inception, realism, resolve_weights
from pipeline.device import pick_device
from pipeline.io import atomic_dir, record_path, write_json, write_metrics
from pipeline.metrics.segmenter import (FEATURE_SPACE, feature_maps, features, load_segmenter, save_segmenter,
                                        train_segmenter)
from pipeline.tracking import MlflowTracker, NullTracker, Tracker, add_to_finished_run
from pipeline.translated import (ENCODED, FAKE_A, FAKE_B, IDS_A, IDS_B, TRANSLATIONS, read_translated,
                                 sample_folders)

log = logging.getLogger(__name__)

# The scores a user compares across runs, each under one name wherever it appears: the DVC metrics
# files (`dvc metrics show/diff`, `dvc exp show`) and the MLflow runs (evaluation metrics of a
# method's run, and the segmenter run's upper bound). Record key (dotted) -> score name. Short
# names keep `dvc metrics show` within a terminal; the full record keeps every other number.
SCORES: dict[str, str] = {
    "labels_to_photo.per_pixel_acc": "pixel_acc",  # FCN-score, labels -> photo (the papers' Table 1)
    "labels_to_photo.per_class_acc": "class_acc",
    "labels_to_photo.class_iou": "class_iou",
    "photo_to_labels.per_pixel_acc": "label_acc",  # generated label maps, photo -> labels (CycleGAN Table 2)
    "photo_to_labels.class_iou": "label_iou",
    "ssim": "ssim",  # outputs against the real test photos
    "psnr": "psnr",
    "l1": "l1",
    "photo_to_a.ssim": "a_ssim",  # B -> A outputs against the real A images (no labels)
    "photo_to_a.l1": "a_l1",
    f"fid.{FEATURE_SPACE}": "frechet",  # Frechet distance in the segmenter's features (not Inception FID)
    f"diversity.{FEATURE_SPACE}": "diversity",  # mean distance between samples of one input
    "diversity.lpips": "diversity_lpips",  # with LPIPS weights only (evaluate.lpips_*; protocol: lpips)
    # FID and KID (Inception, the standard protocol; with evaluate.inception_weights only), to the
    # real test images of the target domain: A -> B outputs (labels -> photo) and B -> A outputs
    "realism.to_b.fid": "fid",
    "realism.to_b.kid": "kid",
    "realism.to_a.fid": "a_fid",
    "realism.to_a.kid": "a_kid",
    # two labelled photo domains (day <-> night, pipeline.metrics.photo_domains): each direction's
    # outputs segmented by its target domain's segmenter against the source photos' labels; A -> B
    # under the labels -> photo names (the forward FCN-score), B -> A with the a_ prefix
    "a_to_b.per_pixel_acc": "pixel_acc",
    "a_to_b.per_class_acc": "class_acc",
    "a_to_b.class_iou": "class_iou",
    "b_to_a.per_pixel_acc": "a_pixel_acc",
    "b_to_a.per_class_acc": "a_class_acc",
    "b_to_a.class_iou": "a_class_iou",
    f"fid_a.{FEATURE_SPACE}": "a_frechet",  # B -> A outputs against the real A photos
}  # in the record only: per-class tables, BicycleGAN's all-samples and encoded rows, pixel diversity


def scores_of(record: dict[str, Any]) -> dict[str, float]:
    """The SCORES found in an evaluation record, under their score names."""
    flat = flatten(record)
    return {name: float(flat[key]) for key, name in SCORES.items()
            if isinstance(flat.get(key), (int, float)) and not isinstance(flat.get(key), bool)}


def label_score(generated_labels: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """photo -> labels: generated colour label maps snapped to the palette, compared with the truth."""
    acc = ConfusionAccumulator(NUM_CLASSES)
    acc.update(np.asarray(labels), colours_to_ids(generated_labels))
    return acc.scores(CLASS_NAMES).as_dict()


def baselines(curated: Path, segmenter: nn.Module, *, batch_size: int, device: torch.device) -> dict[str, Any]:
    """Trivial rows. labels -> photo: the label map itself (its palette colours) handed to the
    segmenter as the photo (no learning at all), and the labels painted with each class's mean
    and median train-photo colour (one colour per class fitted; they keep the label's exact
    boundaries, so a segmenter that reads colour and layout alone scores them high); the median
    painting's SSIM, PSNR and L1 too, the row a method's L1 must beat. photo -> labels: each pixel
    given the class most frequent there in the train labels."""
    train, test = load_split(curated, "train"), load_split(curated, "test")
    # per class, channel and value: one histogram gives the exact mean and median colours
    value_counts = np.zeros(256 * 3 * 256, dtype=np.int64)
    per_position = np.zeros((NUM_CLASSES + 1, *train.labels.shape[1:]), dtype=np.int64)
    for start in range(0, len(train.labels), 256):
        ids = np.asarray(train.labels[start:start + 256]).astype(np.int64)
        photos = np.asarray(train.photos[start:start + 256])
        slots = (ids[..., None] * 3 + np.arange(3)) * 256 + photos  # (n, H, W, 3)
        value_counts += np.bincount(slots.ravel(), minlength=value_counts.size)
        clipped = np.where(ids == IGNORE_ID, NUM_CLASSES, ids)
        for c in range(NUM_CLASSES + 1):
            per_position[c] += (clipped == c).sum(0)
    histogram = value_counts.reshape(256, 3, 256)  # (class, channel, value)
    cumulative = histogram.cumsum(-1)
    counts = np.maximum(cumulative[..., -1], 1)  # (class, channel): pixels of the class
    mean_colour = ((histogram @ np.arange(256)) / counts).round().astype(np.uint8)  # (256, 3)
    median_colour = (cumulative >= (cumulative[..., -1:] + 1) // 2).argmax(-1).astype(np.uint8)  # (256, 3)
    test_labels = np.asarray(test.labels)
    painted, painted_median = mean_colour[test_labels], median_colour[test_labels]
    majority = per_position[:NUM_CLASSES].argmax(0).astype(np.uint8)
    prior = np.broadcast_to(majority, test.labels.shape)
    return {
        "labels_to_photo": fcn_score(segmenter, painted, test.labels, batch_size=batch_size, device=device),
        "labels_to_photo_median": fcn_score(segmenter, painted_median, test.labels, batch_size=batch_size,
                                            device=device),
        "labels_to_photo_label_colours": fcn_score(segmenter, ids_to_colour(test_labels), test.labels,
                                                   batch_size=batch_size, device=device),
        "photo_to_labels": label_score(ids_to_colour(np.ascontiguousarray(prior)), test.labels),
        "image_median_painting": paired_image_metrics(np.asarray(test.photos), painted_median),
        "name_labels_to_photo": "per-class mean colour painting",
        "name_labels_to_photo_median": "per-class median colour painting",
        "name_labels_to_photo_label_colours": "the label map's own colours as the photo",
        "name_photo_to_labels": "per-pixel majority class",
        "name_image_median_painting": "per-class median colour painting",
    }


def evaluate_translations(translated: Path, curated: Path, segmenter: nn.Module | None, *, batch_size: int,
                          device: torch.device, lpips: Lpips | None = None, lpips_pairs: str = "consecutive",
                          inception: RealismSettings | None = None, split: str = "test",
                          segmenter_a: nn.Module | None = None) -> dict[str, Any]:
    """Every metric that applies to one method's translations of a split (the test split; `select`
    scores val), LPIPS diversity and Inception FID/KID too when their weights are stored locally;
    `not_applicable` names the others and why.

    FCN-scores need label maps and the segmenter (None for a data set without labels); SSIM, PSNR
    and L1 need pairs; the segmenter-feature Fréchet distance needs the segmenter's feature space;
    FID and KID (`realism`) need the Inception weights, and apply to every direction whose target
    domain has real test images (label maps count, drawn in the palette's colours). Two labelled
    photo domains (`photo_labels`) get an FCN-score per direction (`a_to_b`, `b_to_a`), each by its
    target domain's segmenter: `segmenter` (domain B's) and `segmenter_a`.
    """
    info = read_info(curated)
    test = load_split(curated, split)
    ids_a = _listed(translated / IDS_A, test.ids_a or [])
    ids_file_b = translated / IDS_B
    ids_b = _listed(ids_file_b if ids_file_b.is_file() else translated / IDS_A, test.ids)
    real_photos, labels, paired = np.asarray(test.photos), test.labels, bool(info["paired"])
    labels = None if labels is None else np.asarray(labels)
    scored = labels is not None and segmenter is not None
    metrics: dict[str, Any] = {}
    fake_b = fake_a = None
    if (translated / FAKE_B).is_dir():
        fake_b = read_translated(translated / FAKE_B, ids_a)
        if scored:
            metrics["labels_to_photo"] = fcn_score(segmenter, fake_b, labels, batch_size=batch_size, device=device)
        if paired:
            metrics.update(paired_image_metrics(real_photos, fake_b))
        if segmenter is not None and len(real_photos) >= 2 and len(fake_b) >= 2:
            real_feats = features(segmenter, real_photos, batch_size, device)
            fake_feats = features(segmenter, fake_b, batch_size, device)
            metrics["fid"] = {FEATURE_SPACE: frechet_distance(real_feats, fake_feats)}
        if inception is not None:
            metrics.setdefault("realism", {})["to_b"] = realism(inception, real_photos, fake_b, batch_size=batch_size)
    if (translated / FAKE_A).is_dir():
        fake_a = read_translated(translated / FAKE_A, ids_b)
        if labels is not None:
            metrics["photo_to_labels"] = label_score(fake_a, labels)
        elif paired and test.images_a is not None:
            metrics["photo_to_a"] = paired_image_metrics(np.asarray(test.images_a), fake_a)
        real_a = ids_to_colour(labels) if labels is not None else test.images_a
        if inception is not None and real_a is not None:
            metrics.setdefault("realism", {})["to_a"] = realism(inception, np.asarray(real_a), fake_a,
                                                                batch_size=batch_size)
    sample_dirs = sample_folders(translated)
    if len(sample_dirs) >= 2:
        samples = np.stack([read_translated(d, ids_a) for d in sample_dirs])  # (K, N, H, W, 3)
        maps = (lambda x: feature_maps(segmenter, x, batch_size, device)) if segmenter is not None else None
        metrics["diversity"] = diversity(samples, maps)
        if lpips is not None:  # the score beside the substitutes; its pairs, spread and protocol in `lpips`
            metrics["lpips"] = lpips_diversity(samples, lpips, pairs=lpips_pairs, batch_size=batch_size)
            metrics["diversity"]["lpips"] = metrics["lpips"]["mean"]
        if scored:  # every sample is a labels -> photo output: the FCN-score over all of them, too
            metrics["labels_to_photo_samples"] = fcn_score(
                segmenter, samples.reshape(-1, *samples.shape[2:]), np.tile(labels, (len(samples), 1, 1)),
                batch_size=batch_size, device=device)
    if test.labels_b is not None and segmenter is not None:  # two labelled photo domains
        metrics.update(direction_scores(test, fake_b, fake_a, segmenter, segmenter_a, batch_size=batch_size,
                                        device=device))
    if (translated / ENCODED).is_dir() and paired:
        encoded = read_translated(translated / ENCODED, ids_a)
        metrics["encoded"] = paired_image_metrics(real_photos, encoded)
    if inception is None:  # applies, but the user gave no weights: the report says how to get them
        metrics["realism_skipped"] = f"no Inception weights: {HOW_TO_GET_WEIGHTS}"
    if not any((translated / kind).is_dir() for kind in TRANSLATIONS):
        raise ValueError(f"{translated}: holds no translations ({', '.join(k + '/' for k in TRANSLATIONS)})")
    skipped = not_applicable_metrics(info, segmenter is not None)
    if skipped:
        metrics["not_applicable"] = skipped
    metrics["dataset"] = info["dataset"]  # the report leaves out rows of another data set's run
    return metrics


def not_applicable_metrics(info: dict[str, Any], has_segmenter: bool) -> dict[str, str]:
    """The papers' metrics that do not apply to a curated data set, each with the reason."""
    reasons = {}
    name = info.get("dataset", "this data set")
    if not (info["has_labels"] or info["photo_labels"]):
        reasons["fcn_score"] = f"{name} has no label maps"
    elif not has_segmenter:
        reasons["fcn_score"] = "no segmenter"
    if not info["paired"]:
        reasons["ssim_psnr_l1"] = f"{name} is unpaired: no ground truth for an output"
    if not has_segmenter:
        reasons["fid"] = "no feature network: the segmenter needs label maps to be trained"
    return reasons


def _listed(path: Path, expected: list[str]) -> list[str]:
    """The ids a translation folder lists, which must be the test split's, in order."""
    ids = path.read_text().split() if path.is_file() else []
    if ids != expected:
        raise ValueError(f"{path} does not list the curated split's images in order; translate again")
    return ids


# --------------------------------------------------------------------------- the two stages


def train_fcn_segmenter(curated: Path, out_dir: Path, *, real_metrics: Path, baseline_metrics: Path,
                        params: Params) -> None:
    """The `train_segmenter` stage: train (or load, with segmenter.weights) the segmenter behind the
    FCN-score, score the real test photos (the upper bound) and the trivial baselines. A data set
    without label maps gets the not-applicable record in every output instead. Two labelled photo
    domains (day and night) get a segmenter per domain: domain B's in `out_dir`, as for every store,
    and domain A's in `out_dir/domain_a`; their upper bounds and identity baselines per direction."""
    seg = params.segmenter
    started = time.perf_counter()
    device = pick_device(params.train.device)
    train, test = load_split(curated, "train"), load_split(curated, "test")
    two_domains = train.labels_b is not None
    if train.labels is None and not two_domains:  # not an error: the FCN-score and its rows just do not apply
        reason = f"{curated} has no label maps: the FCN-score and its baselines do not apply"
        with atomic_dir(out_dir) as tmp:
            record = write_not_applicable(tmp, reason)
        write_metrics(real_metrics, {}, record)
        write_json(baseline_metrics, record)
        log.info("%s", reason)
        return
    weights = Path(seg.weights) if seg.weights else None
    net, tracker = _fit_segmenter(train.photos, train.labels_b if two_domains else train.labels, weights, params,
                                  device, run_name="segmenter")
    batch_size = params.evaluate.batch_size
    if two_domains:
        net_a, tracker_a = _fit_segmenter(train.images_a, train.labels_a, weights and weights / SEGMENTER_A, params,
                                          device, run_name="segmenter_a")
        real = upper_bounds(test, net, net_a, batch_size=batch_size, device=device)
        base = identity_baselines(test, net, net_a, batch_size=batch_size, device=device)
    else:
        real = {"labels_to_photo": fcn_score(net, test.photos, test.labels, batch_size=batch_size, device=device)}
        base = baselines(curated, net, batch_size=batch_size, device=device)
    seconds = time.perf_counter() - started
    meta = {"class_names": list(CLASS_NAMES), "trained_on": str(curated), "segmenter": dataclasses.asdict(seg),
            "seed": params.seed}
    with atomic_dir(out_dir) as tmp:
        save_segmenter(net, tmp, meta)
        if two_domains:  # inside the same output, so the evaluate stages depend on both
            save_segmenter(net_a, tmp / SEGMENTER_A, {**meta, "photos": "domain A"})
    record = {**real, "mlflow_run_id": tracker.run_id, "seconds": seconds, "device": str(device)}
    scores = scores_of(record)  # the methods' score names: the upper bound lines up with their columns
    tracker.log_metrics(scores, step=seg.steps)
    tracker.log_artifact(out_dir / "segmenter.safetensors", "model")
    tracker.finish()
    if two_domains:
        tracker_a.log_artifact(out_dir / SEGMENTER_A / "segmenter.safetensors", "model")
        tracker_a.finish()
    write_metrics(real_metrics, scores, record)
    write_json(baseline_metrics, base)  # reference rows, not a DVC metric: they would widen every table
    for direction, found in real.items():
        log.info("segmenter on real test photos (%s): per-pixel %.3f, per-class %.3f, class IoU %.3f",
                 direction, found["per_pixel_acc"], found["per_class_acc"], found["class_iou"])
    log.info("segmenter stage took %.0f s", seconds)


def _fit_segmenter(photos: np.ndarray, labels: np.ndarray, weights: Path | None, params: Params,
                   device: torch.device, *, run_name: str) -> tuple[nn.Module, Tracker]:
    """A segmenter in eval mode: the user's (`weights`, a folder of save_segmenter's files; for two
    photo domains domain A's in its domain_a/) or one trained on (photos, labels) in an MLflow run of its own (`run_name`; the tracker is returned
    open, for the caller's scores)."""
    seg = params.segmenter
    tracker: Tracker = NullTracker()
    if weights is not None:
        net, _ = load_segmenter(weights)
        net.to(device)
        log.info("using the user's segmenter from %s", weights)
    else:
        tracker = MlflowTracker(params.train.mlflow_experiment, run_name=run_name,
                                tags={"method": run_name, "dataset": params.data.source})
        tracker.log_params({"seed": params.seed, "image_size": params.image_size,
                            **{f"segmenter.{k}": v for k, v in dataclasses.asdict(seg).items()}})
        net, _ = train_segmenter(photos, labels, num_classes=NUM_CLASSES, arch=seg.arch, width=seg.width,
                                 steps=seg.steps, batch_size=seg.batch_size, lr=seg.lr, seed=params.seed,
                                 device=device, tracker=tracker, log_every=50)
    net.eval()
    return net, tracker


def evaluate_method(method: str, curated: Path, translated: Path, *, segmenter_dir: Path, model_dir: Path, out: Path,
                    params: Params) -> dict[str, Any]:
    """The `evaluate@<method>` stage: every metric of one method's translations into `out`, added to
    the training's MLflow run. A method that did not apply to the data set gets
    `{"applicable": false, "reason": ...}`."""
    started = time.perf_counter()
    reason = not_applicable_reason(translated) or not_applicable_reason(model_dir)
    if reason is not None:  # the data set's name lets the report leave out another data set's record
        record = {"applicable": False, "reason": reason, "dataset": read_info(curated)["dataset"]}
        write_metrics(out, {}, record)
        log.warning("%s: not evaluated: %s", method, reason)
        return record
    device = pick_device(params.train.device)
    net, net_a = load_segmenters(segmenter_dir, curated, device)
    inception = realism_settings(params, device, checkpoint_label(model_dir))
    metrics = evaluate_translations(translated, curated, net, batch_size=params.evaluate.batch_size,
                                    device=device, lpips=lpips_model(params), lpips_pairs=params.evaluate.lpips_pairs,
                                    inception=inception, segmenter_a=net_a)
    run_id = json.loads((model_dir / "config.json").read_text()).get("mlflow_run_id")
    metrics.update(mlflow_run_id=run_id, seconds=time.perf_counter() - started)
    scores = scores_of(metrics)
    write_metrics(out, scores, metrics)
    if run_id:  # the scores join the training's run (left finished, its times kept), so the UI compares both;
        # each FID/KID's protocol goes with it as a tag (and whole in the record artifact)
        add_to_finished_run(run_id, scores, [(out, "metrics"), (record_path(out), "metrics/record")],
                            tags=protocol_tags(metrics))
    for direction in ("labels_to_photo", "a_to_b", "b_to_a"):
        if direction in metrics:
            found = metrics[direction]
            log.info("%s: %s per-pixel %s, class IoU %s", method, direction, found["per_pixel_acc"], found["class_iou"])
    return metrics


def load_segmenters(segmenter_dir: Path, curated: Path,
                    device: torch.device) -> tuple[nn.Module | None, nn.Module | None]:
    """The segmenters `train_segmenter` wrote, in eval mode on `device`: (domain B's, domain A's),
    domain A's only for two labelled photo domains; (None, None) for a data set without labels."""
    if not_applicable_reason(segmenter_dir) is not None:
        return None, None
    folders = (segmenter_dir, segmenter_dir / SEGMENTER_A if read_info(curated)["photo_labels"] else None)
    net, net_a = (None if f is None else load_segmenter(f)[0].to(device).eval() for f in folders)
    return net, net_a


def checkpoint_label(model_dir: Path) -> str:
    """Which weights a model folder holds, for the protocol: the final step of its training (never
    a checkpoint picked on the test split), or an imported model."""
    summary = model_dir / "train_summary.json"
    if summary.is_file():
        return f"final (step {json.loads(summary.read_text()).get('steps')}, {model_dir.as_posix()})"
    return f"imported model ({model_dir.as_posix()})"


def realism_settings(params: Params, device: torch.device, checkpoint: str,
                     split: str = "test") -> RealismSettings | None:
    """FID/KID settings from `evaluate`, the Inception built from checked weights; None without weights."""
    ev = params.evaluate
    resolved = resolve_weights(ev.inception_weights, ev.inception_sha256)
    if resolved is None:
        log.info("no FID/KID: %s", HOW_TO_GET_WEIGHTS)
        return None
    return RealismSettings(load_inception(*resolved, device), kid_subset_size=ev.kid_subset_size,
                           kid_subsets=ev.kid_subsets, seed=params.seed, checkpoint=checkpoint, split=split)


def protocol_tags(record: dict[str, Any]) -> dict[str, str]:
    """`protocol.<score>`: the protocol of every FID/KID and LPIPS score in an evaluation record."""
    from pipeline.metrics.realism import protocol_line

    tags = {}
    for direction, prefix in (("to_b", ""), ("to_a", "a_")):
        found = (record.get("realism") or {}).get(direction)
        if found:
            tags[f"protocol.{prefix}fid_kid"] = protocol_line(found["protocol"])
    lpips = (record.get("lpips") or {}).get("protocol")
    if lpips:
        weights = ", ".join(f"{name} (SHA-256 {sha})" for name, sha in lpips["weights"].items())
        tags["protocol.diversity_lpips"] = (f"{lpips['implementation']}, LPIPS v{lpips['version']}, "
                                            f"{lpips['backbone']}, weights {weights}, {lpips['pairs']} pairs")
    return tags


def lpips_model(params: Params) -> Lpips | None:
    """LPIPS from `evaluate`'s local weight files; None where none is given (the substitutes stay)."""
    ev = params.evaluate
    if not (ev.lpips_weights or ev.lpips_backbone_weights):
        return None
    path = lambda value: Path(value) if value else None  # noqa: E731
    return load_lpips(ev.lpips_version, ev.lpips_net, backbone_weights=path(ev.lpips_backbone_weights),
                      linear_weights=path(ev.lpips_linear_weights), whole_weights=path(ev.lpips_weights))
