"""A collage-base-tiny run through `collage export`: the manifest (generator with label, instance, z and noise; a
photo encoder; style presets), ONNX-vs-torch parity of the served 16-bit files at the served and other sizes, the
server's registry rendering it from a seed and from a photo through the encoder, and class generators attached
with `collage attach` redrawing a tree on its picture."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from common.collage import compose
from common.manifest import Manifest
from common.runtime import RuntimeChoice, open_graph
from models import train
from models.archs import collage_class
from models.archs.collage_base import build_generator
from models.attach import attach
from models.data import render, sample_layout, sample_style
from models.export import main as export_main
from models.export_pack import export_pack
from models.flops import count_params
from models.labels import LANDSCAPE
from models.nets.collage_base import BaseGenerator, ServedGenerator
from server.codec import to_model_input
from server.registry import load_model
from server.styles import seeded_noise, seeded_z

Z_DIM, NOISE_CHANNELS = 8, 5  # collage-base-tiny's


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Four trainer steps of collage-base-tiny, exported with the CLI (one style reference per family); G_ema as
    torch rebuilt from the checkpoint."""
    tmp = tmp_path_factory.mktemp("collage-base")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    argv = [
        "--arch", "collage-base", "--preset", "collage-base-tiny", "--data=procedural", "--data-length=4",
        "--batch=2", "--steps=4", "--num-workers=0", "--threads=1", "--sample-every=0", "--snapshot-every=0",
        "--runs-dir", str(tmp / "runs"),
    ]  # fmt: skip
    assert train.main(argv) == 0
    run = tmp / "runs" / "00001-collage-base-tiny"
    out = tmp / "weights" / "tiny-collage-base"
    assert export_main([str(run), "--out", str(out), "--style-refs=1"]) == 0
    checkpoint = torch.load(run / "checkpoint-latest.pt", map_location="cpu", weights_only=True)
    generator = build_generator(checkpoint["config"], len(LANDSCAPE))
    generator.load_state_dict(checkpoint["G_ema"])
    yield {"out": out, "G": generator.eval(), "manifest": json.loads((out / "model.json").read_text())}
    torch.set_num_threads(before)


def painted(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Sky over mountain over grass with a 14×14 tree (instance 1): label, instance int64 [1,1,H,W]."""
    ids = np.zeros((height, width), np.int64)
    ids[height // 3 :] = 2
    ids[height // 2 :] = 6
    ids[height - 16 : height - 2, 8:22] = 8
    return ids[None, None], (ids == 8).astype(np.int64)[None, None]


def torch_picture(
    generator: BaseGenerator, label: np.ndarray, instance: np.ndarray, z: np.ndarray, seed: int
) -> np.ndarray:
    """The served generator in torch on z and the seed's noise as the server draws it."""
    noise = seeded_noise(seed, NOISE_CHANNELS, *label.shape[-2:])[None]  # [1,C,H,W]
    with torch.no_grad():
        return ServedGenerator(generator.scene)(
            *(torch.from_numpy(a) for a in (label, instance, z, noise))
        ).numpy()


def test_the_manifest_offers_a_style_image_seeded_noise_and_instances(exported: dict[str, Any]) -> None:
    manifest, out = exported["manifest"], exported["out"]
    Manifest.model_validate(manifest)
    assert manifest["architecture"] == "collage-base" and manifest["image_size"] == [32, 32]
    assert manifest["inputs"] == {
        "label": "label",
        "instance": "instance",
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
    assert manifest["encoder_inputs"] == {"image": "image", "mu": "mu", "logvar": "logvar", "size": [32, 32]}
    assert list(manifest["files"]) == ["generator", "encoder"]
    names = [i.name for i in onnx.load(str(out / "generator.onnx")).graph.input]
    assert names == ["label", "instance", "z", "noise"]
    styles = manifest["styles"]  # presets: μ of one procedural render per style family
    assert len(styles) >= 6 and all(len(s["z"]) == Z_DIM for s in styles)
    report = manifest["export"]
    g = exported["G"]
    assert report["params"] == {"generator": count_params(g.scene), "encoder": count_params(g.style)}
    assert max(report["parity_max_abs_diff"].values()) <= 1e-3  # fp32 files vs torch; seen: 6.6e-7
    assert max(r["max_abs_diff"] for r in report["int16_at_rest"].values()) <= 2e-3  # seen: 2.7e-4
    training = manifest["training"]
    assert training["perceptual"] == "substitute:l1-avgpool-4x-8x+d-feature-matching"
    assert training["step"] == 4
    assert training["config"]["generator_weights"] == "G_ema"


def test_onnxruntime_matches_torch_at_the_served_and_other_sizes(exported: dict[str, Any]) -> None:
    """The served files (16-bit weights) against the torch EMA generator, on the contract's seeded inputs."""
    generator = open_graph(exported["out"] / "generator.onnx", RuntimeChoice("onnxruntime", "f32", threads=1))
    diffs = []
    for height, width, seed in ((32, 32, 5), (16, 40, 6), (64, 48, 7)):
        label, instance = painted(height, width)
        z = seeded_z(seed, Z_DIM)[None]
        feeds = {
            "label": label,
            "instance": instance,
            "z": z,
            "noise": seeded_noise(seed, NOISE_CHANNELS, height, width)[None],
        }
        (got,) = generator.run(["image"], feeds)
        assert got.shape == (1, 3, height, width)
        diffs.append(float(np.abs(got - torch_picture(exported["G"], label, instance, z, seed)).max()))
    encoder = open_graph(exported["out"] / "encoder.onnx", RuntimeChoice("onnxruntime", "f32", threads=1))
    photo = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    mu, logvar = encoder.run(["mu", "logvar"], {"image": photo})
    with torch.no_grad():
        expected = exported["G"].style(torch.from_numpy(photo))
    diffs += [float(np.abs(a - b.numpy()).max()) for a, b in zip((mu, logvar), expected, strict=True)]
    assert max(diffs) <= 2e-3, diffs  # 16-bit weights; seen: ≤ 1.7e-4


def a_photo(seed: int, size: int = 48) -> np.ndarray:
    """A procedural render H×W×3 uint8 (a reference photo for the style encoder)."""
    rng = np.random.default_rng(seed)
    label, instance = sample_layout(rng, size)
    return render(label, instance, sample_style(rng, "dusk"), seed=seed)


def test_the_registry_renders_from_a_seed_and_from_a_photo(exported: dict[str, Any]) -> None:
    model = load_model(exported["out"], RuntimeChoice("onnxruntime", threads=1))
    assert model.public(default=True)["capabilities"] == {
        "style_image": True,
        "collage": False,
        "collage_classes": [],
        "z_dim": Z_DIM,
        "noise": True,
    }
    label, instance = painted(32, 32)

    def from_seed(seed: int) -> np.ndarray:  # the engine's call for a seeded style
        z, noise = seeded_z(seed, Z_DIM)[None], seeded_noise(seed, NOISE_CHANNELS, 32, 32)[None]
        return model.run_generator(label, instance, z, noise)

    seeded = from_seed(5)
    expected = torch_picture(exported["G"], label, instance, seeded_z(5, Z_DIM)[None], 5)
    assert seeded.shape == (1, 3, 32, 32) and np.abs(seeded).max() <= 1
    assert np.abs(seeded - expected).max() <= 2e-3  # seen: 1.4e-4
    assert np.abs(from_seed(6) - seeded).mean() > 1e-3  # another seed re-rolls it; seen: 0.13

    photo = to_model_input(a_photo(1), model.encoder_size)  # [1,3,32,32]: what POST /styles hands the encoder
    z = model.run_encoder(photo)  # [1,z_dim]: μ
    with torch.no_grad():
        mu, _ = exported["G"].style(torch.from_numpy(photo))
    assert z.shape == (1, Z_DIM) and np.abs(z - mu.numpy()).max() <= 2e-3
    styled = model.run_generator(label, instance, z, seeded_noise(0, NOISE_CHANNELS, 32, 32)[None])
    assert np.abs(styled - torch_picture(exported["G"], label, instance, z, 0)).max() <= 2e-3  # seen: 5.3e-5
    assert np.abs(styled - seeded).mean() > 1e-3  # seen: 0.21


def test_class_generators_attach_and_redraw_a_tree(exported: dict[str, Any], tmp_path: Path) -> None:
    """`collage attach` of an untrained collage-class-tiny tree pack: the registry offers the collage stage and
    the stage redraws the tree's square box on the base picture, leaving far pixels alone."""
    model_dir = Path(shutil.copytree(exported["out"], tmp_path / "model"))
    config = collage_class.get_preset("collage-class-tiny") | {"thing": "tree"}
    torch.manual_seed(0)
    pack = collage_class.build_generator(config, len(LANDSCAPE))
    export_pack(collage_class.export_spec(pack, LANDSCAPE, config), out_dir=tmp_path / "tree", config=config)
    attach([tmp_path / "tree"], model_dir)

    model = load_model(model_dir, RuntimeChoice("onnxruntime", threads=1))
    capabilities = model.public(default=True)["capabilities"]
    assert capabilities["collage"] and capabilities["collage_classes"] == ["tree"]
    assert capabilities["style_image"] and capabilities["noise"]  # the base's own controls stay
    label, instance = painted(32, 32)
    z, noise = seeded_z(5, Z_DIM)[None], seeded_noise(5, NOISE_CHANNELS, 32, 32)[None]
    base = model.run_generator(label, instance, z, noise)[0]  # [3,H,W]
    composed = compose(base, label[0, 0].astype(np.uint8), instance[0, 0], model.class_generators)
    assert [p.thing for p in composed.placed] == ["tree"]
    changed = np.abs(composed.picture - base).max(axis=0) > 1e-4  # [H,W]
    assert changed[16:30, 8:22].mean() > 0.5, changed.mean()  # seen: the whole tree, 0.19 of the picture
    assert not changed[:4].any()  # the sky's top rows lie outside the tree's box
