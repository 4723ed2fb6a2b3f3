"""Translation with a trained model: the test split (for evaluation) and any folder of images.

A model folder (safetensors + config.json) rebuilds its networks without params.yaml.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.applicability import NOT_APPLICABLE, NotApplicable, not_applicable_reason, not_applicable_record
from pipeline.checkpoint import load_exported
from pipeline.config import Params, params_from_dict
from pipeline.sampler import domain_arrays, to_uint8, to_unit
from pipeline.data.images import IMAGE_SUFFIXES, BadImage, load_rgb
from pipeline.data.paths import is_listed, link_refusal
from pipeline.io import atomic_dir, write_json
from pipeline.models import Translator, build_model, method_spec
from pipeline.translated import (DIRECTIONS, IDS_A, IDS_B, MAX_SIDE, MIN_SIDE, RECORD, SAMPLES, fake_kind,
                                 png_name, read_translated)

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "load_model", "translate_method", "translate_split", "translate_folder", "read_translated"]


class DirectionSubset:
    """A model of which only some directions hold weights: an imported CycleGAN whose release gave
    one generator (horse2zebra, say, without zebra2horse). It refuses the others, whose networks
    were initialised and never trained."""

    def __init__(self, model: Translator, directions: tuple[str, ...]):
        self.model, self._directions = model, directions

    def directions(self) -> tuple[str, ...]:
        return self._directions

    def _check(self, direction: str) -> None:
        if direction not in self._directions:
            raise ValueError(f"this imported model holds weights for {' and '.join(self._directions)} only, "
                             f"not {direction}")

    def translate(self, source: torch.Tensor, direction: str = "a_to_b") -> torch.Tensor:
        self._check(direction)
        return self.model.translate(source, direction)

    def test_outputs(self, source: torch.Tensor, direction: str, target: torch.Tensor | None, *, seed: int,
                     n_samples: int) -> dict[str, torch.Tensor]:
        self._check(direction)
        return self.model.test_outputs(source, direction, target, seed=seed, n_samples=n_samples)

    def exported_networks(self) -> dict[str, torch.nn.Module]:
        return self.model.exported_networks()


@dataclass(frozen=True)
class LoadedModel:
    method: str
    params: Params
    model: Translator


def load_model(model_dir: Path, device: torch.device) -> LoadedModel:
    """Rebuild a trained model from its export folder and load its weights.

    Raises NotApplicable for the folder that train@<method> writes when the method does not apply
    to its data set: it holds the reason, never weights.
    """
    reason = not_applicable_reason(model_dir)
    if reason is not None:
        raise NotApplicable(f"{model_dir} holds no trained model, only a not-applicable record: {reason}")
    config, weights = load_exported(model_dir)
    try:
        method, params = config["method"], params_from_dict(config["params"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{model_dir / 'config.json'}: not a model config ({exc})") from None
    model = build_model(method, params, device, seed=params.seed)
    imported = config.get("imported") or {}
    for name, net in model.exported_networks().items():
        if name in weights:
            net.load_state_dict(weights[name])
        elif name not in imported.get("fresh", ()):  # an import says which networks it did not have
            raise ValueError(f"{model_dir}: no {name}.safetensors for network {name!r} of {method}")
    if imported.get("directions") is not None and tuple(imported["directions"]) != model.directions():
        model = DirectionSubset(model, tuple(imported["directions"]))
    return LoadedModel(method, params, model)


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, compress_level=1)


def _as_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3), possibly a read-only memory map, -> network input on `device`."""
    return to_unit(torch.from_numpy(np.array(images))).to(device)


def translate_method(method: str, curated: Path, model_dir: Path, out_dir: Path, *, split: str, params: Params,
                     device: torch.device) -> dict[str, int]:
    """The `translate@<method>` stage: translate a split with the model in `model_dir`, or pass on
    its not-applicable record (the method did not apply to the data set) and translate nothing."""
    record = not_applicable_record(model_dir)
    if record is not None and record.get("method", method) != method:
        raise ValueError(f"{model_dir} holds the record of {record['method']}, not {method}")
    if record is not None:
        with atomic_dir(out_dir) as tmp:
            write_json(tmp / NOT_APPLICABLE, record)
        log.warning("%s: nothing to translate: %s", method, record["reason"])
        return {}
    loaded = load_model(model_dir, device)
    if loaded.method != method:
        raise ValueError(f"{model_dir} holds a {loaded.method} model, not {method}")
    return translate_split(loaded, curated, split, out_dir, batch_size=params.evaluate.batch_size,
                           n_samples=method_spec(method).n_samples(params), seed=params.seed, device=device)


@torch.no_grad()
def translate_split(loaded: LoadedModel, curated: Path, split: str, out_dir: Path, *, batch_size: int,
                    n_samples: int, seed: int, device: torch.device) -> dict[str, int]:
    """Translate a split into `out_dir` (atomically) in the layout of pipeline.translated: one
    folder of PNGs per output kind the model's `test_outputs` names (fake_b/, fake_a/, samples/<k>/,
    encoded/), for every direction it maps; `n_samples` random-latent samples per input where the
    method samples. File names are the curated image ids; ids.txt lists the domain-A inputs in
    order and ids_b.txt the domain-B inputs: the same list when paired. A store of domain B only
    gets what the model maps from B, or a ValueError saying so.
    """
    from pipeline.data.store import load_split, read_info

    info = read_info(curated)
    arrays = load_split(curated, split)
    a, b = domain_arrays(curated, split) if info["domain_a"] != "none" else (None, np.asarray(arrays.photos))
    model, method = loaded.model, loaded.method
    sources = {"a_to_b": (a, b, arrays.ids_a or []), "b_to_a": (b, a, arrays.ids)}
    directions = [d for d in model.directions() if sources[d][0] is not None]
    if not directions:
        raise ValueError(f"{curated}: data set {info['dataset']!r} holds domain B only and this {method} model "
                         "maps A -> B; translate a folder of A images with `python -m stages translate-folder`")
    counts: dict[str, int] = {}
    torch.manual_seed(seed)  # pix2pix's dropout noise draws from the global generator
    with atomic_dir(out_dir) as tmp:
        for direction in DIRECTIONS:
            if direction not in directions:
                continue
            source, target, ids = sources[direction]
            for start in range(0, len(ids), batch_size):
                paired_target = _as_input(target[start:start + batch_size], device) if info["paired"] else None
                outputs = model.test_outputs(_as_input(source[start:start + batch_size], device), direction,
                                             paired_target, seed=seed, n_samples=n_samples)
                for kind, images in outputs.items():
                    folder = tmp / kind
                    folder.mkdir(parents=True, exist_ok=True)
                    for offset, image in enumerate(to_uint8(images).numpy()):
                        _save_png(image, folder / png_name(ids[start + offset]))
                    counts[kind] = counts.get(kind, 0) + len(images)
        (tmp / IDS_A).write_text("".join(f"{i}\n" for i in arrays.ids_a or []))
        (tmp / IDS_B).write_text("".join(f"{i}\n" for i in arrays.ids))
        written_samples = sum(1 for kind in counts if kind.startswith(SAMPLES + "/"))
        write_json(tmp / RECORD, {"method": method, "split": split, "counts": counts, "n_samples": written_samples,
                                  "seed": seed})
    return counts


def _network_size(params: Params, method: str) -> int:
    """The side the generator needs: a multiple of 2^downs for U-Nets, of 4 for ResNets."""
    name = method_spec(method).config(params).generator
    if name.startswith(("unet_", "encdec_")):
        return int(name.split("_")[1])
    return 4


def network_input_size(height: int, width: int, *, image_size: int, unet_side: int,
                       max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(height, width) at which a generator translates an image of `height` x `width` pixels.

    A U-Net (`unet_side` > 4) needs exactly its square size. A ResNet takes any multiple of 4, so
    the image keeps its aspect ratio at the training scale (shorter side `image_size`), scaled down
    further until its longer side is at most `max_side`, with the shorter side at least MIN_SIDE
    (stretched across where the image is more elongated than that): the network's input, and so
    its memory, is bounded by about image_size x max_side pixels whatever the aspect ratio.
    """
    if unet_side > 4:
        return unet_side, unet_side
    cap = max_side // 4 * 4
    scale = min(image_size / min(height, width), max_side / max(height, width))
    return tuple(min(cap, max(MIN_SIDE, round(side * scale / 4) * 4)) for side in (height, width))


@torch.no_grad()
def translate_folder(loaded: LoadedModel, in_dir: Path, out_dir: Path, *, direction: str, device: torch.device,
                     max_pixels: int, seed: int = 0, max_side: int = MAX_SIDE) -> tuple[int, list[tuple[str, str]]]:
    """Translate every image of `in_dir` into `out_dir` (PNG, same stem), whatever its size or mode.

    Each image is resized for the generator (`network_input_size`: a U-Net's own size; for a ResNet
    the training scale, aspect kept, the longer side at most `max_side`) and the output is resized
    back to the original size. Unreadable files, and links resolving outside `in_dir`, are reported
    by name and skipped; the output folder appears only when complete. Two inputs that would share
    an output name, letter case aside (a.jpg and a.png; A.png and a.png), raise ValueError before
    anything is written. Returns (translated count, [(file, reason)]).
    """
    if max_side < MIN_SIDE:
        raise ValueError(f"max_side must be >= {MIN_SIDE}, got {max_side}")
    entries = sorted(p for p in Path(in_dir).iterdir() if is_listed(p, in_dir))
    skipped: list[tuple[str, str]] = [(p.name, "not an image file name") for p in entries
                                      if p.suffix.lower() not in IMAGE_SUFFIXES]
    files = []
    for path in (p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES):
        reason = link_refusal(path, in_dir)
        if reason is None:
            files.append(path)
        else:
            log.warning("skipped %s: %s", path, reason)
            skipped.append((path.name, reason))
    _refuse_output_clashes(files, in_dir)
    model, params = loaded.model, loaded.params
    if direction not in model.directions():
        raise ValueError(f"this {loaded.method} model maps {' and '.join(model.directions())}, not {direction}")
    unet_side = _network_size(params, loaded.method)
    torch.manual_seed(seed)
    done = 0
    with atomic_dir(out_dir) as tmp:
        for path in files:
            try:
                rgb, conversions = load_rgb(path, max_pixels)
            except BadImage as exc:
                log.warning("skipped %s: %s", path, exc)
                skipped.append((path.name, str(exc)))
                continue
            h, w = rgb.shape[:2]
            size = network_input_size(h, w, image_size=params.image_size, unet_side=unet_side, max_side=max_side)
            if unet_side <= 4 and params.image_size * max(h, w) > max_side * min(h, w):  # below the training scale
                conversions = [*conversions, f"translated at {size[1]}x{size[0]} (longer side at most {max_side})"]
            resized = np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.BICUBIC))
            x = _as_input(resized[None], device)
            fake = model.test_outputs(x, direction, None, seed=seed, n_samples=0)[fake_kind(direction)]
            out = Image.fromarray(to_uint8(fake)[0].numpy()).resize((w, h), Image.BICUBIC)
            out.save(tmp / png_name(path.name))
            if conversions:
                log.info("%s: %s", path.name, ", ".join(conversions))
            done += 1
        if skipped:
            with open(tmp / "skipped.csv", "w", newline="") as table:  # csv quoting: names may hold " or ,
                writer = csv.writer(table)
                writer.writerow(["file", "reason"])
                writer.writerows(skipped)
    return done, skipped


def _refuse_output_clashes(files: list[Path], in_dir: Path) -> None:
    """Raise ValueError when two inputs map to one output name (a.jpg and a.png -> a.png), letter
    case aside: A.png and a.png are one file where the file system ignores case (macOS, Windows).

    Refused rather than renamed: outputs keep the `<stem>.png` names that users and translate_split
    rely on, and no output is lost to an overwrite or to a name the user did not expect.
    """
    by_output: dict[str, list[str]] = {}
    for path in files:
        by_output.setdefault(png_name(path.name).casefold(), []).append(path.name)
    clashes = {out: names for out, names in by_output.items() if len(names) > 1}
    if clashes:
        names = next(iter(clashes.values()))
        outs = sorted({png_name(name) for name in names})
        where = f"as {outs[0]}" if len(outs) == 1 else f"as {' and '.join(outs)}, one file where case is ignored"
        raise ValueError(f"{in_dir}: {' and '.join(names)} would both be written {where}"
                         f"{f' ({len(clashes)} such clashes)' if len(clashes) > 1 else ''}; "
                         "rename one of each, then run again")
