"""Unit tests for pipeline.nets: shapes, receptive fields, parameter counts, init, name tables."""
from __future__ import annotations

from typing import get_args

import pytest
import torch
from torch import nn

from pipeline import nets
from pipeline.nets import (
    DISCRIMINATOR_NAMES, ENCODER_NAMES, GENERATOR_NAMES, Z_GENERATOR_NAMES, InitName,
    build_discriminator, build_encoder, build_generator, build_z_generator, count_parameters,
    init_weights, norm_layer, receptive_field,
)
from pipeline.nets.blocks import Dropout, UnetSkipBlock

# the image size each generator name is built for (a 1x1 bottleneck for the U-Nets)
GENERATOR_SIZES = {
    "unet_32": 32, "unet_64": 64, "unet_128": 128, "unet_256": 256,
    "encdec_64": 64, "encdec_128": 128, "encdec_256": 256,
    "resnet_6blocks": 32, "resnet_9blocks": 32,
}


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- name tables


def test_tables_match_the_literal_names():
    assert set(nets._GENERATORS) == set(GENERATOR_NAMES) == set(GENERATOR_SIZES)
    assert set(nets._Z_GENERATORS) == set(Z_GENERATOR_NAMES)
    assert set(nets._DISCRIMINATORS) == set(DISCRIMINATOR_NAMES)
    assert set(nets._ENCODERS) == set(ENCODER_NAMES)


@pytest.mark.parametrize("build", [
    lambda: build_generator("unet_512", 3, 3),
    lambda: build_z_generator("unet_512", 3, 3, nz=8),
    lambda: build_discriminator("unet_512", 3),
    lambda: build_encoder("unet_512", 3, nz=8),
    lambda: build_generator("unet_64", 3, 3, norm="unet_512"),
    lambda: build_generator("unet_64", 3, 3, ngf=4, init_type="unet_512"),
])
def test_unknown_names_raise_naming_the_value(build):
    with pytest.raises(ValueError, match="'unet_512'.*expected one of"):
        build()


def test_z_generator_rejects_bad_settings():
    with pytest.raises(ValueError, match="where_add"):
        build_z_generator("unet_32", 3, 3, nz=8, ngf=4, where_add="middle")
    with pytest.raises(ValueError, match="nz > 0"):
        build_z_generator("unet_32", 3, 3, nz=0, ngf=4, where_add="all")
    net = build_z_generator("unet_32", 3, 3, nz=8, ngf=4)
    with pytest.raises(ValueError, match="needs z"):
        net(_randn(1, 3, 32, 32))


def _assert_ups(net: nn.Module, mode: str, n_ups: int) -> None:
    """`basic`: n_ups transposed convs and no resize; otherwise n_ups resizes in `mode` and no transposed conv."""
    kinds = [type(m) for m in net.modules()]
    resizes = [m for m in net.modules() if isinstance(m, nn.Upsample)]
    if mode == "basic":
        assert not resizes and kinds.count(nn.ConvTranspose2d) == n_ups
    else:
        assert nn.ConvTranspose2d not in kinds
        assert len(resizes) == n_ups and {m.mode for m in resizes} == {mode}


@pytest.mark.parametrize("where_add", ["all", "input"])
def test_z_generator_upsample_modes_as_the_reference(where_add):
    """BicycleGAN's --upsample: `basic` is a 4x4 transposed conv per up; `bilinear` and `nearest` resize
    by 2, then a reflection-padded 3x3 conv (upsampleLayer), with no transposed conv left."""
    z = _randn(2, 8, seed=1)
    x = _randn(2, 3, 32, 32)
    built = {mode: build_z_generator("unet_32", 3, 3, nz=8, ngf=4, where_add=where_add, upsample=mode,
                                     generator=_seeded()) for mode in ("basic", "bilinear", "nearest")}
    for mode, net in built.items():
        assert net(x, z).shape == (2, 3, 32, 32), mode
        _assert_ups(net, mode, 5)
    # a 3x3 conv holds fewer weights than a 4x4 transposed one over the same channels
    assert count_parameters(built["bilinear"]) == count_parameters(built["nearest"]) < count_parameters(built["basic"])
    with pytest.raises(ValueError, match="upsample"):
        build_z_generator("unet_32", 3, 3, nz=8, ngf=4, upsample="bicubic")


def test_resnet_generator_upsample_modes():
    """CycleGAN's `upsample`: `basic` keeps the reference's two 3x3 transposed convs; `nearest` and
    `bilinear` resize by 2, then a reflection-padded 3x3 conv, with the same parameter count."""
    x = _randn(2, 3, 32, 32)
    built = {mode: build_generator("resnet_6blocks", 3, 3, ngf=4, norm="instance", upsample=mode,
                                   generator=_seeded()) for mode in ("basic", "bilinear", "nearest")}
    for mode, net in built.items():
        assert net(x).shape == (2, 3, 32, 32), mode
        _assert_ups(net, mode, 2)
    assert len({count_parameters(net) for net in built.values()}) == 1
    with pytest.raises(ValueError, match="upsample 'nearest'"):
        build_generator("unet_32", 3, 3, ngf=4, upsample="nearest")
    with pytest.raises(ValueError, match="blur-upsampling"):
        build_generator("resnet_6blocks", 3, 3, ngf=4, antialias=True, upsample="nearest")
    with pytest.raises(ValueError, match="upsample"):
        build_generator("resnet_6blocks", 3, 3, ngf=4, upsample="bicubic")


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_generator_output_shape(name):
    size = GENERATOR_SIZES[name]
    ngf = 2 if size == 256 else 4
    net = build_generator(name, in_ch=3, out_ch=2, ngf=ngf, norm="batch", generator=_seeded())
    out = net(_randn(2, 3, size, size))
    assert out.shape == (2, 2, size, size)
    assert out.abs().max() <= 1.0  # tanh


@pytest.mark.parametrize("where_add", ["input", "all"])
@pytest.mark.parametrize("name", ["unet_32", "unet_64", "unet_256"])
def test_z_generator_output_shape(name, where_add):
    size = int(name.split("_")[1])
    net = build_z_generator(name, in_ch=3, out_ch=2, nz=8, ngf=2 if size == 256 else 4,
                            where_add=where_add, generator=_seeded())
    out = net(_randn(2, 3, size, size), _randn(2, 8, seed=1))
    assert out.shape == (2, 2, size, size)


def test_z_generator_with_nz_0_is_a_plain_unet():
    net = build_z_generator("unet_32", 3, 3, nz=0, ngf=4, where_add="input", generator=_seeded())
    x = _randn(2, 3, 32, 32)
    assert net(x).shape == x.shape
    assert torch.equal(net(x), net(x, torch.empty(2, 0)))


@pytest.mark.parametrize("where_add", ["input", "all"])
def test_changing_z_changes_the_output(where_add):
    net = build_z_generator("unet_64", 3, 3, nz=8, ngf=4, where_add=where_add, generator=_seeded()).eval()
    x = _randn(2, 3, 64, 64)
    z_a, z_b = _randn(2, 8, seed=1), _randn(2, 8, seed=2)
    with torch.no_grad():
        out_a, out_a_again, out_b = net(x, z_a), net(x, z_a), net(x, z_b)
    assert torch.equal(out_a, out_a_again)
    assert (out_a - out_b).abs().mean() > 1e-4


@pytest.mark.parametrize("size", [64, 128, 256])
@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_encoder_returns_mu_and_logvar_at_every_size(name, size):
    net = build_encoder(name, in_ch=3, nz=8, nef=4, generator=_seeded())
    mu, logvar = net(_randn(2, 3, size, size))
    assert mu.shape == logvar.shape == (2, 8)
    assert torch.isfinite(mu).all() and torch.isfinite(logvar).all()


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_encoder_pools_an_8x8_map_at_its_design_size(name):
    size = int(name.split("_")[1])  # the reference's AvgPool2d(8) holds exactly here
    net = build_encoder(name, in_ch=3, nz=8, nef=4, generator=_seeded())
    features = net.conv[:-1](_randn(1, 3, size, size))
    assert features.shape[-2:] == (8, 8)


def test_encoder_without_vae_has_no_logvar():
    net = build_encoder("conv_64", in_ch=3, nz=8, nef=4, vae=False)
    mu, logvar = net(_randn(2, 3, 64, 64))
    assert mu.shape == (2, 8) and logvar is None


@pytest.mark.parametrize(("name", "n_layers", "size", "map_size"), [
    ("patch", 3, 256, 30),  # 70x70 PatchGAN: 256 px -> 30x30 (pix2pix)
    ("patch", 1, 64, 30),
    ("patch", 5, 256, 6),  # 286x286 "ImageGAN" at 256 px
    ("pixel", 3, 32, 32),
])
def test_discriminator_output_shape(name, n_layers, size, map_size):
    net = build_discriminator(name, in_ch=6, ndf=4, n_layers=n_layers, generator=_seeded())
    assert net(_randn(2, 6, size, size)).shape == (2, 1, map_size, map_size)


def test_multiscale_discriminator_returns_one_map_per_scale():
    net = build_discriminator("multiscale", in_ch=3, ndf=4, n_layers=3, norm="instance", num_D=2)
    outputs = net(_randn(2, 3, 256, 256))
    assert [o.shape for o in outputs] == [(2, 1, 30, 30), (2, 1, 14, 14)]  # second on 128 px
    assert [scale.model[0].out_channels for scale in net.scales] == [4, 2]  # ndf, ndf / 2


# --------------------------------------------------------------------------- receptive fields


def test_receptive_field_formula():
    assert [receptive_field(n) for n in range(6)] == [1, 16, 34, 70, 142, 286]
    with pytest.raises(ValueError, match="-1"):
        receptive_field(-1)


@pytest.mark.parametrize(("n_layers", "size"), [(0, 16), (1, 64), (3, 128), (5, 384)])
def test_receptive_field_from_gradients(n_layers, size):
    """The input pixels that reach one central output cell span exactly receptive_field(n_layers)."""
    name = "pixel" if n_layers == 0 else "patch"
    net = build_discriminator(name, in_ch=3, ndf=2, n_layers=max(n_layers, 1), norm="none",
                              init_gain=1.0, generator=_seeded()).double()
    x = _randn(1, 3, size, size, dtype=torch.float64).requires_grad_()
    out = net(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    reached = x.grad[0].abs().sum(0) > 0  # (H, W): pixels with non-zero gradient
    rows = reached.any(1).nonzero().flatten()
    cols = reached.any(0).nonzero().flatten()
    assert 0 < cols.min() and cols.max() < size - 1  # the field lies inside the image, not clipped
    assert cols.max() - cols.min() + 1 == receptive_field(n_layers)
    assert rows.max() - rows.min() + 1 == receptive_field(n_layers)
    assert reached[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # no holes


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(("build", "expected"), [
    # the reference's print_network at its defaults (pix2pix / CycleGAN, 3 -> 3 channels)
    (lambda: build_generator("resnet_9blocks", 3, 3, ngf=64, norm="instance"), 11_378_179),  # 11.378 M
    (lambda: build_generator("resnet_6blocks", 3, 3, ngf=64, norm="instance"), 7_837_699),
    (lambda: build_generator("unet_256", 3, 3, ngf=64, norm="batch"), 54_413_955),  # 54.414 M
    (lambda: build_discriminator("patch", 6, ndf=64, n_layers=3, norm="batch"), 2_768_705),  # 2.769 M
    (lambda: build_discriminator("patch", 3, ndf=64, n_layers=3, norm="batch"), 2_765_633),
    (lambda: build_discriminator("patch", 3, ndf=64, n_layers=3, norm="instance"), 2_764_737),  # 2.765 M
    # BicycleGAN defaults: unet_256 with z at every level (nz 8), resnet_256 E, two-scale D, instance norm
    (lambda: build_z_generator("unet_256", 3, 3, nz=8, ngf=64, norm="instance", where_add="all"), 54_794_627),
    (lambda: build_encoder("resnet_256", 3, nz=8, nef=64, norm="instance"), 2_590_032),
    (lambda: build_discriminator("multiscale", 3, ndf=64, n_layers=3, norm="instance", num_D=2), 3_458_978),
])
def test_parameter_counts_match_the_reference(build, expected):
    assert count_parameters(build()) == expected


# --------------------------------------------------------------------------- init


@pytest.mark.parametrize("init_type", get_args(InitName))
def test_each_init_type_runs(init_type):
    net = build_generator("unet_32", 3, 3, ngf=4, norm="batch", init_type=init_type, generator=_seeded())
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.bias is not None:
            assert not module.bias.any()
        if isinstance(module, nn.BatchNorm2d):
            assert not module.bias.any() and (module.weight - 1).abs().max() < 0.2
    assert torch.isfinite(net(_randn(2, 3, 32, 32))).all()


def test_same_generator_seed_gives_identical_weights():
    def build(seed: int) -> dict[str, torch.Tensor]:
        net = build_encoder("resnet_64", 3, nz=8, nef=4, generator=_seeded(seed))
        return net.state_dict()

    first, again, other = build(7), build(7), build(8)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_init_with_a_generator_leaves_global_rng_untouched():
    state = torch.get_rng_state()
    build_discriminator("patch", 3, ndf=4, generator=_seeded())
    assert torch.equal(torch.get_rng_state(), state)


def test_normal_init_has_the_requested_std():
    net = build_generator("unet_64", 3, 3, ngf=16, init_type="normal", init_gain=0.02, generator=_seeded())
    weights = torch.cat([m.weight.flatten() for m in net.modules()
                         if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert weights.numel() > 100_000
    assert weights.mean().abs() < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)


def test_init_weights_rejects_unknown_type():
    with pytest.raises(ValueError, match="'uniform'"):
        init_weights(nn.Conv2d(1, 1, 1), init_type="uniform")


# --------------------------------------------------------------------------- U-Net details


def _innermost(net: nn.Module) -> UnetSkipBlock:
    return [m for m in net.modules() if isinstance(m, UnetSkipBlock)][-1]  # pre-order: deepest last


@pytest.mark.parametrize(("name", "bottleneck_only"), [("encdec_64", True), ("unet_64", False)])
def test_encdec_has_no_path_around_the_bottleneck(name, bottleneck_only):
    net = build_generator(name, 3, 3, ngf=4, norm="batch", generator=_seeded()).eval()
    # replace the innermost level's output with zeros: only skips can still carry the input
    _innermost(net).register_forward_hook(lambda module, args, output: torch.zeros_like(output))
    with torch.no_grad():
        out_a, out_b = net(_randn(1, 3, 64, 64, seed=1)), net(_randn(1, 3, 64, 64, seed=2))
    assert out_a.shape == (1, 3, 64, 64)
    assert torch.equal(out_a, out_b) == bottleneck_only


def test_encdec_is_the_unet_without_skip_channels():
    unet = count_parameters(build_generator("unet_256", 3, 3, ngf=64))
    encdec = count_parameters(build_generator("encdec_256", 3, 3, ngf=64))
    assert encdec == 39_075_459 < unet  # decoder convs read inner_nc, not 2 * inner_nc, channels


@pytest.mark.parametrize(("name", "n_dropout"), [("unet_32", 0), ("unet_64", 1), ("unet_256", 3)])
def test_dropout_only_in_the_inner_decoder_levels(name, n_dropout):
    g = build_generator(name, 3, 3, ngf=2, use_dropout=True)
    z_g = build_z_generator(name, 3, 3, nz=2, ngf=2, use_dropout=True, where_add="all")
    for net in (g, z_g):
        assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == n_dropout


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_masks_depend_on_the_seed_not_the_memory_format(dtype):
    x = torch.randn(4, 16, 8, 8, dtype=dtype)
    outs = []
    for layer, layout in ((nn.Dropout(0.5), torch.contiguous_format), (Dropout(0.5), torch.contiguous_format),
                          (Dropout(0.5), torch.channels_last), (nn.Dropout(0.5), torch.channels_last)):
        torch.manual_seed(3)
        outs.append(layer(x.contiguous(memory_format=layout)))
    assert torch.equal(outs[0], outs[1])  # nn.Dropout's draws on a contiguous CPU tensor: results unchanged
    assert torch.equal(outs[1], outs[2])  # channels_last drops the same units
    assert not torch.equal(outs[0], outs[3])  # which nn.Dropout does not
    assert (outs[1] == 0).float().mean().item() == pytest.approx(0.5, abs=0.05)
    assert torch.equal(Dropout(0.5).eval()(x), x)


def test_norm_layer_table():
    assert isinstance(norm_layer("batch")(4), nn.BatchNorm2d)
    instance = norm_layer("instance")(4)
    assert isinstance(instance, nn.InstanceNorm2d) and not instance.affine
    assert not instance.track_running_stats
    assert isinstance(norm_layer("none")(4), nn.Identity)


def _image(size: int) -> tuple[torch.Tensor, ...]:
    return (_randn(2, 3, size, size),)


def _image_and_z(size: int) -> tuple[torch.Tensor, ...]:
    return (_randn(2, 3, size, size), _randn(2, 8, seed=1))


@pytest.mark.parametrize(("build", "inputs"), [
    (lambda: build_generator("unet_32", 3, 3, ngf=4, norm="batch"), _image(32)),
    (lambda: build_z_generator("unet_32", 3, 3, nz=8, ngf=4, where_add="all"), _image_and_z(32)),
    (lambda: build_z_generator("unet_32", 3, 3, nz=8, ngf=4, where_add="input"), _image_and_z(32)),
    (lambda: build_discriminator("multiscale", 3, ndf=4), _image(64)),
])
def test_networks_trace_as_one_graph(build, inputs):
    """No graph breaks (no .item(), no data-dependent branches): ready for torch.compile / CUDA graphs.

    The networks with Python-side structure; the plain nn.Sequential ones (ResNet G, E) trace too.
    """
    net = build().eval()
    compiled = torch.compile(net, backend="eager", fullgraph=True)  # fullgraph: a break is an error
    with torch.no_grad():
        expected, actual = net(*inputs), compiled(*inputs)
    if isinstance(expected, torch.Tensor):
        expected, actual = [expected], [actual]
    assert all(torch.equal(e, a) for e, a in zip(expected, actual, strict=True))
