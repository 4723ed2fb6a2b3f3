"""The adversarial loss (vanilla | lsgan), the BicycleGAN KL term and CUT's PatchNCE loss, always
computed in float32.

Re-implemented from junyanz/pytorch-CycleGAN-and-pix2pix and junyanz/BicycleGAN `models/networks.py`
(GANLoss), junyanz/BicycleGAN `models/bicycle_gan_model.py` (backward_EG, the KL term) and
taesungp/contrastive-unpaired-translation `models/patchnce.py` (PatchNCELoss).
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


# the authors fill each patch's similarity to itself among the negatives with -10 before the
# temperature: exp(-10 / 0.07) is nil, so the positive is not also counted as a negative
SELF_SIMILARITY_FILL = -10.0


def patch_nce_loss(feat_q: Tensor, feat_k: Tensor, batch_size: int, temperature: float) -> Tensor:
    """PatchNCE (Park et al. 2020, eq. 2), one value per query patch: (B * P,).

    feat_q, feat_k: (B * P, C) L2-normalised features of the same P positions of B images, image b's
    patches in rows b * P .. b * P + P - 1 (PatchSampleF's layout). Query row i's positive is key
    row i; its negatives are the other P - 1 keys of the *same* image (the authors' default, not the
    whole batch). The keys are detached, as the authors': no gradient reaches them.
    """
    if feat_q.shape != feat_k.shape or feat_q.dim() != 2 or feat_q.shape[0] % batch_size:
        raise ValueError(f"PatchNCE needs two (batch_size * P, C) feature sets, got {tuple(feat_q.shape)}, "
                         f"{tuple(feat_k.shape)} with batch_size {batch_size}")
    feat_q, feat_k = feat_q.float(), feat_k.detach().float()
    dim = feat_q.shape[1]
    positive = (feat_q * feat_k).sum(1, keepdim=True)  # (B * P, 1)
    q, k = feat_q.view(batch_size, -1, dim), feat_k.view(batch_size, -1, dim)
    n_patches = q.shape[1]
    negative = torch.bmm(q, k.transpose(1, 2))  # (B, P, P): query i against every key of its image
    self_pairs = torch.eye(n_patches, dtype=torch.bool, device=q.device)[None]
    negative = negative.masked_fill(self_pairs, SELF_SIMILARITY_FILL).view(-1, n_patches)
    logits = torch.cat([positive, negative], dim=1) / temperature
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)  # the positive is class 0
    return F.cross_entropy(logits, target, reduction="none")
