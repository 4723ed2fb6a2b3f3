"""Importing the authors' checkpoints: their key names, round trips to identical outputs, and errors
that name the keys; the BicycleGAN skip order that their weights need."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from pipeline.inference import load_model, translate_folder
from pipeline.models import build_model
from pipeline.nets import build_discriminator, build_encoder, build_generator, build_z_generator
from pipeline.nets.blocks import UnetSkipBlock
from pipeline.published.importer import AuthorsOptions, import_checkpoint, imported_params
from pipeline.published.keys import authors_keys
from pipeline.published.pth import CheckpointRefused, KeyMismatch, load_authors_file
from stages.__main__ import app
from tests.unit.authors_layout import REAL_KEYS, authors_files, authors_state_dict

CPU = torch.device("cpu")
BUILDERS = {"generator": build_generator, "z_generator": build_z_generator, "discriminator": build_discriminator,
            "encoder": build_encoder}


def _build(kind: str, name: str, kwargs: dict) -> nn.Module:
    kwargs = dict(kwargs)
    in_ch = kwargs.pop("in_ch", 3)
    if kind == "generator":
        return build_generator(name, in_ch, 3, ngf=64, **kwargs)
    if kind == "z_generator":
        return build_z_generator(name, in_ch, 3, nz=8, ngf=64, **kwargs)
    if kind == "encoder":
        return build_encoder(name, in_ch, nz=8, nef=64, **kwargs)
    return build_discriminator(name, in_ch, ndf=64, **kwargs)


@pytest.mark.parametrize("network", list(REAL_KEYS))
def test_mapping_gives_the_authors_real_key_names_and_shapes(network):
    (kind, name, kwargs), real, count = REAL_KEYS[network]
    net = _build(kind, name, kwargs)
    theirs = {authors_keys(net)[k]: tuple(v.shape) for k, v in net.state_dict().items()}
    assert len(theirs) == count
    for key, shape in real.items():
        assert key in theirs, f"{network}: the authors' {key} has no counterpart"
        assert theirs[key] == shape, f"{network}: {key} is {theirs[key]}, the authors' {shape}"


def _tiny(method: str, **extra) -> AuthorsOptions:
    sizes = dict(ngf=4, ndf=4, image_size=32)
    per_method = {"pix2pix": dict(netG="unet_32"), "cycle_gan": dict(netG="resnet_6blocks"),
                  "bicycle_gan": dict(netG="unet_32", netE="resnet_128", nef=4, netD="basic_128_multi"),
                  "cut": dict(netG="resnet_6blocks"), "fastcut": dict(netG="resnet_6blocks")}
    return AuthorsOptions(method, **(sizes | per_method[method] | extra))


def _source(options: AuthorsOptions, seed: int = 3):
    return build_model(options.ours, imported_params(options), CPU, seed=seed)


ROUND_TRIPS = [_tiny("pix2pix"), _tiny("pix2pix", netD="pixel", norm="instance"), _tiny("cycle_gan"),
               _tiny("bicycle_gan"), _tiny("bicycle_gan", where_add="input", netE="conv_128"), _tiny("cut"),
               _tiny("fastcut"), _tiny("cut", no_antialias=True, no_antialias_up=True)]


@pytest.mark.parametrize("options", ROUND_TRIPS, ids=lambda o: f"{o.method}-{o.netD}-{o.where_add}-{o.no_antialias}")
def test_round_trip_through_the_authors_layout_gives_identical_outputs(options, tmp_path):
    source = _source(options)
    files = authors_files(source, options.ours, tmp_path / "pth", prefix="module.")  # as DataParallel saves
    record = import_checkpoint(options, files, tmp_path / "model")
    assert record["fresh"] == [] and all(f["stripped_prefix"] == "module." for f in record["files"].values())
    loaded = load_model(tmp_path / "model", CPU)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for direction in source.directions():
        torch.manual_seed(1)
        expected = source.test_outputs(x, direction, x, seed=0, n_samples=2)
        torch.manual_seed(1)
        got = loaded.model.test_outputs(x, direction, x, seed=0, n_samples=2)
        assert expected.keys() == got.keys()
        for kind in expected:
            assert torch.equal(expected[kind], got[kind]), f"{options.method} {direction} {kind}"
    assert set(record["files"]) == set(source.networks())  # every network, the D's, E and netF too


def test_imported_model_translates_a_folder(tmp_path):
    from PIL import Image

    options = _tiny("cycle_gan")
    import_checkpoint(options, authors_files(_source(options), "cyclegan", tmp_path / "pth"), tmp_path / "model")
    (tmp_path / "in").mkdir()
    Image.new("RGB", (40, 24), (200, 30, 30)).save(tmp_path / "in" / "a.png")
    done, skipped = translate_folder(load_model(tmp_path / "model", CPU), tmp_path / "in", tmp_path / "out",
                                     direction="b_to_a", device=CPU, max_pixels=10**6)
    assert (done, skipped) == (1, []) and Image.open(tmp_path / "out" / "a.png").size == (40, 24)


def test_cyclegan_release_of_one_direction_translates_that_direction_only(tmp_path):
    options = _tiny("cycle_gan")
    files = authors_files(_source(options), "cyclegan", tmp_path / "pth", names=("G_A",))
    record = import_checkpoint(options, files, tmp_path / "model")
    assert record["fresh"] == ["D_A", "D_B", "G_B"] and record["directions"] == ["a_to_b"]
    loaded = load_model(tmp_path / "model", CPU)
    x = torch.zeros(1, 3, 32, 32)
    assert loaded.model.directions() == ("a_to_b",)
    assert loaded.model.translate(x, "a_to_b").shape == x.shape
    with pytest.raises(ValueError, match="a_to_b only, not b_to_a"):
        loaded.model.translate(x, "b_to_a")


def test_bicyclegan_input_unet_concatenates_up_then_skip_as_the_authors():
    """BicycleGAN's UnetBlock returns torch.cat([self.model(x), x]); pix2pix's [x, self.model(x)].
    The skip is the level's input after the in-place LeakyReLU, in both."""
    z_net = build_z_generator("unet_32", 3, 3, nz=2, ngf=4, where_add="input").eval()
    p2p_net = build_generator("unet_32", 3, 3, ngf=4, norm="instance").eval()
    for net, up_first in ((z_net, True), (p2p_net, False)):
        level = net.model.model[1]  # the second level: an inner one
        assert isinstance(level, UnetSkipBlock)
        seen = {}
        level.register_forward_hook(lambda m, args, out: seen.update(x=args[0], out=out))
        if up_first:
            net(torch.randn(1, 3, 32, 32), torch.randn(1, 2))
        else:
            net(torch.randn(1, 3, 32, 32))
        skip = F.leaky_relu(seen["x"], 0.2)
        channels = skip.shape[1]
        part = seen["out"][:, -channels:] if up_first else seen["out"][:, :channels]
        assert torch.equal(part, skip)


def test_old_instance_norm_statistics_are_dropped_and_batch_counters_filled(tmp_path):
    resnet = build_generator("resnet_6blocks", 3, 3, ngf=4, norm="instance")
    state = authors_state_dict(resnet)
    state |= {"model.2.running_mean": torch.zeros(4), "model.2.running_var": torch.ones(4)}  # PyTorch < 0.4
    torch.save(state, tmp_path / "g.pth")
    conversion = load_authors_file(build_generator("resnet_6blocks", 3, 3, ngf=4, norm="instance"), tmp_path / "g.pth")
    assert conversion.dropped == ["model.2.running_mean", "model.2.running_var"]
    unet = build_generator("unet_32", 3, 3, ngf=4, norm="batch")
    state = {k: v for k, v in authors_state_dict(unet).items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "u.pth")
    conversion = load_authors_file(build_generator("unet_32", 3, 3, ngf=4, norm="batch"), tmp_path / "u.pth")
    assert "model.model.1.model.2.num_batches_tracked" in conversion.filled


def test_the_2017_two_scale_discriminator_names_are_read(tmp_path):
    d = build_discriminator("multiscale", 3, ndf=4, norm="instance")
    state = {k.replace("model_", "model"): v for k, v in authors_state_dict(d).items()}  # model0.0.weight, ...
    torch.save(state, tmp_path / "d.pth")
    fresh = build_discriminator("multiscale", 3, ndf=4, norm="instance")
    conversion = load_authors_file(fresh, tmp_path / "d.pth")
    assert conversion.renamed["model0.0.weight"] == "model_0.0.weight"
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in d.state_dict().items())


def test_a_file_that_needs_pickled_code_is_refused(tmp_path):
    torch.save(build_generator("resnet_6blocks", 3, 3, ngf=2), tmp_path / "whole_module.pth")  # the module pickled
    with pytest.raises(CheckpointRefused, match="pickled code"):
        load_authors_file(build_generator("resnet_6blocks", 3, 3, ngf=2), tmp_path / "whole_module.pth")
    torch.save({"epoch": 3}, tmp_path / "not_tensors.pth")
    with pytest.raises(CheckpointRefused, match="'epoch' holds a int"):
        load_authors_file(build_generator("resnet_6blocks", 3, 3, ngf=2), tmp_path / "not_tensors.pth")


def test_a_missing_key_is_named(tmp_path):
    net = build_generator("unet_32", 3, 3, ngf=4)
    state = authors_state_dict(net)
    del state["model.model.1.model.1.weight"]  # level 2's down conv, in the authors' name
    torch.save(state, tmp_path / "g.pth")
    with pytest.raises(KeyMismatch, match=r"missing 1: model\.model\.1\.model\.1\.weight \(ours: model\.model\.1\.model\.0"
                                          r"\.weight\)"):
        load_authors_file(net, tmp_path / "g.pth")


def test_a_wrong_shape_is_named(tmp_path):
    state = authors_state_dict(build_generator("resnet_6blocks", 3, 3, ngf=4))
    torch.save(state, tmp_path / "g.pth")
    with pytest.raises(KeyMismatch, match=r"mis-shaped .*model\.1\.weight \(4, 3, 7, 7\), expected \(8, 3, 7, 7\)"):
        load_authors_file(build_generator("resnet_6blocks", 3, 3, ngf=8), tmp_path / "g.pth")


def test_resnet_6blocks_weights_named_as_resnet_9blocks_are_refused_naming_keys(tmp_path):
    options = _tiny("cycle_gan")
    files = authors_files(_source(options), "cyclegan", tmp_path / "pth")
    with pytest.raises(KeyMismatch) as error:
        import_checkpoint(_tiny("cycle_gan", netG="resnet_9blocks"), files, tmp_path / "model")
    message = str(error.value)
    # a 9-block net's blocks 7-9 (model.16-18, 4 keys each), its second up conv and last conv
    # (model.22, model.26) are not in the 6-block file ...
    assert "missing 16: model.16.conv_block.1.weight" in message
    # ... whose up convs sit at model.16 and model.19 (the 9-block net's at model.19 and model.22)
    assert "extra 4: model.16.weight, model.16.bias" in message
    assert "netG" in message and not (tmp_path / "model").exists()


def test_unknown_network_and_missing_generator_are_refused(tmp_path):
    options = _tiny("bicycle_gan")
    files = authors_files(_source(options), "bicyclegan", tmp_path / "pth", names=("G",))
    with pytest.raises(ValueError, match="needs E"):
        import_checkpoint(options, files, tmp_path / "model")
    with pytest.raises(ValueError, match="no network 'G_C'"):
        import_checkpoint(_tiny("cycle_gan"), {"G_C": files["G"]}, tmp_path / "model")


def test_import_checkpoint_command(tmp_path):
    options = _tiny("pix2pix")
    authors_files(_source(options), "pix2pix", tmp_path / "checkpoints")
    args = ["import-checkpoint", "pix2pix", "--out-dir", str(tmp_path / "model"), "--netG", "unet_32", "--ngf", "4",
            "--ndf", "4", "--image-size", "32"]
    result = CliRunner().invoke(app, [*args, "--checkpoint-dir", str(tmp_path / "checkpoints")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["method"] == "pix2pix" and set(config["imported"]["files"]) == {"G", "D"}
    assert config["params"]["pix2pix"]["generator"] == "unet_32" and config["params"]["pix2pix"]["norm"] == "batch"
    torch.save(build_generator("unet_32", 3, 3, ngf=4), tmp_path / "pickled.pth")
    result = CliRunner().invoke(app, [*args, "--net", f"G={tmp_path / 'pickled.pth'}"])
    assert result.exit_code == 1
    result = CliRunner().invoke(app, ["import-checkpoint", "cyclegan", "--out-dir", str(tmp_path / "x"),
                                      "--checkpoint-dir", str(tmp_path / "checkpoints")])
    assert result.exit_code == 1 and not (tmp_path / "x").exists()  # the authors' name is cycle_gan
