"""CycleGAN: two unpaired mappings tied by cycle consistency (Zhu et al., 2017).

Re-implemented from junyanz/pytorch-CycleGAN-and-pix2pix `models/cycle_gan_model.py`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.config import CycleGANConfig, TrainConfig
from pipeline.losses import GANLoss
from pipeline.models.base import (Batch, Replicated, StepLosses, autocast, detached, evaluating, make_adam,
                                  parameters, single_translation)
from pipeline.models.pool import ImagePool
from pipeline.translated import DIRECTIONS


class CycleGAN(Replicated):
    """Reference naming; the paper's (§3) in brackets, with X = domain A and Y = domain B.

    G_A: A -> B [G: X -> Y] and G_B: B -> A [F: Y -> X]. D_A judges domain B, real B against
    G_A's outputs [D_Y]; D_B judges domain A, real A against G_B's outputs [D_X].

    Objective (eq. 3 plus the identity loss of §5.2): L_GAN(G_A, D_A) + L_GAN(G_B, D_B)
    + lambda_cyc * (|G_B(G_A(a)) - a|_1 + |G_A(G_B(b)) - b|_1)
    + lambda_idt * lambda_cyc * (|G_A(b) - b|_1 + |G_B(a) - a|_1), LSGAN by default. The Table 4
    ablations come from the config: use_gan false (cycle alone), cycle_forward / cycle_backward
    false (drop that cycle), lambda_cyc 0 (GAN alone); lambda_idt 0 drops the identity terms.
    """

    def __init__(self, cfg: CycleGANConfig, lambda_cyc: float, lambda_idt: float, train: TrainConfig,
                 g_a: nn.Module, g_b: nn.Module, d_a: nn.Module | None, d_b: nn.Module | None,
                 pool_generator: torch.Generator, amp_dtype: torch.dtype | None = None):
        if cfg.use_gan != (d_a is not None) or cfg.use_gan != (d_b is not None):
            raise ValueError(f"cyclegan.use_gan is {cfg.use_gan}; d_a and d_b must both be "
                             f"{'given' if cfg.use_gan else 'None'}")
        self.cfg = cfg
        self.lambda_cyc = lambda_cyc
        self.lambda_idt = lambda_idt
        self.amp_dtype = amp_dtype
        self.use_cycle_a = cfg.cycle_forward and lambda_cyc > 0
        self.use_cycle_b = cfg.cycle_backward and lambda_cyc > 0
        self.use_idt = lambda_idt > 0 and lambda_cyc > 0
        if not (cfg.use_gan or self.use_cycle_a or self.use_cycle_b or self.use_idt):
            raise ValueError("cyclegan with use_gan false and no cycle or identity term has no objective")
        self.g_a, self.g_b, self.d_a, self.d_b = g_a, g_b, d_a, d_b
        self.gan_loss = GANLoss(cfg.gan_mode)
        # one Adam for both G's and one for both D's (itertools.chain in the reference)
        self.optimizer_G = make_adam([g_a, g_b], train)
        self.optimizer_D = make_adam([d_a, d_b], train) if d_a is not None and d_b is not None else None
        # histories of generated images: fake B for D_A, fake A for D_B (both share one generator)
        self.fake_b_pool = ImagePool(cfg.pool_size, pool_generator)
        self.fake_a_pool = ImagePool(cfg.pool_size, pool_generator)
        self.ddp = self.networks()

    def train_step(self, batch: Batch) -> StepLosses:
        """G's first, then D's on pooled fakes, as the reference optimize_parameters."""
        real_a, real_b = batch.a, batch.b
        if self.use_idt and real_a.shape[1] != real_b.shape[1]:
            raise ValueError(f"the identity loss needs equal channels in A and B, got "
                             f"{real_a.shape[1]} and {real_b.shape[1]}")
        fake_a, fake_b, losses = self._update_generators(real_a, real_b)
        if self.d_a is not None:
            losses |= self._update_discriminators(real_a, real_b, fake_a.detach(), fake_b.detach())
        return losses

    def _update_generators(self, real_a: Tensor, real_b: Tensor) -> tuple[Tensor, Tensor, StepLosses]:
        self.optimizer_G.zero_grad(set_to_none=True)
        cfg, terms = self.cfg, {}
        g_a, g_b = self.ddp["G_A"], self.ddp["G_B"]
        with autocast(real_a.device, self.amp_dtype):
            fake_b = g_a(real_a)  # G_A(A)
            fake_a = g_b(real_b)  # G_B(B)
            if cfg.use_gan:  # the D's themselves, not their DDP wrappers: this backward does not update them
                assert self.d_a is not None and self.d_b is not None
                pred_fake_b, pred_fake_a = self.d_a(fake_b), self.d_b(fake_a)
            rec_a = g_b(fake_b) if self.use_cycle_a else None  # G_B(G_A(A))
            rec_b = g_a(fake_a) if self.use_cycle_b else None  # G_A(G_B(B))
            if self.use_idt:
                idt_a, idt_b = g_a(real_b), g_b(real_a)  # G_A(B), G_B(A)
        if cfg.use_gan:
            terms["g_gan_a"] = self.gan_loss(pred_fake_b, True)
            terms["g_gan_b"] = self.gan_loss(pred_fake_a, True)
        if rec_a is not None:
            terms["cycle_a"] = F.l1_loss(rec_a.float(), real_a.float()) * self.lambda_cyc
        if rec_b is not None:
            terms["cycle_b"] = F.l1_loss(rec_b.float(), real_b.float()) * self.lambda_cyc
        if self.use_idt:  # reference: loss_idt_A = |G_A(B) - B| * lambda_B * lambda_identity
            weight = self.lambda_cyc * self.lambda_idt
            terms["idt_a"] = F.l1_loss(idt_a.float(), real_b.float()) * weight
            terms["idt_b"] = F.l1_loss(idt_b.float(), real_a.float()) * weight
        # inputs=: the D's receive no gradient from the G loss (the reference freezes them)
        sum(terms.values()).backward(inputs=parameters(self.g_a, self.g_b))
        self.optimizer_G.step()
        return fake_a, fake_b, detached(terms)

    def _update_discriminators(self, real_a: Tensor, real_b: Tensor, fake_a: Tensor,
                               fake_b: Tensor) -> StepLosses:
        assert self.d_a is not None and self.d_b is not None and self.optimizer_D is not None
        self.optimizer_D.zero_grad(set_to_none=True)
        d_a = self._discriminator_loss(self.ddp["D_A"], real_b, self.fake_b_pool.query(fake_b))
        d_b = self._discriminator_loss(self.ddp["D_B"], real_a, self.fake_a_pool.query(fake_a))
        (d_a + d_b).backward()
        self.optimizer_D.step()
        return detached({"d_a": d_a, "d_b": d_b})

    def _discriminator_loss(self, net: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        with autocast(real.device, self.amp_dtype):
            pred_real, pred_fake = net(real), net(fake)
        # halved, as the reference backward_D_basic (and pix2pix §3.3)
        return (self.gan_loss(pred_real, True) + self.gan_loss(pred_fake, False)) * 0.5

    @torch.no_grad()
    def translate(self, source: Tensor, direction: str = "a_to_b") -> Tensor:
        """G_A(source) for "a_to_b", G_B(source) for "b_to_a", in eval mode, as float32.

        The reference test.py runs without --eval; with instance norm and no dropout (the CycleGAN
        defaults) eval and train mode give the same output.
        """
        nets = dict(zip(DIRECTIONS, (self.g_a, self.g_b)))
        if direction not in nets:
            raise ValueError(f"unknown direction {direction!r}; expected one of {sorted(nets)}")
        net = nets[direction]
        with evaluating(net), autocast(source.device, self.amp_dtype):
            return net(source).float()

    def directions(self) -> tuple[str, ...]:
        return DIRECTIONS

    def test_outputs(self, source: Tensor, direction: str, target: Tensor | None, *, seed: int,
                     n_samples: int) -> dict[str, Tensor]:
        """fake_b from G_A, fake_a from G_B: both directions, deterministic."""
        return single_translation(self, source, direction)

    def networks(self) -> dict[str, nn.Module]:
        nets = {"G_A": self.g_a, "G_B": self.g_b}
        if self.d_a is not None and self.d_b is not None:
            nets |= {"D_A": self.d_a, "D_B": self.d_b}
        return nets

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers: dict[str, torch.optim.Optimizer] = {"G": self.optimizer_G}
        if self.optimizer_D is not None:
            optimizers["D"] = self.optimizer_D
        return optimizers

    def exported_networks(self) -> dict[str, nn.Module]:
        return {"G_A": self.g_a, "G_B": self.g_b}

    def extra_state(self) -> dict:
        return {"fake_a_pool": self.fake_a_pool.state_dict(), "fake_b_pool": self.fake_b_pool.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        if set(state) != {"fake_a_pool", "fake_b_pool"}:
            raise ValueError(f"cyclegan extra state needs fake_a_pool and fake_b_pool, got {sorted(state)}")
        self.fake_a_pool.load_state_dict(state["fake_a_pool"])
        self.fake_b_pool.load_state_dict(state["fake_b_pool"])
