"""FCN-score, image metrics and the Fréchet distance against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.data.palette import IGNORE_ID, NUM_CLASSES, PALETTE, ids_to_colour
from pipeline.metrics.fcn_score import ConfusionAccumulator, colours_to_ids, confusion_matrix, fcn_scores
from pipeline.metrics.image import PSNR_CAP_DB, diversity, frechet_distance, paired_image_metrics

NAMES3 = ("a", "b", "c")


def test_confusion_matrix_counts_rows_truth_columns_prediction():
    truth = np.array([[0, 0, 1], [1, 2, 2]], np.uint8)
    pred = np.array([[0, 1, 1], [1, 2, 0]], np.uint8)
    hist = confusion_matrix(truth, pred, num_classes=3)
    assert hist.dtype == np.int64
    np.testing.assert_array_equal(hist, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])


def test_confusion_matrix_ignores_255_and_out_of_range_truth():
    truth = np.array([0, IGNORE_ID, 3, 1, -1], np.int64)
    pred = np.array([0, 1, 2, 1, 0], np.int64)
    np.testing.assert_array_equal(confusion_matrix(truth, pred, 3), [[1, 0, 0], [0, 1, 0], [0, 0, 0]])


def test_confusion_matrix_uint8_does_not_overflow():  # 19 * 18 + 18 > 255: the reference code's uint8 trap
    truth = np.full((2, 2), 18, np.uint8)
    assert confusion_matrix(truth, truth, NUM_CLASSES)[18, 18] == 4


def test_confusion_matrix_rejects_mismatched_shapes():  # junyanz silently returned 0 here
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((4, 4), int), np.zeros((4, 5), int), num_classes=3)


def test_confusion_matrix_rejects_float_labels_and_out_of_range_predictions():
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 2), int), num_classes=3)
    with pytest.raises(ValueError, match="0..2"):
        confusion_matrix(np.zeros((2, 2), int), np.full((2, 2), 255, int), num_classes=3)


def test_fcn_scores_hand_computed_3x3():
    hist = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])  # class c absent from truth and prediction
    s = fcn_scores(hist, NAMES3)
    assert s.per_pixel_acc == pytest.approx(7 / 10)
    assert s.per_class_acc == pytest.approx((3 / 4 + 4 / 6) / 2)  # c left out
    iou_a, iou_b = 3 / (4 + 5 - 3), 4 / (6 + 5 - 4)
    assert s.class_iou == pytest.approx((iou_a + iou_b) / 2)
    assert s.per_class_iou == {"a": pytest.approx(iou_a), "b": pytest.approx(iou_b), "c": None}


def test_fcn_scores_class_predicted_but_absent_from_truth_counts_with_iou_zero():
    hist = np.array([[3, 0, 1], [0, 2, 0], [0, 0, 0]])  # c is predicted once, never true
    s = fcn_scores(hist, NAMES3)
    assert s.per_pixel_acc == pytest.approx(5 / 6)
    assert s.per_class_acc == pytest.approx((3 / 4 + 1) / 2)  # no truth for c: no accuracy
    assert s.per_class_iou["c"] == 0.0
    assert s.class_iou == pytest.approx((3 / 4 + 1 + 0) / 3)


def test_fcn_scores_rejects_empty_and_mismatched():
    with pytest.raises(ValueError, match="empty"):
        fcn_scores(np.zeros((3, 3), np.int64), NAMES3)
    with pytest.raises(ValueError, match="shape"):
        fcn_scores(np.zeros((2, 2), np.int64), NAMES3)


def test_scores_as_dict_keys_are_stable():
    d = fcn_scores(np.eye(3, dtype=np.int64), NAMES3).as_dict()
    assert list(d) == ["per_pixel_acc", "per_class_acc", "class_iou", "per_class_iou"]
    assert d["per_pixel_acc"] == d["per_class_acc"] == d["class_iou"] == 1.0


def test_accumulator_equals_one_big_matrix():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, (6, 8, 8)).astype(np.uint8)
    truth[0, :2] = IGNORE_ID
    pred = rng.integers(0, 4, (6, 8, 8)).astype(np.uint8)
    acc = ConfusionAccumulator(4)
    for start in range(0, 6, 4):
        acc.update(truth[start:start + 4], pred[start:start + 4])
    big = confusion_matrix(truth, pred, 4)
    np.testing.assert_array_equal(acc.hist, big)
    assert acc.scores("abcd") == fcn_scores(big, "abcd")


def test_colours_to_ids_snaps_jittered_palette_colours():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, NUM_CLASSES, (3, 16, 16)).astype(np.uint8)
    jitter = rng.integers(-5, 6, (3, 16, 16, 3))  # |jitter| <= 8.7 < half the closest colours' distance (20)
    colours = (ids_to_colour(ids).astype(int) + jitter).clip(0, 255).astype(np.uint8)
    np.testing.assert_array_equal(colours_to_ids(colours), ids)
    assert colours_to_ids(PALETTE[None, None]).ravel().tolist() == list(range(NUM_CLASSES))


def test_paired_metrics_identical_images():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    m = paired_image_metrics(real, real.copy())
    assert m["ssim"] == pytest.approx(1.0)
    assert m["l1"] == 0.0
    assert m["psnr"] == PSNR_CAP_DB and math.isfinite(m["psnr"])


def test_paired_metrics_known_noise_and_small_images():
    real = np.full((2, 5, 5, 3), 100, np.uint8)  # smaller than SSIM's 7x7 window
    fake = real.copy()
    fake[..., 0] += 3  # |diff| 3 on one channel of three
    m = paired_image_metrics(real, fake)
    assert m["l1"] == pytest.approx(1 / 255)
    assert m["psnr"] == pytest.approx(10 * math.log10(255**2 / 3))  # MSE = 9 / 3
    assert m["ssim"] < 1.0
    with pytest.raises(ValueError, match="shape"):
        paired_image_metrics(real, fake[:1])


def test_frechet_distance_hand_examples():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    assert frechet_distance(x, x + shift) == pytest.approx(float((shift**2).sum()), rel=1e-8)
    # 1-D Gaussians: (mu1 - mu2)^2 + (s1 - s2)^2
    a, b = np.array([[-1.0], [1.0]]), np.array([[-2.0], [2.0]]) + 3.0
    assert frechet_distance(a, b) == pytest.approx(9.0 + (math.sqrt(2) - math.sqrt(8)) ** 2)


def test_diversity_zero_for_identical_samples_positive_otherwise():
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, 2, 8, 8, 3), dtype=np.uint8)
    same = np.repeat(one, 3, axis=0)

    def feats(x):  # two "layers" of feature maps
        f = x.transpose(0, 3, 1, 2).astype(np.float32) + 1.0
        return [f, f[:, :, ::2, ::2] ** 2]

    d = diversity(same, feats)
    assert d == {"pixel_l1": 0.0, "segmenter_features": 0.0}
    other = same.copy()
    other[1] = 255 - other[1]
    d = diversity(other, feats)
    assert d["pixel_l1"] > 0 and d["segmenter_features"] > 0
    assert set(diversity(other)) == {"pixel_l1"}
    with pytest.raises(ValueError, match="2 samples"):
        diversity(one)
