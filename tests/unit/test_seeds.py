"""Error bars over seeds: the commands that queue each row's seeds, the aggregation (mean, std, n)
on fixture metrics, Welch's verdict on the papers' orderings, and the tables that print them."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pipeline.ablations import PRESETS
from pipeline.config import Params
from pipeline.report_sections import ablation_section
from pipeline.seeds import (CLAIMS, aggregate, seed_exp_name, seeded_commands, seeded_json, seeded_markdown,
                            seeded_table, welch)

STUDY = PRESETS["pix2pix_loss"]
# per-pixel accuracy of each row at seeds 0, 1, 2 (None: that seed's experiment failed)
PIXEL = {"L1": [0.60, 0.62, 0.58], "GAN": [0.50, 0.52, 0.51], "cGAN": [0.40, 0.41, None],
         "L1+GAN": [0.80, 0.76, 0.83], "L1+cGAN": [0.81, 0.79, 0.82]}


def fixture_experiments() -> list[dict]:
    """As pipeline.ablations.parse_exp_show returns them, one per row and seed."""
    exps = []
    for label, values in PIXEL.items():
        for seed, value in enumerate(values):
            ok = value is not None
            exps.append({"name": seed_exp_name(STUDY, label, "default", seed), "rev": f"r{seed}", "baseline": "abc",
                         "timestamp": f"2026-12-0{seed + 1}", "status": "success" if ok else "failed",
                         "data_hash": None, "run_ids": {STUDY.metrics_file: f"run-{label}-{seed}"} if ok else {},
                         "params": {"pix2pix.iters": 700, "pix2pix.iters_decay": 700, "seed": 0, "image_size": 64},
                         "metrics": {STUDY.metrics_file: {"pixel_acc": value, "class_acc": value / 2,
                                                          "class_iou": value / 3, "l1": 0.1}} if ok else {}})
    return exps


def test_aggregate_gives_mean_sample_std_and_n():
    out = aggregate([0.6, 0.62, 0.58, None])
    assert out["n"] == 3 and out["mean"] == pytest.approx(0.6)
    assert out["std"] == pytest.approx(np.std([0.6, 0.62, 0.58], ddof=1))
    assert aggregate([0.5])["std"] is None and aggregate([])["mean"] is None


def test_seed_aggregation_and_the_papers_orderings_on_fixture_metrics():
    record = seeded_json(STUDY, fixture_experiments(), Params(), 3)
    rows = {r["label"]: r for r in record["rows"]}
    l1 = rows["L1"]["scores"]["pixel_acc"]
    assert (l1["mean"], l1["n"]) == (pytest.approx(0.60), 3) and l1["std"] == pytest.approx(0.02)
    assert rows["cGAN"]["seeds"] == [0, 1] and rows["cGAN"]["scores"]["pixel_acc"]["n"] == 2  # seed 2 failed
    assert rows["L1"]["mlflow_run_ids"] == ["run-L1-0", "run-L1-1", "run-L1-2"]
    verdicts = {(o["better"], o["worse"]): o for o in record["orderings"]}
    assert len(verdicts) == len(CLAIMS["pix2pix_loss"])
    assert verdicts[("L1+cGAN", "L1")]["verdict"] == "holds"
    assert verdicts[("L1+cGAN", "L1+GAN")]["verdict"] == "within noise"
    assert verdicts[("cGAN", "GAN")]["verdict"] == "reversed"
    # Welch's p-value, written out: t over the unpooled standard error, Welch-Satterthwaite df
    a, b = np.array(PIXEL["L1+cGAN"]), np.array(PIXEL["L1"])
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    assert verdicts[("L1+cGAN", "L1")]["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)
    assert welch([0.5], [0.4, 0.41]) == ("too few seeds", None)

    table = seeded_table(record).set_index("Loss")
    assert table.loc["L1", "Per-pixel acc."] == "0.600 ± 0.020" and table.loc["cGAN", "n"] == "2"
    assert table.loc["L1", "DVC experiments"] == "pix2pix_loss-l1-seed*"
    text = seeded_markdown([record])
    assert "Welch's t-test" in text and "- cGAN above GAN (pixel_acc, pix2pix Table 1): **reversed**" in text
    section = "\n".join(ablation_section({"pix2pix_loss": record}, Params(), None, "reports/ablations.json", None,
                                         {"abc"}))
    assert "0.807 ± 0.015" in section and "3 training seeds per row" in section and "**holds**" in section


def test_seeded_commands_queue_each_row_and_seed_for_its_own_evaluate_stage():
    commands = seeded_commands(STUDY, Params(), 2, budget="small")
    assert commands[-1] == ["dvc", "queue", "start", "-j", "1"] and len(commands) == 2 * len(STUDY.rows) + 1
    first, second = commands[0], commands[1]
    assert first[first.index("-n") + 1] == "pix2pix_loss-small-l1-seed0" and first[-1] == "evaluate@pix2pix"
    assert "train.seed=null" in first and "train.seed=1" in second  # seed 0 is the run made without seeds
    assert "pix2pix.iters=250" in first
    methods = seeded_commands(PRESETS["default_methods"], Params(), 1, queue=False)
    assert [c[-1] for c in methods] == ["evaluate@pix2pix", "evaluate@cyclegan", "evaluate@bicyclegan"]
    with pytest.raises(ValueError, match="seeds"):
        seeded_commands(STUDY, Params(), 0)


def test_a_seeds_mlflow_run_is_named_for_its_study_row_and_seed():
    from pipeline.ablations import run_labels

    name, tags = run_labels("pix2pix", Params(), "pix2pix_loss-l1-seed1")
    assert name == "pix2pix_loss: L1 (seed 1)" and tags["ablation.pix2pix_loss"] == "L1"
    name, tags = run_labels("cyclegan", Params(), "default_methods-cyclegan-seed2")
    assert name == "default_methods: CycleGAN (seed 2)"


def test_a_report_keeps_the_studies_it_did_not_find_and_replaces_those_it_did(tmp_path):
    from pipeline.ablations import as_json
    from pipeline.experiments import merged_records, records_markdown

    seeded = seeded_json(STUDY, fixture_experiments(), Params(), 3)
    elsewhere = as_json(PRESETS["cyclegan_table4"], [])  # every row "not run" here
    elsewhere["rows"][0]["status"] = "success"  # as a study run on another machine left it
    earlier = {"cyclegan_table4": elsewhere, "pix2pix_loss": as_json(STUDY, [])}
    merged = merged_records(earlier, [seeded, as_json(PRESETS["cyclegan_table4"], [])])
    assert list(merged) == ["cyclegan_table4", "pix2pix_loss"]
    assert merged["cyclegan_table4"] is elsewhere  # nothing found here: the earlier table stays
    assert merged["pix2pix_loss"] is seeded
    fresh = merged_records({}, [as_json(PRESETS["cyclegan_table4"], [])])
    assert list(fresh) == ["cyclegan_table4"]  # a study without a record gets its "not run" table
    text = records_markdown(merged)
    assert "## CycleGAN loss ablation" in text and "0.600 ± 0.020" in text and "**reversed**" in text


def test_a_seeded_studys_runs_are_one_per_seed():
    from pipeline.ablations import as_json
    from pipeline.report_sections import study_run_ids

    seeded = seeded_json(STUDY, fixture_experiments(), Params(), 3)
    assert study_run_ids(seeded)[:3] == ["run-L1-0", "run-L1-1", "run-L1-2"]
    one_seed = as_json(STUDY, [])
    one_seed["rows"][0]["mlflow_run_id"] = "run-a"
    assert study_run_ids(one_seed) == ["run-a"]
