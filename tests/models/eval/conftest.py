"""A hand-made model folder and a tiny judge for the runner and CLI tests (fixtures: the test folders are not
packages, so a test module cannot import a sibling's helpers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from common.checksums import sha256_file
from common.manifest import FileRef, Files, GraphInputs, Manifest


def _identity_onnx(path: Path, doc: str) -> None:
    """A valid one-node ONNX file; `doc` changes its bytes without changing what it computes."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)], doc_string=doc)
    model.ir_version = 10  # the onnx package may default to an IR version newer than onnxruntime reads
    onnx.save(model, path)


@pytest.fixture
def identity_onnx() -> Callable[[Path, str], None]:
    """Writes a one-node Identity graph; its `doc` string changes the file's bytes, not what it computes."""
    return _identity_onnx


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    """A hand-made model folder (two Identity graphs stand in for the networks): seconds cheaper than an
    export, and the checksums are verified before any graph is opened."""
    refs = {}
    for role in ("generator", "encoder"):
        path = tmp_path / f"{role}.onnx"
        _identity_onnx(path, role)
        refs[role] = FileRef(path=path.name, sha256=sha256_file(path), bytes=path.stat().st_size)
    manifest = Manifest(
        name="hand-made",
        architecture="spade",
        label_set="landscape",
        image_size=(32, 32),
        labels=[],
        inputs=GraphInputs(z_dim=4, dynamic_size=False),
        files=Files(generator=refs["generator"], encoder=refs["encoder"]),
    )
    (tmp_path / "model.json").write_text(manifest.model_dump_json())
    return tmp_path


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory: pytest.TempPathFactory, tiny_segmenter: list[str]) -> Path:
    """A segmenter-tiny checkpoint after one training step (32²): a judge that runs in milliseconds. Untrained,
    it labels almost every pixel alike, so its scores test the plumbing, not the model."""
    from models.train import main as train_main

    runs = tmp_path_factory.mktemp("runs")
    assert train_main([*tiny_segmenter, "--steps=1", "--runs-dir", str(runs)]) == 0
    (run,) = runs.iterdir()
    return run / "checkpoint-latest.pt"
