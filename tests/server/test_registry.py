"""The registry serves good models, refuses broken ones with a reason, and reports the runtime."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from common.checksums import sha256_file
from common.runtime import RuntimeChoice
from server.errors import BadInput
from server.registry import Registry


def copy_model(src: Path, weights: Path, name: str) -> Path:
    dst = weights / name
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "model.json").read_text())
    manifest["name"] = name
    (dst / "model.json").write_text(json.dumps(manifest))
    return dst


def test_loads_the_tiny_model(tiny_weights: Path, runtime_choice: RuntimeChoice) -> None:
    registry = Registry.load(tiny_weights, runtime_choice)
    assert registry.failures == {} and registry.default_name == "tiny-spade"
    model = registry.get(None)
    assert model.runtime == model.generator.info and model.runtime.device in ("CPU", "CPUExecutionProvider")
    assert model.num_labels == 14 and model.thing_ids == [4, 8, 13] and model.z_dim == 8
    assert model.batchable and model.encoder is not None
    info = model.public(default=True)
    assert info["capabilities"] == {
        "style_image": True,
        "collage": False,
        "collage_classes": [],
        "z_dim": 8,
        "noise": False,
    }
    assert info["styles"] == ["winter", "dusk"] and info["labels"][8]["name"] == "tree"
    assert "directory" not in json.dumps(info, default=str) and str(tiny_weights) not in json.dumps(info)
    out = model.run_generator(
        np.zeros((2, 1, 16, 24), np.int64), np.zeros((2, 1, 16, 24), np.int64), np.ones((2, 8), np.float32)
    )
    assert out.shape == (2, 3, 16, 24) and np.abs(out).max() <= 1.0


def test_broken_models_are_refused_while_others_serve(
    tiny_weights: Path, tmp_path: Path, runtime_choice: RuntimeChoice
) -> None:
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights / "tiny-spade", weights / "tiny-spade")
    tampered = copy_model(tiny_weights / "tiny-spade", weights, "tampered")
    data = bytearray((tampered / "generator.onnx").read_bytes())
    data[-1] ^= 0xFF
    (tampered / "generator.onnx").write_bytes(bytes(data))
    missing = copy_model(tiny_weights / "tiny-spade", weights, "missing")
    (missing / "encoder.onnx").unlink()
    invalid = copy_model(tiny_weights / "tiny-spade", weights, "invalid")
    manifest = json.loads((invalid / "model.json").read_text())
    del manifest["labels"]
    (invalid / "model.json").write_text(json.dumps(manifest))
    escape = copy_model(tiny_weights / "tiny-spade", weights, "escape")
    manifest = json.loads((escape / "model.json").read_text())
    manifest["files"]["generator"]["path"] = "../tiny-spade/generator.onnx"
    (escape / "model.json").write_text(json.dumps(manifest))

    registry = Registry.load(weights, runtime_choice, default="tampered")
    assert sorted(registry.models) == ["tiny-spade"] and registry.default_name == "tiny-spade"
    assert "generator.onnx" in registry.failures["tampered"] and "sha256" in registry.failures["tampered"]
    assert "missing" in registry.failures["missing"] and "encoder.onnx" in registry.failures["missing"]
    assert "labels" in registry.failures["invalid"]
    assert "plain file name" in registry.failures["escape"]
    with pytest.raises(BadInput, match="no model named 'tampered'"):
        registry.get("tampered")


def test_encoder_size_defaults_to_image_size_and_must_match_the_graph(
    tiny_weights: Path, tmp_path: Path, runtime_choice: RuntimeChoice
) -> None:
    weights = tmp_path / "weights"
    for name, size in (("older", None), ("wrong", [16, 16])):  # older: written before encoder_inputs.size
        folder = copy_model(tiny_weights / "tiny-spade", weights, name)
        manifest = json.loads((folder / "model.json").read_text())
        assert manifest["encoder_inputs"]["size"] == [32, 32]
        manifest["encoder_inputs"]["size"] = size
        if size is None:
            del manifest["encoder_inputs"]["size"]
        (folder / "model.json").write_text(json.dumps(manifest))
    registry = Registry.load(weights, runtime_choice)
    assert sorted(registry.models) == ["older"] and registry.get("older").encoder_size == (32, 32)
    assert "encoder graph takes 32×32 images but model.json says 16×16" in registry.failures["wrong"]


def test_empty_weights_dir(tmp_path: Path, runtime_choice: RuntimeChoice) -> None:
    registry = Registry.load(tmp_path / "nothing-here", runtime_choice)
    assert registry.models == {} and registry.default_name is None
    with pytest.raises(BadInput, match="no model is loaded"):
        registry.get(None)


def test_size_rules(tiny_weights: Path, runtime_choice: RuntimeChoice) -> None:
    model = Registry.load(tiny_weights, runtime_choice).get("tiny-spade")
    model.check_size(32, 32)
    model.check_size(256, 64)
    for h, w in ((30, 32), (32, 4), (2048, 32)):
        with pytest.raises(BadInput) as info:
            model.check_size(h, w)
        assert info.value.code == "bad_size" and "multiple of 8" in info.value.message
    np.testing.assert_array_equal(model.preset("winter").shape, (8,))
    with pytest.raises(BadInput, match="presets: winter, dusk"):
        model.preset("summer")


def test_a_model_openvino_refuses_falls_back_to_onnxruntime(
    tiny_weights: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The tiny generator with an ai.onnx.ml Scaler (identity) on its output: onnxruntime runs it, OpenVINO's
    ONNX frontend has no rule for it. The model is served on onnxruntime, said in one log line."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("openvino")
    folder = copy_model(tiny_weights / "tiny-spade", tmp_path / "weights", "ml-op")
    graph = onnx.load(folder / "generator.onnx")
    (output,) = [o for o in graph.graph.output if o.name == "image"]
    for node in graph.graph.node:
        node.output[:] = ["pre_image" if name == "image" else name for name in node.output]
    graph.graph.node.append(
        onnx.helper.make_node(
            "Scaler", ["pre_image"], ["image"], domain="ai.onnx.ml", offset=[0.0], scale=[1.0]
        )
    )
    graph.opset_import.append(onnx.helper.make_opsetid("ai.onnx.ml", 3))
    onnx.save(graph, folder / "generator.onnx")
    manifest = json.loads((folder / "model.json").read_text())
    manifest["files"]["generator"]["sha256"] = sha256_file(folder / "generator.onnx")
    manifest["files"]["generator"]["bytes"] = (folder / "generator.onnx").stat().st_size
    (folder / "model.json").write_text(json.dumps(manifest))

    with caplog.at_level(logging.WARNING, logger="server.registry"):
        registry = Registry.load(tmp_path / "weights", RuntimeChoice("openvino", threads=1))
    model = registry.get("ml-op")
    assert registry.failures == {} and model.runtime.runtime == "onnxruntime"
    assert model.encoder is not None and model.encoder.info.runtime == "onnxruntime"
    (line,) = [r.getMessage() for r in caplog.records]
    assert "model ml-op: OpenVINO cannot open generator.onnx" in line and "ai.onnx.ml.Scaler" in line
    assert "falling back to onnxruntime" in line and str(tmp_path) not in line
    out = model.run_generator(
        np.zeros((1, 1, 32, 32), np.int64), np.zeros((1, 1, 32, 32), np.int64), np.ones((1, 8), np.float32)
    )
    assert out.shape == (1, 3, 32, 32)

    refused = Registry.load(tmp_path / "weights", RuntimeChoice("onnxruntime", "bf16"))
    assert "bf16 needs the OpenVINO runtime" in refused.failures["ml-op"]
