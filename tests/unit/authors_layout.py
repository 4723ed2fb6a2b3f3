"""Test-only: checkpoint files in the authors' layout, made from our networks, and a fixture of real
key names and shapes of the authors' published architectures.

`authors_files` writes what the authors' save_networks writes (`<epoch>_net_<name>.pth`, a plain
state dict per network) through the documented mapping (pipeline.published.keys). REAL_KEYS is
independent of that mapping: key names and shapes read off the authors' module definitions
(junyanz/pytorch-CycleGAN-and-pix2pix and junyanz/BicycleGAN `models/networks.py`,
taesungp/contrastive-unpaired-translation `models/networks.py`) at their published settings (ngf,
ndf, nef 64; nz 8), so that the mapping is checked against their names, not only against itself.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.published.importer import NETWORKS
from pipeline.published.keys import authors_keys


def authors_state_dict(net: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """`net`'s weights under the authors' key names (`prefix` "module." as DataParallel saves them)."""
    names = authors_keys(net)
    return {prefix + names[key]: value.clone() for key, value in net.state_dict().items()}


def authors_files(model, method: str, folder: Path, names: tuple[str, ...] | None = None, epoch: str = "latest",
                  prefix: str = "") -> dict[str, Path]:
    """Write `<epoch>_net_<name>.pth` for the model's networks (the authors' names); {name: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    ours = model.networks()
    files = {}
    for theirs, name in NETWORKS[method].items():
        if (names is not None and theirs not in names) or name not in ours:
            continue
        path = folder / f"{epoch}_net_{theirs}.pth"
        torch.save(authors_state_dict(ours[name], prefix), path)
        files[theirs] = path
    return files


# (our builder's arguments, {authors' key: shape}, number of keys in the authors' state dict).
# Keys counted: every parameter and buffer (BatchNorm: weight, bias, running_mean, running_var,
# num_batches_tracked; InstanceNorm without affine or statistics: none; CUT's blur filters: `filt`).
REAL_KEYS = {
    # CycleGAN horse2zebra etc.: resnet_9blocks, instance norm, no dropout. Sequential indices:
    # 0 pad, 1 conv7x7, 2 norm, 3 relu, 4/7 down convs, 10-18 ResnetBlocks, 19/22 ConvTranspose2d,
    # 25 pad, 26 conv7x7, 27 tanh.
    "resnet_9blocks": (
        ("generator", "resnet_9blocks", dict(norm="instance")),
        {"model.1.weight": (64, 3, 7, 7), "model.1.bias": (64,), "model.4.weight": (128, 64, 3, 3),
         "model.7.weight": (256, 128, 3, 3), "model.10.conv_block.1.weight": (256, 256, 3, 3),
         "model.18.conv_block.5.weight": (256, 256, 3, 3), "model.19.weight": (256, 128, 3, 3),
         "model.22.weight": (128, 64, 3, 3), "model.26.weight": (3, 64, 7, 7), "model.26.bias": (3,)},
        2 + 4 + 9 * 4 + 4 + 2,
    ),
    # pix2pix facades_label2photo: unet_256, batch norm, dropout. Nesting model.model.1.model.3...:
    # every inner level is [LeakyReLU, down conv, norm, submodule, ReLU, up conv, norm(, Dropout)].
    "unet_256": (
        ("generator", "unet_256", dict(norm="batch", use_dropout=True)),
        {"model.model.0.weight": (64, 3, 4, 4),  # no bias: batch norm follows its level's convs
         "model.model.1.model.1.weight": (128, 64, 4, 4), "model.model.1.model.2.running_mean": (128,),
         "model.model.1.model.3.model.1.weight": (256, 128, 4, 4),
         "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.1.weight": (512, 512, 4, 4),
         "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.3.weight": (512, 512, 4, 4),
         "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.4.num_batches_tracked": (),
         "model.model.1.model.5.weight": (256, 64, 4, 4), "model.model.3.weight": (128, 3, 4, 4),
         "model.model.3.bias": (3,)},
        3 + 6 * (1 + 5 + 1 + 5) + (1 + 1 + 5),
    ),
    # PatchGAN (netD basic) of pix2pix: conditional, 6 input channels, batch norm
    "patch": (
        ("discriminator", "patch", dict(in_ch=6, norm="batch")),
        {"model.0.weight": (64, 6, 4, 4), "model.0.bias": (64,), "model.2.weight": (128, 64, 4, 4),
         "model.3.running_var": (128,), "model.8.weight": (512, 256, 4, 4), "model.11.weight": (1, 512, 4, 4)},
        2 + 3 * (1 + 5) + 2,
    ),
    # PixelGAN (netD pixel): the Sequential is `net`
    "pixel": (
        ("discriminator", "pixel", dict(in_ch=6, norm="batch")),
        {"net.0.weight": (64, 6, 1, 1), "net.0.bias": (64,), "net.2.weight": (128, 64, 1, 1),
         "net.3.num_batches_tracked": (), "net.5.weight": (1, 128, 1, 1)},
        2 + 1 + 5 + 1,
    ),
    # BicycleGAN edges2shoes etc. (3-channel sets): G_Unet_add_all, unet_256, nz 8, instance norm
    "unet_256_add_all": (
        ("z_generator", "unet_256", dict(where_add="all", norm="instance")),
        {"model.down.0.weight": (64, 3 + 8, 4, 4), "model.up.1.weight": (128, 3, 4, 4),
         "model.submodule.down.1.weight": (128, 64 + 8, 4, 4),
         "model.submodule.up.1.weight": (256, 64, 4, 4),
         "model.submodule.submodule.submodule.submodule.submodule.submodule.submodule.down.1.weight":
             (512, 512 + 8, 4, 4)},
        8 * 4,
    ),
    # BicycleGAN's G_Unet_add_input: UnetBlock levels, a bias on every conv
    "unet_256_add_input": (
        ("z_generator", "unet_256", dict(where_add="input", norm="instance")),
        {"model.model.0.weight": (64, 3 + 8, 4, 4), "model.model.1.model.1.bias": (128,),
         "model.model.1.model.5.weight": (256, 64, 4, 4), "model.model.3.weight": (128, 3, 4, 4)},
        8 * 4,
    ),
    # BicycleGAN's E_ResNet resnet_256: fc / fcVar are one-Linear Sequentials; BasicBlock's last
    # conv sits in convMeanpool (conv.<k>.conv.5.0), its shortcut in meanpoolConv (shortcut.1)
    "resnet_256": (
        ("encoder", "resnet_256", dict(norm="instance")),
        {"conv.0.weight": (64, 3, 4, 4), "conv.1.conv.2.weight": (64, 64, 3, 3),
         "conv.1.conv.5.0.weight": (128, 64, 3, 3), "conv.1.shortcut.1.weight": (128, 64, 1, 1),
         "conv.4.conv.5.0.bias": (256,), "fc.0.weight": (8, 256), "fcVar.0.weight": (8, 256), "fcVar.0.bias": (8,)},
        2 + 4 * 6 + 4,
    ),
    "conv_256": (
        ("encoder", "conv_256", dict(norm="instance")),
        {"conv.0.weight": (64, 3, 4, 4), "conv.2.weight": (128, 64, 4, 4), "conv.11.weight": (256, 256, 4, 4),
         "fc.0.weight": (8, 256), "fcVar.0.bias": (8,)},
        2 * 5 + 4,
    ),
    # BicycleGAN's D_NLayersMulti basic_256_multi, num_Ds 2: scales model_0 (ndf 64) and model_1 (32)
    "multiscale": (
        ("discriminator", "multiscale", dict(norm="instance")),
        {"model_0.0.weight": (64, 3, 4, 4), "model_0.11.weight": (1, 512, 4, 4),
         "model_1.0.weight": (32, 3, 4, 4), "model_1.8.bias": (256,), "model_1.11.bias": (1,)},
        2 * 10,
    ),
    # CUT horse2zebra_cut_pretrained: resnet_9blocks with blur-pooled downs (Downsample at 7, 11)
    # and blur-upsampled ups (Upsample at 21, 25), each holding its filter as buffer `filt`
    "resnet_9blocks_antialias": (
        ("generator", "resnet_9blocks", dict(norm="instance", antialias=True)),
        {"model.4.weight": (128, 64, 3, 3), "model.7.filt": (128, 1, 3, 3), "model.11.filt": (256, 1, 3, 3),
         "model.12.conv_block.1.weight": (256, 256, 3, 3), "model.21.filt": (256, 1, 4, 4),
         "model.22.weight": (128, 256, 3, 3), "model.25.filt": (128, 1, 4, 4), "model.30.weight": (3, 64, 7, 7)},
        2 + 2 + 1 + 2 + 1 + 9 * 4 + 1 + 2 + 1 + 2 + 2,
    ),
    # CUT's anti-aliased PatchGAN: [conv, lrelu, Downsample] then [conv, norm, lrelu, Downsample] x 2
    "patch_antialias": (
        ("discriminator", "patch_antialias", dict(in_ch=3, norm="instance")),
        {"model.0.weight": (64, 3, 4, 4), "model.2.filt": (64, 1, 3, 3), "model.3.weight": (128, 64, 4, 4),
         "model.6.filt": (128, 1, 3, 3), "model.11.weight": (512, 256, 4, 4), "model.14.weight": (1, 512, 4, 4)},
        2 + 1 + 2 + 1 + 2 + 1 + 2 + 2,
    ),
}
