"""The CollageGAN surface before its stage exists: the class generators a model folder lists are checksummed like
its graphs, and a `collage` request is clamped to what the model can do (it has class generators) on every path
that takes one: the paint socket, REST renders and batch jobs."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from common.checksums import sha256_file
from common.runtime import RuntimeChoice
from server.engine import RenderRequest
from server.registry import LoadedModel, Registry


def with_class_generator(src: Path, dst: Path, name: str) -> Path:
    """A copy of a model folder that lists one class generator (for trees); the file is checksummed by the
    registry and never opened, as no stage runs class generators yet."""
    shutil.copytree(src, dst)
    (dst / "tree.onnx").write_bytes(b"stands in for a class generator of trees")
    manifest = json.loads((dst / "model.json").read_text())
    manifest["name"] = name
    manifest["class_generators"] = [
        {
            "class_id": 8,
            "file": "tree.onnx",
            "sha256": sha256_file(dst / "tree.onnx"),
            "crop_size": 32,
            "removal": "blur",
        }
    ]
    (dst / "model.json").write_text(json.dumps(manifest))
    return dst


@pytest.fixture
def collage_weights(tiny_weights: Path, tmp_path: Path) -> Path:
    """`tiny-spade` (no class generators) beside `tiny-collage` (the same graphs plus one class generator)."""
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights / "tiny-spade", weights / "tiny-spade")
    with_class_generator(tiny_weights / "tiny-spade", weights / "tiny-collage", "tiny-collage")
    return weights


def test_class_generator_files_are_checksummed_like_the_graphs(
    collage_weights: Path, runtime_choice: RuntimeChoice
) -> None:
    plain = collage_weights / "tiny-spade"
    tampered = with_class_generator(plain, collage_weights / "tampered", "tampered")
    (tampered / "tree.onnx").write_bytes(b"edited after export")
    missing = with_class_generator(plain, collage_weights / "missing", "missing")
    (missing / "tree.onnx").unlink()

    registry = Registry.load(collage_weights, runtime_choice)
    assert sorted(registry.models) == ["tiny-collage", "tiny-spade"]
    assert "file 'tree.onnx' does not match its sha256 in model.json" in registry.failures["tampered"]
    assert "file 'tree.onnx' listed in model.json is missing" in registry.failures["missing"]
    assert registry.get("tiny-collage").public(default=False)["capabilities"]["collage"] is True
    assert registry.get("tiny-spade").public(default=False)["capabilities"]["collage"] is False


def test_collage_requests_are_clamped_to_models_with_class_generators(
    make_client: Callable[..., TestClient],
    collage_weights: Path,
    landscape: Callable[..., np.ndarray],
    label_frame: Callable[..., bytes],
    png_of: Callable[[np.ndarray], bytes],
) -> None:
    """collage=true reaches the render as true only for the model with class generators, on each path."""
    client = make_client(weights_dir=collage_weights)
    seen: list[tuple[str, bool]] = []  # (model, collage) of every request the engine rendered

    def record(model: LoadedModel, request: RenderRequest, image: np.ndarray) -> np.ndarray:
        seen.append((model.name, request.collage))
        return image

    client.app.state.engine.post_stages.append(record)  # type: ignore[attr-defined]
    ids = landscape(32, 32)
    wanted = [("tiny-spade", False), ("tiny-collage", True)]

    answers = []
    for name, _ in wanted:
        with client.websocket_connect("/api/v1/paint") as ws:
            ws.send_text(json.dumps({"type": "configure", "model": name, "collage": True}))
            answers.append(ws.receive_json()["collage"])
            ws.send_bytes(label_frame(1, ids))
            ws.receive_bytes()
    assert answers == [False, True]  # the effective value, as docs/protocol.md promises
    assert seen == wanted
    seen.clear()

    for name, _ in wanted:
        form = {"model": name, "collage": "true", "seed": "1"}
        resp = client.post("/api/v1/render", data=form, files={"labels": ("l.png", png_of(ids), "image/png")})
        assert resp.status_code == 200, resp.text
    assert seen == wanted
    seen.clear()

    for name, _ in wanted:
        job = client.post(
            "/api/v1/batches", json={"model": name, "items": [{"labels": ids.tolist()}], "collage": True}
        )
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/batches/{job.json()['job_id']}").json()["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert seen == wanted
