"""pix2pix: a conditional GAN with an L1 term (Isola et al., 2017).

Re-implemented from junyanz/pytorch-CycleGAN-and-pix2pix `models/pix2pix_model.py` and `test.py`.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.config import Pix2PixConfig, TrainConfig
from pipeline.losses import GANLoss
from pipeline.models.base import (Batch, Replicated, StepLosses, autocast, detached, evaluating, make_adam,
                                  parameters, single_translation)


class Pix2Pix(Replicated):
    """G: A -> B (B -> A when cfg.direction is "b_to_a"); D judges (input, output) pairs.

    Objective (§3.1, eq. 4): L_cGAN(G, D) + lambda_L1 * L1(G). With `cfg.conditional_d` False D sees
    the output alone (the paper's unconditional GAN ablation); with `cfg.use_gan` False there is no
    D (L1 alone); lambda_L1 0 removes the L1 term (cGAN alone).
    """

    def __init__(self, cfg: Pix2PixConfig, lambda_L1: float, train: TrainConfig, generator: nn.Module,
                 discriminator: nn.Module | None, amp_dtype: torch.dtype | None = None):
        if cfg.use_gan != (discriminator is not None):
            raise ValueError(f"pix2pix.use_gan is {cfg.use_gan} but discriminator is "
                             f"{'missing' if discriminator is None else 'given'}")
        if not cfg.use_gan and lambda_L1 == 0:
            raise ValueError("pix2pix with use_gan false and lambda_L1 0 has no objective")
        self.cfg = cfg
        self.lambda_L1 = lambda_L1
        self.amp_dtype = amp_dtype
        self.generator = generator
        self.discriminator = discriminator
        self.gan_loss = GANLoss(cfg.gan_mode)
        self.optimizer_G = make_adam([generator], train)
        self.optimizer_D = make_adam([discriminator], train) if discriminator is not None else None
        self.ddp = self.networks()

    def train_step(self, batch: Batch) -> StepLosses:
        # reference set_input: direction BtoA swaps the roles of the two domains
        real_a, real_b = (batch.a, batch.b) if self.cfg.direction == "a_to_b" else (batch.b, batch.a)
        with autocast(real_a.device, self.amp_dtype):
            fake_b = self.ddp["G"](real_a)
        losses: StepLosses = {}
        if self.discriminator is not None:  # D first, on fake_b.detach(), as optimize_parameters
            losses |= self._update_discriminator(real_a, real_b, fake_b.detach())
        return losses | self._update_generator(real_a, real_b, fake_b)

    def _d_input(self, real_a: Tensor, b: Tensor) -> Tensor:
        if self.cfg.conditional_d:
            return torch.cat((real_a, b), dim=1)  # (B, 3, H, W) x 2 -> (B, 6, H, W)
        return b

    def _update_discriminator(self, real_a: Tensor, real_b: Tensor, fake_b: Tensor) -> StepLosses:
        assert self.discriminator is not None and self.optimizer_D is not None
        self.optimizer_D.zero_grad(set_to_none=True)
        with autocast(real_a.device, self.amp_dtype):
            pred_fake = self.ddp["D"](self._d_input(real_a, fake_b))
            pred_real = self.ddp["D"](self._d_input(real_a, real_b))
        d_fake = self.gan_loss(pred_fake, False)
        d_real = self.gan_loss(pred_real, True)
        # halved, which slows D's learning relative to G's (pix2pix §3.3; reference backward_D)
        ((d_real + d_fake) * 0.5).backward()
        self.optimizer_D.step()
        return detached({"d_real": d_real, "d_fake": d_fake})

    def _update_generator(self, real_a: Tensor, real_b: Tensor, fake_b: Tensor) -> StepLosses:
        self.optimizer_G.zero_grad(set_to_none=True)
        terms: dict[str, Tensor] = {}
        if self.discriminator is not None:  # the just-updated D, as the reference backward_G (not D's
            # DDP wrapper: this backward does not update D)
            with autocast(real_a.device, self.amp_dtype):
                pred_fake = self.discriminator(self._d_input(real_a, fake_b))
            terms["g_gan"] = self.gan_loss(pred_fake, True)
        if self.lambda_L1 > 0:
            terms["g_l1"] = F.l1_loss(fake_b.float(), real_b.float()) * self.lambda_L1
        # inputs=: D receives no gradient from G's loss (the reference sets requires_grad False)
        sum(terms.values()).backward(inputs=parameters(self.generator))
        self.optimizer_G.step()
        return detached(terms)

    @torch.no_grad()
    def translate(self, source: Tensor, direction: str | None = None) -> Tensor:
        """G(source) as float32; `direction` defaults to cfg.direction, the only one G maps.

        With `cfg.dropout_at_test` (the paper's protocol, §3.3 and the reference test.py without
        --eval at batch_size 1) G runs exactly as in training: dropout on as the noise z, and batch
        norm on the statistics of the test image itself. Each image therefore goes through G alone,
        so an output does not depend on which images share its batch, and the running-statistic
        buffers are restored afterwards so translating leaves the model unchanged. Without it, G
        runs in eval mode: no dropout, batch norm on its running statistics.
        """
        direction = self.cfg.direction if direction is None else direction
        if direction != self.cfg.direction:
            raise ValueError(f"this pix2pix G maps {self.cfg.direction!r}; cannot translate {direction!r}")
        with autocast(source.device, self.amp_dtype):
            if self.cfg.dropout_at_test:
                with _as_in_training(self.generator):
                    fake = torch.cat([self.generator(image) for image in source.split(1)])
            else:
                with evaluating(self.generator):
                    fake = self.generator(source)
        return fake.float()

    def directions(self) -> tuple[str, ...]:
        return (self.cfg.direction,)

    def test_outputs(self, source: Tensor, direction: str, target: Tensor | None, *, seed: int,
                     n_samples: int) -> dict[str, Tensor]:
        """fake_b (fake_a when trained b_to_a); the dropout noise draws from the global generator."""
        return single_translation(self, source, direction)

    def networks(self) -> dict[str, nn.Module]:
        nets = {"G": self.generator}
        if self.discriminator is not None:
            nets["D"] = self.discriminator
        return nets

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers: dict[str, torch.optim.Optimizer] = {"G": self.optimizer_G}
        if self.optimizer_D is not None:
            optimizers["D"] = self.optimizer_D
        return optimizers

    def exported_networks(self) -> dict[str, nn.Module]:
        return {"G": self.generator}

    def extra_state(self) -> dict:
        return {}  # dropout draws from torch's global RNG, which the checkpointer owns

    def load_extra_state(self, state: dict) -> None:
        if state:
            raise ValueError(f"pix2pix has no extra state; got keys {sorted(state)}")


@contextlib.contextmanager
def _as_in_training(net: nn.Module) -> Iterator[None]:
    """Train mode for `net`, with its buffers (batch-norm running statistics) restored on exit."""
    mode = net.training
    saved = [buffer.clone() for buffer in net.buffers()]
    try:
        net.train()
        yield
    finally:
        for buffer, value in zip(net.buffers(), saved):
            buffer.copy_(value)
        net.train(mode)
