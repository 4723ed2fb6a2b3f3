"""The method table is the one list of methods: every stage, the report, the ablations, bench and
dvc.yaml handle every entry, and each entry runs train -> translate -> evaluate."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.ablations import METHOD_WEIGHTS, PRESETS
from pipeline.applicability import method_not_applicable, write_not_applicable
from pipeline.bench import paper_params
from pipeline.config import Params
from pipeline.evaluation import evaluate_method
from pipeline.inference import translate_method
from pipeline.io import read_json_object, record_path
from pipeline.models import METHODS, build_model, method_spec
from pipeline.report import METHOD_NAMES
from pipeline.training import train_method
from pipeline.translated import DIRECTIONS, SAMPLES
from tests.conftest import tiny_params

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
PARAM_FIELDS = {f.name for f in dataclasses.fields(Params)}


@pytest.fixture(scope="module")
def dvc() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_ablation_study_is_of_a_method_of_the_table():
    assert {study.method for study in PRESETS.values()} <= set(METHODS)


def test_unknown_methods_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown method 'munit'.*pix2pix"):
        method_spec("munit")


@pytest.mark.parametrize("name", METHODS)
def test_entry_is_consistent_with_params_report_ablations_and_bench(name):
    spec = METHODS[name]
    assert spec.name == name and spec.section in PARAM_FIELDS
    assert set(spec.loss_weights) <= PARAM_FIELDS
    assert METHOD_NAMES[name] == spec.title and METHOD_WEIGHTS[name] == spec.loss_weights
    assert type(spec.config(paper_params(Params(), 256))) is type(spec.config(Params()))
    unpaired = {"dataset": "d", "domain_names": {}, "domain_a": "photos", "paired": False}
    assert (method_not_applicable(unpaired, name, spec.paired) is not None) == spec.paired
    assert spec.n_samples(Params()) >= 0 and (spec.n_samples(Params()) > 0) == (SAMPLES in spec.outputs)


@pytest.mark.parametrize("name", METHODS)
def test_dvc_yaml_runs_every_stage_of_every_method(name, dvc):
    spec = METHODS[name]
    train = dvc["train"]["foreach"][name]
    # the weights it reads, and no other method's; seed fills the slots of a method with none
    assert set(train.values()) == set(spec.loss_weights or ("seed",))
    assert name in dvc["translate"]["foreach"] and name in dvc["evaluate"]["foreach"]
    samples = dvc["translate"]["foreach"][name]["samples"]
    assert samples == "seed" if spec.n_samples(Params()) == 0 else samples.startswith(f"{spec.section}.")
    deps = set(dvc["report"]["deps"])
    assert {f"reports/metrics/{name}.json", f"reports/metrics/per_class/{name}.json", f"reports/losses/{name}.csv",
            f"data/translated/{name}", f"data/models/{name}"} <= deps


@pytest.mark.parametrize("name", METHODS)
def test_train_translate_and_evaluate_handle_every_method(name, tiny_curated, tmp_path):
    spec = METHODS[name]
    params = tiny_params()
    params = dataclasses.replace(params, **{spec.section: dataclasses.replace(spec.config(params), iters=1,
                                                                             iters_decay=1)})
    models, translated = tmp_path / "model", tmp_path / "translated"
    result = train_method(name, tiny_curated, out_dir=models, state_dir=tmp_path / "state",
                          losses_csv=tmp_path / "losses.csv", samples_dir=tmp_path / "samples", params=params,
                          progress=False)
    assert result is not None and result.steps == 2
    counts = translate_method(name, tiny_curated, models, translated, split="test", params=params, device=CPU)
    assert counts and {kind.split("/")[0] for kind in counts} <= set(spec.outputs)
    model = build_model(name, params, CPU, seed=0)
    assert model.directions() and set(model.directions()) <= set(DIRECTIONS)
    write_not_applicable(tmp_path / "segmenter", "no segmenter in this test")
    metrics = evaluate_method(name, tiny_curated, translated, segmenter_dir=tmp_path / "segmenter", model_dir=models,
                              out=tmp_path / "metrics.json", params=params)
    assert read_json_object(record_path(tmp_path / "metrics.json"))["dataset"] == metrics["dataset"]
