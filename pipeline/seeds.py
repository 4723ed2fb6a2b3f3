"""Error bars over seeds: a study's rows repeated with N training seeds as DVC experiments
(`<study>-<row>-seed<k>`), their scores as mean ± std and n, and each ordering the papers claim
marked as holding, reversed or within noise by Welch's t-test."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pipeline.ablations import Study, ablation_rows, apply_overrides, exp_name, render_value, row_overrides
from pipeline.config import Params
from pipeline.report import DASH, markdown_table

SEED_KEY = "train.seed"  # the training's seed alone: every seed trains on the same data set
ALPHA = 0.05
TEST = (f"Welch's t-test (two-sided, alpha {ALPHA:g}) on the per-seed scores: nothing makes two rows' variances "
        "equal (a GAN without a reconstruction term may swing more from seed to seed), so it does not assume "
        "them equal; non-overlapping mean ± std has no stated error rate")

# The orderings the papers claim, on the score their tables lead with: (better row, worse row, score, source)
CLAIMS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "pix2pix_loss": (("L1+cGAN", "L1", "pixel_acc", "pix2pix Table 1"),
                     ("L1+cGAN", "L1+GAN", "pixel_acc", "pix2pix Table 1"),
                     ("cGAN", "GAN", "pixel_acc", "pix2pix Table 1")),
    "cyclegan_table4": (("CycleGAN", "GAN alone", "pixel_acc", "CycleGAN Table 4"),
                        ("CycleGAN", "Cycle alone", "pixel_acc", "CycleGAN Table 4"),
                        ("CycleGAN", "GAN + backward cycle", "pixel_acc", "CycleGAN Table 4")),
    "pix2pix_generator": (("U-Net (L1)", "Encoder-decoder (L1)", "pixel_acc", "pix2pix Table 2"),
                          ("U-Net (L1+cGAN)", "Encoder-decoder (L1+cGAN)", "pixel_acc", "pix2pix Table 2")),
    "pix2pix_patch": (("70x70", "1x1 (PixelGAN)", "pixel_acc", "pix2pix Table 3"),
                      ("70x70", "286x286 (ImageGAN)", "pixel_acc", "pix2pix Table 3")),
    "cut_ablation": (("CUT", "Last layer only", "pixel_acc", "CUT's ablation table"),),
    "default_methods": (("pix2pix", "CycleGAN", "pixel_acc", "CycleGAN Table 1"),),
}


def seed_exp_name(study: Study, label: str, budget: str, seed: int) -> str:
    return f"{exp_name(study, label, budget)}-seed{seed}"


def seeds_of(baseline: Params, n: int) -> list[int]:
    """The N seeds: the baseline's own training seed first (its row reuses the run made without
    seeds where the row's params are the baseline's), then the next ones."""
    if n < 1:
        raise ValueError(f"--seeds must be >= 1, got {n}")
    return [baseline.train_seed + k for k in range(n)]


def seeded_commands(study: Study, baseline: Params, n_seeds: int, budget: str = "default", queue: bool = True,
                    jobs: int = 1, targets: tuple[str, ...] = ()) -> list[list[str]]:
    """`dvc exp run` per row and seed, each reproducing only its row's `evaluate@<method>` (unless
    `targets` say otherwise: a seed changes no other method, and the report is not needed per row)."""
    commands = []
    for label, _ in study.rows:
        overrides = row_overrides(study, label, baseline, budget)
        for seed in seeds_of(baseline, n_seeds):
            # the baseline's seed is left unset (null), as in the run made without seeds
            rendered = {k: render_value(v) for k, v in overrides.items()}
            rendered[SEED_KEY] = render_value(None if seed == baseline.seed and baseline.train.seed is None else seed)
            apply_overrides(baseline, {k: yaml.safe_load(t) for k, t in rendered.items()})
            sets = [arg for k, t in rendered.items() for arg in ("-S", f"{k}={t}")]
            commands.append(["dvc", "exp", "run", *(["--queue"] if queue else []), "-n",
                             seed_exp_name(study, label, budget, seed), *sets,
                             *(targets or (f"evaluate@{study.method_of(label)}",))])
    if queue:
        commands.append(["dvc", "queue", "start", "-j", str(jobs)])
    return commands


def aggregate(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof 1; None for one value) and n."""
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    return {"mean": float(arr.mean()) if len(arr) else None,
            "std": float(arr.std(ddof=1)) if len(arr) >= 2 else None, "n": int(len(arr)), "values": arr.tolist()}


def seeded_rows(study: Study, experiments: list[dict[str, Any]], baseline: Params, n_seeds: int,
                budget: str = "default") -> list[dict[str, Any]]:
    """Each row's scores over its seeds' finished experiments: {score: mean, std, n, values}."""
    per_seed = {seed: {r["label"]: r for r in ablation_rows(study, experiments, budget, f"-seed{seed}")}
                for seed in seeds_of(baseline, n_seeds)}
    rows = []
    for label, _ in study.rows:
        runs = [per_seed[seed][label] for seed in per_seed]
        done = [r for r in runs if r["status"] == "success"]
        rows.append({"label": label, "seeds": [s for s in per_seed if per_seed[s][label]["status"] == "success"],
                     "experiments": [r["experiment"] for r in runs],
                     "status": "success" if done else (runs[0]["status"] if runs else "not run"),
                     "scores": {key: aggregate([r["metrics"].get(key) for r in done])
                                for key, _ in study.metric_columns},
                     "mlflow_run_ids": [r["mlflow_run_id"] for r in done if r.get("mlflow_run_id")],
                     "commit": next((r["commit"] for r in done if r.get("commit")), None),
                     "timestamp": max((r["timestamp"] for r in done if r.get("timestamp")), default=None),
                     "steps": next((r["steps"] for r in done if r.get("steps")), None),
                     "data": next((r["data"] for r in done if r.get("data")), {}),
                     "data_hash": next((r["data_hash"] for r in done if r.get("data_hash")), None)})
    return rows


def welch(better: list[float], worse: list[float]) -> tuple[str, float | None]:
    """holds | reversed | within noise | too few seeds, and the p-value."""
    from scipy import stats

    if len(better) < 2 or len(worse) < 2:
        return "too few seeds", None
    if np.std(better) == 0 and np.std(worse) == 0:  # t is undefined; equal means are noise, others not
        diff = np.mean(better) - np.mean(worse)
        return ("within noise" if diff == 0 else "holds" if diff > 0 else "reversed"), None
    p = float(stats.ttest_ind(better, worse, equal_var=False).pvalue)
    if p >= ALPHA:
        return "within noise", p
    return ("holds" if np.mean(better) > np.mean(worse) else "reversed"), p


def orderings(study_name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each claim of CLAIMS[study] with its verdict on the rows' per-seed scores."""
    by_label = {r["label"]: r for r in rows}
    found = []
    for better, worse, score, source in CLAIMS.get(study_name, ()):
        b, w = by_label[better]["scores"][score], by_label[worse]["scores"][score]
        verdict, p = welch(b["values"], w["values"])
        found.append({"better": better, "worse": worse, "score": score, "source": source, "verdict": verdict,
                      "p_value": p, "means": [b["mean"], w["mean"]], "n": [b["n"], w["n"]]})
    return found


def seeded_json(study: Study, experiments: list[dict[str, Any]], baseline: Params, n_seeds: int,
                budget: str = "default") -> dict[str, Any]:
    """A study's record over seeds (reports/ablations.json, which the report reads)."""
    rows = seeded_rows(study, experiments, baseline, n_seeds, budget)
    return {"name": study.name, "title": study.title, "paper_table": study.paper_table, "method": study.method,
            "budget": budget, "caption": study.caption, "row_header": study.row_header,
            "metric_columns": [list(c) for c in study.metric_columns], "seeds": n_seeds, "test": TEST,
            "rows": rows, "orderings": orderings(study.name, rows)}


def mean_std(score: dict[str, Any]) -> str:
    if score.get("mean") is None:
        return DASH
    return f"{score['mean']:.3f}" + (f" ± {score['std']:.3f}" if score.get("std") is not None else "")


def seeded_table(record: dict[str, Any]) -> pd.DataFrame:
    """Row label, each score as mean ± std, n (seeds finished), the experiments' name pattern."""
    columns = [tuple(c) for c in record["metric_columns"]]
    records = [{record["row_header"]: row["label"],
                **{h: mean_std(row["scores"][k]) if row["status"] == "success" else row["status"] for k, h in columns},
                "n": str(len(row["seeds"])), "DVC experiments": row["experiments"][0].rsplit("-seed", 1)[0] + "-seed*"}
               for row in record["rows"]]
    return pd.DataFrame(records, columns=[record["row_header"], *(h for _, h in columns), "n", "DVC experiments"])


def ordering_lines(record: dict[str, Any]) -> list[str]:
    """One bullet per claimed ordering: its verdict, means, n and p-value."""
    lines = []
    for o in record.get("orderings") or []:
        means = " vs ".join(DASH if m is None else f"{m:.3f}" for m in o["means"])
        p = "" if o["p_value"] is None else f", p = {o['p_value']:.3f}"
        lines.append(f"- {o['better']} above {o['worse']} ({o['score']}, {o['source']}): **{o['verdict']}** "
                     f"({means}, n = {o['n'][0]} and {o['n'][1]}{p})")
    return lines


def seeded_markdown(records: list[dict[str, Any]]) -> str:
    """reports/ablations.md over seeds: per study its table (mean ± std, n) and the papers' orderings."""
    lines = ["# Ablations over seeds", "", f"Orderings decided by {TEST}.", ""]
    for record in records:
        lines += seeded_section(record)
    return "\n".join(lines).rstrip() + "\n"


def seeded_section(record: dict[str, Any]) -> list[str]:
    """One seeded study's section: its table (mean ± std, n) and the papers' orderings."""
    return [f"## {record['title']} ({record['paper_table']})", "",
            f"{record['seeds']} seeds (`{SEED_KEY}`), budget `{record['budget']}`.", "", record["caption"], "",
            markdown_table(seeded_table(record)), "", *ordering_lines(record), ""]
