"""The exported-model runner: latent and pixel conventions (the server's contract), checksum refusals, the runtime
choice."""

import json
from collections.abc import Callable
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from common.manifest import ManifestError
from common.runtime import RuntimeChoice, resolve_precision, resolve_runtime
from models.eval.onnx_model import ExportedModel, latencies_ms, seeded_z, to_uint8


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


def test_the_hand_made_folder_loads(model_folder: Path) -> None:
    """The baseline for the refusals below: with matching checksums the same folder loads, by default on the
    runtime and precision the server would choose here."""
    model = ExportedModel(model_folder)
    assert model.name == "hand-made" and model.encoder is not None
    runtime = resolve_runtime("auto")
    assert model.runtime() == {
        "runtime": runtime,
        "device": "CPU" if runtime == "openvino" else "CPUExecutionProvider",
        "precision": resolve_precision(runtime, "auto"),
        "version": import_module(runtime).__version__,
    }


@pytest.mark.parametrize(
    "runtime",
    [
        "onnxruntime",
        pytest.param(
            "openvino",
            marks=pytest.mark.skipif(find_spec("openvino") is None, reason="OpenVINO is not installed"),
        ),
    ],
)
def test_both_graphs_open_on_the_chosen_runtime(model_folder: Path, runtime: str) -> None:
    model = ExportedModel(model_folder, RuntimeChoice(runtime, "f32", threads=1))
    assert model.encoder is not None
    assert model.generator.info.runtime == model.encoder.info.runtime == runtime
    assert model.runtime()["precision"] == "f32"


@pytest.mark.parametrize("role", ["generator", "encoder"])
def test_a_file_that_does_not_match_its_sha256_is_refused(
    model_folder: Path, identity_onnx: Callable[[Path, str], None], role: str
) -> None:
    identity_onnx(model_folder / f"{role}.onnx", "edited after export")  # still a loadable graph
    with pytest.raises(ManifestError, match=rf"{role}\.onnx' does not match its sha256 in model\.json"):
        ExportedModel(model_folder)


def test_a_manifest_the_server_would_refuse_is_refused(model_folder: Path) -> None:
    """model.json is read with the server's own model (common.manifest), not as a dict with defaults of its own."""
    path = model_folder / "model.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"architecture": "GauGAN"}))
    with pytest.raises(ManifestError) as refused:
        ExportedModel(model_folder)
    assert str(refused.value).startswith(
        f"{model_folder}: model.json is invalid (1 errors; first: architecture"
    )


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


def test_a_generator_with_a_noise_input_gets_noise_drawn_call_by_call(tmp_path: Path) -> None:
    """A tiny OASIS (z and per-pixel noise inputs): every call draws new noise from the model's own stream, so
    the same map and z give another picture on the next call, and a fresh runner repeats the first one."""
    from tests.conftest import export_untrained

    folder = tmp_path / "tiny-oasis"
    export_untrained(folder, "oasis", "oasis-tiny")
    labels = np.zeros((2, 32, 32), np.int64)
    labels[:, 16:] = 6
    first = ExportedModel(folder, RuntimeChoice("onnxruntime", threads=1))
    z = seeded_z([1, 2], first.z_dim)
    once, twice = first.run_base(labels, labels, z), first.run_base(labels, labels, z)
    assert once.shape == (2, 3, 32, 32) and np.abs(once - twice).mean() > 1e-4
    again = ExportedModel(folder, RuntimeChoice("onnxruntime", threads=1)).run_base(labels, labels, z)
    assert np.array_equal(once, again)
