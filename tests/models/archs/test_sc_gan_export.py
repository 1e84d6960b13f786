"""An sc-gan-tiny run through `collage export`: the manifest's capabilities, the graph's operators, ONNX-vs-torch
parity (the fp32 file and the served 16-bit one, at other sizes too) and the server's registry loading the folder
and rendering it on each installed runtime, as LGGAN's (the same inputs: label and instance ids, no z, no noise,
no style image)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from common.manifest import Manifest
from common.runtime import RuntimeChoice, installed_runtimes, open_graph
from models import train
from models.archs.sc_gan import build_generator
from models.export import main as export_main
from models.flops import count_params
from models.labels import LANDSCAPE

# What the graph may contain: plain convolutions, element-wise arithmetic, norms, softmax, pooling, nearest
# resizes and shape bookkeeping, all of which both CPU runtimes run natively; no Einsum, no gathers, no loops.
CPU_FRIENDLY_OPS = {
    "Conv", "Mul", "Add", "Div", "Softmax", "InstanceNormalization", "LeakyRelu", "Relu", "Clip",
    "AveragePool", "Resize", "Pad", "Max", "Equal", "Not", "Cast", "Slice", "Concat", "Reshape", "Shape",
    "Unsqueeze", "Squeeze",
}  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Four trainer steps of sc-gan-tiny, exported with the CLI; G_ema as torch rebuilt from the checkpoint."""
    tmp = tmp_path_factory.mktemp("sc-gan")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    argv = [
        "--arch", "sc-gan", "--preset", "sc-gan-tiny", "--data=procedural", "--data-length=2", "--batch=2",
        "--steps=4", "--num-workers=0", "--threads=1", "--sample-every=0", "--snapshot-every=0",
        "--runs-dir", str(tmp / "runs"),
    ]  # fmt: skip
    assert train.main(argv) == 0
    run = tmp / "runs" / "00001-sc-gan-tiny"
    out = tmp / "weights" / "tiny-sc-gan"
    assert export_main([str(run), "--out", str(out)]) == 0
    checkpoint = torch.load(run / "checkpoint-latest.pt", map_location="cpu", weights_only=True)
    generator = build_generator(checkpoint["config"], len(LANDSCAPE))
    generator.load_state_dict(checkpoint["G_ema"])
    assert not torch.equal(checkpoint["G"]["fc.weight"], checkpoint["G_ema"]["fc.weight"])  # two candidates
    yield {"out": out, "G": generator.eval(), "manifest": json.loads((out / "model.json").read_text())}
    torch.set_num_threads(before)


def painted(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Sky over mountain over grass, with two trees (instances 1, 2): label, instance int64 [1,1,H,W]."""
    ids = np.zeros((height, width), np.int64)
    ids[height // 3 :] = 2
    ids[height // 2 :] = 6
    ids[-8:, 8:16] = 8
    ids[-8:, 16:24] = 8
    instance = np.zeros_like(ids)
    instance[-8:, 8:16], instance[-8:, 16:24] = 1, 2
    return ids[None, None], instance[None, None]


def torch_picture(generator: torch.nn.Module, label: np.ndarray, instance: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return generator(torch.from_numpy(label), torch.from_numpy(instance)).numpy()


def test_the_manifest_says_label_and_instance_only(exported: dict[str, Any]) -> None:
    manifest = exported["manifest"]
    Manifest.model_validate(manifest)
    assert manifest["architecture"] == "sc-gan" and manifest["image_size"] == [32, 32]
    assert manifest["inputs"] == {
        "label": "label",
        "instance": "instance",
        "z": None,
        "z_dim": 0,
        "output": "image",
        "dynamic_size": True,
        "size_multiple": 8,
        "min_size": 8,
        "max_size": 1024,
    }
    assert manifest["encoder_inputs"] is None and list(manifest["files"]) == ["generator"]
    assert manifest["styles"] == []  # no encoder, no z: no presets
    report = manifest["export"]
    assert report["params"] == {"generator": count_params(exported["G"])}  # incl. G_V's unserved picture head
    assert report["parity_max_abs_diff"]["generator"] <= 1e-4  # fp32 file vs torch; seen: 3.0e-6
    assert report["int16_at_rest"]["generator"]["max_abs_diff"] <= 2e-3  # seen: 9.7e-5
    training = manifest["training"]
    assert training["perceptual"] == "substitute:l1-avgpool-4x-8x+d-feature-matching"
    assert training["step"] == 4 and training["config"]["preset"] == "sc-gan-tiny"
    assert training["config"]["generator_weights"] == "G_ema"


def test_the_graph_takes_ids_and_uses_only_cpu_friendly_operators(exported: dict[str, Any]) -> None:
    """SCC is one Conv (its candidates stacked into one initializer) + Mul/Add on 4-D slices, SCN a 1×1 Conv,
    the vectors a 1×1 Conv + Softmax: nothing a CPU runtime lacks a fast kernel for, and no 5-D tensor."""
    model = onnx.load(str(exported["out"] / "generator.onnx"))
    assert [i.name for i in model.graph.input] == ["label", "instance"]
    ops = Counter(node.op_type for node in model.graph.node)
    assert set(ops) <= CPU_FRIENDLY_OPS, set(ops) - CPU_FRIENDLY_OPS
    generator = exported["G"]
    levels, blocks = generator.svg.num_levels, len(generator.blocks)
    shortcuts = sum(block.learned_shortcut for block in generator.blocks)
    # start conv and picture conv; per G_V level two CRN convs and the group average; per block two SCC and two
    # SCN; per learned shortcut SPADE's three convs and the 3×3 conv. G_V's picture head is not in the graph.
    assert ops["Conv"] == 2 + 3 * levels + 4 * blocks + 4 * shortcuts, ops  # tiny: 38
    assert ops["Softmax"] == 2 * levels  # conv and norm vectors per G_V level
    ranks = {len(v.type.tensor_type.shape.dim) for v in model.graph.value_info}
    assert max(ranks) == 4, ranks  # OpenVINO keeps its blocked layouts


def test_onnxruntime_matches_torch_at_the_served_and_other_sizes(exported: dict[str, Any]) -> None:
    """The served file (16-bit weights) against the torch EMA generator."""
    graph = open_graph(exported["out"] / "generator.onnx", RuntimeChoice("onnxruntime", "f32", threads=1))
    rng = np.random.default_rng(0)
    diffs = []
    for batch, height, width in [(1, 32, 32), (3, 24, 40), (1, 64, 64)]:
        cells = lambda hi: rng.integers(0, hi, (batch, 1, height // 4, width // 4))  # noqa: E731, B023
        up = lambda a: a.repeat(4, 2).repeat(4, 3).astype(np.int64)  # noqa: E731
        label, instance = up(cells(len(LANDSCAPE))), up(cells(3))
        (image,) = graph.run(["image"], {"label": label, "instance": instance})
        assert image.shape == (batch, 3, height, width)
        diffs.append(float(np.abs(image - torch_picture(exported["G"], label, instance)).max()))
    assert max(diffs) <= 1e-3, diffs  # int16 weights at rest; seen: ≤ 1.1e-4


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_the_server_registry_loads_and_renders_the_exported_model(
    exported: dict[str, Any], runtime: str
) -> None:
    from server.config import Settings
    from server.registry import load_model

    if runtime not in installed_runtimes():
        pytest.skip(f"{runtime} is not installed")
    choice = replace(Settings().runtime_choice(), runtime=runtime, precision="f32", threads=1)
    model = load_model(exported["out"], choice)
    assert model.runtime.runtime == runtime  # served as asked, no fall-back
    assert model.public(default=True)["capabilities"] == {
        "style_image": False,
        "collage": False,
        "collage_classes": [],
        "z_dim": 0,
        "noise": False,
    }
    label, instance = painted(32, 48)
    image = model.run_generator(label, instance, np.zeros((1, 0), np.float32))  # the engine's call
    assert image.shape == (1, 3, 32, 48) and np.abs(image).max() <= 1
    diff = float(np.abs(image - torch_picture(exported["G"], label, instance)).max())
    assert diff <= 2e-3, diff  # seen: onnxruntime 1.6e-4, OpenVINO f32 1.6e-4
