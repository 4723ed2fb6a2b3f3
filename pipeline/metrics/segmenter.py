"""The segmentation network FCN-score uses: built by name, trained on real photos, saved as safetensors.

The papers scored with an FCN-8s trained on Cityscapes (Long et al., 2015). We train our own on the
curated train split so that the score exists for any labelled data set. `small_fcn` is a compact
U-Net-like FCN that trains in minutes on a CPU; torchvision's `fcn_resnet50` and
`deeplabv3_mobilenet` (`weights=None`, nothing downloaded) are there for GPU users and their weights.
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from pipeline.sampler import to_unit
from pipeline.data.palette import IGNORE_ID
from pipeline.io import atomic_file
from pipeline.tracking import Tracker

log = logging.getLogger(__name__)

FEATURE_SPACE = "segmenter_features"  # distances in these features are named honestly: not Inception, not LPIPS

SegmenterName = Literal["small_fcn", "fcn_resnet50", "deeplabv3_mobilenet"]
WEIGHTS_FILE = "segmenter.safetensors"
CONFIG_FILE = "config.json"


def _conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch),
                         nn.ReLU(inplace=True))


class SmallFCN(nn.Module):
    """A compact fully convolutional net: 3 stride-2 stages (width, 2w, 4w, 8w channels), then
    upsampling with skip fusion by concatenation at each scale (as U-Net; FCN-8s sums instead)."""

    def __init__(self, num_classes: int, width: int = 16, in_ch: int = 3):
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv_bn_relu(in_ch, w), _conv_bn_relu(w, w))  # full resolution
        self.down = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(c, 2 * c, stride=2), _conv_bn_relu(2 * c, 2 * c)) for c in (w, 2 * w, 4 * w))
        self.up = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(3 * c, c), _conv_bn_relu(c, c)) for c in (4 * w, 2 * w, w))
        self.head = nn.Conv2d(w, num_classes, 1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder feature maps, finest first: (B, w, H, W), (B, 2w, H/2, W/2), ..., (B, 8w, H/8, W/8)."""
        maps = [self.stem(x)]
        for stage in self.down:
            maps.append(stage(maps[-1]))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.encode(x)
        y = maps[-1]
        for stage, skip in zip(self.up, reversed(maps[:-1])):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = stage(torch.cat([y, skip], 1))  # (B, 2c, h, w) + (B, c, h, w) -> (B, c, h, w)
        return self.head(y)  # (B, num_classes, H, W) logits


def _fcn_resnet50(num_classes: int) -> nn.Module:
    from torchvision.models.segmentation import fcn_resnet50

    return fcn_resnet50(weights=None, weights_backbone=None, num_classes=num_classes)


def _deeplabv3_mobilenet(num_classes: int) -> nn.Module:
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    return deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)


_SEGMENTERS: dict[str, Callable[[int, int], nn.Module]] = {
    "small_fcn": lambda num_classes, width: SmallFCN(num_classes, width=width),
    "fcn_resnet50": lambda num_classes, width: _fcn_resnet50(num_classes),  # fixed widths
    "deeplabv3_mobilenet": lambda num_classes, width: _deeplabv3_mobilenet(num_classes),
}


def build_segmenter(name: SegmenterName, num_classes: int, width: int) -> nn.Module:
    """A randomly initialised segmenter; `width` is SmallFCN's base channels (torchvision nets ignore it)."""
    try:
        factory = _SEGMENTERS[name]
    except KeyError:
        raise ValueError(f"unknown segmenter {name!r}; expected one of {sorted(_SEGMENTERS)}") from None
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if name == "small_fcn" and width < 1:
        raise ValueError(f"small_fcn width must be >= 1, got {width}")
    return factory(num_classes, width)


def _logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, num_classes, H, W); torchvision nets return a dict."""
    out = net(x)
    return out["out"] if isinstance(out, dict) else out


def _encode(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    if isinstance(net, SmallFCN):
        return net.encode(x)
    return [net.backbone(x)["out"]]  # torchvision _SimpleSegmentationModel: the backbone's last stage


def _augment(photos: torch.Tensor, labels: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips and random scale-and-crop (zoom 1x to 1.6x at a random place), as segmenters are
    trained on Cityscapes, so the net reads texture and local context rather than absolute image
    position; plus modest photometric jitter so it also reads generated photos."""
    b = photos.shape[0]
    flip = torch.rand(b, generator=g) < 0.5
    zoom = 1.0 + 0.6 * torch.rand(b, generator=g)
    shift = (torch.rand(b, 2, generator=g) * 2.0 - 1.0) * (1.0 - 1.0 / zoom)[:, None]  # stay inside
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = torch.where(flip, -1.0, 1.0) / zoom
    theta[:, 1, 1] = 1.0 / zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(photos.shape), align_corners=False)  # (B, H, W, 2)
    photos = F.grid_sample(photos, grid, mode="bilinear", padding_mode="border", align_corners=False)
    labels = F.grid_sample(labels[:, None].float(), grid, mode="nearest", padding_mode="border",
                           align_corners=False)[:, 0].long()
    brightness = (torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 0.2  # +-0.1 on the [-1, 1] scale
    contrast = 1.0 + (torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 0.3  # x 0.85 .. 1.15
    gain = 1.0 + (torch.rand(b, 3, 1, 1, generator=g) - 0.5) * 0.1  # per-channel colour cast +-5%
    noise = torch.randn(photos.shape, generator=g) * 0.02
    mean = photos.mean((1, 2, 3), keepdim=True)
    photos = ((photos - mean) * contrast + mean + brightness) * gain + noise
    return photos.clamp(-1, 1), labels


def train_segmenter(photos: np.ndarray, labels: np.ndarray, *, num_classes: int, arch: SegmenterName,
                    width: int, steps: int, batch_size: int, lr: float, seed: int, device: torch.device,
                    tracker: Tracker, log_every: int) -> tuple[nn.Module, list[dict[str, float]]]:
    """Fit a segmenter to (N, H, W, 3) uint8 photos and (N, H, W) uint8 train ids (255 ignored).

    Cross-entropy with ignore_index 255, Adam (betas 0.9/0.999) with a cosine decay of `lr` to 0
    over `steps`. The initial weights, batches and augmentation are a function of `seed` alone
    (deterministic on CPU). Logs `segmenter_loss` and `segmenter_train_acc` (means over the last
    `log_every` steps) to `tracker`, and returns them per logged step as the history.
    """
    if photos.dtype != np.uint8 or photos.ndim != 4 or labels.dtype != np.uint8 or labels.shape != photos.shape[:3]:
        raise ValueError(f"expected uint8 photos (N, H, W, 3) and labels (N, H, W), got {photos.dtype} "
                         f"{photos.shape} and {labels.dtype} {labels.shape}")
    if len(photos) == 0 or steps < 1 or batch_size < 1 or log_every < 1:
        raise ValueError(f"need images, steps, batch_size, log_every >= 1; got {len(photos)} images, "
                         f"steps={steps}, batch_size={batch_size}, log_every={log_every}")
    bad = (labels >= num_classes) & (labels != IGNORE_ID)
    if bad.any():
        raise ValueError(f"labels hold ids {np.unique(labels[bad])[:10].tolist()} outside 0..{num_classes - 1} "
                         f"(and not the ignore id {IGNORE_ID})")
    with torch.random.fork_rng(devices=[]):  # initialise from `seed` without touching the caller's RNG
        torch.manual_seed(seed)
        net = build_segmenter(arch, num_classes, width)
    net.to(device).train()
    g = torch.Generator().manual_seed(seed)
    all_photos = torch.from_numpy(np.array(photos))  # uint8 (N, H, W, 3), a writable copy of a memmap
    all_labels = torch.from_numpy(np.array(labels)).long()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    history: list[dict[str, float]] = []
    window_loss = window_correct = window_pixels = 0.0
    window_steps = 0
    order = torch.randperm(len(photos), generator=g)
    cursor = 0
    started = time.perf_counter()
    for step in range(1, steps + 1):
        if cursor + batch_size > len(order):  # a fresh permutation per epoch
            order, cursor = torch.randperm(len(photos), generator=g), 0
        index = order[cursor:cursor + batch_size]
        cursor += batch_size
        x, y = _augment(to_unit(all_photos[index]), all_labels[index], g)
        logits = _logits(net, x.to(device))
        loss = F.cross_entropy(logits, y.to(device), ignore_index=IGNORE_ID)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            mask = y != IGNORE_ID
            window_correct += float((logits.argmax(1).cpu() == y)[mask].sum())
            window_pixels += float(mask.sum())
        window_loss += loss.item()
        window_steps += 1
        if step % log_every == 0 or step == steps:
            record = {"segmenter_loss": window_loss / window_steps,
                      "segmenter_train_acc": window_correct / max(window_pixels, 1.0)}
            tracker.log_metrics(record, step=step)
            history.append({"step": float(step), **record})
            log.info("segmenter step %d/%d loss %.4f train acc %.4f (%.1f s)", step, steps,
                     record["segmenter_loss"], record["segmenter_train_acc"], time.perf_counter() - started)
            window_loss = window_correct = window_pixels = 0.0
            window_steps = 0
    net.eval()
    return net, history


def _batches(net: nn.Module, images: np.ndarray, batch_size: int, device: torch.device,
             fn: Callable[[torch.Tensor], Any]) -> list[Any]:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = net.training
    net.eval()
    out = []
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                chunk = torch.from_numpy(np.array(images[start:start + batch_size]))  # copy: memmaps are read-only
                out.append(fn(to_unit(chunk).to(device)))
    finally:
        net.train(was_training)
    return out


def predict(net: nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """(N, H, W, 3) uint8 photos -> (N, H, W) uint8 predicted train ids (no grad, batched)."""
    parts = _batches(net, images, batch_size, device,
                     lambda x: _logits(net, x).argmax(1).to(torch.uint8).cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros(images.shape[:3], np.uint8)


def features(net: nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, C) float32: the deepest encoder map, averaged over space (for Fréchet)."""
    parts = _batches(net, images, batch_size, device,
                     lambda x: _encode(net, x)[-1].float().mean((2, 3)).cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def feature_maps(net: nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> list[np.ndarray]:
    """(N, H, W, 3) uint8 -> one (N, C, h, w) float32 array per encoder stage (for `image.diversity`)."""
    parts = _batches(net, images, batch_size, device,
                     lambda x: [m.float().cpu().numpy() for m in _encode(net, x)])
    return [np.concatenate(layer) for layer in zip(*parts)]


def save_segmenter(net: nn.Module, out_dir: Path, meta: dict[str, Any]) -> None:
    """Write `segmenter.safetensors` and `config.json` ({arch, num_classes, width, meta}) to out_dir.

    `meta` must hold JSON values; the stage puts the training params and class names there.
    """
    arch, num_classes, width = _describe(net)
    out_dir = Path(out_dir)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_file(out_dir / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp))
    config = {"arch": arch, "num_classes": num_classes, "width": width, "meta": meta}
    with atomic_file(out_dir / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_segmenter(out_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    """A segmenter (CPU, eval mode) and its config from `save_segmenter`'s files, or a user's
    weights in the same layout (a torchvision net's own state dict keys); never downloads."""
    out_dir = Path(out_dir)
    config_path, weights_path = out_dir / CONFIG_FILE, out_dir / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; not a segmenter folder (run train_segmenter)")
    config = json.loads(config_path.read_text())
    missing = [key for key in ("arch", "num_classes", "width") if key not in config]
    if missing:
        raise ValueError(f"{config_path}: missing keys {missing}")
    if config["arch"] not in get_args(SegmenterName):
        raise ValueError(f"{config_path}: unknown arch {config['arch']!r}; expected one of {get_args(SegmenterName)}")
    net = build_segmenter(config["arch"], int(config["num_classes"]), int(config["width"]))
    net.load_state_dict(load_file(str(weights_path)), strict=True)
    return net.eval(), config


def _describe(net: nn.Module) -> tuple[str, int, int]:
    """(arch, num_classes, width) of a built segmenter, read from its layers."""
    if isinstance(net, SmallFCN):
        return "small_fcn", net.head.out_channels, net.stem[0][0].out_channels
    from torchvision.models.segmentation import DeepLabV3, FCN

    classifier_out = [m for m in net.classifier.modules() if isinstance(m, nn.Conv2d)][-1].out_channels
    if isinstance(net, FCN):
        return "fcn_resnet50", classifier_out, 0
    if isinstance(net, DeepLabV3):
        return "deeplabv3_mobilenet", classifier_out, 0
    raise ValueError(f"cannot save a {type(net).__name__}; expected a net from build_segmenter")
