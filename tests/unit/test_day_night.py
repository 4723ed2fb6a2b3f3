"""The unpaired day -> night task of the street scenes: the generator's day/night split, the two
labelled photo domains in the store, a segmenter per domain scoring each direction against the
source photos' labels, the identity baseline, the paired methods not applicable, the report's
per-direction tables, and the README's one command parsed as DVC parses `-S`."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pipeline.applicability import method_not_applicable, not_applicable_reason
from pipeline.config import CurateConfig, load_params
from pipeline.data.curation.curate import curate
from pipeline.data.palette import NUM_CLASSES, colour_to_ids
from pipeline.data.store import load_split, read_info
from pipeline.data.streets.scenes import render_scene, write_dataset
from pipeline.evaluation import evaluate_method, evaluate_translations, train_fcn_segmenter
from pipeline.inference import translate_method
from pipeline.io import read_metrics
from pipeline.metrics.photo_domains import SEGMENTER_A, identity_baselines
from pipeline.metrics.segmenter import SmallFCN
from pipeline.models import METHODS
from pipeline.training import train_method
from pipeline.translated import FAKE_A, FAKE_B, IDS_A, IDS_B, png_name
from tests.conftest import ROOT, TINY, tiny_params

CPU = torch.device("cpu")
ROAD, SKY = 0, 10
DAY_NIGHT = CurateConfig(domain_a={"Night": -1}, domain_b={"Night": 1})


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("day_night") / "raw"
    write_dataset(root, 40, TINY, seed=0, styles="day_night")
    return root


@pytest.fixture(scope="module")
def curated(raw) -> Path:
    out = raw.parent / "curated"
    curate(raw / "photos", out, DAY_NIGHT, TINY, 0, labels_dir=raw / "labels", attr_path=raw / "list_attr.csv")
    return out


def test_day_night_draws_day_or_night_on_the_day_sets_layouts():
    scenes = [render_scene(0, i, TINY, "day_night") for i in range(60)]
    days = [render_scene(0, i, TINY) for i in range(60)]
    nights = [s.attrs["Night"] == 1 for s in scenes]
    assert 15 < sum(nights) < 45  # about half and half
    for scene, day, night in zip(scenes, days, nights):
        assert np.array_equal(scene.label, day.label)  # the style set never moves a thing
        assert scene.attrs["Dusk"] == scene.attrs["Foggy"] == -1
        if not night:  # a day scene is the default set's scene of that index, byte for byte
            assert np.array_equal(scene.photo, day.photo) and scene.attrs == day.attrs
    assert np.mean([s.photo.mean() for s, n in zip(scenes, nights) if n]) < \
        0.6 * np.mean([s.photo.mean() for s, n in zip(scenes, nights) if not n])


def test_curate_keeps_two_disjoint_photo_domains_with_their_label_maps(raw, curated):
    info = read_info(curated)
    assert (info["domain_a"], info["paired"], info["has_labels"], info["photo_labels"]) == \
        ("images", False, False, True)
    assert info["num_classes"] == NUM_CLASSES and info["domain_names"] == \
        {"a": "photos (not Night)", "b": "photos (Night)"}
    manifest = pd.read_csv(curated / "manifest.csv", dtype=str, keep_default_na=False)
    assert set(manifest["domain"]) == {"a", "b"} and not manifest["image_id"].duplicated().any()
    assert (manifest.loc[manifest["domain"] == "a", "Night"] == "-1").all()
    assert (manifest.loc[manifest["domain"] == "b", "Night"] == "1").all()
    assert len(manifest) == 40  # every scene is in exactly one domain
    for split in ("train", "val", "test"):
        arrays = load_split(curated, split)
        assert arrays.labels is None and not set(arrays.ids) & set(arrays.ids_a)
        rows = manifest.loc[manifest["split"] == split].set_index("image_id")
        for ids, photos, labels in ((arrays.ids_a, arrays.images_a, arrays.labels_a),
                                    (arrays.ids, arrays.photos, arrays.labels_b)):
            assert len(ids) == len(photos) == len(labels)
            for i, image_id in enumerate(ids):  # row i is that scene's photo and its own label map
                assert Path(rows.loc[image_id, "label_file"]).name == image_id
                assert np.array_equal(photos[i], np.asarray(Image.open(raw / "photos" / image_id)))
                label, _ = colour_to_ids(np.asarray(Image.open(raw / "labels" / image_id).convert("RGB")))
                assert np.array_equal(labels[i], label)
        assert all(Path(p).parent.name == "photos" for p in rows["a_path"] if p)  # A is the photo, not the map


def test_class_coverage_counts_both_domains_label_maps(curated):
    from pipeline.data.curation.stats import class_frequencies, data_summary

    train = load_split(curated, "train")
    both = np.concatenate([np.asarray(train.labels_a), np.asarray(train.labels_b)])
    assert data_summary(curated)["class_coverage"]["train"] == class_frequencies(both)


def test_two_domains_are_still_refused_where_domain_a_is_no_label_map(tmp_path):
    from pipeline.data.curation.inputs import Inputs
    from pipeline.data.curation.selection import select

    ids = pd.Index(["1.png", "2.png"], name="image_id")
    items = pd.DataFrame({"split": "", "domain": "ab", "file": ["1.png", "2.png"], "a_file": ""}, index=ids)
    attributes = pd.DataFrame({"Night": np.array([1, -1], np.int8)}, index=ids)
    facades = Inputs(items=items, attributes=attributes, a_format="ab_left", dataset="facades", domain_names={},
                     source=tmp_path)
    with pytest.raises(ValueError, match="already has a domain A \\(ab_left\\)"):
        select(facades, DAY_NIGHT)


def test_a_store_claiming_photo_labels_without_photo_domains_is_refused_by_name(tiny_curated, tmp_path):
    from pipeline.data.store import StoreError

    broken = tmp_path / "curated"
    shutil.copytree(tiny_curated, broken)
    info = json.loads((broken / "info.json").read_text())
    (broken / "info.json").write_text(json.dumps({**info, "photo_labels": True}))
    with pytest.raises(StoreError, match="info.json: photo_labels needs domain_a 'images'"):
        read_info(broken)


def test_stores_without_photo_labels_read_as_before(tiny_curated):
    info = read_info(tiny_curated)
    assert info["photo_labels"] is False and "photo_labels" not in (tiny_curated / "info.json").read_text()
    arrays = load_split(tiny_curated, "test")
    assert arrays.labels is not None and arrays.labels_a is None and arrays.labels_b is None


def _constant_segmenter(cls: int) -> SmallFCN:
    """A segmenter that predicts `cls` at every pixel (a planted network: its scores are known)."""
    net = SmallFCN(NUM_CLASSES, width=4)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        net.head.bias[cls] = 10.0
    return net.eval()


def _share(labels: np.ndarray, cls: int) -> float:
    labels = np.asarray(labels)
    valid = labels < NUM_CLASSES
    return float((labels[valid] == cls).sum() / valid.sum())


def _write_translations(folder: Path, fake_b: np.ndarray, ids_a: list[str], fake_a: np.ndarray,
                        ids_b: list[str]) -> Path:
    for kind, images, ids in ((FAKE_B, fake_b, ids_a), (FAKE_A, fake_a, ids_b)):
        (folder / kind).mkdir(parents=True)
        for image, image_id in zip(images, ids):
            Image.fromarray(np.asarray(image)).save(folder / kind / png_name(image_id))
    (folder / IDS_A).write_text("".join(f"{i}\n" for i in ids_a))
    (folder / IDS_B).write_text("".join(f"{i}\n" for i in ids_b))
    return folder


def test_each_direction_is_scored_by_its_target_segmenter_against_the_source_labels(curated, tmp_path):
    test = load_split(curated, "test")
    # untranslated photos as the translations: the scores are then the identity baseline's
    translated = _write_translations(tmp_path / "t", test.images_a, test.ids_a, test.photos, test.ids)
    road_b, sky_a = _constant_segmenter(ROAD), _constant_segmenter(SKY)
    metrics = evaluate_translations(translated, curated, road_b, segmenter_a=sky_a, batch_size=4, device=CPU)
    # day -> night: domain B's segmenter (road everywhere) against the day photos' labels
    assert metrics["a_to_b"]["per_pixel_acc"] == pytest.approx(_share(test.labels_a, ROAD))
    # night -> day: domain A's segmenter (sky everywhere) against the night photos' labels
    assert metrics["b_to_a"]["per_pixel_acc"] == pytest.approx(_share(test.labels_b, SKY))
    assert "labels_to_photo" not in metrics and "fcn_score" not in metrics.get("not_applicable", {})
    swapped = evaluate_translations(translated, curated, sky_a, segmenter_a=road_b, batch_size=4, device=CPU)
    assert swapped["a_to_b"]["per_pixel_acc"] == pytest.approx(_share(test.labels_a, SKY))
    assert swapped["a_to_b"]["per_pixel_acc"] != metrics["a_to_b"]["per_pixel_acc"]
    # the identity baseline is exactly what handing over the source photo scores
    identity = identity_baselines(test, road_b, sky_a, batch_size=4, device=CPU)
    assert identity["a_to_b_identity"] == metrics["a_to_b"] and identity["b_to_a_identity"] == metrics["b_to_a"]
    assert identity["frechet_identity"]["b_to_a"] == pytest.approx(metrics["fid_a"]["segmenter_features"])


def test_fid_and_kid_compare_each_direction_with_its_real_target_photos(curated, tmp_path, monkeypatch):
    import pipeline.evaluation as evaluation

    test = load_split(curated, "test")
    translated = _write_translations(tmp_path / "t", test.images_a, test.ids_a, test.photos, test.ids)
    seen = {}

    def realism(settings, real, fake, *, batch_size):  # the Inception's place: records what it was given
        seen[len(seen)] = (np.asarray(real), np.asarray(fake))
        return {"fid": 0.0}

    monkeypatch.setattr(evaluation, "realism", realism)
    metrics = evaluate_translations(translated, curated, _constant_segmenter(ROAD), segmenter_a=_constant_segmenter(SKY),
                                    batch_size=4, device=CPU, inception=object())
    assert set(metrics["realism"]) == {"to_b", "to_a"}
    (real_b, fake_b), (real_a, fake_a) = seen[0], seen[1]
    assert np.array_equal(real_b, test.photos) and np.array_equal(fake_b, test.images_a)  # day -> night vs night
    assert np.array_equal(real_a, test.images_a) and np.array_equal(fake_a, test.photos)  # night -> day vs day


def test_the_paired_methods_do_not_apply_and_the_unpaired_ones_do(curated):
    info = read_info(curated)
    for name, spec in METHODS.items():
        reason = method_not_applicable(info, name, spec.paired)
        assert (reason is not None) == (name in ("pix2pix", "bicyclegan")), name
        if reason:
            assert "needs paired data" in reason and "photos (not Night) vs photos (Night)" in reason


def test_day_night_end_to_end_through_the_library(curated, tmp_path):
    from pipeline.config import Params
    from pipeline.report_build import build_report

    params = tiny_params()
    params = dataclasses.replace(params, segmenter=dataclasses.replace(params.segmenter, steps=2, width=4),
                                 cyclegan=dataclasses.replace(params.cyclegan, iters=1, iters_decay=1))
    metrics_dir, models = tmp_path / "metrics", tmp_path / "models"
    train_fcn_segmenter(curated, models / "segmenter", real_metrics=metrics_dir / "real_photos.json",
                        baseline_metrics=metrics_dir / "baseline.json", params=params)
    assert (models / "segmenter" / "segmenter.safetensors").is_file()
    assert (models / "segmenter" / SEGMENTER_A / "segmenter.safetensors").is_file()
    assert {"a_to_b", "b_to_a"} <= set(read_metrics(metrics_dir / "real_photos.json"))  # the upper bounds
    scores = json.loads((metrics_dir / "real_photos.json").read_text())
    # each direction's upper bound under the methods' score names (2 steps: the values are not the point)
    assert set(scores) == {"pixel_acc", "class_acc", "class_iou", "a_pixel_acc", "a_class_acc", "a_class_iou"}
    assert all(0 <= v <= 1 for v in scores.values())
    baseline = json.loads((metrics_dir / "baseline.json").read_text())
    assert {"a_to_b_identity", "b_to_a_identity", "frechet_identity"} <= set(baseline)
    for name in ("pix2pix", "cyclegan"):
        kwargs = dict(out_dir=models / name, state_dir=tmp_path / "state" / name, samples_dir=tmp_path / "s" / name,
                      losses_csv=tmp_path / "losses" / f"{name}.csv", params=params, progress=False)
        train_method(name, curated, **kwargs)
        translate_method(name, curated, models / name, tmp_path / "translated" / name, split="test", params=params,
                         device=CPU)
        evaluate_method(name, curated, tmp_path / "translated" / name, segmenter_dir=models / "segmenter",
                        model_dir=models / name, out=metrics_dir / f"{name}.json", params=params)
    assert "needs paired data" in not_applicable_reason(models / "pix2pix")
    cyclegan = read_metrics(metrics_dir / "cyclegan.json")
    assert {"a_to_b", "b_to_a", "fid", "fid_a"} <= set(cyclegan)
    out = build_report(metrics_dir=metrics_dir, losses_dir=tmp_path / "losses", translated_dir=tmp_path / "translated",
                       curated_dir=curated, models_dir=models, figures_dir=tmp_path / "figures",
                       contact_sheet=tmp_path / "sheet.png", out=tmp_path / "report.md", params=Params(),
                       commit="test")
    text = out.read_text()
    for direction in ("photos (not Night) → photos (Night)", "photos (Night) → photos (not Night)"):
        section = text.split(f"## {direction} (FCN-score)", 1)[1].split("\n## ", 1)[0]
        fcn_part = section.split("Per-class IoU", 1)[0]
        rows = [line.split("|")[1].strip() for line in fcn_part.splitlines() if line.startswith("| ")]
        assert rows[1:] == ["Trivial baseline (identity: the source photo, untranslated)", "CycleGAN",
                            "Real photos (upper bound)"]
        assert f"Per-class IoU ({direction})" in section and "| road |" in section
    assert "## Realism (segmenter features)" in text and "pix2pix (not trained): pix2pix needs paired data" in text


def _readme_overrides() -> list[str]:
    """The -S overrides of the README's day -> night command, as the shell hands them to DVC."""
    import shlex

    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Day -> night (unpaired)\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    command = next(line for line in block.replace("\\\n", " ").splitlines() if line.startswith("dvc exp run"))
    words = shlex.split(command)
    return [words[i + 1] for i, word in enumerate(words) if word == "-S"]


def test_the_readme_command_parses_as_dvc_sets_it(tmp_path):
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides

    overrides = _readme_overrides()
    makefile = (ROOT / "Makefile").read_text()
    assert all(o in makefile for o in overrides)  # `make daynight` runs the same experiment
    by_file = to_path_overrides(overrides)  # DVC's split of `[file:]key=value`
    assert list(by_file) == ["params.yaml"]
    params_file = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params_file)
    for _ in range(2):  # what `dvc exp run -S` does to params.yaml, on the defaults and once more on its result
        apply_overrides(params_file, by_file["params.yaml"])
        params = load_params(params_file)  # strict: every key and value must pass
        assert params.data.styles == "day_night"
        assert (params.curate.domain_a, params.curate.domain_b) == ({"Night": -1}, {"Night": 1})
        assert params.lambda_idt == 0.5 and params.cut.enabled and params.fastcut.enabled
