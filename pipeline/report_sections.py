"""Sections of the report that say where its numbers come from: the setup (what ran, beside the
papers' settings and why it differs) and the ablation studies (only those run on this data set,
each with its budget, commits and whether its MLflow runs are in this store)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipeline.ablations import CURATED
from pipeline.config import PAPER_DEPARTURES, Params
from pipeline.report import DASH, markdown_table
from pipeline.models import METHODS

PAPER_SIZE = 256  # the papers' Cityscapes runs: 256 x 256 (load 286, random crop)
PAPER_LOAD = 286
BUDGET_REASON = ("CPU budget: the default pipeline runs in minutes on 2 CPU cores; the papers trained for "
                 "hours on a GPU")
# the architecture fields a method's config may have, in the order the setup table lists them
_NET_FIELDS = ("generator", "encoder", "ngf", "ndf", "nef", "n_layers_D", "num_D", "norm", "upsample", "antialias")
_SIZE_REASON = "narrower and shallower for 64 px and the CPU budget"
_OWN_REASON_FIELDS = ("n_layers_D", "num_D", "upsample", "antialias")


def _nets(cfg: Any) -> str:
    values = dataclasses.asdict(cfg)
    return ", ".join(f"{k} {values[k]}" for k in _NET_FIELDS if k in values)


def _nets_reason(section: str, cfg: Any, paper: Any, default: Any) -> str:
    """Why this run's networks differ from the paper's: the size, a known departure, or this run's change."""
    ours, theirs, defaults = dataclasses.asdict(cfg), dataclasses.asdict(paper), dataclasses.asdict(default)
    differ = [k for k in _NET_FIELDS if k in ours and ours[k] != theirs[k]]
    # the fields a width or size change does not explain: each gets its own reason
    own = [k for k in differ if k in _OWN_REASON_FIELDS]
    reasons = [_SIZE_REASON] if len(own) < len(differ) else []
    for k in own:
        if ours[k] != defaults[k]:
            reasons.append(f"changed for this run: {k}")
        elif f"{section}.{k}" in PAPER_DEPARTURES:
            reasons.append(PAPER_DEPARTURES[f"{section}.{k}"][1])
    return "; ".join(reasons)


def _training(cfg: Any) -> str:
    return (f"{cfg.iters + cfg.iters_decay} steps ({cfg.iters} constant, {cfg.iters_decay} decaying), "
            f"batch {cfg.batch_size}")


def setup_table(params: Params, devices: dict[str, str], has_labels: bool = True) -> pd.DataFrame:
    """Setting | This run | The papers | Why: image size, networks and widths, steps and batch
    sizes, loss weights, optimiser, seed, device, the segmenter (where the data set has label maps)
    and the data, for every method of the method table. `devices`: the device each training ran on
    (its summary)."""
    rows = [("Image size", f"{params.image_size} px (resized to {params.train.load_size}, random crop, "
                           f"{'flips' if params.train.flip else 'no flips'})",
             f"{PAPER_SIZE} px (resized to {PAPER_LOAD}, random crop, flips)", BUDGET_REASON)]
    for name, spec in METHODS.items():
        cfg = spec.config(params)
        paper = spec.at_paper_size(cfg, PAPER_SIZE)
        rows.append((f"{spec.title}: networks", _nets(cfg), _nets(paper),
                     _nets_reason(spec.section, cfg, paper, spec.config(Params()))))
        rows.append((f"{spec.title}: training", _training(cfg),
                     f"batch {paper.batch_size}; epochs over the whole training set, half constant then decaying "
                     "(on Cityscapes: 200 epochs of 2975 images, about 600k steps at batch 1)",
                     BUDGET_REASON + (f"; batch {cfg.batch_size}: more images per step at the same budget"
                                      if cfg.batch_size != paper.batch_size else "")))
        # the top-level weights, and those a method keeps in its section (CUT's lambda_NCE, lambda_GAN)
        ours, defaults = params.as_flat_dict(), Params().as_flat_dict()
        paper = defaults | {k: value for k, (value, _) in PAPER_DEPARTURES.items()}
        keys = [*spec.loss_weights, *(k for k in ours if k.startswith(f"{spec.section}.lambda_"))]
        weights = ", ".join(f"{w} {ours[w]:g}" for w in keys)
        differ = [w for w in keys if ours[w] != paper[w]]
        reasons = [f"{w}: {PAPER_DEPARTURES[w][1]}" for w in differ if w in PAPER_DEPARTURES and ours[w] == defaults[w]]
        changed = [w for w in keys if ours[w] != defaults[w]]
        if changed:
            reasons.append(f"changed for this run: {', '.join(changed)}")
        rows.append((f"{spec.title}: loss weights", weights,
                     "as here" if not differ else ", ".join(f"{w} {paper[w]:g}" for w in differ),
                     "; ".join(reasons) or "the papers' values (see params.yaml's comments)"))
    train = params.train
    rows.append(("Optimiser", f"Adam, lr {train.lr:g}, betas ({train.beta1:g}, {train.beta2:g})",
                 "Adam, lr 0.0002, betas (0.5, 0.999)", ""))
    used = sorted(set(devices.values()))
    rows.append(("Seed and device", f"seed {params.seed}, one run; {', '.join(used) or DASH}",
                 "one run each (no seeds reported); GPU",
                 "one seed: a gap of a few points is within run-to-run noise, no ordering is claimed from it"))
    seg = params.segmenter
    if has_labels:
        rows.append(("FCN-score segmenter",
                     f"{seg.arch} (width {seg.width}), {seg.steps} steps, batch {seg.batch_size}, trained here on "
                     "the train split's real photos" if not seg.weights else f"the user's weights: {seg.weights}",
                     "FCN-8s trained on Cityscapes",
                     "the score then exists for any labelled data set, offline; the real photos' row is its upper "
                     "bound"))
    data = params.data
    rows.append(("Data", f"{data.source}" + (f", styles {data.styles}, {data.n_images} images"
                                              if data.source == "streets" else f" at {data.path}")
                 + f", split {params.curate.split.train:g}/{params.curate.split.val:g}/{params.curate.split.test:g}",
                 "Cityscapes: 2975 train, 500 val (the test set)",
                 "embedded street scenes: no download, every stage and metric runs offline"
                 if data.source == "streets" else ""))
    return pd.DataFrame(rows, columns=["Setting", "This run", "The papers", "Why"])


# --------------------------------------------------------------------------- ablations


def read_ablations(path: Path | None) -> dict[str, dict[str, Any]]:
    """reports/ablations.json (written by `ablation-report`): study name -> record; {} if absent."""
    if path is None or not Path(path).is_file():
        return {}
    value = json.loads(Path(path).read_text())
    return value if isinstance(value, dict) else {}


def study_run_ids(record: dict[str, Any]) -> list[str]:
    """The MLflow runs of a study's rows: one per row, or one per seed of a seeded study."""
    return [i for r in record["rows"] for i in (r.get("mlflow_run_ids") or [r.get("mlflow_run_id")]) if i]


def curated_hash(lock: Path) -> str | None:
    """The DVC hash of the curated store in dvc.lock (what the trainings of the last run read)."""
    if not Path(lock).is_file():
        return None
    stages = (yaml.safe_load(Path(lock).read_text()) or {}).get("stages") or {}
    for out in (stages.get("curate") or {}).get("outs") or []:
        if out.get("path") == CURATED:
            return out.get("md5") or out.get("hash")
    return None


def _same_data(record: dict[str, Any], ours: dict[str, Any], data_hash: str | None) -> bool:
    """Whether every finished row of the study ran on this data set: the same data params and,
    where both are known, the same curated store (a changed generator changes it, not the params)."""
    done = [r for r in record["rows"] if r["status"] == "success"]
    return bool(done) and all(r.get("data") and {k: v for k, v in r["data"].items() if k in ours}
                              == {k: ours[k] for k in r["data"] if k in ours}
                              and (data_hash is None or r.get("data_hash") in (None, data_hash)) for r in done)


def ablation_section(studies: dict[str, dict[str, Any]], params: Params, runs_in_store: set[str] | None,
                     source: str, data_hash: str | None, known_commits: set[str]) -> list[str]:
    """The report's ablation section: each study run on this data set (`data_hash`: the curated
    store's) with its provenance and table; the others named, with where they live.
    `known_commits`: the rows' commits that this repository's history holds."""
    from pipeline.ablations import data_params, provenance, study_table
    from pipeline.seeds import TEST, ordering_lines, seeded_table

    ours = data_params(params.as_flat_dict())
    shown = {n: r for n, r in studies.items() if _same_data(r, ours, data_hash)}
    seeded = any(r.get("seeds") for r in shown.values())
    lines = ["## Ablations", "",
             f"From `{source}` (`python -m stages ablation-report`): DVC experiments, "
             + (f"over seeds (mean ± std, n); each ordering a paper claims is decided by {TEST}. " if seeded else
                "one seed each, so a gap of a few points is within noise. ")
             + "Only studies whose every row ran on this report's data set are shown.", ""]
    for name, record in shown.items():
        run_ids = study_run_ids(record)
        if runs_in_store is None:
            where = "the MLflow store could not be read to check its runs"
        else:
            present = sum(run in runs_in_store for run in run_ids)
            where = (f"all {present} MLflow runs are in this store (`mlflow.db`)" if present == len(run_ids) > 0
                     else f"{present} of {len(run_ids)} MLflow runs are in this store; the others live in the store "
                          "of the machine that ran the study")
        commits = {r["commit"] for r in record["rows"] if r.get("commit")}
        if commits - known_commits:
            where += ("; the commit it names is not in this repository's history (DVC runs a queued "
                      "experiment from a temporary commit)")
        table = seeded_table(record) if record.get("seeds") else study_table(record, runs_in_store)
        seeds = f" {record['seeds']} training seeds per row." if record.get("seeds") else ""
        lines += [f"### {record['title']}", "", f"As in {record['paper_table']}. {provenance(record)}{seeds} The data "
                  f"set is this report's; {where}.", "", record["caption"], "", markdown_table(table), "",
                  *ordering_lines(record), *([""] if record.get("orderings") else [])]
    others = [r["title"] for n, r in studies.items() if n not in shown]
    if others:
        lines += [f"Not shown (run on another data set, or not run): {', '.join(others)}; their tables are in "
                  f"`{source}`.", ""]
    return lines


# --------------------------------------------------------------------------- FID and KID


def realism_section(metrics: dict[str, dict[str, Any]], domains: tuple[str, str]) -> list[str]:
    """"FID and KID" with one line of protocol under the table per number; numbers without a
    protocol are not printed. Without any, how to get the standard weights."""
    from pipeline.metrics.realism import protocol_line
    from pipeline.report import METHOD_NAMES, fmt

    a, b = domains
    directions = (("to_b", f"{a} → {b}"), ("to_a", f"{b} → {a}"))
    records, protocols = [], []
    for m in METHODS:
        found = {d: r for d, r in ((metrics.get(m) or {}).get("realism") or {}).items()
                 if isinstance(r, dict) and r.get("protocol")}
        if not found:
            continue
        row = {"Method": METHOD_NAMES[m]}
        for d, title in directions:
            r = found.get(d)
            row[f"FID ({title}) ↓"] = fmt(r["fid"], 2) if r else DASH
            row[f"KID ({title}) ↓"] = f"{r['kid']:.4f} ± {r['kid_std']:.4f}" if r else DASH
            if r:
                protocols.append(f"- {METHOD_NAMES[m]}, {title}: {protocol_line(r['protocol'])}")
        records.append(row)
    if not records:
        skipped = next((str(r["realism_skipped"]) for r in metrics.values() if r.get("realism_skipped")), None)
        return ["## FID and KID (Inception)", "", f"_Not computed: {skipped}. The Fréchet distance above is in "
                "the segmenter's features, not Inception's._", ""] if skipped else []
    table = pd.DataFrame(records)
    table = table[["Method", *(c for c in table.columns if c != "Method" and (table[c] != DASH).any())]]
    return ["## FID and KID (Inception)", "",
            "Between the generated and the real test images of the target domain (KID: mean ± std over subsets). "
            "Protocol of each number:", "", markdown_table(table), "", *protocols, ""]


def photo_domains_section(metrics: dict[str, dict[str, Any]], domains: tuple[str, str]) -> list[str]:
    """Two labelled photo domains (day <-> night): per direction, the FCN-score table (the identity
    baseline, the methods, the real target photos as the upper bound, each row's share of it) and
    its per-class IoU, then the Fréchet distance in each target segmenter's features beside the identity's."""
    from pipeline.report import BASELINE, METHOD_NAMES, fcn_table, fmt, of_upper_bound, per_class_iou_table

    a, b = domains
    directions = (("a_to_b", a, b, "fid"), ("b_to_a", b, a, "fid_a"))
    lines = []
    for direction, source, target, _ in directions:
        table = of_upper_bound(fcn_table(metrics, direction), metrics, direction)
        lines += [f"## {source} → {target} (FCN-score)", "",
                  f"The test {source} translated, segmented by the segmenter trained on the real train {target}, and "
                  f"compared with the label maps of the source {source} (a translation keeps the layout). Trivial "
                  f"baseline (identity): the source {source} handed over untranslated, which learns nothing; a "
                  f"method's gain over it is what translation adds. Real photos: the same segmenter on the real test "
                  f"{target}, the upper bound; \"Of the upper bound\" divides each per-pixel accuracy by it.", "",
                  markdown_table(table) if len(table) else "_No scores._", ""]
        per_class = per_class_iou_table(metrics, direction)
        if len(per_class):  # which classes the translation loses (poles and signs after dark, say)
            lines += [f"Per-class IoU ({source} → {target}); {DASH}: the class is absent from both truth and "
                      "prediction.", "", markdown_table(per_class), ""]
    identity = metrics.get(BASELINE, {}).get("frechet_identity") or {}
    records = [{"Method": "Trivial baseline (identity)",
                **{f"{s} → {t} ↓": fmt(identity.get(d)) for d, s, t, _ in directions}}] if identity else []
    records += [{"Method": METHOD_NAMES[m],
                 **{f"{s} → {t} ↓": fmt(((metrics[m].get(key) or {}).get("segmenter_features")))
                    for _, s, t, key in directions}}
                for m in METHODS if m in metrics and any(metrics[m].get(k) for *_, k in directions)]
    if records:
        lines += ["## Realism (segmenter features)", "",
                  "Fréchet distance between the outputs and the real test photos of the target domain, in the "
                  "features of the target domain's segmenter (not Inception FID; that table follows where its "
                  "weights are given). Identity: the untranslated source photos.", "",
                  markdown_table(pd.DataFrame(records)), ""]
    return lines


def lpips_protocol_lines(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """One line per method with LPIPS diversity: the package and its version, LPIPS version,
    backbone, weights' SHA-256, pairs and counts (the table prints LPIPS only with these)."""
    from pipeline.report import METHOD_NAMES

    lines = []
    for m in METHODS:
        found = (metrics.get(m) or {}).get("lpips") or {}
        p = found.get("protocol")
        if p:
            weights = ", ".join(f"{name} (SHA-256 {sha})" for name, sha in p["weights"].items())
            lines.append(f"- {METHOD_NAMES[m]}, LPIPS: {p['implementation']}, LPIPS v{p['version']}, {p['backbone']} "
                         f"backbone, weights {weights}; {p['pairs']} pairs, {found['pairs_per_input']} per input, "
                         f"{found['n_inputs']} inputs ({found['n_pairs']} pairs), standard error "
                         f"{found['stderr']:.4f}; input {p['input']}")
    return lines


# --------------------------------------------------------------------------- checkpoint selection

# the test scores the selection table shows, where a record has them
SELECTION_SCORES = (("pixel_acc", "Test per-pixel acc."), ("class_iou", "Test class IOU"),
                    ("label_acc", "Test label acc."), ("fid", "Test FID"), ("kid", "Test KID"),
                    ("a_fid", "Test FID (B → A)"))


def read_selection(selection_dir: Path | None, metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """select's records by method: those that ran (select.enabled), of methods in this report."""
    if selection_dir is None:
        return {}
    found = {}
    for m in METHODS:
        path = Path(selection_dir) / f"{m}.json"
        if path.is_file() and m in metrics:
            record = json.loads(path.read_text())
            if isinstance(record, dict) and record.get("enabled"):
                found[m] = record
    return found


def selection_section(records: dict[str, dict[str, Any]]) -> list[str]:
    """Test scores of the final and of the val-selected checkpoint, labelled; never a test-best one."""
    from pipeline.report import METHOD_NAMES, fmt

    if not records:
        return []
    rows = []
    for m, record in records.items():
        crit = record["criterion"]
        for role, title in (("final", "final"), ("selected", f"val-selected (best val {crit['score']})")):
            entry = record[role]
            rows.append({"Method": METHOD_NAMES[m], "Checkpoint": f"{title}: {entry['checkpoint']}",
                         "Val score": f"{crit['score']} {fmt(entry['val'])}",
                         **{h: fmt(entry["test"].get(k)) for k, h in SELECTION_SCORES}})
    table = pd.DataFrame(rows)
    table = table[[c for c in table.columns if (table[c] != DASH).any()]]
    n = {m: len(r["candidates"]) for m, r in records.items()}
    return ["## Checkpoints chosen on the val split", "",
            "Each method's kept checkpoints (`train.keep_every`) and its final one, ranked on the val split by the "
            "score named (FCN-score where labels exist, else FID); test scores of the final and of the val-selected "
            "checkpoint. No checkpoint is chosen on the test split. Checkpoints ranked: "
            + ", ".join(f"{METHOD_NAMES[m]} {k}" for m, k in n.items()) + ".", "", markdown_table(table), ""]
