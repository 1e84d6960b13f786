"""The runtimes: choice rules, OpenVINO against onnxruntime on the same graph, the compiled-shape cache bound."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.runtime import (
    OpenVinoGraph,
    OrtGraph,
    RuntimeChoice,
    RuntimeUnavailable,
    cpu_has_native_bf16,
    open_graph,
    resolve_precision,
    resolve_runtime,
)

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("openvino")


def feeds(seed: int, batch: int = 1, size: int = 32) -> dict[str, np.ndarray]:
    """Inputs of the tiny SPADE generator: random label ids, no instances, a random style."""
    rng = np.random.default_rng(seed)
    return {
        "label": rng.integers(0, 14, (batch, 1, size, size)).astype(np.int64),
        "instance": np.zeros((batch, 1, size, size), np.int64),
        "z": rng.standard_normal((batch, 8)).astype(np.float32),
    }


def test_runtime_and_precision_choice() -> None:
    assert resolve_runtime("auto") == "openvino"  # the cpu extra installs both; OpenVINO is preferred
    assert resolve_runtime("onnxruntime") == "onnxruntime"
    with pytest.raises(RuntimeUnavailable, match="unknown runtime 'tensorflow'"):
        resolve_runtime("tensorflow")
    native = cpu_has_native_bf16()
    assert resolve_precision("openvino", "auto") == ("bf16" if native else "f32")
    assert resolve_precision("openvino", "f32") == "f32"
    assert resolve_precision("onnxruntime", "auto") == "f32"
    with pytest.raises(RuntimeUnavailable, match="bf16 needs the OpenVINO runtime"):
        resolve_precision("onnxruntime", "bf16")
    if not native:
        with pytest.raises(RuntimeUnavailable, match="no native bf16"):
            resolve_precision("openvino", "bf16")


def test_openvino_matches_onnxruntime(tiny_weights: Path) -> None:
    """Same graph, same feeds: OpenVINO f32 within 1e-4 of onnxruntime; bf16 (where native) close on average."""
    path = tiny_weights / "tiny-spade" / "generator.onnx"
    ort_graph = open_graph(path, RuntimeChoice("onnxruntime", threads=1))
    f32 = open_graph(path, RuntimeChoice("openvino", "f32", threads=1))
    assert isinstance(ort_graph, OrtGraph) and isinstance(f32, OpenVinoGraph)
    assert ort_graph.inputs == f32.inputs and ort_graph.outputs == f32.outputs == ["image"]
    assert ort_graph.inputs["label"] == (None, 1, None, None)
    diffs = []
    for seed in range(4):
        x = feeds(seed, batch=2, size=48)
        ref = ort_graph.run(["image"], x)[0]
        out = f32.run(["image"], x)[0]
        assert out.shape == ref.shape == (2, 3, 48, 48)
        diffs.append(float(np.abs(out - ref).max()))
    assert max(diffs) <= 1e-4, diffs
    assert f32.info.precision == "f32" and ort_graph.info.precision == "f32"
    if cpu_has_native_bf16():
        bf16 = open_graph(path, RuntimeChoice("openvino", "bf16", threads=1))
        x = feeds(7)
        mean = float(np.abs(bf16.run(["image"], x)[0] - ort_graph.run(["image"], x)[0]).mean())
        assert bf16.info.precision == "bf16" and mean <= 0.01, mean


def test_compiled_shapes_are_cached_and_bounded(tiny_weights: Path) -> None:
    graph = OpenVinoGraph(tiny_weights / "tiny-spade" / "generator.onnx", threads=1, max_compiled=2)
    graph.run(["image"], feeds(0, size=32))
    graph.run(["image"], feeds(1, size=32))  # same shapes: no second compile
    assert graph.compiles == 1
    graph.run(["image"], feeds(2, size=40))
    graph.run(["image"], feeds(3, batch=2, size=32))  # a batch over one: compiled with a dynamic batch axis
    assert graph.compiles == 3 and len(graph.compiled_shapes) == 2
    assert [s["label"] for s in graph.compiled_shapes] == [
        (1, 1, 40, 40),
        (None, 1, 32, 32),
    ]  # 32² b1 evicted
    assert graph.compiled_shapes[1]["z"] == (None, 8)
    out = graph.run(["image"], feeds(6, batch=3, size=32))[0]  # every batch over one of that size shares it
    assert graph.compiles == 3 and out.shape == (3, 3, 32, 32)
    graph.run(["image"], feeds(4, size=40))  # still cached, now the most recent
    assert graph.compiles == 3 and graph.compiled_shapes[-1]["label"] == (1, 1, 40, 40)
    graph.run(["image"], feeds(5, size=32))
    assert graph.compiles == 4 and graph.compiled_shapes[0]["label"] == (1, 1, 40, 40)
    with pytest.raises(ValueError, match="at least 1"):
        OpenVinoGraph(tiny_weights / "tiny-spade" / "generator.onnx", max_compiled=0)


def test_outputs_are_the_callers_own(tiny_weights: Path) -> None:
    """A second run must not overwrite the first run's arrays (OpenVINO reuses its output tensors)."""
    graph = OpenVinoGraph(tiny_weights / "tiny-spade" / "generator.onnx", threads=1)
    first = graph.run(["image"], feeds(0))[0]
    kept = first.copy()
    graph.run(["image"], feeds(1))
    np.testing.assert_array_equal(first, kept)


def test_common_imports_neither_torch_nor_the_two_sides() -> None:
    """Every module of the package, found on disk so that a new one is checked without editing this test."""
    modules = sorted(f"common.{p.stem}" for p in (REPO / "common").glob("*.py") if p.stem != "__init__")
    assert {"common.checksums", "common.instances", "common.manifest", "common.runtime"} <= set(modules)
    code = (
        f"import json, sys, {', '.join(modules)}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'models', 'server', 'onnx'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout) == []


def test_runtimes_agree_on_the_shipped_model_over_50_layouts() -> None:
    """The served default model on 50 procedural layouts with random styles: OpenVINO f32 within 1e-3 of
    onnxruntime everywhere; bf16 (where the CPU has it) within 0.01 on average — invisible in 8-bit pixels."""
    from models.data.layout import sample_layout

    folder = REPO / "weights" / "landscape-spade"
    manifest = json.loads((folder / "model.json").read_text())
    assert manifest["files"]["generator"]["storage"] == "int16"
    path = folder / manifest["files"]["generator"]["path"]
    ort_graph = open_graph(path, RuntimeChoice("onnxruntime", threads=2))
    f32 = open_graph(path, RuntimeChoice("openvino", "f32", threads=2))
    bf16 = open_graph(path, RuntimeChoice("openvino", "bf16", threads=2)) if cpu_has_native_bf16() else None
    rng = np.random.default_rng(0)
    max_f32, mean_bf16 = 0.0, []
    for i in range(50):
        labels, instances = sample_layout(np.random.default_rng(5000 + i), 256)
        x = {
            "label": labels[None, None].astype(np.int64),
            "instance": instances[None, None].astype(np.int64),
            "z": rng.standard_normal((1, manifest["inputs"]["z_dim"])).astype(np.float32),
        }
        ref = ort_graph.run(["image"], x)[0]
        max_f32 = max(max_f32, float(np.abs(f32.run(["image"], x)[0] - ref).max()))
        if bf16 is not None:
            mean_bf16.append(float(np.abs(bf16.run(["image"], x)[0] - ref).mean()))
    assert max_f32 <= 1e-3, max_f32
    if bf16 is not None:
        assert float(np.mean(mean_bf16)) <= 0.01, np.mean(mean_bf16)


def test_a_shape_the_graph_fixes_is_refused_like_onnxruntime_does(tiny_weights: Path) -> None:
    """The encoder graph takes only 32² images; OpenVINO would reshape it to anything if asked."""
    path = tiny_weights / "tiny-spade" / "encoder.onnx"
    for choice in (RuntimeChoice("onnxruntime", threads=1), RuntimeChoice("openvino", "f32", threads=1)):
        graph = open_graph(path, choice)
        assert graph.inputs["image"] == (None, 3, 32, 32)
        graph.run(["mu"], {"image": np.zeros((2, 3, 32, 32), np.float32)})
        with pytest.raises(Exception, match="(?i)dimension|shape"):
            graph.run(["mu"], {"image": np.zeros((1, 3, 64, 64), np.float32)})
        with pytest.raises(Exception, match="(?i)rank|shape|dimension"):
            graph.run(["mu"], {"image": np.zeros((3, 32, 32), np.float32)})
