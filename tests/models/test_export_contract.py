"""The export contract on `Arch`: an architecture unlike SPADE, defined here, goes through `collage export`'s one
path, and the server serves what comes out.

The toy generator takes a `label` map and per-pixel `noise` [B,C,H,W] (no z, no instance map, no encoder) and
needs H, W in multiples of 4. Its folder must load in the registry and render through /render, the paint socket
and batch jobs with the noise docs/contracts.md defines: the same seed gives the same picture, another seed
another one.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

from common.manifest import Manifest
from models.archs import ARCHS, Arch, ExportRole, ExportSpec, Recipe, register
from models.export import main
from models.labels import LANDSCAPE, LabelSet
from models.nets.blocks import one_hot
from server.app import create_app
from server.config import Settings
from server.registry import Registry

ARCH = "toy-noise"
NOISE_CHANNELS = 2
HEIGHT, WIDTH = 32, 48  # a served size other than the training size (32²), both multiples of 4


class NoiseGenerator(nn.Module):
    """(label [B,1,H,W] int64, noise [B,C,H,W]) -> image [B,3,H,W] in [-1, 1]: a colour per class, averaged over
    4×4 cells (hence H, W multiples of 4), plus a texture made from the noise."""

    def __init__(self, label_nc: int, noise_channels: int) -> None:
        super().__init__()
        self.label_nc = label_nc  # classes of the label map
        self.paint = nn.Conv2d(label_nc, 3, 1)  # one colour per class
        self.texture = nn.Conv2d(noise_channels, 3, 3, padding=1)  # noise -> per-pixel texture

    def forward(self, label: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        cells = F.avg_pool2d(one_hot(label, self.label_nc), 4)  # [B,N,H/4,W/4]
        colour = self.paint(F.interpolate(cells, scale_factor=4.0, mode="nearest"))  # [B,3,H,W]
        return torch.tanh(colour + self.texture(noise))


def toy_inputs(
    label_nc: int, channels: int, batch: int, size: tuple[int, int], seed: int
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    label = torch.randint(0, label_nc, (batch, 1, *size), generator=gen)  # [B,1,H,W]
    return {"label": label, "noise": torch.randn(batch, channels, *size, generator=gen)}


def export_toy(checkpoint: Mapping[str, Any], label_set: LabelSet) -> ExportSpec:
    channels = int(checkpoint["config"]["noise_channels"])
    generator = NoiseGenerator(len(label_set), channels)
    generator.load_state_dict(checkpoint["G"])
    role = ExportRole(
        module=generator,
        example=lambda batch, size, seed: toy_inputs(len(label_set), channels, batch, size, seed),
        outputs=("image",),
        fields={
            "label": "label",
            "instance": None,
            "z": None,
            "z_dim": 0,
            "noise": "noise",
            "noise_channels": channels,
            "output": "image",
        },
        spatial=("label", "noise"),
        size_multiple=4,
    )
    return ExportSpec(ARCH, label_set, role)


def never_trained(config: dict[str, Any], label_set: LabelSet, device: torch.device) -> Recipe:
    raise NotImplementedError("the toy architecture is only exported")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A toy checkpoint in the trainer's format, exported with `collage export` while the toy is registered."""
    register(Arch(ARCH, {"toy": {}}, "toy", never_trained, export=export_toy))
    try:
        tmp = tmp_path_factory.mktemp("toy")
        torch.manual_seed(0)
        generator = NoiseGenerator(len(LANDSCAPE), NOISE_CHANNELS).eval()
        run = tmp / "00001-toy"
        run.mkdir()
        config = {"arch": ARCH, "preset": "toy", "size": 32, "data": "procedural", "seed": 0}
        checkpoint = {
            "format_version": 1,
            "config": config | {"label_set": "landscape", "noise_channels": NOISE_CHANNELS},
            "step": 1,
            "G": generator.state_dict(),
            "label_set": "landscape",
        }
        torch.save(checkpoint, run / "checkpoint-latest.pt")
        weights = tmp / "weights"
        assert main([str(run), "--out", str(weights / "toy"), "--style-refs", "1"]) == 0
        yield {"weights": weights, "G": generator}
    finally:
        del ARCHS[ARCH]


def test_the_toy_exports_through_collage_export(toy: dict[str, Any]) -> None:
    folder = toy["weights"] / "toy"
    manifest = json.loads((folder / "model.json").read_text())
    Manifest.model_validate(manifest)
    assert manifest["architecture"] == ARCH and manifest["training"]["config"]["arch"] == ARCH
    assert manifest["inputs"] == {
        "label": "label",
        "instance": None,
        "z": None,
        "z_dim": 0,
        "noise": "noise",
        "noise_channels": NOISE_CHANNELS,
        "output": "image",
        "dynamic_size": True,
        "size_multiple": 4,
        "min_size": 4,
        "max_size": 1024,
    }
    assert manifest["encoder_inputs"] is None and manifest["styles"] == []  # no encoder: no presets either
    assert list(manifest["files"]) == ["generator"] and not (folder / "encoder.onnx").exists()
    report = manifest["export"]
    assert report["parity_max_abs_diff"]["generator"] <= 1e-3
    assert report["int16_at_rest"]["generator"]["max_abs_diff"] <= 2e-3
    assert report["params"] == {"generator": sum(p.numel() for p in toy["G"].parameters())}
    assert report["gmacs"]["generator"] > 0
    graph = onnx.load(str(folder / "generator.onnx"))
    assert [i.name for i in graph.graph.input] == ["label", "noise"]


def expected_picture(generator: nn.Module, ids: np.ndarray, seed: int) -> np.ndarray:
    """What the torch network paints for `ids` with the noise of `seed` as docs/contracts.md defines it."""
    noise = np.random.default_rng([seed, 1]).standard_normal((NOISE_CHANNELS, *ids.shape), dtype=np.float32)
    with torch.no_grad():
        out = generator(torch.from_numpy(ids[None, None].astype(np.int64)), torch.from_numpy(noise[None]))
    return ((out[0].clamp(-1, 1).numpy() + 1) * 127.5 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def painted_map() -> np.ndarray:
    ids = np.zeros((HEIGHT, WIDTH), np.uint8)  # sky
    ids[HEIGHT // 3 :] = 2  # mountain
    ids[HEIGHT // 2 :] = 6  # grass
    ids[20:28, 8:16] = 8  # a tree
    return ids


@pytest.fixture
def client(toy: dict[str, Any], tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        weights_dir=toy["weights"],
        data_dir=tmp_path / "data",
        frontend_dir=tmp_path / "frontend",
        max_wait_ms=1.0,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def render(client: TestClient, ids: np.ndarray, seed: int) -> bytes:
    resp = client.post(
        "/api/v1/render",
        files={"labels": ("labels", ids.tobytes(), "application/octet-stream")},
        data={"seed": str(seed), "width": str(ids.shape[1]), "height": str(ids.shape[0])},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-model"] == "toy" and resp.headers["x-seed"] == str(seed)
    return resp.content


def test_the_registry_loads_the_toy_and_says_it_takes_noise(toy: dict[str, Any]) -> None:
    registry = Registry.load(toy["weights"], replace(Settings().runtime_choice(), threads=1))
    assert registry.failures == {}
    model = registry.get("toy")
    info = model.public(default=True)
    assert info["architecture"] == ARCH and info["styles"] == []
    assert info["capabilities"] == {
        "style_image": False,
        "collage": False,
        "collage_classes": [],
        "z_dim": 0,
        "noise": True,
    }
    assert model.noise_channels == NOISE_CHANNELS
    blank = np.zeros((1, 1, 8, 8), np.int64)
    with pytest.raises(ValueError, match="model toy takes a noise input and none was given"):
        model.run_generator(blank, blank, np.zeros((1, 0), np.float32))


def test_noise_fields_must_fit_the_graph(toy: dict[str, Any], tmp_path: Path) -> None:
    for name, channels in (("no-channels", 0), ("wrong-channels", 3)):
        folder = tmp_path / "weights" / name
        shutil.copytree(toy["weights"] / "toy", folder)
        manifest = json.loads((folder / "model.json").read_text())
        manifest["name"], manifest["inputs"]["noise_channels"] = name, channels
        (folder / "model.json").write_text(json.dumps(manifest))
    registry = Registry.load(tmp_path / "weights", replace(Settings().runtime_choice(), threads=1))
    assert registry.models == {}
    assert registry.failures["no-channels"] == "model.json names a noise input but noise_channels is 0"
    refused = registry.failures["wrong-channels"]
    assert refused.startswith("generator graph's noise input has shape [") and "says [B,3,H,W]" in refused


def test_the_server_renders_the_toy_with_seeded_noise(client: TestClient, toy: dict[str, Any]) -> None:
    info = client.get("/api/v1/models/toy").json()
    assert info["architecture"] == ARCH and info["capabilities"]["noise"] is True
    ids = painted_map()
    first, again, other = render(client, ids, 5), render(client, ids, 5), render(client, ids, 6)
    assert first == again and other != first
    picture = np.asarray(Image.open(io.BytesIO(first)).convert("RGB"))
    assert picture.shape == (HEIGHT, WIDTH, 3)
    # The served picture is the network's on the documented noise (to rounding after the 16-bit weights).
    assert np.abs(picture.astype(int) - expected_picture(toy["G"], ids, 5).astype(int)).max() <= 1
    assert np.abs(picture.astype(int) - expected_picture(toy["G"], ids, 6).astype(int)).max() > 1

    # A paint frame with the same seed, and a batch item with it, are the same picture.
    with client.websocket_connect("/api/v1/paint") as ws:
        ws.send_text(
            json.dumps({"type": "configure", "size": [WIDTH, HEIGHT], "style": {"seed": 5}, "format": "png"})
        )
        assert json.loads(ws.receive_text())["type"] == "configured"
        ws.send_bytes(struct.pack("<BIHHB", 1, 1, WIDTH, HEIGHT, 0) + ids.tobytes())
        frame = ws.receive_bytes()
    assert frame[0] == 2 and frame[10:] == first
    job = {"model": "toy", "items": [{"labels": ids.tolist(), "seed": 5}], "format": "png"}
    job_id = client.post("/api/v1/batches", json=job).json()["job_id"]
    deadline = time.monotonic() + 30
    while client.get(f"/api/v1/batches/{job_id}").json()["status"] != "done":
        assert time.monotonic() < deadline, "the toy's batch job did not finish"
        time.sleep(0.05)
    with zipfile.ZipFile(io.BytesIO(client.get(f"/api/v1/batches/{job_id}/results").content)) as results:
        assert results.read("00000.png") == first
