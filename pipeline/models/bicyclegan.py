"""BicycleGAN: multimodal translation from a cVAE-GAN and a cLR-GAN sharing G and E (Zhu et al., 2017b).

Re-implemented from junyanz/BicycleGAN `models/bicycle_gan_model.py` (BiCycleGANModel) and `test.py`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.config import BicycleGANConfig, TrainConfig
from pipeline.losses import GANLoss, kl_divergence
from pipeline.models.base import (Batch, Replicated, StepLosses, autocast, detached, evaluating, make_adam,
                                  parameters)
from pipeline.translated import ENCODED, FAKE_B, sample_kind


class BicycleGAN(Replicated):
    """G(A, z) -> B with an encoder E(B) -> (mu, logvar), as the reference BiCycleGANModel.

    Each batch is split in halves (§3.4). The first half is the cVAE-GAN (B -> z -> B^): z from
    E(B) by reparameterisation, lambda_img * |G(A, z) - B|_1 and lambda_kl * KL(E(B) || N(0, I)).
    The second half is the cLR-GAN (z -> B^ -> z^): z_random ~ N(0, I) and
    lambda_z * |mu(E(G(A, z_random))) - z_random|_1, which updates G only. Two unconditional
    multiscale D's judge B images: `d_vae` the encoded half, `d_lr` the random half (reference
    netD, netD2). As in the reference forward(), both generated halves condition on the first
    half's A images (fake_B_random = netG(real_A_encoded, z_random)); the second half supplies the
    real B images that d_lr sees.
    """

    def __init__(self, cfg: BicycleGANConfig, lambda_img: float, lambda_kl: float, lambda_z: float, nz: int,
                 train: TrainConfig, generator: nn.Module, encoder: nn.Module, d_vae: nn.Module,
                 d_lr: nn.Module, z_generator: torch.Generator, amp_dtype: torch.dtype | None = None):
        self.cfg = cfg
        self.lambda_img, self.lambda_kl, self.lambda_z, self.nz = lambda_img, lambda_kl, lambda_z, nz
        self.amp_dtype = amp_dtype
        self.generator, self.encoder, self.d_vae, self.d_lr = generator, encoder, d_vae, d_lr
        self.z_generator = z_generator  # eps and z_random: resumable, never the global RNG
        self.gan_loss = GANLoss(cfg.gan_mode)
        self.optimizer_G = make_adam([generator], train)
        self.optimizer_E = make_adam([encoder], train)
        self.optimizer_D_vae = make_adam([d_vae], train)
        self.optimizer_D_lr = make_adam([d_lr], train)
        self.ddp = self.networks()

    def _randn(self, n: int, device: torch.device) -> Tensor:
        z = torch.randn(n, self.nz, generator=self.z_generator, device=self.z_generator.device)
        return z.to(device)  # (n, nz)

    def train_step(self, batch: Batch) -> StepLosses:
        """G and E, then the D's on the pre-update fakes, as the reference optimize_parameters."""
        size = batch.a.shape[0]
        if size < 2 or size % 2:
            raise ValueError(f"bicyclegan needs an even batch of at least 2 (half cVAE-GAN, half "
                             f"cLR-GAN), got {size}; use a loader with drop_last")
        half = size // 2
        real_a_encoded, real_b_encoded, real_b_random = batch.a[:half], batch.b[:half], batch.b[half:]
        eps = self._randn(half, batch.a.device)  # drawn before z_random, as the reference
        z_random = self._randn(half, batch.a.device)

        self.optimizer_E.zero_grad(set_to_none=True)
        self.optimizer_G.zero_grad(set_to_none=True)
        terms: dict[str, Tensor] = {}
        generator = self.ddp["G"]
        with autocast(batch.a.device, self.amp_dtype):
            mu, logvar = self.ddp["E"](real_b_encoded)
            z_encoded = mu.float() + eps * torch.exp(0.5 * logvar.float())  # reparameterisation
            fake_b_encoded = generator(real_a_encoded, z_encoded)
            fake_b_random = generator(real_a_encoded, z_random)
            # the D's themselves, not their DDP wrappers: this backward does not update them
            pred_encoded, pred_random = self.d_vae(fake_b_encoded), self.d_lr(fake_b_random)
            if self.lambda_z > 0:
                # mu2 is a point estimate of z_random; E's weights enter detached, so that this
                # term's gradient reaches G alone (the reference backward_G_alone freezes E)
                fixed_e = {name: p.detach() for name, p in self.encoder.named_parameters()}
                mu2, _ = torch.func.functional_call(self.encoder, fixed_e, (fake_b_random,))
        terms["g_gan_vae"] = self.gan_loss(pred_encoded, True)  # lambda_GAN = lambda_GAN2 = 1,
        terms["g_gan_lr"] = self.gan_loss(pred_random, True)  # the reference defaults
        if self.lambda_img > 0:
            terms["g_l1"] = F.l1_loss(fake_b_encoded.float(), real_b_encoded.float()) * self.lambda_img
        if self.lambda_kl > 0:
            terms["kl"] = kl_divergence(mu, logvar) * self.lambda_kl
        if self.lambda_z > 0:
            terms["z_l1"] = F.l1_loss(mu2.float(), z_random) * self.lambda_z
        # backward_EG and backward_G_alone in one backward: the same summed gradients as the
        # reference's two, and one pass is what DDP averages (a second backward after the first
        # has reduced G's gradients would add to them on this rank alone); inputs=: the D's
        # receive no gradient (the reference freezes them)
        sum(terms.values()).backward(inputs=parameters(self.generator, self.encoder))
        # one step on the summed gradients, as the reference update_G_and_E
        self.optimizer_E.step()
        self.optimizer_G.step()
        return detached(terms) | self._update_discriminators(
            real_b_encoded, real_b_random, fake_b_encoded.detach(), fake_b_random.detach())

    def _update_discriminators(self, real_b_encoded: Tensor, real_b_random: Tensor,
                               fake_b_encoded: Tensor, fake_b_random: Tensor) -> StepLosses:
        self.optimizer_D_vae.zero_grad(set_to_none=True)
        self.optimizer_D_lr.zero_grad(set_to_none=True)
        d_vae = self._discriminator_loss(self.ddp["D_vae"], real_b_encoded, fake_b_encoded)
        d_lr = self._discriminator_loss(self.ddp["D_lr"], real_b_random, fake_b_random)
        (d_vae + d_lr).backward()
        self.optimizer_D_vae.step()
        self.optimizer_D_lr.step()
        return detached({"d_vae": d_vae, "d_lr": d_lr})

    def _discriminator_loss(self, net: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        with autocast(real.device, self.amp_dtype):
            pred_fake, pred_real = net(fake), net(real)
        # not halved: the BicycleGAN reference backward_D sums fake and real
        return self.gan_loss(pred_fake, False) + self.gan_loss(pred_real, True)

    @torch.no_grad()
    def sample(self, source: Tensor, n: int, generator: torch.Generator) -> Tensor:
        """`n` outputs per input, (n, B, 3, H, W) float32, with z_1..z_n ~ N(0, I) from `generator`.

        Each z_k is shared by every image of the batch (the reference test.py --sync), so an output
        does not depend on which images share its batch. G runs in eval mode (reference model.eval()).
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        z_samples = torch.randn(n, self.nz, generator=generator, device=generator.device).to(source.device)
        with evaluating(self.generator), autocast(source.device, self.amp_dtype):
            fakes = [self.generator(source, z.expand(source.shape[0], -1)) for z in z_samples]
        return torch.stack(fakes).float()  # n x (B, 3, H, W) -> (n, B, 3, H, W)

    @torch.no_grad()
    def translate(self, source: Tensor, direction: str = "a_to_b", seed: int = 0) -> Tensor:
        """One output per input from one fixed z: the first of sample(source, 1, Generator(seed)).

        The same z for every image and every call with the same `seed`, so translating a test set
        is deterministic; sample() is the multimodal API.
        """
        if direction != "a_to_b":
            raise ValueError(f"bicyclegan maps 'a_to_b' only, got {direction!r}")
        return self.sample(source, 1, torch.Generator().manual_seed(seed))[0]

    @torch.no_grad()
    def reconstruct(self, a: Tensor, b: Tensor) -> Tensor:
        """G(a, mu) with mu = E(b): the reference test(encode=True), float32 (B, 3, H, W)."""
        with evaluating(self.generator, self.encoder), autocast(a.device, self.amp_dtype):
            mu, _ = self.encoder(b)
            return self.generator(a, mu).float()

    def directions(self) -> tuple[str, ...]:
        return ("a_to_b",)

    def test_outputs(self, source: Tensor, direction: str, target: Tensor | None, *, seed: int,
                     n_samples: int) -> dict[str, Tensor]:
        """fake_b from one fixed z, samples/<k> for k < n_samples, and encoded when `target` is given.

        The same z_1..z_K for every batch (from seed + 1): sample k of each input shares one latent code.
        """
        outputs = {FAKE_B: self.translate(source, direction, seed=seed)}
        if n_samples > 0:
            samples = self.sample(source, n_samples, torch.Generator().manual_seed(seed + 1))
            outputs.update({sample_kind(k): samples[k] for k in range(n_samples)})
        if target is not None:
            outputs[ENCODED] = self.reconstruct(source, target)
        return outputs

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.generator, "E": self.encoder, "D_vae": self.d_vae, "D_lr": self.d_lr}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.optimizer_G, "E": self.optimizer_E, "D_vae": self.optimizer_D_vae,
                "D_lr": self.optimizer_D_lr}

    def exported_networks(self) -> dict[str, nn.Module]:
        return {"G": self.generator, "E": self.encoder}

    def extra_state(self) -> dict:
        return {"z_generator": self.z_generator.get_state()}

    def load_extra_state(self, state: dict) -> None:
        if set(state) != {"z_generator"}:
            raise ValueError(f"bicyclegan extra state needs z_generator, got {sorted(state)}")
        self.z_generator.set_state(state["z_generator"])
