"""CUT and FastCUT: PatchNCE by hand, the networks at the paper's sizes, anti-aliased resampling,
gradients, random draws, other channel counts and the config checks."""
import dataclasses
import math

import pytest
import torch

from pipeline.config import ConfigError, CUTConfig, FastCUTConfig, Params, TrainConfig
from pipeline.losses import patch_nce_loss
from pipeline.models import METHODS, Batch, build_model
from pipeline.models import _Builder, _build_cut
from pipeline.nets import build_discriminator, build_generator, count_parameters
from pipeline.nets.antialias import BlurDownsample, BlurUpsample
from pipeline.nets.patch_sample import PatchSampleF
from tests.unit.test_models import CPU, TINY_CUT, changed, make_batch, snapshot, tiny_params


def test_patch_nce_matches_a_hand_computation():
    gen = torch.Generator().manual_seed(0)
    batch, patches, dim, temperature = 2, 3, 4, 0.07
    q = torch.nn.functional.normalize(torch.randn(batch * patches, dim, generator=gen), dim=1)
    k = torch.nn.functional.normalize(torch.randn(batch * patches, dim, generator=gen), dim=1)
    expected = []
    for b in range(batch):
        for p in range(patches):
            i = b * patches + p
            dot = lambda j: sum(float(q[i, c]) * float(k[j, c]) for c in range(dim))
            # the positive first, then the image's own keys, its own position filled with -10
            logits = [dot(i)] + [dot(b * patches + j) if j != p else -10.0 for j in range(patches)]
            logits = [v / temperature for v in logits]
            top = max(logits)
            log_sum = top + math.log(sum(math.exp(v - top) for v in logits))
            expected.append(log_sum - logits[0])
    got = patch_nce_loss(q, k, batch, temperature)
    assert got.shape == (batch * patches,)
    assert torch.allclose(got, torch.tensor(expected), atol=1e-4)


def test_patch_nce_sends_no_gradient_to_the_keys_and_rejects_bad_shapes():
    q = torch.nn.functional.normalize(torch.randn(4, 3), dim=1).requires_grad_()
    k = torch.nn.functional.normalize(torch.randn(4, 3), dim=1).requires_grad_()
    patch_nce_loss(q, k, 2, 0.07).mean().backward()
    assert q.grad is not None and k.grad is None
    with pytest.raises(ValueError, match="batch_size 3"):
        patch_nce_loss(q, k, 3, 0.07)


def test_networks_at_the_paper_size_have_the_authors_parameter_counts():
    """resnet_9blocks (anti-aliased: the same parameters as CycleGAN's), netF 0.560 M, 70x70 PatchGAN."""
    params = Params(image_size=256, train=TrainConfig(load_size=286))
    spec = METHODS["cut"]
    params = dataclasses.replace(params, cut=spec.at_paper_size(params.cut, 256))
    model = build_model("cut", params, CPU, seed=0)
    counts = {name: count_parameters(net) for name, net in model.networks().items()}
    assert counts == {"G": 11_378_179, "F": 560_384, "D": 2_764_737}
    assert model.f.in_channels == [3, 128, 256, 256, 256]  # the padded input, down convs, res blocks 1 and 5


def test_antialiased_networks_keep_the_shapes_and_parameters_of_the_strided_ones():
    x = torch.randn(2, 8, 16, 16)
    assert BlurDownsample(8)(x).shape == (2, 8, 8, 8) and BlurUpsample(8)(x).shape == (2, 8, 32, 32)
    flat = torch.ones(1, 2, 6, 6)  # a constant stays constant: the filters sum to 1 (x4 when upsampling)
    assert torch.allclose(BlurDownsample(2)(flat), torch.ones(1, 2, 3, 3))
    assert torch.allclose(BlurUpsample(2)(flat), torch.ones(1, 2, 12, 12))
    image = torch.randn(1, 3, 64, 64)
    for antialias in (False, True):
        g = build_generator("resnet_6blocks", 3, 3, ngf=8, norm="instance", antialias=antialias)
        d = build_discriminator("patch_antialias" if antialias else "patch", 3, ndf=8, norm="instance")
        assert g(image).shape == image.shape and d(image).shape == (1, 1, 6, 6)
        assert count_parameters(g) == count_parameters(build_generator("resnet_6blocks", 3, 3, ngf=8, norm="instance"))
    feats = g.features(image, (0, 4, 8, 12, 16))
    assert [tuple(f.shape[1:]) for f in feats] == [(3, 70, 70), (16, 64, 64), (32, 32, 32), (32, 16, 16), (32, 16, 16)]
    with pytest.raises(ValueError, match="ascending"):
        g.features(image, (4, 0))
    with pytest.raises(ValueError, match="no anti-aliased variant"):
        build_generator("unet_64", 3, 3, antialias=True)


def test_patch_sampler_takes_the_same_positions_for_every_image_and_returns_unit_vectors():
    f = PatchSampleF([3, 5], nc=8)
    feats = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)]
    out, ids = f(feats, 6, generator=torch.Generator().manual_seed(0))
    assert [tuple(o.shape) for o in out] == [(12, 8), (8, 8)]  # 6 patches, and all 4 of a 2x2 map
    assert all(torch.allclose(o.norm(dim=1), torch.ones(len(o)), atol=1e-5) for o in out)
    again, _ = f(feats, 6, patch_ids=ids)
    assert all(torch.equal(a, b) for a, b in zip(out, again))
    assert len(set(ids[0].tolist())) == 6


@pytest.mark.parametrize("method", ["cut", "fastcut"])
def test_a_step_trains_G_F_and_D_and_draws_only_from_the_model_generator(method):
    model = build_model(method, tiny_params(), CPU, seed=0)
    before = {name: snapshot(net) for name, net in model.networks().items()}
    global_state = torch.get_rng_state()
    for step in range(3):
        losses = model.train_step(make_batch(step))
    assert torch.equal(torch.get_rng_state(), global_state)
    assert all(changed(before[name], net) for name, net in model.networks().items())
    assert all(torch.isfinite(v) for v in losses.values())


def test_generator_loss_reaches_G_and_F_but_never_D():
    model = build_model("cut", tiny_params(), CPU, seed=0)
    batch = make_batch()
    fake = model.g(torch.cat([batch.a, batch.b]))
    model.d.zero_grad(set_to_none=True)
    model._update_generator(batch.a, batch.b, fake[:2], fake[2:], None)
    assert all(p.grad is None for p in model.d.parameters())
    assert all(p.grad is not None for p in model.f.parameters())


def test_fastcut_flips_at_random_from_its_generator_and_cut_never():
    fast = build_model("fastcut", tiny_params(), CPU, seed=0)
    draws = [bool(fast._draw_flip(CPU)) for _ in range(40)]
    assert 0 < sum(draws) < 40
    assert build_model("cut", tiny_params(), CPU, seed=0)._draw_flip(CPU) is None


def test_nce_without_gan_and_gan_without_nce_drop_their_terms():
    only_nce = build_model("cut", tiny_params(cut={"lambda_GAN": 0.0}), CPU, seed=0)
    assert set(only_nce.train_step(make_batch())) == {"nce", "nce_y", "d_real", "d_fake"}
    only_gan = build_model("cut", tiny_params(cut={"lambda_NCE": 0.0}), CPU, seed=0)
    assert set(only_gan.train_step(make_batch())) == {"g_gan", "d_real", "d_fake"}
    assert "F" not in only_gan.optimizers()


def test_grayscale_and_other_channel_counts_train_and_translate():
    params = tiny_params()
    gray = _build_cut(_Builder(params, CPU, 0), params.cut, in_ch=1, out_ch=1)
    losses = gray.train_step(Batch(torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1))
    assert set(losses) == {"g_gan", "nce", "nce_y", "d_real", "d_fake"}
    assert gray.translate(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    four = _build_cut(_Builder(params, CPU, 0), params.fastcut, in_ch=4, out_ch=4)
    assert set(four.train_step(Batch(torch.rand(2, 4, 32, 32), torch.rand(2, 4, 32, 32)))) == \
        {"g_gan", "nce", "d_real", "d_fake"}
    # one channel to three: G's encoder cannot read its own output, which PatchNCE needs; said by name
    with pytest.raises(ValueError, match="fastcut: PatchNCE .* same number of channels; got 1 and 3"):
        _build_cut(_Builder(params, CPU, 0), params.fastcut, in_ch=1, out_ch=3)
    with pytest.raises(ValueError, match="cut: PatchNCE .* got 1 and 3"):
        gray.train_step(Batch(torch.rand(2, 1, 32, 32), torch.rand(2, 3, 32, 32)))


def test_cut_translates_a_to_b_only():
    model = build_model("cut", tiny_params(), CPU, seed=0)
    assert model.directions() == ("a_to_b",)
    with pytest.raises(ValueError, match="a_to_b only"):
        model.translate(torch.zeros(1, 3, 32, 32), "b_to_a")


def test_fastcut_keeps_the_authors_defaults_and_configs_are_checked_by_key():
    cut, fast = CUTConfig(), FastCUTConfig()
    assert (cut.lambda_NCE, cut.nce_idt, cut.flip_equivariance) == (1.0, True, False)
    assert (fast.lambda_NCE, fast.nce_idt, fast.flip_equivariance) == (10.0, False, True)
    assert (cut.nce_layers, cut.num_patches, cut.netF_nc, cut.nce_T) == ((0, 4, 8, 12, 16), 256, 256, 0.07)
    with pytest.raises(ConfigError, match="fastcut.generator"):
        FastCUTConfig(generator="unet_64")
    with pytest.raises(ConfigError, match="cut.nce_layers"):
        CUTConfig(nce_layers=(8, 4))
    with pytest.raises(ConfigError, match="no objective"):
        CUTConfig(lambda_GAN=0.0, lambda_NCE=0.0)
    with pytest.raises(ValueError, match="ascending indices in"):  # past G's last layer
        build_model("cut", tiny_params(cut={"nce_layers": (0, 99)}), CPU, seed=0)


def test_switched_off_methods_say_how_to_run_them():
    assert METHODS["cut"].switched_off(Params()) == (
        "switched off in params (cut.enabled: false); `dvc exp run -S cut.enabled=true` runs it")
    assert METHODS["pix2pix"].switched_off(Params()) is None
    assert TINY_CUT["enabled"]
