"""The report's tables: metric tables in the papers' layout, each a pure function of the loaded
metrics returning a DataFrame of display strings, so tests check tables without files;
`markdown_table` renders one. pipeline.report_build writes reports/report.md from them.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.config import Params, flatten
from pipeline.data.palette import CLASS_NAMES
from pipeline.io import read_metrics
from pipeline.models import METHODS

log = logging.getLogger(__name__)

METHOD_NAMES = {name: spec.title for name, spec in METHODS.items()}
DIRECTIONS = {"labels_to_photo": "labels → photo", "photo_to_labels": "photo → labels"}
FCN_COLUMNS = (("per_pixel_acc", "Per-pixel acc."), ("per_class_acc", "Per-class acc."), ("class_iou", "Class IOU"))
UPPER_BOUND = "Real photos (upper bound)"
REAL, BASELINE, DATA = "real_photos", "baseline", "data"
# Feature spaces of the distances, named for what they are: ours are the segmenter's features,
# not Inception's (FID) nor AlexNet's (LPIPS), and must not borrow those names
FEATURE_NAMES = {"pixel_l1": "pixel L1", "segmenter_features": "segmenter features", "lpips": "LPIPS",
                 "inception": "Inception features"}
DASH = "–"
NOT_APPLICABLE_NAMES = {"fcn_score": "FCN-score", "ssim_psnr_l1": "SSIM, PSNR and L1",
                        "fid": "Fréchet distance"}


def fmt(value: Any, digits: int = 3) -> str:
    """A number to `digits` decimals; None, NaN and missing values to a dash."""
    if value is None:
        return DASH
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return DASH if math.isnan(value) else f"{value:.{digits}f}"


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table. (DataFrame.to_markdown needs `tabulate`, which the project
    does not declare: it is at most a transitive dependency of dvc, so we render the few lines here.)"""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = [cell(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def load_metrics(metrics_dir: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The metrics files by name (methods, real_photos, baseline, data) and a note for each missing one."""
    metrics, notes = {}, []
    for name in (*METHODS, REAL, BASELINE, DATA):
        path = Path(metrics_dir) / f"{name}.json"
        if not path.is_file():
            notes.append(f"`{path}` is missing: its rows are left out.")
            continue
        try:
            value = read_metrics(path)  # with its per-class tables
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            notes.append(f"`{path}` is not valid JSON ({exc}): its rows are left out.")
            continue
        if isinstance(value, dict):
            metrics[name] = value
        else:
            notes.append(f"`{path}` does not hold a JSON object: its rows are left out.")
    return metrics, notes


def _fcn_rows(metrics: dict[str, dict[str, Any]], direction: str) -> list[tuple[str, dict[str, Any]]]:
    """(row label, scores) in the papers' order: trivial baselines, methods, real photos last.

    baseline.json may hold several baselines per direction: `<direction>` and `<direction>_<variant>`,
    each named by `name_<key>`. A method that samples (BicycleGAN) gets a second row for the score
    over all its random-z samples (`<direction>_samples`), since one fixed z is one style of many.
    """
    rows = []
    baseline = metrics.get(BASELINE, {})
    keys = [k for k in baseline if (k == direction or k.startswith(f"{direction}_")) and isinstance(baseline[k], dict)]
    for key in sorted(keys, key=lambda k: baseline[k].get("per_pixel_acc") or 0.0):  # weakest first
        rows.append((f"Trivial baseline ({baseline.get(f'name_{key}', 'unnamed')})", baseline[key]))
    for m in METHODS:
        scores = metrics.get(m, {})
        sampled = scores.get(f"{direction}_samples")
        if isinstance(scores.get(direction), dict):
            rows.append((METHOD_NAMES[m] + (" (one fixed z)" if isinstance(sampled, dict) else ""), scores[direction]))
        if isinstance(sampled, dict):
            rows.append((f"{METHOD_NAMES[m]} (all random-z samples)", sampled))
    if isinstance(metrics.get(REAL, {}).get(direction), dict):
        rows.append((UPPER_BOUND, metrics[REAL][direction]))
    return rows


def fcn_table(metrics: dict[str, dict[str, Any]], direction: str) -> pd.DataFrame:
    """`| Method | Per-pixel acc. | Per-class acc. | Class IOU |` (CycleGAN paper, Tables 1 and 2)."""
    records = [{"Method": label, **{header: fmt(scores.get(key)) for key, header in FCN_COLUMNS}}
               for label, scores in _fcn_rows(metrics, direction)]
    return pd.DataFrame(records, columns=["Method", *(h for _, h in FCN_COLUMNS)])


def labels_to_photo_table(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    return fcn_table(metrics, "labels_to_photo")


def of_upper_bound(table: pd.DataFrame, metrics: dict[str, dict[str, Any]],
                   direction: str = "labels_to_photo") -> pd.DataFrame:
    """`table` (fcn_table's) with each row's per-pixel accuracy as a share of the real photos'."""
    bound = (metrics.get(REAL, {}).get(direction) or {}).get("per_pixel_acc")
    if not isinstance(bound, (int, float)) or not bound:
        return table
    scores = dict(_fcn_rows(metrics, direction))
    shares = [fmt(scores[label].get("per_pixel_acc") / bound, 2)
              if isinstance(scores.get(label, {}).get("per_pixel_acc"), (int, float)) else DASH
              for label in table["Method"]]
    return table.assign(**{"Of the upper bound": shares})


def photo_to_labels_table(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    return fcn_table(metrics, "photo_to_labels")


def per_class_iou_table(metrics: dict[str, dict[str, Any]], direction: str = "labels_to_photo") -> pd.DataFrame:
    """Classes as rows, the FCN table's rows as columns; classes with no score anywhere are left out."""
    columns = [(label, scores.get("per_class_iou") or {}) for label, scores in _fcn_rows(metrics, direction)]
    seen = {name for _, ious in columns for name, v in ious.items() if v is not None}
    order = [c for c in CLASS_NAMES if c in seen] + sorted(seen - set(CLASS_NAMES))
    records = [{"Class": name, **{label: fmt(ious.get(name)) for label, ious in columns}} for name in order]
    return pd.DataFrame(records, columns=["Class", *(label for label, _ in columns)])


def image_metrics_table(metrics: dict[str, dict[str, Any]], key: str | None = None) -> pd.DataFrame:
    """SSIM, PSNR and L1 of A -> B outputs against the real photos (top-level keys), or of the
    outputs under `key` (e.g. "photo_to_a": B -> A outputs against the real A images)."""
    def scores(m: str) -> dict[str, Any]:
        value = metrics[m] if key is None else metrics[m].get(key)
        return value if isinstance(value, dict) else {}

    def row(label: str, values: dict[str, Any]) -> dict[str, str]:
        return {"Method": label, "SSIM": fmt(values.get("ssim")), "PSNR (dB)": fmt(values.get("psnr"), 2),
                "L1": fmt(values.get("l1"))}

    baseline = metrics.get(BASELINE, {})
    # the trivial painting a unimodal method's L1 must beat, for the A -> B table
    records = [row(f"Trivial baseline ({baseline.get(f'name_{k}', 'unnamed')})", baseline[k])
               for k in sorted(baseline) if key is None and k.startswith("image_") and isinstance(baseline[k], dict)]
    records += [row(METHOD_NAMES[m], scores(m))
                for m in METHODS if m in metrics and any(k in scores(m) for k in ("ssim", "psnr", "l1"))]
    return pd.DataFrame(records, columns=["Method", "SSIM", "PSNR (dB)", "L1"])


def methods_not_applicable(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """The methods whose metrics file says the method does not apply to the data set (not trained)."""
    return [m for m in METHODS if metrics.get(m, {}).get("applicable") is False]


def not_applicable_notes(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """`method: reason` for each method and `metric: reason` for each metric that a metrics file
    says does not apply to the data set."""
    notes: dict[str, str] = {f"{METHOD_NAMES[m]} (not trained)": str(metrics[m].get("reason", ""))
                             for m in methods_not_applicable(metrics)}
    for name in (*METHODS, REAL, BASELINE):
        value = metrics.get(name, {})
        if value.get("applicable") is False and name not in METHODS:  # the segmenter's record
            notes.setdefault(NOT_APPLICABLE_NAMES["fcn_score"], str(value.get("reason", "")))
        for metric, reason in (value.get("not_applicable") or {}).items():
            notes.setdefault(NOT_APPLICABLE_NAMES.get(metric, metric), str(reason))
    return [f"{metric}: {reason}" for metric, reason in notes.items()]


def diversity_table(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Diversity (mean pairwise distance between samples of one input) and realism (Fréchet distance
    to the real photos), one column per feature space in the metrics files, each by its honest name."""
    def spaces(group: str) -> list[str]:
        found = {k for m in METHODS for k in (metrics.get(m, {}).get(group) or {})}
        return sorted(found)

    div, fd = spaces("diversity"), spaces("fid")
    # LPIPS only with its protocol, its version and backbone in the header (0.0 and 0.1 differ 2x)
    lpips = {m: p for m in METHODS if (p := (metrics.get(m, {}).get("lpips") or {}).get("protocol"))}
    names = dict(FEATURE_NAMES)
    if lpips:
        names["lpips"] = " / ".join(sorted({f"LPIPS v{p['version']}, {p['backbone']}" for p in lpips.values()}))
    headers = [(("diversity", k), f"Diversity ({names.get(k, k)}) ↑") for k in div if k != "lpips" or lpips]
    headers += [(("fid", k), f"Fréchet distance ({names.get(k, k)}) ↓") for k in fd]

    def value(m: str, group: str, key: str) -> str:
        if group == "diversity" and key == "lpips" and m not in lpips:
            return DASH
        return fmt((metrics[m].get(group) or {}).get(key))

    records = [{"Method": METHOD_NAMES[m], **{h: value(m, g, k) for (g, k), h in headers}}
               for m in METHODS if m in metrics and any(metrics[m].get(g) for g in ("diversity", "fid"))]
    return pd.DataFrame(records, columns=["Method", *(h for _, h in headers)])


def images_table(data: dict[str, Any]) -> pd.DataFrame:
    counts = data.get("images") or {}
    return pd.DataFrame([{"Split": s, "Images": str(n)} for s, n in counts.items()], columns=["Split", "Images"])


def class_frequency_table(data: dict[str, Any]) -> pd.DataFrame:
    """Share of labelled pixels per class (rows) and split (columns), in percent."""
    coverage = data.get("class_coverage") or {}
    names = {c for shares in coverage.values() for c in (shares or {})}
    order = [c for c in CLASS_NAMES if c in names] + sorted(names - set(CLASS_NAMES))
    records = [{"Class": c, **{s: (DASH if (v := (shares or {}).get(c)) is None else f"{100 * v:.1f} %")
                               for s, shares in coverage.items()}} for c in order]
    return pd.DataFrame(records, columns=["Class", *coverage])


def params_diff_table(params: Params, defaults: Params | None = None) -> pd.DataFrame:
    """The params that differ from the code's defaults (`Params()`)."""
    ours, base = flatten(dataclasses.asdict(params)), flatten(dataclasses.asdict(defaults or Params()))
    records = [{"Param": k, "Value": json.dumps(ours.get(k)), "Default": json.dumps(base.get(k))}
               for k in sorted(set(ours) | set(base)) if ours.get(k) != base.get(k)]
    return pd.DataFrame(records, columns=["Param", "Value", "Default"])


def load_summaries(models_dir: Path) -> dict[str, dict[str, Any]]:
    """`<models_dir>/<name>/train_summary.json` by name; unreadable ones are skipped with a warning."""
    return _load_json_objects(sorted(Path(models_dir).glob("*/train_summary.json")), lambda p: p.parent.name)


def load_timings(timings_dir: Path | None) -> dict[str, float]:
    """Wall seconds by DVC stage name, from the records `python -m stages` writes under DVC."""
    if timings_dir is None:
        return {}
    records = _load_json_objects(sorted(Path(timings_dir).glob("*.json")), lambda p: p.stem)
    return {r.get("stage", name): r["seconds"] for name, r in records.items()
            if isinstance(r.get("seconds"), (int, float))}


def _load_json_objects(paths: list[Path], key) -> dict[str, dict[str, Any]]:
    from pipeline.io import read_json_object

    found = {}
    for path in paths:
        try:
            found[key(path)] = read_json_object(path)
        except ValueError as exc:
            log.warning("%s; left out of the provenance", exc)
    return found


_STAGE_ORDER = ("prepare", "curate", "train_segmenter", "train", "translate", "evaluate", "report")


def _stage_rank(stage: str) -> tuple[int, int, str]:
    base, _, item = stage.partition("@")
    rank = _STAGE_ORDER.index(base) if base in _STAGE_ORDER else len(_STAGE_ORDER)
    return rank, list(METHODS).index(item) if item in METHODS else len(METHODS), stage


def _training_details(summary: dict[str, Any]) -> str:
    """What train@<method> did: its steps and speed, or which model folder stood in for it."""
    if summary.get("pretrained_from"):  # `<method>.pretrained`: nothing trained here
        files = summary.get("imported_from") or {}
        source = (", ".join(f"{net} imported from {path}" for net, path in sorted(files.items()))
                  or "trained elsewhere")
        return f"not trained: the model in {summary['pretrained_from']} ({source})"
    return (f"{summary.get('steps', '?')} steps, {fmt(summary.get('images_per_second'), 1)} images/s"
            + (f", resumed at step {summary['resumed_from']}" if summary.get("resumed_from") else ""))


def provenance_table(metrics: dict[str, dict[str, Any]], summaries: dict[str, dict[str, Any]],
                     timings: dict[str, float] | None = None) -> pd.DataFrame:
    """Stage | Wall time (s) | Device | MLflow run | Details, in pipeline order.

    A stage's wall time is its whole command as DVC ran it (`timings`); where none was recorded,
    the time the stage put in its own summary or metrics (training or evaluation alone) stands in.
    """
    rows: dict[str, dict[str, Any]] = {}

    def row(stage: str, seconds=None, device=None, run=None, details="") -> None:
        rows[stage] = {"seconds": seconds, "device": device, "run": run, "details": details}

    if DATA in metrics:
        row("curate", metrics[DATA].get("seconds"))
    for name, s in summaries.items():
        row(f"train@{name}", s.get("seconds"), s.get("device"), s.get("mlflow_run_id"), _training_details(s))
    if REAL in metrics:  # the segmenter stage trains it and scores the real photos (the upper bound)
        m = metrics[REAL]
        row("train_segmenter", m.get("seconds"), m.get("device"), m.get("mlflow_run_id"))
    for name in METHODS:
        if name in metrics and ("seconds" in metrics[name] or "mlflow_run_id" in metrics[name]):
            row(f"evaluate@{name}", metrics[name].get("seconds"), None, metrics[name].get("mlflow_run_id"))
    for stage, seconds in (timings or {}).items():
        if stage == "report":  # recorded after the report was written: the previous report's time
            continue
        rows.setdefault(stage, {"device": None, "run": None, "details": ""})["seconds"] = seconds
    return pd.DataFrame([{"Stage": st, "Wall time (s)": fmt(r["seconds"], 1), "Device": r["device"] or DASH,
                          "MLflow run": r["run"] or DASH, "Details": r["details"]}
                         for st, r in sorted(rows.items(), key=lambda kv: _stage_rank(kv[0]))],
                        columns=["Stage", "Wall time (s)", "Device", "MLflow run", "Details"])
