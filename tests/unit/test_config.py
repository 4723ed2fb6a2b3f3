"""The strict params loader: the repository's params.yaml loads; bad keys and values are named."""
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, Params, load_params, params_from_dict

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def repo_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_repository_params_load_and_keep_the_papers_names():
    cfg = load_params(ROOT / "params.yaml")
    assert isinstance(cfg, Params)
    assert (cfg.lambda_L1, cfg.lambda_cyc, cfg.lambda_idt) == (100.0, 10.0, 0.0)
    assert (cfg.lambda_img, cfg.lambda_kl, cfg.lambda_z, cfg.nz) == (100.0, 0.01, 0.5, 8)


def test_params_yaml_sets_every_field_explicitly():
    # a default hidden in code is a second source of truth: params.yaml names every key
    raw = repo_params()
    flat_file = {k for k in Params().as_flat_dict()}
    cfg = params_from_dict(raw)
    assert set(cfg.as_flat_dict()) == flat_file
    from pipeline.config import flatten
    assert set(flatten(raw)) == flat_file


@pytest.mark.parametrize("mutate, key", [
    (lambda d: d.update(lambda_cycle=5), "lambda_cycle"),
    (lambda d: d["train"].update(lr_typo=1), "train.lr_typo"),
    (lambda d: d["cyclegan"].update(pool_size=-1), "cyclegan.pool_size"),
    (lambda d: d["cyclegan"].update(antialias=True, upsample="nearest"), "cyclegan.upsample"),
    (lambda d: d["cyclegan"].update(upsample="bicubic"), "cyclegan.upsample"),
    (lambda d: d["train"].update(lr="fast"), "train.lr"),
    (lambda d: d["pix2pix"].update(use_gan="yes"), "pix2pix.use_gan"),
    (lambda d: d["pix2pix"].update(norm="group"), "pix2pix.norm"),
    (lambda d: d.update(image_size=60), "image_size"),
    (lambda d: d["curate"]["split"].update(train=0.9), "curate.split"),
    (lambda d: d["curate"].update(require={"Night": 2}), "curate.require.Night"),
    (lambda d: d["bicyclegan"].update(batch_size=3), "bicyclegan.batch_size"),
    (lambda d: d.update(lambda_L1=-1.0), "lambda_L1"),
    (lambda d: d["data"].update(source="celeba"), "data.path"),
    (lambda d: d["curate"].update(resize="pad"), "curate.resize"),
])
def test_bad_values_are_named(tmp_path, mutate, key):
    raw = repo_params()
    mutate(raw)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_params(write(tmp_path, raw))


def test_error_names_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: [unclosed\n")
    with pytest.raises(ConfigError, match="params.yaml"):
        load_params(path)


def test_int_accepted_where_float_expected(tmp_path):
    raw = repo_params()
    raw["lambda_cyc"] = 5  # what `dvc exp run -S lambda_cyc=5` writes
    assert load_params(write(tmp_path, raw)).lambda_cyc == 5.0


def test_config_is_frozen():
    cfg = Params()
    with pytest.raises(Exception):
        cfg.seed = 3  # type: ignore[misc]


def test_the_code_defaults_are_the_params_yaml_values():
    # the report calls a param "changed" against these defaults: they must be one and the same
    assert load_params(ROOT / "params.yaml") == Params()
