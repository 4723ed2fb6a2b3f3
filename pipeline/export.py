"""Export a model folder's generators to ONNX, each verified against PyTorch in onnxruntime.

Every generator (G; G_A and G_B; BicycleGAN's G(x, z) with z an input) is exported in eval mode
with a dynamic batch, height and width, at the pinned opset, then run in onnxruntime on the CPU on
random inputs of several sizes (multiples of the network's stride) and compared with PyTorch: the
largest absolute difference must stay within ONNX_TOLERANCE. `export.json` records each file,
its inputs, the sizes checked and the differences found.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.io import atomic_dir, write_json
from pipeline.nets.resnet import N_DOWNSAMPLING, ResnetGenerator
from pipeline.nets.blocks import UnetSkipBlock
from pipeline.nets.unet import UnetGenerator, UnetZBlock, UnetZGenerator

log = logging.getLogger(__name__)

OPSET = 17  # pinned: InstanceNormalization, Pad(reflect) and grouped ConvTranspose all exist here
ONNX_TOLERANCE = 1e-4  # max |onnxruntime - torch| on outputs in [-1, 1]
GENERATOR_NAMES = ("G", "G_A", "G_B")  # the generators of a model folder; E and D's are not exported


class _WithLatent(nn.Module):
    """BicycleGAN's G(x, z) as a module of two tensor inputs (z: (B, nz))."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return self.net(x, z)


@dataclass(frozen=True)
class Exported:
    name: str
    path: Path
    stride: int
    nz: int


def _levels(block: nn.Module | None) -> int:
    """The levels of a U-Net from `block` in: BicycleGAN's z-blocks or the recursive skip blocks."""
    levels = 0
    while block is not None:
        levels += 1
        if isinstance(block, UnetZBlock):
            block = block.submodule
        else:
            block = next((m for m in block.model if isinstance(m, UnetSkipBlock)), None)
    return levels


def stride(net: nn.Module) -> int:
    """The side every input must be a multiple of: 2^levels for a U-Net, 4 for a ResNet generator."""
    if isinstance(net, (UnetGenerator, UnetZGenerator)):
        return 2 ** _levels(net.model)
    if isinstance(net, ResnetGenerator):
        return 2**N_DOWNSAMPLING
    raise ValueError(f"no ONNX export for {type(net).__name__}")


def check_sizes(side: int, image_size: int) -> list[tuple[int, int, int]]:
    """(batch, height, width) to verify: the training size, then a smaller non-square one, batch 2."""
    base = max(side, image_size // side * side)
    return [(1, base, base), (2, max(side, base // 2), base + side)]


def export_generator(net: nn.Module, path: Path, nz: int, side: int) -> None:
    """Write `net` (eval mode) to `path` as ONNX with dynamic batch, height and width; it is traced
    on a `side` x `side` input (instance norm needs more than one pixel at the bottleneck)."""
    net = net.eval()
    x = torch.zeros(1, 3, side, side)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    if nz > 0:
        module, inputs, names = _WithLatent(net), (x, torch.zeros(1, nz)), ["x", "z"]
        axes = {"x": dynamic, "z": {0: "batch"}, "y": dynamic}
    else:
        module, inputs, names, axes = net, (x,), ["x"], {"x": dynamic, "y": dynamic}
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracing notes
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, str(path), opset_version=OPSET, dynamo=False, input_names=names,
                          output_names=["y"], dynamic_axes=axes)


@torch.no_grad()
def verify(net: nn.Module, path: Path, nz: int, sizes: list[tuple[int, int, int]], seed: int = 0) -> list[dict]:
    """Run the ONNX file in onnxruntime (CPU) and PyTorch on random inputs; ValueError past ONNX_TOLERANCE."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    checks = []
    for batch, height, width in sizes:
        x = torch.rand(batch, 3, height, width, generator=gen) * 2 - 1
        feeds = {"x": x.numpy()}
        if nz > 0:
            z = torch.randn(batch, nz, generator=gen)
            feeds["z"] = z.numpy()
            expected = net.eval()(x, z)
        else:
            expected = net.eval()(x)
        got = torch.from_numpy(session.run(["y"], feeds)[0])
        if got.shape != expected.shape:
            raise ValueError(f"{path}: onnxruntime gave {tuple(got.shape)} where PyTorch gives {tuple(expected.shape)}")
        diff = float((got - expected).abs().max())
        checks.append({"input": [batch, 3, height, width], "max_abs_diff": diff})
        if not diff <= ONNX_TOLERANCE:
            raise ValueError(f"{path}: onnxruntime differs from PyTorch by {diff:.3g} at {batch}x3x{height}x{width} "
                             f"(tolerance {ONNX_TOLERANCE})")
    return checks


def export_model(model_dir: Path, out_dir: Path, *, sizes: list[tuple[int, int, int]] | None = None) -> dict[str, Any]:
    """Export every generator of the model folder to `out_dir/<name>.onnx`, verified; returns the record."""
    import onnxruntime

    from pipeline.inference import load_model

    loaded = load_model(model_dir, torch.device("cpu"))
    nets = {name: net for name, net in loaded.model.exported_networks().items() if name in GENERATOR_NAMES}
    fresh = set(fresh_networks(model_dir))
    nets = {name: net for name, net in nets.items() if name not in fresh}
    record: dict[str, Any] = {"model_dir": str(model_dir), "method": loaded.method, "opset": OPSET,
                              "tolerance": ONNX_TOLERANCE, "torch": torch.__version__,
                              "onnxruntime": onnxruntime.__version__, "mode": "eval", "networks": {}}
    if loaded.method == "pix2pix" and loaded.params.pix2pix.dropout_at_test:
        record["note"] = ("exported in eval mode: no dropout, batch norm on its running statistics; the pipeline's "
                          "pix2pix translation keeps dropout on and uses each image's statistics (the paper's test)")
    with atomic_dir(out_dir) as tmp:
        for name, net in nets.items():
            nz = net.nz if isinstance(net, UnetZGenerator) else 0
            side = stride(net)
            checked = sizes or check_sizes(side, loaded.params.image_size)
            export_generator(net, tmp / f"{name}.onnx", nz, side=checked[0][1])
            checks = verify(net, tmp / f"{name}.onnx", nz, checked)
            record["networks"][name] = {"file": f"{name}.onnx", "inputs": ["x", "z"] if nz else ["x"], "nz": nz,
                                        "size_multiple": side, "checks": checks}
            log.info("%s.onnx: verified at %s, max |diff| %.2g", name, [c["input"] for c in checks],
                     max(c["max_abs_diff"] for c in checks))
        write_json(tmp / "export.json", record)
    return record


def fresh_networks(model_dir: Path) -> list[str]:
    """The networks an import did not have (initialised, never trained): not worth exporting."""
    import json

    config = json.loads((Path(model_dir) / "config.json").read_text())
    return list((config.get("imported") or {}).get("fresh", []))
