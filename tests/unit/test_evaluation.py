"""The evaluation path: real photos through it score exactly the segmenter's own test accuracy;
baselines and per-method metrics have the keys the report reads."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.data.palette import NUM_CLASSES, ids_to_colour
from pipeline.data.store import load_split
from pipeline.evaluation import baselines, evaluate_translations, fcn_score
from pipeline.metrics.fcn_score import confusion_matrix, fcn_scores
from pipeline.data.palette import CLASS_NAMES
from pipeline.metrics.segmenter import predict, train_segmenter
from pipeline.tracking import NullTracker

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def segmenter(tiny_curated):
    train = load_split(tiny_curated, "train")
    net, _ = train_segmenter(train.photos, train.labels, num_classes=NUM_CLASSES, arch="small_fcn", width=8,
                             steps=3, batch_size=4, lr=1e-3, seed=0, device=CPU, tracker=NullTracker(),
                             log_every=1)
    return net


def write_folder(folder, ids, images):
    folder.mkdir(parents=True)
    for image_id, image in zip(ids, images):
        Image.fromarray(image).save(folder / f"{image_id.rsplit('.', 1)[0]}.png")


def test_real_photos_through_the_evaluation_equal_the_segmenters_own_accuracy(tiny_curated, segmenter, tmp_path):
    test = load_split(tiny_curated, "test")
    own = fcn_scores(confusion_matrix(np.asarray(test.labels), predict(segmenter, np.asarray(test.photos), 8, CPU),
                                      NUM_CLASSES), CLASS_NAMES).as_dict()
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in test.ids))
    write_folder(tmp_path / "fake_b", test.ids, np.asarray(test.photos))  # "translations" = the real photos
    metrics = evaluate_translations(tmp_path, tiny_curated, segmenter, batch_size=2, device=CPU)
    assert metrics["labels_to_photo"] == own
    assert metrics["labels_to_photo"] == fcn_score(segmenter, test.photos, test.labels, batch_size=5, device=CPU)
    assert metrics["ssim"] == pytest.approx(1.0) and metrics["l1"] == 0.0
    assert metrics["fid"]["segmenter_features"] == pytest.approx(0.0, abs=1e-3)


def test_true_label_maps_score_perfectly_photo_to_labels(tiny_curated, segmenter, tmp_path):
    test = load_split(tiny_curated, "test")
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in test.ids))
    write_folder(tmp_path / "fake_a", test.ids, ids_to_colour(np.asarray(test.labels)))
    metrics = evaluate_translations(tmp_path, tiny_curated, segmenter, batch_size=4, device=CPU)
    assert metrics["photo_to_labels"]["per_pixel_acc"] == 1.0 and metrics["photo_to_labels"]["class_iou"] == 1.0


def test_samples_give_diversity_and_a_misordered_folder_is_refused(tiny_curated, segmenter, tmp_path):
    test = load_split(tiny_curated, "test")
    photos = np.asarray(test.photos)
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in test.ids))
    write_folder(tmp_path / "samples" / "0", test.ids, photos)
    write_folder(tmp_path / "samples" / "1", test.ids, 255 - photos)
    metrics = evaluate_translations(tmp_path, tiny_curated, segmenter, batch_size=4, device=CPU)
    assert metrics["diversity"]["pixel_l1"] > 0.1 and metrics["diversity"]["segmenter_features"] > 0
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in reversed(test.ids)))
    with pytest.raises(ValueError, match="in order"):
        evaluate_translations(tmp_path, tiny_curated, segmenter, batch_size=4, device=CPU)


def test_baselines_cover_both_directions(tiny_curated, segmenter):
    base = baselines(tiny_curated, segmenter, batch_size=4, device=CPU)
    for direction in ("labels_to_photo", "labels_to_photo_label_colours", "photo_to_labels"):
        assert 0.0 <= base[direction]["per_pixel_acc"] <= 1.0
    assert "mean colour" in base["name_labels_to_photo"]
    assert "own colours" in base["name_labels_to_photo_label_colours"]
    # the no-learning row is exactly the segmenter on the palette-coloured label maps
    test = load_split(tiny_curated, "test")
    direct = fcn_score(segmenter, ids_to_colour(np.asarray(test.labels)), np.asarray(test.labels),
                       batch_size=4, device=CPU)
    assert base["labels_to_photo_label_colours"]["per_pixel_acc"] == direct["per_pixel_acc"]
