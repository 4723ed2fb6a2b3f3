"""The authors' state-dict key names for our networks: one mapping per network class.

Our networks compute what the authors' do (pipeline/nets), but a few are laid out in other modules,
so their state-dict keys differ. `authors_keys(net)` gives, for every key of `net.state_dict()`,
the key the authors' code gives the same tensor. Where a class is not listed below, the keys are
the same, key for key:

- ResnetGenerator (resnet_6blocks / resnet_9blocks, with or without CUT's anti-aliasing; the blur
  filters are the `filt` buffers of their Downsample / Upsample), PatchDiscriminator
  (NLayerDiscriminator, CUT's anti-aliased one too), PatchSampleF (CUT's netF `mlp_0`, `mlp_1`, ...)
  and UnetZGenerator with where_add "all" (BicycleGAN's G_Unet_add_all: `model.down.0.weight`,
  `model.submodule.down.1.weight`, ... as theirs).
- PixelDiscriminator: their Sequential is `net`, ours `model`: `net.0.weight` <-> `model.0.weight`.
- UnetGenerator (pix2pix's UnetGenerator) and UnetZGenerator with where_add "input" (BicycleGAN's
  G_Unet_add_input): the same nesting (`model.model.1.model.3...`), but each inner level's
  Sequential starts with the down LeakyReLU in theirs and not in ours (ours applies it in
  `down_act`, outside the Sequential), so each index inside an inner level is one higher in theirs:
  our `model.model.1.model.0.weight` (level 2's down conv) is their `model.model.1.model.1.weight`,
  and our `model.model.1.model.2.model.0.weight` their `model.model.1.model.3.model.1.weight`.
  The outermost level has no LeakyReLU in either, so its indices agree (`model.model.0.weight`,
  `model.model.3.weight`). With norm "none" BicycleGAN's UnetBlock leaves the norm out, where ours
  keeps a parameter-free Identity: later indices of that level shift down by one more.
- MultiscaleDiscriminator (BicycleGAN's D_NLayersMulti): our scales are `scales.<i>.model.<k>`,
  theirs `model_<i>.<k>` (2019 on; `model<i>.<k>` in the 2017 code, read too) or, with one scale,
  `model.<k>`.
- ResnetEncoder (BicycleGAN's E_ResNet): the heads are `head.fc` / `head.fc_var` in ours and
  `fc.0` / `fcVar.0` (one-layer Sequentials) in theirs; in each BasicBlock their second conv sits
  in a Sequential with the average pool (`conv.1.conv.5.0.weight`), ours directly
  (`conv.1.conv.5.weight`). ConvEncoder (E_NLayers): the heads as above, `conv.<k>` the same.
  With norm "none" BicycleGAN leaves the norms out (later indices shift), where ours keeps Identity.
"""
from __future__ import annotations

from torch import nn

from pipeline.nets.blocks import UnetSkipBlock
from pipeline.nets.encoder import BasicBlock, ConvEncoder, GaussianHead, ResnetEncoder
from pipeline.nets.patchgan import MultiscaleDiscriminator, PatchDiscriminator, PixelDiscriminator
from pipeline.nets.patch_sample import PatchSampleF
from pipeline.nets.resnet import ResnetGenerator
from pipeline.nets.unet import UnetGenerator, UnetZGenerator

KeyMap = dict[str, str]  # our state-dict key (or module path) -> the authors'


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


def _same(module: nn.Module, ours: str, theirs: str) -> KeyMap:
    """Every module inside `module` (itself included), at path `ours` in ours and `theirs` in theirs."""
    return {_join(ours, name): _join(theirs, name) for name, _ in module.named_modules()}


def _is_missing_norm(child: nn.Module, drop_identity: bool) -> bool:
    """Our parameter-free Identity standing in for norm "none", which BicycleGAN's code leaves out."""
    return drop_identity and isinstance(child, nn.Identity)


def _unet_level(block: UnetSkipBlock, ours: str, theirs: str, drop_identity: bool) -> KeyMap:
    """One U-Net level and, recursively, the levels inside it."""
    outermost = isinstance(block.down_act, nn.Identity)
    index = 0 if outermost else 1  # theirs: the down LeakyReLU is child 0 of every inner level
    modules: KeyMap = {ours: theirs, _join(ours, "model"): _join(theirs, "model")}
    for i, child in enumerate(block.model):
        if _is_missing_norm(child, drop_identity):
            continue
        if isinstance(child, UnetSkipBlock):
            modules |= _unet_level(child, _join(ours, f"model.{i}"), _join(theirs, f"model.{index}"), drop_identity)
        else:
            modules |= _same(child, _join(ours, f"model.{i}"), _join(theirs, f"model.{index}"))
        index += 1
    return modules


def _basic_block(block: BasicBlock, ours: str, theirs: str, drop_identity: bool) -> KeyMap:
    """conv: theirs nests the last conv with the pool (convMeanpool); shortcut: the same keys."""
    modules, index = {ours: theirs}, 0
    children = list(block.conv)
    for i, child in enumerate(children):
        if _is_missing_norm(child, drop_identity) or isinstance(child, nn.AvgPool2d):
            continue
        pooled = i + 1 < len(children) and isinstance(children[i + 1], nn.AvgPool2d)
        modules |= _same(child, f"{ours}.conv.{i}", f"{theirs}.conv.{index}.0" if pooled else f"{theirs}.conv.{index}")
        index += 1
    return modules | _same(block.shortcut, f"{ours}.shortcut", f"{theirs}.shortcut")


def _encoder(net: ResnetEncoder | ConvEncoder, drop_identity: bool) -> KeyMap:
    modules, index = {"": "", "conv": "conv"}, 0
    for i, child in enumerate(net.conv):
        if _is_missing_norm(child, drop_identity):
            continue
        if isinstance(child, BasicBlock):
            modules |= _basic_block(child, f"conv.{i}", f"conv.{index}", drop_identity)
        else:
            modules |= _same(child, f"conv.{i}", f"conv.{index}")
        index += 1
    head: GaussianHead = net.head
    modules |= _same(head.fc, "head.fc", "fc.0")
    if head.fc_var is not None:
        modules |= _same(head.fc_var, "head.fc_var", "fcVar.0")
    return modules


def _multiscale(net: MultiscaleDiscriminator) -> KeyMap:
    if len(net.scales) == 1:
        return _same(net.scales[0].model, "scales.0.model", "model")
    modules: KeyMap = {}
    for i, scale in enumerate(net.scales):
        modules |= _same(scale.model, f"scales.{i}.model", f"model_{i}")
    return modules


def authors_modules(net: nn.Module) -> KeyMap:
    """Our module path -> the authors' module path, for every module of `net` that holds state
    or may hold it in their files (see the module doc)."""
    if isinstance(net, (ResnetGenerator, PatchDiscriminator, PatchSampleF)):
        return _same(net, "", "")
    if isinstance(net, PixelDiscriminator):
        return _same(net.model, "model", "net")
    if isinstance(net, UnetGenerator):
        return _unet_level(net.model, "model", "model", drop_identity=False)
    if isinstance(net, UnetZGenerator):
        if net.where_add == "all":
            return _same(net, "", "")
        return _unet_level(net.model, "model", "model", drop_identity=True)
    if isinstance(net, MultiscaleDiscriminator):
        return _multiscale(net)
    if isinstance(net, (ResnetEncoder, ConvEncoder)):
        return _encoder(net, drop_identity=True)
    raise ValueError(f"no mapping to the authors' keys for {type(net).__name__}")


def authors_keys(net: nn.Module) -> KeyMap:
    """Our state-dict key -> the authors' key, for every key of `net.state_dict()`."""
    modules = authors_modules(net)
    keys: KeyMap = {}
    for key in net.state_dict():
        path, _, leaf = key.rpartition(".")
        if path not in modules:
            raise ValueError(f"{type(net).__name__}: no authors' name for module {path!r} (key {key!r})")
        keys[key] = _join(modules[path], leaf)
    return keys


def legacy_renames(net: nn.Module, keys: list[str]) -> dict[str, str]:
    """Old names of the authors' own code that mean the same tensors: {old key: current key}.

    BicycleGAN's 2017 D_NLayersMulti registered its scales as `model0`, `model1` (a ListModule),
    the 2019 code as `model_0`, `model_1`.
    """
    if not isinstance(net, MultiscaleDiscriminator) or len(net.scales) == 1:
        return {}
    renames = {}
    for key in keys:
        head, _, rest = key.partition(".")
        if head.startswith("model") and head[5:].isdigit():
            renames[key] = f"model_{head[5:]}.{rest}"
    return renames
