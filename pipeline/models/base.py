"""The interface the training loop drives (Translator), the batch it feeds, and shared helpers.

Keeps the junyanz BaseModel lifecycle (set_input / optimize_parameters) as one `train_step` that
returns its losses instead of setting `self.loss_*` attributes.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Protocol

import torch
from torch import Tensor, nn

from pipeline.config import TrainConfig
from pipeline.sampler import Batch  # what the sampler yields and every train_step takes
from pipeline.translated import fake_kind

# Loss name -> detached 0-dim float32 tensor, weighted by its lambda as the reference logs them
# (`loss_G_L1 = L1 * lambda_L1`). Tensors, not floats: `.item()` every step would force a device
# sync; the training loop converts when it logs. A term whose weight is 0 or whose switch is off
# is absent, so every key present is a term of the objective that was optimised.
StepLosses = dict[str, Tensor]


class Translator(Protocol):
    """What every method offers the training loop, the checkpointer and the translate stage."""

    def train_step(self, batch: Batch) -> StepLosses: ...

    def translate(self, source: Tensor, direction: str = "a_to_b") -> Tensor: ...  # no grad

    def directions(self) -> tuple[str, ...]: ...  # what translate() maps: "a_to_b", "b_to_a"

    # translate's outputs for one test batch, by the folder they go to (pipeline.translated):
    # `target` is the batch's paired counterpart or None; `seed` and `n_samples` set the latent
    # draws of a method that samples
    def test_outputs(self, source: Tensor, direction: str, target: Tensor | None, *, seed: int,
                     n_samples: int) -> dict[str, Tensor]: ...

    def networks(self) -> dict[str, nn.Module]: ...  # everything trained, for checkpoints

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    def exported_networks(self) -> dict[str, nn.Module]: ...  # what inference needs

    def extra_state(self) -> dict: ...  # image pools, random generators: for checkpoints

    def load_extra_state(self, state: dict) -> None: ...

    # wrap each network for the passes that update it (DistributedDataParallel): see Replicated
    def replicate(self, wrap: Callable[[nn.Module], nn.Module]) -> None: ...


class Replicated:
    """The networks as a train_step calls them in the passes whose backward updates them: `ddp[name]`.

    Under torchrun these are DistributedDataParallel wrappers (pipeline.distributed.replicate), so
    each backward averages that network's gradients over the ranks; otherwise the networks
    themselves. Every other pass calls the network itself: D inside G's step (whose backward
    reaches G only), an encoder held fixed for a term, translate. A DDP forward prepares a gradient
    reduction that only a backward reaching all its parameters completes, and calls on one rank
    alone (translate on rank 0) must not enter a collective.
    """

    ddp: dict[str, nn.Module]

    def replicate(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        self.ddp = {name: wrap(net) for name, net in self.networks().items()}


def single_translation(model: Translator, source: Tensor, direction: str) -> dict[str, Tensor]:
    """test_outputs of a method with one deterministic output per input: its translation alone."""
    return {fake_kind(direction): model.translate(source, direction)}


def make_adam(modules: list[nn.Module], train: TrainConfig) -> torch.optim.Adam:
    """Adam(lr, (beta1, beta2)) over the parameters of `modules`: one fused kernel per tensor when
    train.fused_adam asks for it (CUDA and CPU), foreach otherwise. The same update: on the CPU
    foreach runs each of Adam's element-wise ops over each tensor in turn, a third of pix2pix's step
    at the default size, where the fused kernel reads and writes each tensor once."""
    params = parameters(*modules)
    if not params:
        raise ValueError("no parameters to optimise")
    fused = train.fused_adam and params[0].device.type in ("cuda", "cpu")
    return torch.optim.Adam(params, lr=train.lr, betas=(train.beta1, train.beta2),
                            fused=True if fused else None, foreach=None if fused else True)


def parameters(*modules: nn.Module) -> list[nn.Parameter]:
    """The parameters of `modules`, for `backward(inputs=...)`: only these receive gradients."""
    return [p for module in modules for p in module.parameters()]


def autocast(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision for forward passes when `amp_dtype` is set; a no-op otherwise."""
    return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)


def detached(terms: dict[str, Tensor]) -> StepLosses:
    return {name: value.detach() for name, value in terms.items()}


@contextlib.contextmanager
def evaluating(*nets: nn.Module) -> Iterator[None]:
    """Run `nets` in eval mode, restoring each one's train/eval mode afterwards."""
    modes = [net.training for net in nets]
    try:
        for net in nets:
            net.eval()
        yield
    finally:
        for net, mode in zip(nets, modes):
            net.train(mode)
