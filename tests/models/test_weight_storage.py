"""16-bit weights at rest: exact dequantization arithmetic, half the bytes, outputs within tolerance, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from common.checksums import sha256_file
from models.weight_storage import STORAGE_TOL, convert_file, convert_model_folder, quantize, store_int16


def conv_net(path: Path, channels: int = 32) -> list[dict[str, np.ndarray]]:
    """Two 3×3 convs with a ReLU between them (weights as initializers); returns feeds to check it on."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(0.1 * rng.standard_normal((channels, 3, 3, 3), dtype=np.float32), "w1")
    w2 = numpy_helper.from_array(0.05 * rng.standard_normal((3, channels, 3, 3), dtype=np.float32), "w2")
    b1 = numpy_helper.from_array(rng.standard_normal(channels, dtype=np.float32), "b1")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1", "b1"], ["h"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Conv", ["r", "w2"], ["y"], pads=[1, 1, 1, 1]),
        ],
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 16, 16])],
        initializer=[w1, w2, b1],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    return [{"x": rng.standard_normal((1, 3, 16, 16), dtype=np.float32)} for _ in range(4)]


def test_quantize_is_per_output_channel() -> None:
    rng = np.random.default_rng(1)
    weight = (
        rng.standard_normal((4, 8, 3, 3), dtype=np.float32)
        * np.array([1e-3, 1.0, 50.0, 0.0])[:, None, None, None]
    )
    q, s = quantize(weight.astype(np.float32))
    assert q.dtype == np.int16 and s.shape == (4, 1, 1, 1)
    assert np.abs(q).max() == 32767  # every non-zero channel uses the full range
    err = np.abs(q * s - weight).reshape(4, -1).max(axis=1)
    peak = np.abs(weight).reshape(4, -1).max(axis=1)
    assert np.all(err <= peak / 32767 / 2 + 1e-12) and err[3] == 0.0  # half a step; a zero channel stays zero
    vector = np.linspace(-2, 3, 20, dtype=np.float32)
    qv, sv = quantize(vector)
    assert sv.shape == (1,) and np.abs(qv * sv - vector).max() <= 3 / 32767 / 2 + 1e-7


def test_converted_file_is_half_the_size_and_computes_the_same(tmp_path: Path) -> None:
    path = tmp_path / "net.onnx"
    feeds = conv_net(path, channels=64)
    before = path.stat().st_size
    stats = convert_file(path, feeds)
    assert stats["weights"] == 3 and stats["bytes_fp32"] == before
    assert path.stat().st_size <= 0.55 * before and stats["max_abs_diff"] <= 1e-3
    model = onnx.load(path)
    assert {i.data_type for i in model.graph.initializer} == {TensorProto.INT16, TensorProto.FLOAT}
    assert [n.op_type for n in model.graph.node[:2]] == ["Cast", "Mul"]
    floats = [i for i in model.graph.initializer if i.data_type == TensorProto.FLOAT]
    assert all(i.name.endswith("__scale") for i in floats)


def test_a_conversion_beyond_the_tolerance_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "net.onnx"
    feeds = conv_net(path)
    original = path.read_bytes()
    with pytest.raises(ValueError, match="16-bit weights move the output by"):
        convert_file(path, feeds, tol=1e-9)
    assert path.read_bytes() == original


def test_the_exporter_stores_16_bit_weights(tiny_weights: Path, tmp_path: Path) -> None:
    """The tiny exported model's files are int16 at rest, recorded in model.json, within the tolerance; a folder
    already converted is left as it is."""
    folder = tiny_weights / "tiny-spade"
    manifest = json.loads((folder / "model.json").read_text())
    for role in ("generator", "encoder"):
        assert manifest["files"][role]["storage"] == "int16"
        report = manifest["export"]["int16_at_rest"][role]
        # The exporter's per-node debug notes are dropped with the conversion (0.70× with them; shipped: 0.52×)
        assert report["max_abs_diff"] <= STORAGE_TOL and report["bytes"] <= 0.6 * report["bytes_fp32"]
        assert not any(
            node.metadata_props for node in onnx.load(folder / manifest["files"][role]["path"]).graph.node
        )
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in folder.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    assert convert_model_folder(copy) == {}
    assert sha256_file(copy / "generator.onnx") == manifest["files"]["generator"]["sha256"]
    _, count = store_int16(onnx.load(copy / "generator.onnx"))
    assert count == 0  # no float32 weight is left to convert
