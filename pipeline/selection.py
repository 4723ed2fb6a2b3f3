"""The opt-in `select@<method>` stage: the checkpoints a training kept (train.keep_every) and its
final one, ranked on the val split, never on test; then the test scores of the final and of the
val-selected checkpoint, labelled, for the report."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import torch

from pipeline.applicability import not_applicable_reason
from pipeline.config import Params, flatten
from pipeline.data.store import read_info
from pipeline.device import pick_device
from pipeline.evaluation import evaluate_translations, load_segmenters, realism_settings, scores_of
from pipeline.inference import load_model, translate_split
from pipeline.io import write_json
from pipeline.kept import kept_folders
from pipeline.models import method_spec

log = logging.getLogger(__name__)

# (record key, score name, higher is better): the first that the data set and weights allow
CRITERIA = (("labels_to_photo.per_pixel_acc", "pixel_acc", True),  # FCN-score, labels -> photo
            ("a_to_b.per_pixel_acc", "pixel_acc", True),  # FCN-score, day -> night (two labelled photo domains)
            ("photo_to_labels.per_pixel_acc", "label_acc", True),  # a model that maps photos to labels
            ("realism.to_b.fid", "fid", False),  # FID to the real val images (needs the Inception weights)
            ("realism.to_a.fid", "a_fid", False))


def _score(model_dir: Path, label: str, curated: Path, split: str, segmenters: tuple, params: Params,
           device: torch.device, work: Path) -> dict[str, Any]:
    """Translate `split` with the model in `model_dir` and evaluate it (the `evaluate` stage's metrics)."""
    loaded = load_model(model_dir, device)
    out = work / f"{label}_{split}"
    translate_split(loaded, curated, split, out, batch_size=params.evaluate.batch_size,
                    n_samples=method_spec(loaded.method).n_samples(loaded.params), seed=params.seed, device=device)
    inception = realism_settings(params, device, label, split=split)
    segmenter, segmenter_a = segmenters  # domain B's, and domain A's for two labelled photo domains
    return evaluate_translations(out, curated, segmenter, batch_size=params.evaluate.batch_size, device=device,
                                 inception=inception, split=split, segmenter_a=segmenter_a)


def criterion(record: dict[str, Any]) -> tuple[str, str, bool]:
    """The score that ranks checkpoints on this data set (see CRITERIA); ValueError where none applies."""
    flat = flatten(record)
    for key, name, higher in CRITERIA:
        if isinstance(flat.get(key), (int, float)):
            return key, name, higher
    raise ValueError("select has nothing to rank checkpoints by: it needs label maps and the segmenter "
                     "(FCN-score), or evaluate.inception_weights (FID)")


def select_checkpoint(method: str, curated: Path, model_dir: Path, *, segmenter_dir: Path, out: Path,
                      params: Params) -> dict[str, Any]:
    """Rank the final and every kept checkpoint of `model_dir` on val; score the final and the
    val-selected one on test. Writes `out`; a switched-off selection writes why, and returns it."""
    reason = None if params.select.enabled else "select.enabled is false (opt in: dvc exp run -S select.enabled=true)"
    reason = reason or not_applicable_reason(model_dir)
    if reason is None and "val" not in read_info(curated)["splits"]:
        reason = f"{curated} has no val split"
    if reason is not None:
        record = {"enabled": False, "reason": reason}
        write_json(out, record)
        log.info("%s: no checkpoint selection: %s", method, reason)
        return record
    device = pick_device(params.train.device)
    segmenters = load_segmenters(segmenter_dir, curated, device)
    candidates = [(step, f"kept (step {step})", folder) for step, folder in kept_folders(model_dir)]
    summary = read_summary(model_dir)
    candidates.append((summary.get("steps"), f"final (step {summary.get('steps')})", model_dir))
    with tempfile.TemporaryDirectory(prefix="select-") as work:
        val = [(step, label, folder, _score(folder, f"c{i}", curated, "val", segmenters, params, device, Path(work)))
               for i, (step, label, folder) in enumerate(candidates)]
        key, name, higher = criterion(val[-1][3])
        ranked = [(step, label, folder, float(flatten(rec)[key])) for step, label, folder, rec in val]
        best = (max if higher else min)(ranked, key=lambda c: c[3])
        tests = {}
        for role, (step, label, folder, _) in (("final", ranked[-1]), ("selected", best)):
            if role == "selected" and folder == ranked[-1][2]:
                tests[role] = tests["final"]
                continue
            tests[role] = scores_of(_score(folder, f"{role}", curated, "test", segmenters, params, device, Path(work)))
    record = {"enabled": True, "criterion": {"score": name, "record_key": key, "higher_is_better": higher,
                                             "split": "val"},
              "candidates": [{"checkpoint": label, "step": step, "val": value} for step, label, _, value in ranked],
              "final": {"checkpoint": ranked[-1][1], "step": ranked[-1][0], "val": ranked[-1][3],
                        "test": tests["final"]},
              "selected": {"checkpoint": best[1], "step": best[0], "val": best[3], "test": tests["selected"]},
              "note": "ranked on the val split only; the test split scores the final and the selected checkpoint"}
    write_json(out, record)
    log.info("%s: val-selected %s (val %s %.4f); final %s (val %.4f)", method, best[1], name, best[3],
             ranked[-1][1], ranked[-1][3])
    return record


def read_summary(model_dir: Path) -> dict[str, Any]:
    import json

    path = Path(model_dir) / "train_summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}
