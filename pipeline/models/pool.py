"""The history buffer of generated images that CycleGAN shows its discriminators.

Shrivastava et al. 2017 (SimGAN §2.3), as used in CycleGAN §4 and re-implemented from
junyanz/pytorch-CycleGAN-and-pix2pix `util/image_pool.py`, drawing from a given torch.Generator.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class ImagePool:
    """Stores up to `pool_size` generated images; `query` returns a mix of new and older ones.

    While the pool is filling, every new image is stored and returned. Once full, each new image
    with probability 0.5 replaces a uniformly chosen stored image and that older image is returned
    in its place; otherwise the new image is returned. `pool_size` 0 returns the input unchanged.
    Every random draw comes from `generator`, so a resumed run reproduces the same choices.
    """

    def __init__(self, pool_size: int, generator: torch.Generator):
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}")
        self.pool_size = pool_size
        self.generator = generator
        self.images: Tensor | None = None  # (n_stored, C, H, W), detached; n_stored <= pool_size

    @property
    def num_imgs(self) -> int:
        return 0 if self.images is None else self.images.shape[0]

    def query(self, images: Tensor) -> Tensor:
        """Return a batch shaped like `images` (B, C, H, W), drawn from the history as above."""
        if self.pool_size == 0:
            return images
        images = images.detach()
        returned = []
        for image in images.split(1):  # (1, C, H, W) each; in order, as the reference
            if self.num_imgs < self.pool_size:
                self.images = image.clone() if self.images is None else torch.cat([self.images, image])
                returned.append(image)
            else:
                returned.append(self._swap(image))
        return torch.cat(returned)

    def _swap(self, image: Tensor) -> Tensor:
        """With p = 0.5 put `image` in a random slot and return the slot's old image.

        The draws stay tensors and the choice a `torch.where`, so no value reaches the host.
        """
        assert self.images is not None
        device = self.images.device
        use_old = torch.rand(1, generator=self.generator, device=self.generator.device).to(device) < 0.5
        slot = torch.randint(self.pool_size, (1,), generator=self.generator,
                             device=self.generator.device).to(device)
        old = self.images.index_select(0, slot)  # (1, C, H, W)
        self.images.index_copy_(0, slot, torch.where(use_old, image, old))
        return torch.where(use_old, old, image)

    def state_dict(self) -> dict[str, Any]:
        return {"pool_size": self.pool_size, "images": self.images,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["pool_size"] != self.pool_size:
            raise ValueError(f"pool state holds pool_size {state['pool_size']}, this pool has {self.pool_size}")
        images = state["images"]
        # checkpoints load on the CPU; the pool lives where its generator draws (the training device)
        self.images = None if images is None else images.to(self.generator.device, copy=True)
        self.generator.set_state(state["generator"])
