"""The benchmark's cases are the papers' networks, its records carry every field, and its FLOPs and
MFU are computed from torch's counter and the device table (speed itself is never asserted)."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

from pipeline.bench import CASES, bench_case, count_flops, peak_flops, reference_params, select_cases
from pipeline.config import Params
from pipeline.models import METHODS
from pipeline.sampler import Batch
from stages.__main__ import app
from tests.conftest import tiny_params

CPU = torch.device("cpu")
FIELDS = {"tag", "method", "image_size", "batch_size", "step_median_s", "imgs_per_s_unsynced_wall", "wall_data",
          "peak_mem_mb", "flops_per_step", "mfu", "device", "torch", "switches"}


def test_cases_are_the_papers_networks():
    assert set(CASES) == {"cyclegan_bs1", "cyclegan_bs4", "cyclegan_bs8", "pix2pix_bs1", "pix2pix_bs4", "pix2pix_bs8",
                          "bicyclegan_bs2", "bicyclegan_bs8", "cpu_cyclegan_r6_64", "cpu_pix2pix_u128_128",
                          "cpu_bicyclegan_u128_128_bs2"}
    base = Params()
    c = CASES["cyclegan_bs8"].params(base)
    g = c.cyclegan
    assert (c.image_size, c.train.load_size, g.generator, g.ngf, g.ndf) == (256, 286, "resnet_9blocks", 64, 64)
    assert (g.norm, g.gan_mode, g.pool_size, c.lambda_idt, g.batch_size) == ("instance", "lsgan", 50, 0.5, 8)
    p = CASES["pix2pix_bs4"].params(base)
    assert (p.pix2pix.generator, p.pix2pix.norm, p.pix2pix.gan_mode, p.pix2pix.n_layers_D, p.pix2pix.batch_size) == (
        "unet_256", "batch", "vanilla", 3, 4)
    b = CASES["bicyclegan_bs2"].params(base)
    assert (b.bicyclegan.generator, b.bicyclegan.encoder, b.bicyclegan.where_add, b.bicyclegan.num_D) == (
        "unet_256", "resnet_256", "all", 2)
    # the reference's resampling, whatever the defaults here (bicyclegan.upsample is nearest)
    assert b.bicyclegan.upsample == "basic" and (g.upsample, g.antialias) == ("basic", False)
    # and the papers' 70x70 discriminators (bicyclegan.n_layers_D is 2 here), whatever a run sets
    assert (b.bicyclegan.n_layers_D, g.n_layers_D) == (3, 3)
    shallow = dataclasses.replace(base, pix2pix=dataclasses.replace(base.pix2pix, n_layers_D=1))
    assert CASES["pix2pix_bs1"].params(shallow).pix2pix.n_layers_D == 3
    r6 = CASES["cpu_cyclegan_r6_64"].params(base)
    assert (r6.image_size, r6.cyclegan.generator, r6.cyclegan.batch_size) == (64, "resnet_6blocks", 1)
    u = CASES["cpu_bicyclegan_u128_128_bs2"].params(base)
    assert (u.image_size, u.bicyclegan.generator, u.bicyclegan.encoder, u.bicyclegan.batch_size) == (
        128, "unet_128", "resnet_128", 2)


def test_flops_scale_with_the_batch():
    params = tiny_params()
    one, two = (dataclasses.replace(params, pix2pix=dataclasses.replace(params.pix2pix, batch_size=n)) for n in (1, 2))
    batch = lambda n: Batch(a=torch.zeros(n, 3, 32, 32), b=torch.zeros(n, 3, 32, 32))  # noqa: E731
    f1, f2 = count_flops(one, "pix2pix", CPU, batch(1)), count_flops(two, "pix2pix", CPU, batch(2))
    assert f1 > 0 and abs(f2 / f1 - 2) < 0.05


def test_a_case_over_a_curated_store_has_every_field(tiny_curated):
    r = bench_case(tiny_params(), "cyclegan", CPU, warmup=1, steps=2, curated=tiny_curated, tag="t")
    assert FIELDS <= set(r) and r["tag"] == "t" and r["wall_data"] == str(tiny_curated)
    assert len(r["step_times_s"]) == 2 and r["step_median_s"] > 0 and r["imgs_per_s_unsynced_wall"] > 0
    assert r["mfu"] is None and r["flops_per_step"] > 0  # no CPU peak in the table
    assert r["switches"]["in_effect"] == {"bf16": False, "channels_last": False, "fused_adam": True, "compile": False}
    assert r["switches"]["amp"] == "bf16" and not r["switches"]["cpu_amp"]  # asked for, on CUDA only
    fast = bench_case(dataclasses.replace(tiny_params(), train=dataclasses.replace(
        tiny_params().train, cpu_amp=True)), "cyclegan", CPU, warmup=0, steps=1)
    assert fast["switches"]["in_effect"]["bf16"] and fast["wall_data"].startswith("random uint8")


def test_peak_table_and_mfu(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert peak_flops(cuda, "bf16") == 989e12 and peak_flops(cuda, "fp32") == 67e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert peak_flops(cuda, "bf16") == 756e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    assert peak_flops(cuda, "bf16") is None and peak_flops(CPU, "fp32") is None


def test_reference_params_switch_everything_off():
    t = reference_params(dataclasses.replace(Params(), train=dataclasses.replace(Params().train, compile="nets"))).train
    assert (t.amp, t.channels_last, t.fused_adam, t.compile) == ("none", False, False, "none")


def test_the_command_writes_one_json_line_per_case(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(dataclasses.asdict(tiny_params())))
    out = tmp_path / "bench.jsonl"
    result = CliRunner().invoke(app, ["bench", "--params", str(params), "--cases", "default",
                                      "--methods", "pix2pix,cut",
                                      "--steps", "1", "--warmup", "0", "--no-generator", "--reference",
                                      "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["tag"] for r in records] == ["default_pix2pix:fp32_eager", "default_pix2pix",
                                           "default_cut:fp32_eager", "default_cut"]
    assert all(FIELDS <= set(r) for r in records)
    assert "default_cut:fp32_eager" in result.output and "GFLOP/step" in result.output
    bad = CliRunner().invoke(app, ["bench", "--params", str(params), "--cases", "nope", "--no-generator"])
    assert bad.exit_code == 1


def test_case_selection():
    p = Params()
    tags = lambda *a: [t for t, _, _ in select_cases(*a)]  # noqa: E731
    assert tags("auto", "all", p, CPU) == [f"default_{m}" for m in METHODS] + [t for t in CASES if t.startswith("cpu_")]
    assert tags("auto", "pix2pix", p, torch.device("cuda")) == [
        "default_pix2pix", "pix2pix_bs1", "pix2pix_bs4", "pix2pix_bs8"]
    assert tags("cyclegan_bs8,default", "cyclegan", p, CPU) == ["cyclegan_bs8", "default_cyclegan"]
    with pytest.raises(ValueError, match="unknown case 'nope'"):
        select_cases("nope", "all", p, CPU)
