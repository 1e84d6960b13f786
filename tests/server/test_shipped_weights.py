"""The models this repository ships in weights/: within budget, loadable by the server, and actually trained."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from server.config import Settings
from server.registry import Registry

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "weights").glob("*/model.json"))
DEFAULT = "landscape-spade"  # what `make run` serves
MAX_ONNX_BYTES = 30_000_000  # the brief's budget per ONNX file


def test_the_default_model_is_shipped_and_within_budget() -> None:
    assert DEFAULT in [p.parent.name for p in SHIPPED]
    for manifest_path in SHIPPED:
        manifest = json.loads(manifest_path.read_text())
        for entry in filter(None, manifest["files"].values()):  # a model without an encoder has null
            size = (manifest_path.parent / entry["path"]).stat().st_size
            assert size == entry["bytes"] <= MAX_ONNX_BYTES, (manifest_path, entry["path"], size)


def test_the_server_loads_every_shipped_model_and_defaults_to_the_landscape_model() -> None:
    """`make run` passes no model name: the settings' default must be the shipped landscape model."""
    registry = Registry.load(REPO / "weights", Settings().runtime_choice(), Settings().default_model)
    assert registry.failures == {} and sorted(registry.models) == [p.parent.name for p in SHIPPED]
    assert registry.default_name == DEFAULT


def render(client: TestClient, labels: bytes, preset: str) -> np.ndarray:
    response = client.post(
        "/api/v1/render",
        files={"labels": ("labels", labels, "image/png")},
        data={"preset": preset, "format": "png", "model": DEFAULT},
    )
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"), np.float32)


@pytest.mark.parametrize("size", [128, 256])
def test_the_default_model_paints_what_was_labelled(
    make_client: Callable[..., TestClient], png_of: Callable[[np.ndarray], bytes], size: int
) -> None:
    """Trained, not random: a day sky is blue above green grass, and the night preset is darker than day."""
    ids = np.zeros((size, size), np.uint8)  # sky
    ids[size * 3 // 8 :] = 2  # mountain
    ids[size // 2 :] = 6  # grass
    ids[size * 3 // 4 :, : size // 2] = 12  # water
    client = make_client(weights_dir=REPO / "weights")
    day, night = render(client, png_of(ids), "day"), render(client, png_of(ids), "night")
    assert day.shape == (size, size, 3)
    sky, grass = (
        day[: size // 4].reshape(-1, 3).mean(0),
        day[size * 5 // 8 :, size // 2 :].reshape(-1, 3).mean(0),
    )
    assert sky[2] > sky[1] + 10 and sky[2] > sky[0] + 20, sky  # R, G, B means
    assert grass[1] > grass[0] + 10 and grass[1] > grass[2] + 10, grass
    assert night.mean() < 0.6 * day.mean(), (night.mean(), day.mean())
