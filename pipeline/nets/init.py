"""Weight initialisation as the reference `init_weights`, optionally from a private torch.Generator.

Re-implemented from junyanz/pytorch-CycleGAN-and-pix2pix `init_weights` (`models/networks.py`).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from pipeline.config import InitName

# (weight, gain, generator) -> weight, filled in place
WeightInit = Callable[[torch.Tensor, float, torch.Generator | None], torch.Tensor]

_WEIGHT_INITS: dict[str, WeightInit] = {
    "normal": lambda weight, gain, generator: nn.init.normal_(weight, 0.0, gain, generator=generator),
    "xavier": lambda weight, gain, generator: nn.init.xavier_normal_(weight, gain=gain, generator=generator),
    # the reference ignores init_gain here: He init for a ReLU (a=0), fan_in
    "kaiming": lambda weight, gain, generator: nn.init.kaiming_normal_(
        weight, a=0, mode="fan_in", generator=generator),
    "orthogonal": lambda weight, gain, generator: nn.init.orthogonal_(weight, gain=gain, generator=generator),
}


@torch.no_grad()
def init_weights(net: nn.Module, init_type: InitName = "normal", init_gain: float = 0.02,
                 generator: torch.Generator | None = None) -> None:
    """Re-initialise `net` in place: conv/linear weights by `init_type`, biases 0, BatchNorm N(1, gain).

    With `generator`, every draw comes from it (reproducible, global RNG untouched); without,
    from the global RNG as the reference. normal(0.02) is the pix2pix/CycleGAN default.
    """
    try:
        init_weight = _WEIGHT_INITS[init_type]
    except KeyError:
        expected = sorted(_WEIGHT_INITS)
        raise ValueError(f"unknown init_type {init_type!r}; expected one of {expected}") from None
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            init_weight(module.weight, init_gain, generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d) and module.affine:
            nn.init.normal_(module.weight, 1.0, init_gain, generator=generator)
            nn.init.zeros_(module.bias)
