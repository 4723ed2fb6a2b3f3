"""One train_step per method on a 2-image batch, the ablation switches, ImagePool and build_model."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import BicycleGANConfig, CUTConfig, CycleGANConfig, FastCUTConfig, Params, Pix2PixConfig, TrainConfig
from pipeline.models import METHODS, MODELS, Batch, BicycleGAN, CycleGAN, ImagePool, Pix2Pix, build_model

CPU = torch.device("cpu")
LOSS_KEYS = {
    "pix2pix": {"g_gan", "g_l1", "d_real", "d_fake"},
    "cyclegan": {"g_gan_a", "g_gan_b", "cycle_a", "cycle_b", "idt_a", "idt_b", "d_a", "d_b"},
    "bicyclegan": {"g_gan_vae", "g_gan_lr", "g_l1", "kl", "z_l1", "d_vae", "d_lr"},
    "cut": {"g_gan", "nce", "nce_y", "d_real", "d_fake"},
    "fastcut": {"g_gan", "nce", "d_real", "d_fake"},
}


def tiny_params(pix2pix: dict | None = None, cyclegan: dict | None = None, bicyclegan: dict | None = None,
                image_size: int = 32, cut: dict | None = None, fastcut: dict | None = None, **top) -> Params:
    """Nets of width 4 on 32x32 images, so that a step takes a fraction of a second on CPU."""
    return Params(
        image_size=image_size,
        train=TrainConfig(load_size=image_size),
        pix2pix=Pix2PixConfig(**{"generator": "unet_32", "ngf": 4, "ndf": 4, "batch_size": 2, **(pix2pix or {})}),
        # the model logic does not depend on G's architecture; a U-Net is the fastest at 32 px
        cyclegan=CycleGANConfig(**{"generator": "unet_32", "ngf": 4, "ndf": 4, "pool_size": 2,
                                   **(cyclegan or {})}),
        # two D scales at 32 px need n_layers_D 2 (the reference's basic_128_multi)
        bicyclegan=BicycleGANConfig(**{"generator": "unet_32", "encoder": "resnet_64", "ngf": 4, "ndf": 4,
                                       "nef": 4, "n_layers_D": 2, "batch_size": 2, **(bicyclegan or {})}),
        # CUT needs a ResNet G (its encoder features); batch 2 checks the per-image negatives
        cut=CUTConfig(**{**TINY_CUT, **(cut or {})}),
        fastcut=FastCUTConfig(**{**TINY_CUT, **(fastcut or {})}),
        # the reference code's identity weight, so the full CycleGAN step is what these tests drive
        **{"lambda_idt": 0.5, **top},
    )


TINY_CUT = {"ngf": 4, "ndf": 4, "batch_size": 2, "num_patches": 16, "netF_nc": 8, "enabled": True}


def make_batch(seed: int = 0, size: int = 32) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    a, b = (torch.rand(2, 3, size, size, generator=gen) * 2 - 1 for _ in range(2))
    return Batch(a, b)


def snapshot(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def assert_same_losses(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first), (first, second)


def changed(before: list[torch.Tensor], net: nn.Module) -> bool:
    return any(not torch.equal(old, new) for old, new in zip(before, net.parameters()))


# --------------------------------------------------------------------------- every method


@pytest.mark.parametrize("method", METHODS)
def test_train_step_returns_the_named_finite_losses_and_updates_every_network(method):
    torch.manual_seed(0)  # pix2pix dropout
    model = build_model(method, tiny_params(), CPU, seed=0)
    before = {name: snapshot(net) for name, net in model.networks().items()}
    losses = model.train_step(make_batch())
    assert set(losses) == LOSS_KEYS[method]
    for name, value in losses.items():
        assert isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype == torch.float32, name
        assert not value.requires_grad, name
        assert torch.isfinite(value), name
    for name, net in model.networks().items():
        assert changed(before[name], net), f"{name} did not change"


def test_models_table_covers_every_method_and_rejects_unknown_ones():
    assert set(MODELS) == set(METHODS)
    with pytest.raises(ValueError, match="pix2pix"):
        build_model("unit", tiny_params(), CPU, seed=0)


@pytest.mark.parametrize("method", METHODS)
def test_build_model_with_the_same_seed_gives_identical_weights(method):
    first, second = (build_model(method, tiny_params(), CPU, seed=3) for _ in range(2))
    other = build_model(method, tiny_params(), CPU, seed=4)
    for name, net in first.networks().items():
        for a, b in zip(net.state_dict().values(), second.networks()[name].state_dict().values()):
            assert torch.equal(a, b), name
    main = "G_A" if method == "cyclegan" else "G"
    assert not all(torch.equal(a, c) for a, c in zip(first.networks()[main].parameters(),
                                                     other.networks()[main].parameters()))


def _step(model, step: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(step)  # pix2pix dropout draws from the global RNG, which the trainer seeds
    return model.train_step(make_batch(step))


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_runs_are_identical_and_a_restored_model_resumes_exactly(method):
    """Weights, optimiser states and extra_state (image pools, z generator) are all a resume needs."""
    first = build_model(method, tiny_params(), CPU, seed=0)
    first_losses = [_step(first, step) for step in range(3)]

    second = build_model(method, tiny_params(), CPU, seed=0)
    second_losses = [_step(second, step) for step in range(2)]  # the pools (size 2) fill in step 0
    saved = copy.deepcopy(({k: n.state_dict() for k, n in second.networks().items()},
                           {k: o.state_dict() for k, o in second.optimizers().items()}, second.extra_state()))
    second_losses.append(_step(second, 2))
    for a, b in zip(first_losses, second_losses):
        assert_same_losses(a, b)

    resumed = build_model(method, tiny_params(), CPU, seed=1)
    for name, net in resumed.networks().items():
        net.load_state_dict(saved[0][name])
    for name, optimizer in resumed.optimizers().items():
        optimizer.load_state_dict(saved[1][name])
    resumed.load_extra_state(saved[2])
    assert_same_losses(_step(resumed, 2), first_losses[2])


# --------------------------------------------------------------------------- pix2pix


def _pix2pix_output_grad(lambda_L1: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient reaching fake_b in G's update, and what the GAN term alone sends there."""
    torch.manual_seed(0)
    model = build_model("pix2pix", tiny_params(lambda_L1=lambda_L1), CPU, seed=0)
    assert isinstance(model, Pix2Pix)
    seen = {}

    def hook(module, inputs, output):
        seen["fake_b"] = output
        output.register_hook(lambda grad: seen.__setitem__("grad", grad))

    model.generator.register_forward_hook(hook)
    batch = make_batch()
    losses = model.train_step(batch)
    assert set(losses) == LOSS_KEYS["pix2pix"] - ({"g_l1"} if lambda_L1 == 0 else set())
    # D was updated before G's backward and not since: recompute the GAN term alone
    fake_b = seen["fake_b"].detach().requires_grad_()
    pred = model.discriminator(torch.cat((batch.a, fake_b), dim=1))
    (gan_grad,) = torch.autograd.grad(model.gan_loss(pred, True), fake_b)
    return seen["grad"], gan_grad, (seen["fake_b"] - batch.b).detach()


def test_pix2pix_lambda_L1_zero_sends_G_no_l1_gradient():
    grad, gan_grad, _ = _pix2pix_output_grad(lambda_L1=0.0)
    torch.testing.assert_close(grad, gan_grad, rtol=0, atol=0)
    # control: with lambda_L1 100 the same check sees the L1 gradient, lambda * sign / N
    grad, gan_grad, diff = _pix2pix_output_grad(lambda_L1=100.0)
    torch.testing.assert_close(grad, gan_grad + 100.0 * diff.sign() / diff.numel())
    assert not torch.allclose(grad, gan_grad)


def test_pix2pix_without_gan_has_no_discriminator():
    torch.manual_seed(0)
    model = build_model("pix2pix", tiny_params(pix2pix={"use_gan": False}), CPU, seed=0)
    assert set(model.networks()) == {"G"} and set(model.optimizers()) == {"G"}
    assert set(model.train_step(make_batch())) == {"g_l1"}
    with pytest.raises(ValueError, match="no objective"):
        build_model("pix2pix", tiny_params(pix2pix={"use_gan": False}, lambda_L1=0.0), CPU, seed=0)


@pytest.mark.parametrize("variant", [{"conditional_d": False}, {"discriminator": "pixel"}])
def test_pix2pix_discriminator_variants_train(variant):
    torch.manual_seed(0)
    model = build_model("pix2pix", tiny_params(pix2pix=variant), CPU, seed=0)
    losses = model.train_step(make_batch())
    assert set(losses) == LOSS_KEYS["pix2pix"] and all(torch.isfinite(v) for v in losses.values())


def test_pix2pix_b_to_a_swaps_the_roles_of_the_domains():
    forward = tiny_params()
    backward = tiny_params(pix2pix={"direction": "b_to_a"})
    batch = make_batch()
    torch.manual_seed(0)
    a_to_b = build_model("pix2pix", forward, CPU, seed=0)
    losses_ab = a_to_b.train_step(batch)
    torch.manual_seed(0)
    b_to_a = build_model("pix2pix", backward, CPU, seed=0)
    losses_ba = b_to_a.train_step(Batch(a=batch.b, b=batch.a))  # the same pairs, domains swapped
    assert_same_losses(losses_ba, losses_ab)
    for a, b in zip(a_to_b.generator.parameters(), b_to_a.generator.parameters()):
        assert torch.equal(a, b)
    torch.manual_seed(1)
    out_ab = a_to_b.translate(batch.a)
    torch.manual_seed(1)
    assert torch.equal(b_to_a.translate(batch.a), out_ab)  # default direction: cfg.direction
    with pytest.raises(ValueError, match="a_to_b"):
        b_to_a.translate(batch.a, "a_to_b")


def test_pix2pix_translate_keeps_dropout_as_noise_and_leaves_the_model_unchanged():
    # unet_64 (64 px) is the smallest U-Net with dropout: only the levels past the fifth have it
    params = tiny_params(image_size=64, pix2pix={"generator": "unet_64"})
    model = build_model("pix2pix", params, CPU, seed=0)
    model.generator.eval()
    buffers = [b.clone() for b in model.generator.buffers()]
    source = make_batch(size=64).a
    first, second = model.translate(source), model.translate(source)
    assert first.shape == source.shape and first.dtype == torch.float32
    assert not torch.equal(first, second)  # dropout at test time
    assert not model.generator.training
    assert all(torch.equal(a, b) for a, b in zip(buffers, model.generator.buffers()))
    # each image alone: its output does not depend on the rest of the batch
    torch.manual_seed(2)
    together = model.translate(source)
    torch.manual_seed(2)
    alone = model.translate(source[:1])
    torch.testing.assert_close(together[:1], alone)

    no_noise = build_model("pix2pix", tiny_params(image_size=64, pix2pix={"generator": "unet_64",
                                                                          "dropout_at_test": False}), CPU, seed=0)
    assert torch.equal(no_noise.translate(source), no_noise.translate(source))


# --------------------------------------------------------------------------- cyclegan


def test_cyclegan_lambda_idt_zero_drops_the_identity_terms():
    model = build_model("cyclegan", tiny_params(lambda_idt=0.0), CPU, seed=0)
    assert set(model.train_step(make_batch())) == LOSS_KEYS["cyclegan"] - {"idt_a", "idt_b"}


@pytest.mark.parametrize("switch, dropped", [("cycle_forward", "cycle_a"), ("cycle_backward", "cycle_b")])
def test_cyclegan_cycle_switch_drops_the_key(switch, dropped):
    model = build_model("cyclegan", tiny_params(cyclegan={switch: False}), CPU, seed=0)
    assert set(model.train_step(make_batch())) == LOSS_KEYS["cyclegan"] - {dropped}


@pytest.mark.parametrize("switch, kept", [("cycle_forward", "b"), ("cycle_backward", "a")])
def test_cyclegan_cycle_switch_removes_that_cycles_gradient(switch, kept):
    """Cycle alone, no identity, one cycle off: G's gradients are exactly those of the other cycle."""
    params = tiny_params(lambda_idt=0.0, cyclegan={"use_gan": False, switch: False})
    model = build_model("cyclegan", params, CPU, seed=0)
    assert isinstance(model, CycleGAN)
    g_a, g_b = copy.deepcopy(model.g_a), copy.deepcopy(model.g_b)  # the weights G's gradients are taken at
    batch = make_batch()
    assert set(model.train_step(batch)) == {f"cycle_{kept}"}
    if kept == "b":
        only_kept = F.l1_loss(g_a(g_b(batch.b)), batch.b)  # |G_A(G_B(b)) - b|
    else:
        only_kept = F.l1_loss(g_b(g_a(batch.a)), batch.a)  # |G_B(G_A(a)) - a|
    nets = (g_a, g_b)
    expected = torch.autograd.grad(params.lambda_cyc * only_kept, [p for n in nets for p in n.parameters()])
    actual = [p.grad for n in (model.g_a, model.g_b) for p in n.parameters()]
    for got, want in zip(actual, expected):
        torch.testing.assert_close(got, want)


def test_cyclegan_cycle_alone_has_no_discriminators_and_gan_alone_no_cycle():
    cycle_alone = build_model("cyclegan", tiny_params(cyclegan={"use_gan": False}), CPU, seed=0)
    assert set(cycle_alone.networks()) == {"G_A", "G_B"}
    assert set(cycle_alone.train_step(make_batch())) == {"cycle_a", "cycle_b", "idt_a", "idt_b"}
    gan_alone = build_model("cyclegan", tiny_params(lambda_cyc=0.0), CPU, seed=0)
    assert set(gan_alone.train_step(make_batch())) == {"g_gan_a", "g_gan_b", "d_a", "d_b"}


def test_cyclegan_translate_both_directions():
    model = build_model("cyclegan", tiny_params(), CPU, seed=0)
    assert isinstance(model, CycleGAN)
    source = make_batch().a
    torch.testing.assert_close(model.translate(source), model.g_a(source))
    torch.testing.assert_close(model.translate(source, "b_to_a"), model.g_b(source))
    with pytest.raises(ValueError, match="sideways"):
        model.translate(source, "sideways")


# --------------------------------------------------------------------------- bicyclegan


def test_bicyclegan_latent_loss_reaches_G_but_never_E():
    """E's gradients are the same with and without lambda_z; G's are not."""
    batch = make_batch()
    grads = {}
    for lambda_z in (0.5, 0.0):
        model = build_model("bicyclegan", tiny_params(lambda_z=lambda_z), CPU, seed=0)
        losses = model.train_step(batch)
        assert ("z_l1" in losses) == (lambda_z > 0)
        grads[lambda_z] = {name: [p.grad.clone() for p in model.networks()[name].parameters()]
                           for name in ("G", "E")}
    for with_z, without_z in zip(grads[0.5]["E"], grads[0.0]["E"]):
        assert torch.equal(with_z, without_z)
    assert not all(torch.equal(a, b) for a, b in zip(grads[0.5]["G"], grads[0.0]["G"]))


def test_bicyclegan_rejects_an_odd_batch():
    model = build_model("bicyclegan", tiny_params(), CPU, seed=0)
    batch = make_batch()
    with pytest.raises(ValueError, match="even"):
        model.train_step(Batch(batch.a[:1], batch.b[:1]))


def test_bicyclegan_sample_is_multimodal_and_reproducible():
    model = build_model("bicyclegan", tiny_params(), CPU, seed=0)
    assert isinstance(model, BicycleGAN)
    source = make_batch().a
    samples = model.sample(source, 3, torch.Generator().manual_seed(0))
    assert samples.shape == (3, 2, 3, 32, 32)
    assert not torch.equal(samples[0], samples[1]) and not torch.equal(samples[1], samples[2])
    assert torch.equal(samples, model.sample(source, 3, torch.Generator().manual_seed(0)))
    one = model.sample(source, 1, torch.Generator().manual_seed(0))[0]
    assert torch.equal(model.translate(source, seed=0), one)  # one fixed z for the whole batch
    # whatever the batch: equal up to float rounding (the CPU's conv kernels differ by batch size)
    torch.testing.assert_close(model.translate(source[1:], seed=0), one[1:], rtol=1e-5, atol=1e-6)
    assert model.reconstruct(source, make_batch().b).shape == source.shape


# --------------------------------------------------------------------------- ImagePool


def _images(n: int, start: int) -> torch.Tensor:
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()


def test_pool_of_size_zero_passes_images_through():
    images = _images(2, 0)
    assert ImagePool(0, torch.Generator()).query(images) is images


def test_pool_fills_then_mixes_old_and_new_from_its_generator():
    rng_before = torch.get_rng_state()
    pool = ImagePool(4, torch.Generator().manual_seed(0))
    for start in (0, 2):  # filling: the new images come straight back and are stored
        assert torch.equal(pool.query(_images(2, start)), _images(2, start))
    assert pool.num_imgs == 4
    queried, n_new, n_old = set(range(4)), 0, 0
    for start in range(10, 50, 2):
        out = pool.query(_images(2, start))
        assert out.shape == (2, 3, 2, 2) and pool.num_imgs == 4
        for i, value in enumerate(out[:, 0, 0, 0].tolist()):
            if value == start + i:
                n_new += 1
            else:  # an image from the history, queried earlier
                assert value in queried
                n_old += 1
            queried.add(start + i)
    assert n_new > 0 and n_old > 0  # p = 0.5 each: a mix
    assert torch.equal(torch.get_rng_state(), rng_before)  # never the global RNG

    same_seed = ImagePool(4, torch.Generator().manual_seed(0))
    other_seed = ImagePool(4, torch.Generator().manual_seed(1))
    outputs = {}
    for name, p in (("same", same_seed), ("other", other_seed)):
        outputs[name] = torch.cat([p.query(_images(2, start)) for start in range(0, 50, 2)])
    replay = ImagePool(4, torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([replay.query(_images(2, start)) for start in range(0, 50, 2)]),
                       outputs["same"])
    assert not torch.equal(outputs["same"], outputs["other"])


def test_pool_state_dict_round_trip_reproduces_future_outputs():
    pool = ImagePool(3, torch.Generator().manual_seed(1))
    for start in range(0, 8, 2):
        pool.query(_images(2, start))
    restored = ImagePool(3, torch.Generator().manual_seed(99))
    restored.load_state_dict(copy.deepcopy(pool.state_dict()))
    for start in range(100, 120, 2):
        assert torch.equal(pool.query(_images(2, start)), restored.query(_images(2, start)))
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(5, torch.Generator()).load_state_dict(pool.state_dict())


@pytest.mark.parametrize("method", METHODS)
def test_losses_stay_float32_under_bfloat16_autocast(method):
    """build_model enables bf16 on CUDA only; CPU autocast exercises the same float32 loss path."""
    torch.manual_seed(0)
    model = build_model(method, tiny_params(), CPU, seed=0)
    model.amp_dtype = torch.bfloat16
    losses = model.train_step(make_batch())
    assert set(losses) == LOSS_KEYS[method]
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values()), losses
    assert model.translate(make_batch().a).dtype == torch.float32
