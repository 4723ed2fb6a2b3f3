"""CUT's netF: sample the same patch positions from each feature map of a pair, project each
sampled feature with a two-layer MLP, and L2-normalise it (Park et al. 2020, sec. 3.2).

Re-implemented from taesungp/contrastive-unpaired-translation `PatchSampleF` (`models/networks.py`,
netF "mlp_sample"). The authors build the MLPs at the first batch, because their input widths are
those of the generator's features; here they are built from those widths up front (the builder
reads them from the generator), so that checkpoints and resume need no special case. The MLPs keep
the authors' names (`mlp_0`, `mlp_1`, ...).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

NORM_EPS = 1e-7  # the authors' Normalize: x / (||x||_2 + 1e-7)


def l2_normalise(x: Tensor) -> Tensor:
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + NORM_EPS)


class PatchSampleF(nn.Module):
    """For feature maps (B, C_l, H_l, W_l), one per layer: (B * P, nc) unit vectors per layer."""

    def __init__(self, in_channels: list[int], nc: int = 256):
        super().__init__()
        if not in_channels or min(in_channels) < 1 or nc < 1:
            raise ValueError(f"netF needs >= 1 feature layer of >= 1 channel and nc >= 1, got {in_channels}, {nc}")
        self.in_channels = list(in_channels)
        for index, channels in enumerate(in_channels):
            self.add_module(f"mlp_{index}", nn.Sequential(nn.Linear(channels, nc), nn.ReLU(), nn.Linear(nc, nc)))

    def forward(self, feats: list[Tensor], num_patches: int, patch_ids: list[Tensor] | None = None,
                generator: torch.Generator | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """Sample `num_patches` positions per layer (the same for every image of the batch, as the
        authors), or reuse `patch_ids`; returns the projected features and the positions used.

        Row b * P + p holds image b's patch p, so that a (B, P, nc) view groups an image's patches.
        """
        if len(feats) != len(self.in_channels):
            raise ValueError(f"netF was built for {len(self.in_channels)} feature layers, got {len(feats)}")
        out, ids = [], []
        for index, feat in enumerate(feats):
            flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # (B, H*W, C)
            if patch_ids is None:
                positions = torch.randperm(flat.shape[1], generator=generator, device=feat.device)
                positions = positions[:min(num_patches, flat.shape[1])]
            else:
                positions = patch_ids[index]
            sampled = flat[:, positions, :].flatten(0, 1)  # (B * P, C)
            out.append(l2_normalise(getattr(self, f"mlp_{index}")(sampled)))
            ids.append(positions)
        return out, ids
