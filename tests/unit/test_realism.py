"""FID and KID: the formulas against an independent numpy/scipy computation, the weights' SHA-256
checks and the one explicit download, and torch-fidelity's Inception run end to end on random weights."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from pipeline.metrics import realism as R
from tests.unit.inception_weights import write_random_inception


def scipy_fid(x: np.ndarray, y: np.ndarray) -> float:
    """Heusel et al. 2017, eq. 6, with scipy's matrix square root."""
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_x @ cov_y).real
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x + cov_y - 2 * covmean))


def unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Binkowski et al. 2018: unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out pair by pair."""
    d, m, n = x.shape[1], len(x), len(y)
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return float(xx + yy - 2 * xy)


@pytest.fixture(scope="module")
def feats():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(120, 8))
    fake = rng.normal(0.3, 1.2, size=(120, 8)) @ rng.normal(size=(8, 8)) * 0.5
    return real, fake


def test_fid_equals_an_independent_scipy_computation(feats):
    real, fake = feats
    ours = R.fid(torch.from_numpy(real), torch.from_numpy(fake))
    assert ours == pytest.approx(scipy_fid(real, fake), rel=1e-6, abs=1e-6)
    assert R.fid(torch.from_numpy(real), torch.from_numpy(real)) == pytest.approx(0.0, abs=1e-6)


def test_kid_is_the_unbiased_mmd_on_a_subset_as_large_as_the_small_set(feats):
    real, fake = feats[0][:30], feats[1][:25]
    out = R.kid(torch.from_numpy(real), torch.from_numpy(fake), subset_size=1000, subsets=3, seed=0)
    assert out["subset_size"] == 25  # min(1000, 30, 25): a small test set is usable, not refused
    # each subset draws 25 of the 30 real images: recompute those with the library's documented RNG
    rng = np.random.RandomState(0)
    expected = []
    for _ in range(3):
        sub_r, sub_f = real[rng.choice(30, 25, replace=False)], fake[rng.choice(25, 25, replace=False)]
        expected.append(unbiased_mmd2(sub_r, sub_f))
    assert out["mean"] == pytest.approx(np.mean(expected), rel=1e-6, abs=1e-6)
    assert out["std"] == pytest.approx(np.std(expected), rel=1e-6, abs=1e-6)
    whole = R.kid(torch.from_numpy(fake), torch.from_numpy(fake[::-1].copy()), subset_size=25, subsets=2, seed=1)
    assert whole["mean"] == pytest.approx(unbiased_mmd2(fake, fake), abs=1e-6)  # unbiased: about 0, not > 0
    assert whole["std"] == pytest.approx(0.0, abs=1e-9)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = write_random_inception(tmp_path_factory.mktemp("inception") / "random_inception.pth")
    return path, R.sha256_of(path)


def test_weights_are_checked_by_sha256_and_never_fetched_unasked(weights, tmp_path, monkeypatch):
    path, digest = weights
    assert R.resolve_weights(None, None) is None
    assert R.resolve_weights(str(path), digest) == (path, digest)
    with pytest.raises(ValueError, match="is not evaluate.inception_sha256"):
        R.resolve_weights(str(path), "0" * 64)
    with pytest.raises(ValueError, match="does not start with 6726825d"):  # not the published file
        R.resolve_weights(str(path), None)
    with pytest.raises(FileNotFoundError, match="evaluate.inception_weights"):
        R.resolve_weights(str(tmp_path / "missing.pth"), digest)
    # `download`: fetched once into torch's hub cache, checked, then reused
    fetched = []

    def fake_download(url, dst, hash_prefix=None):
        fetched.append((url, hash_prefix))
        with open(dst, "wb") as f:
            f.write(path.read_bytes())

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    for _ in range(2):
        cached, sha = R.resolve_weights(R.DOWNLOAD, digest)
        assert sha == digest and cached.parent == tmp_path / "hub/checkpoints"
    assert fetched == [(R.INCEPTION_URL, R.PUBLISHED_SHA256_PREFIX)]


def test_the_librarys_inception_gives_pool3_features_from_the_checked_file(weights):
    path, digest = weights
    inception = R.load_inception(path, digest, torch.device("cpu"))
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    feats = R.inception_features(inception, images, batch_size=2)  # two batches, resized to 299 px inside
    assert feats.shape == (3, 2048) and torch.isfinite(feats).all() and feats.std() > 1e-3
    assert R.fid(feats, feats) == pytest.approx(0.0, abs=1e-3)
    p = inception.protocol()
    assert p["implementation"] == f"torch-fidelity {R.library_version()}" and p["weights_sha256"] == digest
    assert p["network_input"] == "299x299" and "TensorFlow 1.x" in p["resize"]


def test_cyclegan_folders_get_fid_and_kid_both_ways_in_the_record_mlflow_and_report(weights, tmp_path, mlflow_uri):
    import yaml

    from tests.unit import real_data
    from pipeline.metrics.realism import protocol_line
    from tests.unit.test_real_datasets import Run, write_params

    path, digest = weights
    root = real_data.write_cyclegan(tmp_path / "horse2zebra")
    params = write_params(tmp_path, {"source": "cyclegan_folders", "path": str(root)})
    raw = yaml.safe_load(params.read_text())
    raw["evaluate"].update(inception_weights=str(path), inception_sha256=digest, kid_subsets=4)
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    run = Run(tmp_path / "cyc", params)
    run.data()
    run.segmenter()
    record = run.through("cyclegan")
    scores = __import__("json").loads((run.metrics / "cyclegan.json").read_text())
    assert {"fid", "kid", "a_fid", "a_kid"} <= set(scores)  # scores only; the protocol sits in the record
    to_b, to_a = record["realism"]["to_b"], record["realism"]["to_a"]
    assert (to_b["protocol"]["n_real"], to_b["protocol"]["n_generated"]) == (3, 2)  # testB real, testA -> B
    assert (to_a["protocol"]["n_real"], to_a["protocol"]["n_generated"]) == (2, 3)
    assert to_b["protocol"]["kid"]["subset_size"] == 2 and to_b["protocol"]["checkpoint"].startswith("final (step 2")
    assert to_b["fid"] > 0 and to_b["protocol"]["split"] == "test" and to_b["protocol"]["source_size"] == "32x32"
    line = protocol_line(to_b["protocol"])
    assert digest in line and "3 real and 2 generated test images" in line and "4 subsets of 2" in line
    from mlflow.tracking import MlflowClient

    tags = MlflowClient(mlflow_uri).get_run(record["mlflow_run_id"]).data.tags
    assert digest in tags["protocol.fid_kid"] and "3 real and 2 generated" in tags["protocol.fid_kid"]
    text = run.report()
    assert "## FID and KID (Inception)" in text and "FID (A → B) ↓" in text and "FID (B → A) ↓" in text
    assert text.count(f"SHA-256 {digest}") == 2 and f"{to_b['fid']:.2f}" in text
