"""The FCN-score's segmenter: shapes, a short training, determinism, and the safetensors round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline.data.palette import IGNORE_ID
from pipeline.metrics.segmenter import (SmallFCN, build_segmenter, feature_maps, features, load_segmenter, predict,
                                        save_segmenter, train_segmenter)
from pipeline.tracking import NullTracker

CPU = torch.device("cpu")
COLOURS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]], np.uint8)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets gain nothing from threads, and spinning OpenMP threads crawl on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_set(n: int = 12, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Photos whose class is the colour of each 4x4 block, with noise; a few pixels ignored."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 3, (n, size // 4, size // 4))
    labels = blocks.repeat(4, 1).repeat(4, 2).astype(np.uint8)
    photos = (COLOURS[labels].astype(int) + rng.integers(-20, 21, (n, size, size, 3))).clip(0, 255).astype(np.uint8)
    labels[:, 0, 0] = IGNORE_ID
    return photos, labels


def fit(photos, labels, steps=30, seed=0):
    return train_segmenter(photos, labels, num_classes=3, arch="small_fcn", width=8, steps=steps, batch_size=4,
                           lr=1e-2, seed=seed, device=CPU, tracker=NullTracker(), log_every=5)


def test_small_fcn_shapes():
    net = build_segmenter("small_fcn", num_classes=5, width=4).eval()
    photos, _ = tiny_set(n=3)
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 5, 16, 16)
    pred = predict(net, photos, batch_size=2, device=CPU)
    assert pred.shape == (3, 16, 16) and pred.dtype == np.uint8 and pred.max() < 5
    assert features(net, photos, batch_size=2, device=CPU).shape == (3, 32)
    maps = feature_maps(net, photos, batch_size=2, device=CPU)
    assert [m.shape for m in maps] == [(3, 4, 16, 16), (3, 8, 8, 8), (3, 16, 4, 4), (3, 32, 2, 2)]


def test_build_segmenter_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown segmenter"):
        build_segmenter("fcn8s", num_classes=3, width=4)


def test_short_training_reduces_the_loss_and_is_deterministic():
    photos, labels = tiny_set()
    net, history = fit(photos, labels, steps=40)  # zoom augmentation: a few more steps than without
    assert [h["step"] for h in history] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert history[-1]["segmenter_loss"] < 0.5 * history[0]["segmenter_loss"]
    assert not net.training
    again, _ = fit(photos, labels, steps=40)
    for (name, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_augmentation_moves_photos_and_labels_together():
    """Zoom, crop and flip are one geometry for both, so every pixel keeps its class."""
    from pipeline.sampler import to_unit
    from pipeline.metrics.segmenter import _augment

    photos, labels = tiny_set(n=8, size=32)
    labels[:, 0, 0] = 0
    x, y = _augment(to_unit(torch.from_numpy(photos)), torch.from_numpy(labels).long(), torch.Generator().manual_seed(1))
    assert x.shape == (8, 3, 32, 32) and y.shape == (8, 32, 32) and y.dtype == torch.long
    colours = torch.from_numpy(COLOURS).float() / 127.5 - 1.0  # (3, 3)
    nearest = ((x.permute(0, 2, 3, 1)[..., None, :] - colours) ** 2).sum(-1).argmin(-1)  # (B, H, W)
    assert (nearest == y).float().mean() > 0.9  # bilinear photos blur only the block edges
    assert not torch.equal(y, torch.from_numpy(labels).long())  # it did move them


def test_training_rejects_labels_outside_the_classes():
    photos, labels = tiny_set(n=2)
    labels[0, 1, 1] = 7
    with pytest.raises(ValueError, match="7"):
        fit(photos, labels, steps=1)


def test_predict_is_deterministic_and_leaves_mode_alone():
    net = SmallFCN(3, width=4).train()
    photos, _ = tiny_set(n=5)
    first = predict(net, photos, batch_size=2, device=CPU)
    np.testing.assert_array_equal(first, predict(net, photos, batch_size=5, device=CPU))
    assert net.training


def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    photos, labels = tiny_set()
    net, _ = fit(photos, labels, steps=5)
    save_segmenter(net, tmp_path, {"class_names": ["r", "g", "b"]})
    config = json.loads((tmp_path / "config.json").read_text())
    assert config == {"arch": "small_fcn", "num_classes": 3, "width": 8, "meta": {"class_names": ["r", "g", "b"]}}
    loaded, loaded_config = load_segmenter(tmp_path)
    assert loaded_config == config and not loaded.training
    np.testing.assert_array_equal(predict(loaded, photos, 4, CPU), predict(net, photos, 4, CPU))


def test_torchvision_segmenter_round_trip(tmp_path):
    net = build_segmenter("deeplabv3_mobilenet", num_classes=3, width=0).eval()  # weights=None: no download
    photos, _ = tiny_set(n=2, size=32)
    save_segmenter(net, tmp_path, {})
    loaded, config = load_segmenter(tmp_path)
    assert config["arch"] == "deeplabv3_mobilenet" and config["num_classes"] == 3
    np.testing.assert_array_equal(predict(loaded, photos, 2, CPU), predict(net, photos, 2, CPU))
    assert features(loaded, photos, 2, CPU).shape[0] == 2


def test_load_segmenter_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_segmenter(tmp_path)
