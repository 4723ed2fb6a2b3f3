"""ONNX export of a model folder's generators: onnxruntime equals PyTorch to 1e-4 on several sizes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline.export import ONNX_TOLERANCE, export_model
from pipeline.published.importer import import_checkpoint
from stages.__main__ import app
from tests.unit.authors_layout import authors_files
from tests.unit.test_import import _source, _tiny

onnxruntime = pytest.importorskip("onnxruntime")
CASES = [_tiny("pix2pix"), _tiny("cycle_gan"), _tiny("bicycle_gan"), _tiny("bicycle_gan", where_add="input"),
         _tiny("cut")]


def _model_folder(options, tmp_path):
    source = _source(options)
    import_checkpoint(options, authors_files(source, options.ours, tmp_path / "pth"), tmp_path / "model")
    return source


@pytest.mark.parametrize("options", CASES, ids=lambda o: f"{o.method}-{o.where_add}")
def test_onnx_export_equals_torch_on_several_sizes(options, tmp_path):
    source = _model_folder(options, tmp_path)
    record = export_model(tmp_path / "model", tmp_path / "onnx")
    generators = {n: net for n, net in source.exported_networks().items() if n != "E"}
    assert set(record["networks"]) == set(generators) and record["opset"] == 17
    for name, entry in record["networks"].items():
        assert len(entry["checks"]) >= 2 and all(c["max_abs_diff"] <= ONNX_TOLERANCE for c in entry["checks"])
        # one more size, batch 3, not among the export's own checks: dynamic batch, height and width
        side = entry["size_multiple"]
        session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / entry["file"]), providers=["CPUExecutionProvider"])
        x = torch.rand(3, 3, 2 * side if side > 4 else 20, side if side > 4 else 28) * 2 - 1
        feeds = {"x": x.numpy()}
        net = generators[name].eval()
        with torch.no_grad():
            if entry["nz"]:
                z = torch.randn(3, entry["nz"])
                feeds["z"] = z.numpy()
                expected = net(x, z).numpy()
            else:
                expected = net(x).numpy()
        got = session.run(["y"], feeds)[0]
        assert got.shape == expected.shape and np.abs(got - expected).max() <= ONNX_TOLERANCE
    written = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert written["tolerance"] == ONNX_TOLERANCE


def test_export_command_and_a_one_direction_import(tmp_path):
    options = _tiny("cycle_gan")
    source = _source(options)
    import_checkpoint(options, authors_files(source, "cyclegan", tmp_path / "pth", names=("G_B",)), tmp_path / "model")
    result = CliRunner().invoke(app, ["export", "--model-dir", str(tmp_path / "model"), "--out-dir",
                                      str(tmp_path / "onnx")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["G_B.onnx", "export.json"]  # no untrained G_A
    result = CliRunner().invoke(app, ["export", "--model-dir", str(tmp_path / "model"), "--out-dir",
                                      str(tmp_path / "x"), "--format", "tflite"])
    assert result.exit_code == 1
