"""LPIPS diversity: BicycleGAN's pair averaging on a toy feature net, the `lpips` package's network
from local files only (a random torchvision backbone here), and the report's version label."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from pipeline.metrics.perceptual import load_lpips, lpips_diversity, pair_averaged, sample_pairs
from pipeline.io import sha256_of
from pipeline.report import diversity_table
from pipeline.report_sections import lpips_protocol_lines


def test_pairs_are_consecutive_as_compute_dists_pair_or_all():
    assert sample_pairs(4, "consecutive") == [(0, 1), (1, 2), (2, 3)]
    assert sample_pairs(3, "all") == [(0, 1), (0, 2), (1, 2)]
    with pytest.raises(ValueError, match="at least 2 samples"):
        sample_pairs(1, "all")


def test_pair_averaging_on_a_toy_feature_net():
    # sample k of input n is a flat image of grey v[k, n]; the toy distance compares image means
    v = np.array([[0, 10, 200], [51, 10, 100], [255, 40, 100]], dtype=np.uint8)  # (K=3, N=3)
    samples = np.broadcast_to(v[:, :, None, None, None], (3, 3, 4, 4, 3)).copy()
    toy = lambda a, b: (a.mean((1, 2, 3)) - b.mean((1, 2, 3))).abs()  # noqa: E731
    g = v.astype(float) / 127.5  # the [-1, 1] scale the distance sees
    for pairs, chosen in (("consecutive", [(0, 1), (1, 2)]), ("all", [(0, 1), (0, 2), (1, 2)])):
        per_input = [np.mean([abs(g[i, n] - g[j, n]) for i, j in chosen]) for n in range(3)]
        out = pair_averaged(samples, toy, pairs, batch_size=2)  # batches split the inputs 2 + 1
        assert out["mean"] == pytest.approx(np.mean(per_input), abs=1e-6)  # float32 images
        assert (out["n_pairs"], out["pairs_per_input"], out["n_inputs"]) == (3 * len(chosen), len(chosen), 3)
        flat = [abs(g[i, n] - g[j, n]) for i, j in chosen for n in range(3)]
        assert out["stderr"] == pytest.approx(np.std(flat) / np.sqrt(len(flat)), abs=1e-6)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lpips") / "alexnet-random.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)  # torchvision's file layout
    return path


def test_lpips_from_local_files_with_its_version_and_protocol(backbone):
    models = {v: load_lpips(v, "alex", backbone_weights=backbone, linear_weights=None) for v in ("0.0", "0.1")}
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 256, (3, 2, 32, 32, 3), dtype=np.uint8)
    out = {v: lpips_diversity(samples, m, pairs="consecutive", batch_size=2) for v, m in models.items()}
    assert out["0.0"]["mean"] > 0 and out["0.1"]["mean"] > 0 and out["0.0"]["mean"] != out["0.1"]["mean"]
    same = np.stack([samples[0]] * 2)
    assert lpips_diversity(same, models["0.1"], pairs="all", batch_size=2)["mean"] == pytest.approx(0.0, abs=1e-7)
    p = out["0.1"]["protocol"]
    assert p["version"] == "0.1" and p["backbone"] == "alex" and p["pairs"] == "consecutive"
    assert p["implementation"].startswith("lpips 0.") and p["weights"]["alexnet-random.pth"] == sha256_of(backbone)
    assert "alex.pth" in p["weights"]  # the package's bundled learned layers, by digest
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_lpips("0.1", "alex", backbone_weights=backbone.with_name("missing.pth"), linear_weights=None)

    metrics = {"bicyclegan": {"diversity": {"pixel_l1": 0.1, "lpips": out["0.1"]["mean"]}, "lpips": out["0.1"]},
               "pix2pix": {"diversity": {"pixel_l1": 0.0, "lpips": 0.5}}}  # an LPIPS without protocol
    table = diversity_table(metrics)
    assert "Diversity (LPIPS v0.1, alex) ↑" in table.columns
    assert table.set_index("Method").loc["pix2pix", "Diversity (LPIPS v0.1, alex) ↑"] == "–"  # not printed
    (line,) = lpips_protocol_lines(metrics)
    assert "LPIPS v0.1, alex backbone" in line and sha256_of(backbone) in line and "2 per input" in line


def test_evaluation_adds_lpips_diversity_from_the_params_weights(tiny_curated, backbone, tmp_path):
    import dataclasses

    from PIL import Image

    from pipeline.data.store import load_split
    from pipeline.evaluation import evaluate_translations, lpips_model, scores_of
    from tests.conftest import tiny_params

    params = tiny_params()
    assert lpips_model(params) is None  # no weights: no LPIPS, the substitutes stay
    params = dataclasses.replace(params, evaluate=dataclasses.replace(
        params.evaluate, lpips_backbone_weights=str(backbone), lpips_version="0.0", lpips_pairs="all"))
    test = load_split(tiny_curated, "test")
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in test.ids))
    for k, images in enumerate((np.asarray(test.photos), 255 - np.asarray(test.photos), np.asarray(test.photos))):
        (tmp_path / "samples" / str(k)).mkdir(parents=True)
        for image_id, image in zip(test.ids, images):
            Image.fromarray(image).save(tmp_path / "samples" / str(k) / f"{image_id.rsplit('.', 1)[0]}.png")
    metrics = evaluate_translations(tmp_path, tiny_curated, None, batch_size=4, device=torch.device("cpu"),
                                    lpips=lpips_model(params), lpips_pairs=params.evaluate.lpips_pairs)
    assert metrics["lpips"]["pairs_per_input"] == 3 and metrics["lpips"]["protocol"]["version"] == "0.0"
    assert scores_of(metrics)["diversity_lpips"] == metrics["lpips"]["mean"] > 0
    from pipeline.evaluation import protocol_tags

    assert "LPIPS v0.0, alex" in protocol_tags(metrics)["protocol.diversity_lpips"]  # the MLflow run's tag
