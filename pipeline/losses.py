"""The adversarial loss (vanilla | lsgan) and the BicycleGAN KL term, always computed in float32.

Re-implemented from junyanz/pytorch-CycleGAN-and-pix2pix and junyanz/BicycleGAN `models/networks.py`
(GANLoss) and junyanz/BicycleGAN `models/bicycle_gan_model.py` (backward_EG, the KL term).
"""
from __future__ import annotations

from typing import get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.config import GanMode

GAN_MODES: tuple[str, ...] = get_args(GanMode)


class GANLoss:
    """The GAN objective against an all-real or all-fake target map.

    `vanilla` is the original GAN's cross-entropy, on logits (D ends without a sigmoid, as the
    reference); `lsgan` is the least-squares loss of Mao et al. (MSE to 1 or 0), CycleGAN §4.
    """

    def __init__(self, mode: GanMode):
        if mode not in GAN_MODES:
            raise ValueError(f"unknown gan mode {mode!r}; expected one of {list(GAN_MODES)}")
        self.mode = mode

    def __call__(self, prediction: Tensor | list[Tensor], target_is_real: bool) -> Tensor:
        """The loss of `prediction` (a D output map, or a list of maps from a multiscale D).

        A list sums the per-scale losses, as the BicycleGAN reference GANLoss does.
        """
        if isinstance(prediction, (list, tuple)):
            if not prediction:
                raise ValueError("prediction is an empty list; expected one map per D scale")
            return torch.stack([self._single(p, target_is_real) for p in prediction]).sum()
        return self._single(prediction, target_is_real)

    def _single(self, prediction: Tensor, target_is_real: bool) -> Tensor:
        prediction = prediction.float()  # the loss in float32 even when D ran under bf16 autocast
        target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
        if self.mode == "lsgan":
            return F.mse_loss(prediction, target)
        return F.binary_cross_entropy_with_logits(prediction, target)


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over the latent dimensions *and the batch*.

    This is the reference's exact reduction: `torch.sum(1 + logvar - mu^2 - exp(logvar)) * -0.5`
    (junyanz/BicycleGAN bicycle_gan_model.py, backward_EG) sums over every element, with no batch
    mean. At the reference default batch_size 2 (one encoded image per step) that equals the
    per-image KL; with larger batches the term grows with the encoded half-batch, as it does there.
    """
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
