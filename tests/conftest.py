"""Shared fixtures: tiny params and a tiny curated street-scene store, made once per session."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.config import CurateConfig, Params, load_params

ROOT = Path(__file__).resolve().parents[1]
TINY = 32


def tiny_params(**top) -> Params:
    """The repository's params shrunk to seconds: 32 px, ngf/ndf 4, a few steps."""
    p = load_params(ROOT / "params.yaml")
    small = dict(iters=3, iters_decay=3, ngf=4, ndf=4)
    p = dataclasses.replace(
        p, image_size=TINY,
        train=dataclasses.replace(p.train, load_size=TINY + 4, log_every=1, sample_every=3, checkpoint_every=2,
                                  # fp32: the tests check the methods' arithmetic exactly; bf16 and the
                                  # other fast-path switches are checked against it (test_parity.py)
                                  device="cpu", cpu_amp=False),
        pix2pix=dataclasses.replace(p.pix2pix, generator="unet_32", batch_size=2, **small),
        cyclegan=dataclasses.replace(p.cyclegan, generator="resnet_6blocks", batch_size=1, **small),
        bicyclegan=dataclasses.replace(p.bicyclegan, generator="unet_32", encoder="resnet_64", batch_size=2, nef=4,
                                       n_layers_D=2,  # the half-scale D would reach 1x1 maps at 32 px
                                       **small),
        # switched on here (off by default), so that every stage is tested with them
        cut=dataclasses.replace(p.cut, enabled=True, num_patches=16, netF_nc=8, **small),
        fastcut=dataclasses.replace(p.fastcut, enabled=True, num_patches=16, netF_nc=8, **small),
    )
    return dataclasses.replace(p, **top)


@pytest.fixture(scope="session")
def tiny_curated(tmp_path_factory) -> Path:
    """24 street scenes at 32 px, curated (train 19 / val 2 / test 3 by the default fractions)."""
    from pipeline.data.curation.curate import curate
    from pipeline.data.streets.scenes import write_dataset

    base = tmp_path_factory.mktemp("tiny")
    raw = base / "raw"
    write_dataset(raw, 24, TINY, seed=0)
    out = base / "curated"
    curate(raw / "photos", out, CurateConfig(), TINY, 0, labels_dir=raw / "labels", attr_path=raw / "list_attr.csv")
    return out


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _isolated_mlflow(monkeypatch, mlflow_uri):
    """No test writes into the repository's mlflow.db."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
