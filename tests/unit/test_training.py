"""The training loop: schedule, loss CSV, samples, checkpoints, and resume equal to an unbroken run."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.checkpoint import export_networks, load_exported, read_training_state
from pipeline.config import ScheduleConfig
from pipeline.sampler import (BatchSampler, SamplerSpec, domain_arrays, fixed_batch, placed_sampler, store_bytes,
                              store_placement)
from pipeline.models import METHODS, Batch, build_model
from pipeline.tracking import NullTracker
from pipeline.training import LoopSettings, fit, linear_decay, sample_grid
from tests.conftest import tiny_params

CPU = torch.device("cpu")


def make_sampler(curated: Path, params, method: str) -> BatchSampler:
    a, b = domain_arrays(curated, "train")
    spec = SamplerSpec(params.image_size, params.train.load_size, params.schedule(method).batch_size,
                       params.train.flip, params.seed, paired=METHODS[method].paired)
    return BatchSampler(a, b, spec, CPU)


class Interrupt(Exception):
    pass


class StopAt(NullTracker):
    """Dies when step `at` is logged, i.e. after step `at` ran but before its checkpoint."""

    def __init__(self, at: int):
        self.at = at

    def log_metrics(self, metrics, step):
        if step == self.at:
            raise Interrupt


def run(method: str, curated: Path, out: Path, tracker=None):
    params = tiny_params()
    torch.manual_seed(params.seed)
    model = build_model(method, params, CPU, seed=params.seed)
    config = {"method": method, "params": dataclasses.asdict(params)}
    result = fit(model, make_sampler(curated, params, method), params.schedule(method),
                 LoopSettings(1, 3, 2, progress=False), tracker or NullTracker(), config=config,
                 state_dir=out / "state", losses_csv=out / "losses.csv", samples_dir=out / "samples",
                 sample_batch=fixed_batch(curated, "val", 2, CPU))
    return model, result


def test_linear_decay_matches_the_cyclegan_schedule():
    f = linear_decay(ScheduleConfig(iters=4, iters_decay=3, batch_size=1))
    assert [f(t) for t in range(8)] == pytest.approx([1, 1, 1, 1, 1, 0.75, 0.5, 0.25])


@pytest.mark.parametrize("method", METHODS)
def test_resume_after_interruption_equals_an_unbroken_run(method, tiny_curated, tmp_path):
    unbroken, _ = run(method, tiny_curated, tmp_path / "a")
    with pytest.raises(Interrupt):
        run(method, tiny_curated, tmp_path / "b", tracker=StopAt(5))
    interrupted = read_training_state(tmp_path / "b" / "state" / "last.pt")
    assert interrupted.step == 4 and interrupted.seconds > 0
    resumed, result = run(method, tiny_curated, tmp_path / "b")
    assert result.resumed_from == 4 and result.steps == 6
    # time and speed are the whole run's, both sessions, not the two steps after the resume
    assert result.seconds > interrupted.seconds
    assert result.images_per_second == pytest.approx(6 * tiny_params().schedule(method).batch_size / result.seconds)
    for name, net in unbroken.networks().items():
        other = resumed.networks()[name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(value, other[key]), f"{method}: {name}.{key} differs after resume"
    rows = list(csv.DictReader((tmp_path / "b" / "losses.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]  # no duplicate rows after the resume
    assert (tmp_path / "b" / "samples" / "step_000006.png").exists()


def test_changed_params_do_not_resume(tiny_curated, tmp_path):
    run("pix2pix", tiny_curated, tmp_path)
    params = tiny_params(lambda_L1=50.0)
    model = build_model("pix2pix", params, CPU, seed=0)
    result = fit(model, make_sampler(tiny_curated, params, "pix2pix"), params.schedule("pix2pix"),
                 LoopSettings(1, 3, 2, progress=False), NullTracker(),
                 config={"method": "pix2pix", "params": dataclasses.asdict(params)}, state_dir=tmp_path / "state",
                 losses_csv=tmp_path / "losses.csv", samples_dir=tmp_path / "samples",
                 sample_batch=fixed_batch(tiny_curated, "val", 2, CPU))
    assert result.resumed_from == 0


def test_loss_csv_starts_at_the_first_step(tiny_curated, tmp_path):
    """Step 1 is logged besides every log_every-th step and the last, so a curve shows the untrained losses."""
    params = tiny_params()
    model = build_model("pix2pix", params, CPU, seed=params.seed)
    fit(model, make_sampler(tiny_curated, params, "pix2pix"), params.schedule("pix2pix"),
        LoopSettings(4, 100, 100, progress=False), NullTracker(),
        config={"method": "pix2pix", "params": dataclasses.asdict(params)}, state_dir=tmp_path / "state",
        losses_csv=tmp_path / "losses.csv", samples_dir=tmp_path / "samples",
        sample_batch=fixed_batch(tiny_curated, "val", 2, CPU))
    steps = [int(r["step"]) for r in csv.DictReader((tmp_path / "losses.csv").open())]
    total = params.schedule("pix2pix").total_steps
    assert steps == sorted({1, *range(4, total + 1, 4), total})


def test_export_round_trip_gives_identical_outputs(tiny_curated, tmp_path):
    model, _ = run("cyclegan", tiny_curated, tmp_path)
    export_networks(tmp_path / "export", model.exported_networks(), {"method": "cyclegan"})
    config, weights = load_exported(tmp_path / "export")
    assert config == {"method": "cyclegan"} and set(weights) == {"G_A", "G_B"}
    rebuilt = build_model("cyclegan", tiny_params(), CPU, seed=123)  # other init, then load
    for name, net in rebuilt.exported_networks().items():
        net.load_state_dict(weights[name])
    x = fixed_batch(tiny_curated, "test", 2, CPU).a
    assert torch.equal(model.translate(x), rebuilt.translate(x))


def test_sampler_is_a_pure_function_of_the_step(tiny_curated):
    params = tiny_params()
    s1, s2 = make_sampler(tiny_curated, params, "pix2pix"), make_sampler(tiny_curated, params, "pix2pix")
    assert torch.equal(s1.batch(7).a, s2.batch(7).a) and torch.equal(s1.batch(7).b, s2.batch(7).b)
    assert not torch.equal(s1.batch(7).a, s1.batch(8).a)
    batch = s1.batch(0)
    assert batch.a.shape == (2, 3, 32, 32) and batch.a.min() >= -1 and batch.a.max() <= 1


def test_the_store_goes_to_the_gpu_only_when_it_fits_the_stated_share():
    gpu, gib = torch.device("cuda"), 2**30
    assert store_placement(10 * gib, CPU, 0.25) == (CPU, None)  # a CPU run keeps the store where it is
    assert store_placement(20 * gib, gpu, 0.25, total_bytes=80 * gib) == (gpu, None)
    where, reason = store_placement(21 * gib, gpu, 0.25, total_bytes=80 * gib)
    assert where == CPU and "21.00 GiB" in reason and "train.device_data_fraction 0.25" in reason
    assert store_bytes(1000, 286) == 1000 * 3 * 286 * 286


def test_a_store_kept_on_the_host_gives_the_same_batches_on_the_device(tiny_curated, caplog):
    params = tiny_params()
    a, b = domain_arrays(tiny_curated, "train")
    spec = SamplerSpec(params.image_size, params.train.load_size, 2, True, 0, paired=True)
    with caplog.at_level("WARNING", logger="pipeline.sampler"):
        host = placed_sampler(a, b, spec, torch.device("cuda"), 0.25, total_bytes=1)
    assert host.store_device == CPU and host.a.device == CPU
    assert sum("stays in host memory" in r.getMessage() for r in caplog.records) == 1
    # the copy to the training device ("meta" stands in for a GPU here) comes after the crops
    on_meta = BatchSampler(a, b, spec, torch.device("meta"), store_device=CPU).batch(3)
    on_cpu = BatchSampler(a, b, spec, CPU).batch(3)
    assert on_meta.a.device.type == "meta" and on_meta.a.shape == on_cpu.a.shape
    assert on_meta.a.dtype == on_cpu.a.dtype == torch.float32
    assert torch.equal(BatchSampler(a, b, spec, CPU, store_device=CPU).batch(3).b, on_cpu.b)


def test_unpaired_sampler_draws_domains_from_disjoint_halves(tiny_curated):
    params = tiny_params()
    sampler = make_sampler(tiny_curated, params, "cyclegan")
    assert set(sampler.index_a.tolist()).isdisjoint(sampler.index_b.tolist())


def test_sample_grid_feeds_a_b_to_a_pix2pix_its_own_domain(tmp_path):
    """Issue 12: pix2pix trained b_to_a maps B -> A, so its grid rows are B | G(B) | A, never G(A)."""
    torch.manual_seed(0)
    params = tiny_params()
    params = dataclasses.replace(params, pix2pix=dataclasses.replace(params.pix2pix, direction="b_to_a"))
    model = build_model("pix2pix", params, CPU, seed=0)
    g = torch.Generator().manual_seed(0)
    batch = Batch(a=torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, b=torch.rand(2, 3, 32, 32, generator=g) * 2 - 1)
    seen = []
    model.generator.register_forward_hook(lambda net, inputs, output: seen.append(inputs[0]))
    sample_grid(model, batch, tmp_path / "grid.png")
    assert torch.equal(torch.cat(seen), batch.b)  # one image at a time: dropout at test, as the paper
    grid = torch.from_numpy(np.array(Image.open(tmp_path / "grid.png"))).permute(2, 0, 1).float() / 255
    first_cell, last_cell = grid[:, 2:34, 2:34], grid[:, 2:34, 70:102]  # nrow=3, padding=2: input | output | target
    assert torch.allclose(first_cell, batch.b[0].add(1).div(2), atol=1 / 255)
    assert torch.allclose(last_cell, batch.a[0].add(1).div(2), atol=1 / 255)
