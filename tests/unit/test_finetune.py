"""Fine-tuning from a model folder (train.init_from): the folder's networks start the training, the
others fresh; a two-step fine-tune runs; a resumed fine-tune is exact and reads the folder no more."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from pipeline.models import build_model
from pipeline.published.importer import import_checkpoint
from pipeline.tracking import NullTracker
from pipeline.sampler import fixed_batch
from pipeline.training import LoopSettings, _start_from, fit, train_method
from tests.conftest import tiny_params
from tests.unit.authors_layout import authors_files
from tests.unit.test_import import _tiny
from tests.unit.test_training import Interrupt, StopAt, make_sampler

CPU = torch.device("cpu")


@pytest.fixture
def released_g_a(tmp_path):
    """A CycleGAN release as the authors publish it: one generator (G_A) and no discriminators,
    imported with the architecture of tiny_params' cyclegan section."""
    params = tiny_params()
    options = _tiny("cycle_gan", ngf=params.cyclegan.ngf, ndf=params.cyclegan.ndf)
    source = build_model("cyclegan", params, CPU, seed=7)
    import_checkpoint(options, authors_files(source, "cyclegan", tmp_path / "pth", names=("G_A",)), tmp_path / "release")
    return source, tmp_path / "release"


def _params(folder):
    params = tiny_params()
    return dataclasses.replace(params, train=dataclasses.replace(params.train, init_from=str(folder)))


def test_networks_in_the_folder_start_the_training_the_others_fresh(released_g_a, tmp_path):
    source, folder = released_g_a
    params = _params(folder)
    model = build_model("cyclegan", params, CPU, seed=params.seed)
    config = {"method": "cyclegan", "params": dataclasses.asdict(params)}
    record = _start_from(model, "cyclegan", folder, params, tmp_path / "state", config)
    assert record["fresh"] == ["D_A", "D_B", "G_B"] and set(record["sha256"]) == {"G_A"}
    fresh = build_model("cyclegan", params, CPU, seed=params.seed)
    for name, net in model.networks().items():
        expected = (source if name == "G_A" else fresh).networks()[name].state_dict()
        assert all(torch.equal(v, expected[k]) for k, v in net.state_dict().items()), name


def test_two_step_fine_tune_records_where_it_started(released_g_a, tiny_curated, tmp_path):
    _, folder = released_g_a
    params = _params(folder)
    params = dataclasses.replace(params, cyclegan=dataclasses.replace(params.cyclegan, iters=1, iters_decay=1))
    out = tmp_path / "model"
    result = train_method("cyclegan", tiny_curated, out_dir=out, state_dir=tmp_path / "state",
                          losses_csv=tmp_path / "losses.csv", samples_dir=tmp_path / "samples", params=params,
                          progress=False)
    assert result.steps == 2
    config = json.loads((out / "config.json").read_text())
    assert config["init_from"]["path"] == str(folder) and config["init_from"]["fresh"] == ["D_A", "D_B", "G_B"]
    assert config["params"]["train"]["init_from"] == str(folder)


def test_a_folder_of_another_architecture_is_refused_naming_the_params(released_g_a, tmp_path):
    _, folder = released_g_a
    params = _params(folder)
    params = dataclasses.replace(params, cyclegan=dataclasses.replace(params.cyclegan, ngf=8))
    model = build_model("cyclegan", params, CPU, seed=0)
    with pytest.raises(ValueError, match="cyclegan.ngf: folder 4, params 8"):
        _start_from(model, "cyclegan", folder, params, tmp_path / "state", {})
    with pytest.raises(ValueError, match="holds a cyclegan model"):
        _start_from(build_model("pix2pix", params, CPU, seed=0), "pix2pix", folder, params, tmp_path / "s", {})


def _fine_tune(curated, folder, out, tracker=None):
    params = _params(folder)
    torch.manual_seed(params.seed)
    model = build_model("cyclegan", params, CPU, seed=params.seed)
    config = {"method": "cyclegan", "params": dataclasses.asdict(params)}
    config["init_from"] = _start_from(model, "cyclegan", folder, params, out / "state", config)
    fit(model, make_sampler(curated, params, "cyclegan"), params.schedule("cyclegan"),
        LoopSettings(1, 3, 2, progress=False), tracker or NullTracker(), config=config, state_dir=out / "state",
        losses_csv=out / "losses.csv", samples_dir=out / "samples", sample_batch=fixed_batch(curated, "val", 2, CPU))
    return model


def test_resumed_fine_tune_equals_an_unbroken_one_and_does_not_reimport(released_g_a, tiny_curated, tmp_path,
                                                                        monkeypatch):
    _, folder = released_g_a
    unbroken = _fine_tune(tiny_curated, folder, tmp_path / "a")
    with pytest.raises(Interrupt):
        _fine_tune(tiny_curated, folder, tmp_path / "b", tracker=StopAt(5))

    def no_reimport(*args, **kwargs):
        raise AssertionError("a resumed fine-tune read the init_from folder's weights again")

    monkeypatch.setattr("pipeline.training.load_init", no_reimport)
    resumed = _fine_tune(tiny_curated, folder, tmp_path / "b")
    for name, net in unbroken.networks().items():
        other = resumed.networks()[name].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in net.state_dict().items()), name


def test_pretrained_model_stands_in_for_training_and_translates(tiny_curated, tmp_path):
    from pipeline.inference import translate_method

    params = tiny_params()
    options = _tiny("cycle_gan", ngf=params.cyclegan.ngf, ndf=params.cyclegan.ndf)
    source = build_model("cyclegan", params, CPU, seed=7)
    import_checkpoint(options, authors_files(source, "cyclegan", tmp_path / "pth"), tmp_path / "release")
    params = dataclasses.replace(params, cyclegan=dataclasses.replace(params.cyclegan,
                                                                      pretrained=str(tmp_path / "release")))
    out = tmp_path / "model"
    assert train_method("cyclegan", tiny_curated, out_dir=out, state_dir=tmp_path / "state",
                        losses_csv=tmp_path / "losses.csv", samples_dir=tmp_path / "samples", params=params,
                        progress=False) is None
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 0 and summary["pretrained_from"] == str(tmp_path / "release")
    assert summary["imported_from"]["G_A"].endswith("latest_net_G_A.pth")
    assert (tmp_path / "losses.csv").read_text() == "step,lr,images_per_s\n"
    counts = translate_method("cyclegan", tiny_curated, out, tmp_path / "translated", split="test", params=params,
                              device=CPU)
    assert counts["fake_b"] > 0 and counts["fake_a"] > 0
    with pytest.raises(ValueError, match="holds a cyclegan model, not pix2pix"):
        bad = dataclasses.replace(params, pix2pix=dataclasses.replace(params.pix2pix,
                                                                      pretrained=str(tmp_path / "release")))
        train_method("pix2pix", tiny_curated, out_dir=tmp_path / "p", state_dir=tmp_path / "ps",
                     losses_csv=tmp_path / "pl.csv", samples_dir=tmp_path / "psa", params=bad, progress=False)
