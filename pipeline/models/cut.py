"""CUT and FastCUT: contrastive unpaired translation with one generator (Park et al., ECCV 2020).

Re-implemented from taesungp/contrastive-unpaired-translation `models/cut_model.py`; FastCUT is
the same model with its own config defaults (`FastCUTConfig`), as the authors' `--CUT_mode`.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.config import CUTConfig, TrainConfig
from pipeline.losses import GANLoss, patch_nce_loss
from pipeline.models.base import (Batch, Replicated, StepLosses, autocast, detached, evaluating, make_adam,
                                  parameters, single_translation)
from pipeline.nets import PatchSampleF

A_TO_B = ("a_to_b",)


class CUT(Replicated):
    """G: A -> B, D judges domain B, netF projects sampled patches of G's encoder features.

    Objective (eq. 5): lambda_GAN * L_GAN(G, D) + lambda_NCE * PatchNCE(G(x), x), with the identity
    term (CUT) the two NCE terms averaged: 0.5 * lambda_NCE * (PatchNCE(G(x), x) + PatchNCE(G(y), y)).
    Each PatchNCE term is the mean over sampled patches, averaged over the nce_layers. The logged
    `nce` and `nce_y` carry that 0.5, so the logged terms add up to the objective (the authors' log
    shows them without it). LSGAN; D halves its real and fake terms, and sees no image history.

    Step order as the authors: one forward of G on [x; y] (x alone without the identity term), D's
    update, then G's and netF's. With flip_equivariance (FastCUT) G's input is flipped left-right
    with probability 1/2 and the query features are flipped back, so that G learns to commute with
    the flip. Patch positions and flips come from `sample_generator`, never the global RNG.
    """

    def __init__(self, cfg: CUTConfig, train: TrainConfig, g: nn.Module, f: PatchSampleF, d: nn.Module,
                 sample_generator: torch.Generator, amp_dtype: torch.dtype | None = None):
        self.cfg = cfg
        self.g, self.f, self.d = g, f, d
        self.sample_generator = sample_generator
        self.amp_dtype = amp_dtype
        self.layers = tuple(cfg.nce_layers)
        self.use_nce = cfg.lambda_NCE > 0
        self.use_idt = cfg.nce_idt and self.use_nce
        self.gan_loss = GANLoss(cfg.gan_mode)
        self.optimizer_G = make_adam([g], train)
        self.optimizer_D = make_adam([d], train)
        self.optimizer_F = make_adam([f], train) if self.use_nce else None
        self.ddp = self.networks()

    def train_step(self, batch: Batch) -> StepLosses:
        real_a, real_b = batch.a, batch.b
        if self.use_nce and real_a.shape[1] != real_b.shape[1]:
            raise ValueError(f"{self.cfg.section}: PatchNCE runs G's encoder on domain-B images, so A and B need "
                             f"the same number of channels; got {real_a.shape[1]} and {real_b.shape[1]}")
        n = real_a.shape[0]
        flip = self._draw_flip(real_a.device)
        real = torch.cat([real_a, real_b]) if self.use_idt else real_a
        with autocast(real.device, self.amp_dtype):
            fake = self.ddp["G"](_flipped(real, flip))
        fake_b, idt_b = fake[:n], fake[n:] if self.use_idt else None
        losses = self._update_discriminator(real_b, fake_b.detach())
        return losses | self._update_generator(real_a, real_b, fake_b, idt_b, flip)

    def _draw_flip(self, device: torch.device) -> Tensor | None:
        """A 0-dim bool on the device (no host sync): flip this step's input or not."""
        if not self.cfg.flip_equivariance:
            return None
        gen = self.sample_generator
        return torch.rand((), generator=gen, device=gen.device).to(device) < 0.5

    def _update_discriminator(self, real_b: Tensor, fake_b: Tensor) -> StepLosses:
        self.optimizer_D.zero_grad(set_to_none=True)
        with autocast(real_b.device, self.amp_dtype):
            pred_fake, pred_real = self.ddp["D"](fake_b), self.ddp["D"](real_b)
        terms = {"d_fake": self.gan_loss(pred_fake, False) * 0.5, "d_real": self.gan_loss(pred_real, True) * 0.5}
        sum(terms.values()).backward()
        self.optimizer_D.step()
        return detached(terms)

    def _update_generator(self, real_a: Tensor, real_b: Tensor, fake_b: Tensor, idt_b: Tensor | None,
                          flip: Tensor | None) -> StepLosses:
        cfg, terms = self.cfg, {}
        self.optimizer_G.zero_grad(set_to_none=True)
        if self.optimizer_F is not None:
            self.optimizer_F.zero_grad(set_to_none=True)
        if cfg.lambda_GAN > 0:
            with autocast(fake_b.device, self.amp_dtype):
                pred_fake = self.d(fake_b)  # D itself, not its DDP wrapper: this backward does not update D
            terms["g_gan"] = self.gan_loss(pred_fake, True) * cfg.lambda_GAN
        if self.use_nce:
            weight = 0.5 if idt_b is not None else 1.0
            terms["nce"] = self.nce_loss(real_a, fake_b, flip) * weight
            if idt_b is not None:
                terms["nce_y"] = self.nce_loss(real_b, idt_b, flip) * weight
        # inputs=: D receives no gradient from G's loss (the authors freeze it)
        trained = [self.g, self.f] if self.optimizer_F is not None else [self.g]
        sum(terms.values()).backward(inputs=parameters(*trained))
        self.optimizer_G.step()
        if self.optimizer_F is not None:
            self.optimizer_F.step()
        return detached(terms)

    def nce_loss(self, source: Tensor, translated: Tensor, flip: Tensor | None = None) -> Tensor:
        """lambda_NCE * PatchNCE(translated, source), averaged over the nce_layers.

        The keys (the source's features) get no gradient in the authors' loss, so they are
        computed without one; the patch positions are drawn on the keys and reused for the queries.
        G's features come from G itself (DDP wraps forward() alone): their gradients reach G's
        parameters in the same backward as the wrapped forward's, so DDP averages their sum.
        """
        with autocast(translated.device, self.amp_dtype):
            queries = [_flipped(q, flip) for q in self.g.features(translated, self.layers)]
            with torch.no_grad():
                key_feats = self.g.features(source, self.layers)
                keys, positions = self.f(key_feats, self.cfg.num_patches, generator=self.sample_generator)
            queries, _ = self.ddp["F"](queries, self.cfg.num_patches, positions)
        n = source.shape[0]
        total = sum(patch_nce_loss(q, k, n, self.cfg.nce_T).mean() for q, k in zip(queries, keys))
        return total * self.cfg.lambda_NCE / len(self.layers)

    @torch.no_grad()
    def translate(self, source: Tensor, direction: str = "a_to_b") -> Tensor:
        """G(source) in eval mode, as float32; CUT maps A -> B only."""
        if direction not in A_TO_B:
            raise ValueError(f"{self.cfg.section} translates a_to_b only (one generator), got {direction!r}")
        with evaluating(self.g), autocast(source.device, self.amp_dtype):
            return self.g(source).float()

    def directions(self) -> tuple[str, ...]:
        return A_TO_B

    def test_outputs(self, source: Tensor, direction: str, target: Tensor | None, *, seed: int,
                     n_samples: int) -> dict[str, Tensor]:
        return single_translation(self, source, direction)

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.g, "F": self.f, "D": self.d}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers: dict[str, torch.optim.Optimizer] = {"G": self.optimizer_G, "D": self.optimizer_D}
        if self.optimizer_F is not None:
            optimizers["F"] = self.optimizer_F
        return optimizers

    def exported_networks(self) -> dict[str, nn.Module]:
        return {"G": self.g}

    def extra_state(self) -> dict:
        return {"sample_generator": self.sample_generator.get_state()}

    def load_extra_state(self, state: dict) -> None:
        if set(state) != {"sample_generator"}:
            raise ValueError(f"{self.cfg.section} extra state needs sample_generator, got {sorted(state)}")
        self.sample_generator.set_state(state["sample_generator"])


def _flipped(x: Tensor, flip: Tensor | None) -> Tensor:
    """x flipped left-right where `flip` holds; x itself without a flip draw."""
    return x if flip is None else torch.where(flip, x.flip(3), x)
