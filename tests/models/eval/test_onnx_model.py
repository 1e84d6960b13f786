"""The exported-model runner: latent and pixel conventions (the server's contract), checksum refusals."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

from models.eval.onnx_model import ExportedModel, latencies_ms, seeded_z, to_uint8
from models.export import sha256_file


def test_seeded_z_follows_the_contract() -> None:
    from server.styles import seeded_z as server_seeded_z

    z = seeded_z([3, 2**63 - 1], 5)
    assert z.dtype == np.float32 and z.shape == (2, 5)
    assert np.array_equal(z[0], server_seeded_z(3, 5)) and np.array_equal(z[1], server_seeded_z(2**63 - 1, 5))


def test_to_uint8_rounds_like_the_server() -> None:
    from server.codec import to_uint8_rgb  # tests may import both sides of the contract

    # 4,000,001 values across [-1, 1] (rint and +0.5 disagree on 16 of them) and out-of-range ones (clipping).
    x = np.concatenate([np.linspace(-1, 1, 4_000_001, dtype=np.float32), np.float32([-2, -1.5, 1.5, 2])])
    image = np.stack([x, -x, x])[:, None, :]  # [3,1,N]
    assert np.array_equal(to_uint8(image[None])[0], to_uint8_rgb(image))
    assert to_uint8(image[None])[0, 0, -4:, 0].tolist() == [0, 0, 255, 255]


def _identity_onnx(path: Path, doc: str) -> None:
    """A valid one-node ONNX file; `doc` changes its bytes without changing what it computes."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)], doc_string=doc)
    model.ir_version = 10  # the onnx package may default to an IR version newer than onnxruntime reads
    onnx.save(model, path)


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    """A hand-made model folder (two Identity graphs stand in for the networks): seconds cheaper than an
    export, and the checksums are verified before any session is created."""
    files = {}
    for role in ("generator", "encoder"):
        _identity_onnx(tmp_path / f"{role}.onnx", role)
        files[role] = {"path": f"{role}.onnx", "sha256": sha256_file(tmp_path / f"{role}.onnx")}
    manifest = {
        "name": "hand-made",
        "label_set": "landscape",
        "image_size": [32, 32],
        "inputs": {"label": "label", "z": "z", "z_dim": 4},
        "files": files,
    }
    (tmp_path / "model.json").write_text(json.dumps(manifest))
    return tmp_path


def test_the_hand_made_folder_loads(model_folder: Path) -> None:
    """The baseline for the refusals below: with matching checksums the same folder loads."""
    model = ExportedModel(model_folder)
    assert model.name == "hand-made" and model.encoder is not None


@pytest.mark.parametrize("role", ["generator", "encoder"])
def test_a_file_that_does_not_match_its_sha256_is_refused(model_folder: Path, role: str) -> None:
    _identity_onnx(model_folder / f"{role}.onnx", "edited after export")  # still a loadable graph
    with pytest.raises(ValueError, match=rf"{role}\.onnx does not match the sha256 in .*model\.json"):
        ExportedModel(model_folder)


def test_latencies_take_turns_frame_by_frame() -> None:
    """Each model runs one frame in turn (3 warm-up rounds, then `runs` timed ones), so no model is
    measured on a machine state the others never saw; every frame gets the model's z width and batch 1."""
    calls: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []

    def model(name: str, z_dim: int) -> SimpleNamespace:
        def generate(labels: np.ndarray, instances: np.ndarray, z: np.ndarray) -> None:
            calls.append((name, labels.shape, z.shape))

        return SimpleNamespace(z_dim=z_dim, generate=generate)

    label = np.zeros((8, 8), np.int64)
    result = latencies_ms([model("a", 4), model("b", 2)], label, label, runs=5)  # type: ignore[list-item]
    assert [name for name, _, _ in calls] == ["a", "b"] * 8
    assert {(shape, z) for name, shape, z in calls if name == "a"} == {((1, 8, 8), (1, 4))}
    assert {(shape, z) for name, shape, z in calls if name == "b"} == {((1, 8, 8), (1, 2))}
    assert len(result) == 2 and all(ms > 0 for ms in result)
