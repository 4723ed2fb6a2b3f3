"""GANLoss and kl_divergence against hand computations."""
import math

import pytest
import torch

from pipeline.losses import GANLoss, kl_divergence


def test_lsgan_is_mean_squared_distance_to_the_label():
    prediction = torch.tensor([[0.0, 0.5], [1.0, 2.0]])
    # real: ((0-1)^2 + (0.5-1)^2 + 0 + (2-1)^2) / 4 = 2.25 / 4; fake: (0 + 0.25 + 1 + 4) / 4
    assert GANLoss("lsgan")(prediction, True).item() == pytest.approx(2.25 / 4)
    assert GANLoss("lsgan")(prediction, False).item() == pytest.approx(5.25 / 4)


def test_vanilla_is_binary_cross_entropy_on_logits():
    prediction = torch.tensor([0.0, math.log(3.0)])  # sigmoid: 0.5 and 0.75
    real = -(math.log(0.5) + math.log(0.75)) / 2
    fake = -(math.log(0.5) + math.log(0.25)) / 2
    assert GANLoss("vanilla")(prediction, True).item() == pytest.approx(real)
    assert GANLoss("vanilla")(prediction, False).item() == pytest.approx(fake)


@pytest.mark.parametrize("mode", ["vanilla", "lsgan"])
def test_a_list_of_scales_sums_the_per_scale_losses(mode):
    gen = torch.Generator().manual_seed(0)
    coarse, fine = torch.randn(2, 1, 4, 4, generator=gen), torch.randn(2, 1, 2, 2, generator=gen)
    loss = GANLoss(mode)
    for target in (True, False):
        expected = loss(coarse, target) + loss(fine, target)
        torch.testing.assert_close(loss([coarse, fine], target), expected)


def test_loss_is_float32_for_a_bfloat16_prediction():
    prediction = torch.tensor([0.25, -1.5], dtype=torch.bfloat16)
    loss = GANLoss("lsgan")(prediction, True)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(((0.25 - 1) ** 2 + (-1.5 - 1) ** 2) / 2)


def test_unknown_gan_mode_is_rejected():
    with pytest.raises(ValueError, match="wgan"):
        GANLoss("wgan")  # type: ignore[arg-type]


def test_kl_of_the_standard_normal_is_zero():
    assert kl_divergence(torch.zeros(3, 8), torch.zeros(3, 8)).item() == 0.0


def test_kl_sums_over_latents_and_batch_as_the_reference():
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # per element -0.5 * (1 + logvar - mu^2 - exp(logvar)): 0.5, 0.5 * (1 - ln 2), 0, 2
    expected = 0.5 + 0.5 * (1 - math.log(2.0)) + 0.0 + 2.0
    assert kl_divergence(mu, logvar).item() == pytest.approx(expected)
    assert kl_divergence(mu.to(torch.bfloat16), logvar.to(torch.bfloat16)).dtype == torch.float32
