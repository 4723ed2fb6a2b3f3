"""The fast path against fp32 eager: every CPU switch on tiny nets, the tolerances catching a real
change, the command's JSON, and the guards around the switches."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

from pipeline import parity
from pipeline.models import build_model
from pipeline.models.base import make_adam
from pipeline.parity import SWITCHES, Switch, parity_table, run_parity
from stages.__main__ import app
from tests.conftest import tiny_params

CPU = torch.device("cpu")


def _fast(params, **train):
    return dataclasses.replace(params, train=dataclasses.replace(params.train, **train))


def _with_dropout():
    """Tiny pix2pix at 64 px: unet_64 has a dropout level (unet_32 has none), whose masks must not
    depend on the memory format or on compilation."""
    p = tiny_params()
    return dataclasses.replace(p, image_size=64, train=dataclasses.replace(p.train, load_size=68),
                               pix2pix=dataclasses.replace(p.pix2pix, generator="unet_64"))


def _variant(result: dict, *names: str) -> dict:
    return next(v for v in result["variants"] if v["switches"] == list(names))


def test_channels_last_and_bf16_keep_pix2pix_training():
    result = run_parity(_with_dropout(), "pix2pix", CPU, steps=4, switches=["channels_last", "bf16"])
    assert [v["switches"] for v in result["variants"]] == [["channels_last"], ["bf16"], ["channels_last", "bf16"]]
    assert all(v["passed"] for v in result["variants"]), parity_table(result)
    # fp32 reordering agrees to float32 rounding at step 0; bf16 visibly differs (it is really on)
    assert _variant(result, "channels_last")["step0_loss_rel_diff"] < 1e-5
    assert 1e-5 < _variant(result, "bf16")["step0_loss_rel_diff"] < SWITCHES["bf16"].step0_rtol
    for v in result["variants"]:
        assert len(v["per_step"]) == 4 and set(v["per_step"][0]) == set(result["reference"]["losses"][0])
        assert set(v["weights_rel_diff"]) == {"G", "D"} and set(v["outputs_rel_diff"]) == {"a_to_b"}
    assert set(result["floors"]) == {"fp32", "bf16"}
    assert "OUT OF TOLERANCE" not in parity_table(result)


def test_compiled_nets_keep_pix2pix_training():
    result = run_parity(_with_dropout(), "pix2pix", CPU, steps=2, switches=["compile"], combined=False)
    v = _variant(result, "compile")
    assert v["passed"], parity_table(result)
    assert v["step0_loss_rel_diff"] < 1e-5


def test_bf16_keeps_cyclegan_training():
    result = run_parity(tiny_params(), "cyclegan", CPU, steps=3, switches=["bf16"])
    v = _variant(result, "bf16")
    assert v["passed"], parity_table(result)
    assert 1e-5 < v["step0_loss_rel_diff"] and set(v["outputs_rel_diff"]) == {"a_to_b", "b_to_a"}


def test_a_switch_that_changes_training_is_out_of_tolerance(monkeypatch):
    # a planted change of the method: a 3x learning rate
    monkeypatch.setitem(parity.SWITCHES, "lr", Switch("lr", ("cpu",), "fp32", 1e-4, 1e-3, {"lr": 6e-4}))
    result = run_parity(tiny_params(), "pix2pix", CPU, steps=4, switches=["lr"])
    v = _variant(result, "lr")
    assert not v["passed"] and v["max_loss_rel_diff"] > v["loss_rtol"]
    assert "OUT OF TOLERANCE" in parity_table(result)


def test_the_command_writes_json_and_fails_on_cpu_channels_last_instance_norm(tmp_path, caplog, monkeypatch):
    # torch's CPU InstanceNorm2d backward with channels_last gradients is wrong: parity shows it
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(dataclasses.asdict(tiny_params())))
    out = tmp_path / "parity.json"
    result = CliRunner().invoke(app, ["parity", "cyclegan", "--params", str(params), "--steps", "3",
                                      "--switches", "channels_last", "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 1, result.output
    assert "OUT OF TOLERANCE" in result.output
    record = json.loads(out.read_text())
    assert record["method"] == "cyclegan" and record["device"] == "cpu" and record["torch"] == torch.__version__
    assert record["steps"] == 3 and record["threads"] == torch.get_num_threads()
    assert [v["passed"] for v in record["variants"]] == [False]

    monkeypatch.setitem(parity.SWITCHES, "gpu_only", Switch("gpu_only", ("cuda",), "fp32", 1e-4, 1e-3, {}))
    bad = CliRunner().invoke(app, ["parity", "pix2pix", "--params", str(params), "--switches", "gpu_only",
                                   "--device", "cpu"])
    assert bad.exit_code == 1 and "runs on cuda only" in caplog.text


def test_build_model_refuses_the_known_wrong_cpu_combination():
    params = _fast(tiny_params(), cpu_channels_last=True)
    for method in ("cyclegan", "cut", "fastcut"):
        with pytest.raises(ValueError, match="InstanceNorm2d"):
            build_model(method, params, CPU, seed=0)
    build_model("pix2pix", params, CPU, seed=0)  # batch norm: fine
    build_model("cyclegan", _fast(params, cpu_channels_last=False), CPU, seed=0)


def test_build_model_refuses_compile_of_anti_aliased_nets_on_the_cpu():
    params = _fast(tiny_params(), compile="nets")
    for method in ("cut", "fastcut"):
        with pytest.raises(ValueError, match="replication padding"):
            build_model(method, params, CPU, seed=0)
    build_model("cut", _fast(params, compile="none"), CPU, seed=0)


def test_compiled_nets_keep_their_state_dict_keys():
    plain = build_model("cyclegan", tiny_params(), CPU, seed=0)
    compiled = build_model("cyclegan", _fast(tiny_params(), compile="nets"), CPU, seed=0)
    for name, net in plain.networks().items():
        assert list(compiled.networks()[name].state_dict()) == list(net.state_dict())


def test_fused_adam_is_fused_on_the_cpu_and_keeps_training():
    net = torch.nn.Linear(2, 2)
    for fused in (True, False):
        opt = make_adam([net], dataclasses.replace(tiny_params().train, fused_adam=fused))
        assert bool(opt.defaults["fused"]) is fused and bool(opt.defaults["foreach"]) is not fused
    # BicycleGAN: four optimisers, E and G in one
    result = run_parity(tiny_params(), "bicyclegan", CPU, steps=3, switches=["fused_adam"], combined=False)
    v = _variant(result, "fused_adam")
    assert v["passed"], parity_table(result)
    # the first losses come before any update; the weights differ after it (the switch is really on)
    assert v["step0_loss_rel_diff"] < 1e-6 and max(v["weights_rel_diff"].values()) > 0


def test_torch_cpu_instance_norm_backward_is_still_wrong_with_channels_last_gradients():
    # why build_model refuses cpu_channels_last for instance norm: when this fails, torch has fixed
    # its kernel, and CPU_CHANNELS_LAST_INSTANCE_NORM's refusal can go
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 16, 16, generator=g, requires_grad=True)  # batch 1, as CycleGAN trains
    grad = torch.randn(1, 8, 16, 16, generator=g)
    norm = torch.nn.InstanceNorm2d(8)
    grads = []
    for layout in (torch.contiguous_format, torch.channels_last):
        x.grad = None
        norm(x).backward(grad.contiguous(memory_format=layout))
        grads.append(x.grad.clone())
    assert ((grads[1] - grads[0]).norm() / grads[0].norm()).item() > 0.1
