"""The `report` stage's library: metric tables in the papers' layout, and reports/report.md.

Each table is a pure function of the loaded metrics returning a DataFrame of display strings, so
tests check tables without files; `markdown_table` renders one, `build_report` writes the report.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
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
    headers = [(("diversity", k), f"Diversity ({FEATURE_NAMES.get(k, k)}) ↑") for k in div]
    headers += [(("fid", k), f"Fréchet distance ({FEATURE_NAMES.get(k, k)}) ↓") for k in fd]
    records = [{"Method": METHOD_NAMES[m], **{h: fmt((metrics[m].get(g) or {}).get(k)) for (g, k), h in headers}}
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
        row(f"train@{name}", s.get("seconds"), s.get("device"), s.get("mlflow_run_id"),
            f"{s.get('steps', '?')} steps, {fmt(s.get('images_per_second'), 1)} images/s"
            + (f", resumed at step {s['resumed_from']}" if s.get("resumed_from") else ""))
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


# --------------------------------------------------------------------------- the report


def _link(path: Path, base: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()


def _table_section(title: str, table: pd.DataFrame, caption: str, empty: str) -> list[str]:
    return [f"## {title}", "", caption, "", markdown_table(table) if len(table) else f"_{empty}_", ""]


def _demote(markdown: str) -> list[str]:
    """An included markdown file under our `## Ablations`: drop its title, push its headings down."""
    lines = markdown.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return [("#" + line) if line.startswith("#") else line for line in lines]


def _data_set(curated_dir: Path) -> dict[str, Any]:
    """What the curated store says about the data set (labels? pairs? domain names); a store that
    cannot be read counts as the embedded, labelled and paired one, and its grids note the error."""
    from pipeline.data.store import StoreError, read_info

    try:
        info = read_info(curated_dir)
    except StoreError:
        return {"dataset": "streets", "has_labels": True, "paired": True, "a": "labels", "b": "photo"}
    names = info["domain_names"]
    return {"dataset": info["dataset"], "has_labels": bool(info["has_labels"]), "paired": bool(info["paired"]),
            "a": names.get("a") or "A", "b": names.get("b") or "B"}


def build_report(*, metrics_dir: Path, losses_dir: Path, translated_dir: Path, curated_dir: Path,
                 models_dir: Path, figures_dir: Path, contact_sheet: Path, out: Path, params: Params,
                 commit: str, ablations: Path | None = None, timings_dir: Path | None = None,
                 n_images: int = 6) -> Path:
    """Write `out` (markdown) and its figures under `figures_dir` (replaced whole); returns `out`.

    Missing inputs leave their rows or sections out with a note; they never stop the report.
    """
    from pipeline.io import atomic_dir, atomic_file
    from pipeline.report_figures import loss_figure, translation_grids

    if Path(figures_dir).resolve() in Path(contact_sheet).resolve().parents:
        raise ValueError(f"figures_dir {figures_dir} holds the contact sheet {contact_sheet}, and the report "
                         "replaces that folder whole; give the report a folder of its own (reports/figures/report)")
    metrics, notes = load_metrics(metrics_dir)
    base = Path(out).parent
    data_set = _data_set(Path(curated_dir))
    for method in METHODS:  # e.g. pix2pix's metrics of an earlier data set, when only CycleGAN ran on this one
        other = metrics.get(method, {}).get("dataset")
        if other is not None and other != data_set["dataset"]:
            del metrics[method]
            notes.append(f"`{method}.json` scores data set `{other}`, not `{data_set['dataset']}`: its rows are "
                         "left out.")
    untrained = methods_not_applicable(metrics)  # listed under the notes; no grids, no loss curves
    lines = ["# Image-to-image translation: results", ""]
    if data_set["has_labels"]:
        lines += [f"Generated by the `report` stage from commit `{commit}`. FCN-scores are those of the "
                  "segmenter trained in this pipeline, on the test split.", ""]
        body = _table_section(
            "Labels → photo (FCN-score)", labels_to_photo_table(metrics),
            "Translated test label maps, segmented back into labels, as in CycleGAN Table 1 / pix2pix Table 1. "
            "The upper bound segments the real test photos.", "No labels → photo scores.")
        body += _table_section(
            "Photo → labels", photo_to_labels_table(metrics),
            "Scores of the predicted label maps against the true ones, as in CycleGAN Table 2.",
            "No method translated photo → labels.")
        body += _table_section("Per-class IoU (labels → photo)", per_class_iou_table(metrics),
                               f"{DASH}: the class is absent from both truth and prediction.", "No per-class scores.")
        forward = "labels → photo"
    else:
        lines += [f"Generated by the `report` stage from commit `{commit}`, on the test split of "
                  f"`{data_set['dataset']}`, which has no label maps: the tables show the metrics that apply.", ""]
        body = []
        forward = f"{data_set['a']} → {data_set['b']}"
    if len(untrained) == len(METHODS):
        lines += [f"No method applies to `{data_set['dataset']}`, so nothing was trained on it (see the notes "
                  "below); translate its images with a model trained on another data set "
                  "(`python -m stages translate-folder`).", ""]
    if data_set["paired"]:
        # headings and captions name the domains alike, by the store's names (a facades store made
        # with direction b_to_a calls its domain A "B (right halves)": never "domain A" in a caption)
        body += _table_section(f"Image similarity ({forward})", image_metrics_table(metrics),
                               f"One output per input, scored against the real test {data_set['b']}.",
                               "No image metrics.")
        backward = image_metrics_table(metrics, "photo_to_a")
        if len(backward):
            body += _table_section(f"Image similarity ({data_set['b']} → {data_set['a']})", backward,
                                   f"One output per input, scored against the real test {data_set['a']}.", "")
    realism = diversity_table(metrics)
    if data_set["has_labels"] or len(realism):
        body += _table_section(
            "Diversity and realism", realism,
            "Diversity: mean distance between samples of the same input (higher is more diverse). Realism: "
            f"Fréchet distance between the feature statistics of the outputs and of the real {data_set['b']} "
            "(lower is better).",
            "No diversity or realism metrics.")
    skipped = not_applicable_notes(metrics)
    if skipped:
        body += ["## Methods not trained and metrics that do not apply", "", *(f"- {note}" for note in skipped), ""]

    body += ["## Example translations", ""]
    figure_lines, loss_lines = [], ["## Training losses", ""]
    with atomic_dir(Path(figures_dir)) as tmp_figures:
        for method in (m for m in METHODS if m not in untrained):
            translated = Path(translated_dir) / method
            if not translated.is_dir():
                notes.append(f"`{translated}` is missing: no {METHOD_NAMES[method]} example grid.")
            else:
                try:
                    grids = translation_grids(method, translated, Path(curated_dir), tmp_figures, n_images)
                except (OSError, ValueError) as exc:  # StoreError is a ValueError
                    notes.append(f"{METHOD_NAMES[method]} example grid left out: {exc}")
                    grids = []
                for grid in grids:
                    title, final = f"{METHOD_NAMES[method]}: {grid.direction}", Path(figures_dir) / grid.path.name
                    figure_lines += [f"**{title}** (columns: {' | '.join(grid.columns)})", "",
                                     f"![{title}]({_link(final, base)})", ""]
            csv = Path(losses_dir) / f"{method}.csv"
            if not csv.is_file():
                notes.append(f"`{csv}` is missing: no {METHOD_NAMES[method]} loss curves.")
                continue
            try:
                png = loss_figure(csv, tmp_figures / f"losses_{method}.png", METHOD_NAMES[method])
            except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                notes.append(f"{METHOD_NAMES[method]} loss curves left out: {exc}")
                continue
            loss_lines += [f"![{METHOD_NAMES[method]} losses]({_link(Path(figures_dir) / png.name, base)})", ""]
    body += (figure_lines or ["_No translations to show._", ""]) + loss_lines
    body += ["Faint lines: logged values; solid: a moving average over 5 % of the run." if len(loss_lines) > 2
             else "_No loss curves._", ""]

    body += ["## Data", ""]
    if Path(contact_sheet).is_file():
        body += [f"Contact sheet: [{Path(contact_sheet).name}]({_link(contact_sheet, base)})", "",
                 f"![contact sheet]({_link(contact_sheet, base)})", ""]
    else:
        notes.append(f"`{contact_sheet}` is missing: no contact sheet.")
    data = metrics.get(DATA, {})
    if data.get("images"):
        body += ["Images per split:", "", markdown_table(images_table(data)), ""]
    if data.get("class_coverage"):
        body += ["Class frequencies (share of labelled pixels):", "", markdown_table(class_frequency_table(data)), ""]

    if ablations is not None and Path(ablations).is_file():
        body += ["## Ablations", "", *_demote(Path(ablations).read_text()), ""]

    diff = params_diff_table(params)
    body += ["## Provenance", "", f"- git commit: `{commit}`", ""]
    body += ["Params that differ from the defaults in `pipeline/config.py`:", "",
             markdown_table(diff) if len(diff) else "_None: every param is at its default._", ""]
    body += ["Stages (wall time of each stage's command as DVC last ran it; the report's own is not yet known; "
             "without a record, the time the stage gives in its summary):", "",
             markdown_table(provenance_table(metrics, load_summaries(models_dir), load_timings(timings_dir))), ""]

    if notes:
        lines += ["> **Missing inputs**", ">", *(f"> - {n}" for n in notes), ""]
    with atomic_file(Path(out)) as tmp:
        tmp.write_text("\n".join(lines + body).rstrip() + "\n")
    log.info("wrote %s (%d notes)", out, len(notes))
    return Path(out)
