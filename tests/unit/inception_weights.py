"""torch-fidelity's FID InceptionV3 with random weights, written to a file as a user's local copy
would be: the standard weights cannot be fetched here, and the tests need none."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def write_random_inception(path: Path, seed: int = 0) -> Path:
    """A weights file for torch-fidelity's InceptionV3 (its keys and shapes), drawn at random.

    The library builds its network only from a weights file, so the network is first built with
    its loading skipped, then re-initialised: Kaiming-normal convolutions keep the activations of
    its 90 layers near unit scale (PyTorch's default init shrinks pool3 features to ~1e-8).
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    empty = path.with_suffix(".empty")
    torch.save({}, empty)
    original = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, state_dict, strict=True: None
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    finally:
        FeatureExtractorInceptionV3.load_state_dict = original
        empty.unlink()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
    torch.save(net.state_dict(), path)
    return path
