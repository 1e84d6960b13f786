"""A dp-gan-tiny run through `collage export`: the manifest, ONNX-vs-torch parity (the fp32 file and the served
16-bit one), and the server's registry loading the folder and rendering with the seeded z and noise of
docs/contracts.md, as OASIS's (the same inputs: z and noise from the seed, no instance map, no style image)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from common.manifest import Manifest
from common.runtime import RuntimeChoice, open_graph
from models import train
from models.archs.dp_gan import build_generator
from models.export import main as export_main
from models.flops import count_params
from models.labels import LANDSCAPE
from server.registry import load_model
from server.styles import seeded_noise, seeded_z

Z_DIM, NOISE_CHANNELS = 8, 2  # dp-gan-tiny's


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Four trainer steps of dp-gan-tiny, exported with the CLI; G_ema as torch rebuilt from the checkpoint."""
    tmp = tmp_path_factory.mktemp("dp-gan")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    argv = [
        "--arch", "dp-gan", "--preset", "dp-gan-tiny", "--data=procedural", "--data-length=2", "--batch=2",
        "--steps=4", "--num-workers=0", "--threads=1", "--sample-every=0", "--snapshot-every=0",
        "--runs-dir", str(tmp / "runs"),
    ]  # fmt: skip
    assert train.main(argv) == 0
    run = tmp / "runs" / "00001-dp-gan-tiny"
    out = tmp / "weights" / "tiny-dp-gan"
    assert export_main([str(run), "--out", str(out)]) == 0
    checkpoint = torch.load(run / "checkpoint-latest.pt", map_location="cpu", weights_only=True)
    generator = build_generator(checkpoint["config"], len(LANDSCAPE))
    generator.load_state_dict(checkpoint["G_ema"])
    yield {"out": out, "G": generator.eval(), "manifest": json.loads((out / "model.json").read_text())}
    torch.set_num_threads(before)


def painted(height: int, width: int) -> np.ndarray:
    """Sky over mountain over grass, with a tree: int64 [1,1,H,W]."""
    ids = np.zeros((height, width), np.int64)
    ids[height // 3 :] = 2
    ids[height // 2 :] = 6
    ids[-8:, 8:16] = 8
    return ids[None, None]


def torch_picture(generator: torch.nn.Module, label: np.ndarray, seed: int) -> np.ndarray:
    """G on the seed's z and noise as the server draws them."""
    z = seeded_z(seed, Z_DIM)[None]  # [1,z_dim]
    noise = seeded_noise(seed, NOISE_CHANNELS, *label.shape[-2:])[None]  # [1,C,H,W]
    with torch.no_grad():
        return generator(torch.from_numpy(label), torch.from_numpy(z), torch.from_numpy(noise)).numpy()


def test_the_manifest_says_seeded_noise_and_no_style_image(exported: dict[str, Any]) -> None:
    manifest, out = exported["manifest"], exported["out"]
    Manifest.model_validate(manifest)
    assert manifest["architecture"] == "dp-gan" and manifest["image_size"] == [32, 32]
    assert manifest["inputs"] == {
        "label": "label",
        "instance": None,
        "z": "z",
        "z_dim": Z_DIM,
        "noise": "noise",
        "noise_channels": NOISE_CHANNELS,
        "output": "image",
        "dynamic_size": True,
        "size_multiple": 8,
        "min_size": 8,
        "max_size": 1024,
    }
    assert (
        manifest["encoder_inputs"] is None
        and manifest["styles"] == []
        and list(manifest["files"]) == ["generator"]
    )
    assert [i.name for i in onnx.load(str(out / "generator.onnx")).graph.input] == ["label", "z", "noise"]
    report = manifest["export"]
    assert report["params"] == {"generator": count_params(exported["G"])}
    assert report["parity_max_abs_diff"]["generator"] <= 1e-3  # fp32 file vs torch; seen: 5.3e-5
    assert report["int16_at_rest"]["generator"]["max_abs_diff"] <= 2e-3  # seen: 1.2e-4
    training = manifest["training"]
    assert training["perceptual"] == "none" and training["step"] == 4
    assert (
        training["config"]["generator_weights"] == "G_ema" and training["config"]["preset"] == "dp-gan-tiny"
    )


def test_onnxruntime_matches_torch_at_the_served_and_other_sizes(exported: dict[str, Any]) -> None:
    """The served file (16-bit weights) against the torch EMA generator, on the contract's seeded inputs."""
    graph = open_graph(exported["out"] / "generator.onnx", RuntimeChoice("onnxruntime", "f32", threads=1))
    diffs = []
    for height, width, seed in ((32, 32, 5), (16, 40, 6)):
        label = painted(height, width)
        feeds = {
            "label": label,
            "z": seeded_z(seed, Z_DIM)[None],
            "noise": seeded_noise(seed, NOISE_CHANNELS, height, width)[None],
        }
        (got,) = graph.run(["image"], feeds)
        assert got.shape == (1, 3, height, width)
        diffs.append(float(np.abs(got - torch_picture(exported["G"], label, seed)).max()))
    assert max(diffs) <= 2e-3, diffs  # seen: 9.2e-5 (16-bit weights; the fp32 file: 5.3e-5)


def test_the_registry_loads_it_and_renders_a_seeded_picture(exported: dict[str, Any]) -> None:
    model = load_model(exported["out"], RuntimeChoice("onnxruntime", threads=1))
    assert model.public(default=True)["capabilities"] == {
        "style_image": False,
        "collage": False,
        "collage_classes": [],
        "z_dim": Z_DIM,
        "noise": True,
    }
    label = painted(32, 32)
    z, noise = seeded_z(5, Z_DIM)[None], seeded_noise(5, NOISE_CHANNELS, 32, 32)[None]
    picture = model.run_generator(label, np.zeros_like(label), z, noise)  # the engine's call
    assert picture.shape == (1, 3, 32, 32) and np.abs(picture).max() <= 1
    assert np.abs(picture - torch_picture(exported["G"], label, 5)).max() <= 2e-3
    other = model.run_generator(
        label, np.zeros_like(label), seeded_z(6, Z_DIM)[None], seeded_noise(6, NOISE_CHANNELS, 32, 32)[None]
    )
    assert np.abs(other - picture).mean() > 1e-3  # another seed re-rolls it
