"""The LGGAN recipe: one step, the local losses, a learning test on lggan-tiny, `collage train --arch lggan`, and the
export (parity with torch, the manifest's capabilities, the server's registry rendering the exported model)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models import train
from models.archs import get_arch
from models.archs.lggan import build_generator, class_loss, get_preset, local_l1_loss
from models.data.datasets import make_dataset
from models.export import main as export_main
from models.export import prepare_for_export
from models.labels import LANDSCAPE
from models.nets.blocks import one_hot
from models.training.config import resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_batch(count: int) -> dict[str, torch.Tensor]:
    """The first `count` procedural 32² samples, collated: label, instance [B,32,32], image [B,3,32,32]."""
    dataset, _ = make_dataset("procedural", 32, length=count)
    return torch.utils.data.default_collate([dataset[i] for i in range(count)])


def tiny_recipe(*overrides: tuple[str, str]) -> Any:
    config = resolve_config("lggan", "lggan-tiny", list(overrides))
    config["label_set"] = "landscape"
    torch.manual_seed(0)
    return get_arch("lggan").build(config, LANDSCAPE, torch.device("cpu"))


def test_one_step_trains_g_and_d_and_previews_every_branch() -> None:
    batch = tiny_batch(2)
    recipe = tiny_recipe()
    assert set(recipe.nets) == {"G", "D"} and recipe.ema == ("G",)  # no style encoder
    assert recipe.meta == {"perceptual": "substitute:l1-avgpool-4x-8x+d-feature-matching"}
    assert (
        recipe.optimizers["G"].defaults["betas"] == (0.0, 0.9)
        and recipe.optimizers["D"].defaults["lr"] == 4e-4
    )
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in recipe.nets.items()}
    losses = recipe.step(recipe.nets, batch)
    assert set(losses) == {"G_gan", "G_feat", "G_perc", "G_local", "G_class", "D"}
    assert all(np.isfinite(v) for v in losses.values()) and 0 < losses["D"] < 4
    for name, net in recipe.nets.items():
        changed = [not torch.equal(p, q) for p, q in zip(before[name], net.parameters(), strict=True)]
        assert sum(changed) > 0.9 * len(changed), name  # every branch and the classifier get gradients
    assert all(p.requires_grad for p in recipe.nets["D"].parameters())  # unfrozen after the G step

    for net in recipe.nets.values():
        net.eval()
    state = torch.get_rng_state()
    with torch.no_grad():
        columns = recipe.preview(recipe.nets, batch)
    assert torch.equal(state, torch.get_rng_state())  # the preview never draws from the global RNG
    assert [tuple(c.shape) for c in columns] == [(2, 3, 32, 32)] * 4  # fused, global, local, W_l
    assert all(c.abs().max() <= 1 for c in columns)


def test_local_losses_follow_the_paper() -> None:
    """Eq. 2: Σ_i L1(real ⊙ M_i, I_i); eq. 5: cross-entropy of row i against class i, absent classes left out."""
    gen = torch.Generator().manual_seed(0)
    n = 4
    label = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 3]]]).repeat_interleave(2, 1)[:, None]  # [1,1,4,4], no 2
    mask = one_hot(label, n)  # [1,4,4,4]
    real = torch.rand(1, 3, 4, 4, generator=gen) * 2 - 1
    class_images = torch.rand(1, 3 * n, 4, 4, generator=gen) * 2 - 1
    expected = sum(
        (real * mask[:, i : i + 1] - class_images[:, 3 * i : 3 * i + 3]).abs().mean() for i in range(n)
    )
    assert torch.allclose(local_l1_loss(class_images, real, mask), torch.as_tensor(expected), atol=1e-6)

    logits = torch.randn(1, n, n, generator=gen)
    ce = torch.nn.functional.cross_entropy(logits[0], torch.arange(n), reduction="none")  # [4]
    assert torch.allclose(class_loss(logits, mask), ce[[0, 1, 3]].mean())
    logits[0, 2] = 100.0  # the absent class's row does not count
    assert torch.allclose(class_loss(logits, mask), ce[[0, 1, 3]].mean())


def test_learns_on_a_fixed_batch() -> None:
    """40 steps on two 32² procedural pairs (lr_g 1e-3): the supervised terms fall, and so does the fused picture's
    L1 distance to the real one (measured with G in eval mode, before and after)."""
    batch = tiny_batch(2)
    recipe = tiny_recipe(("lr_g", "1e-3"))
    generator = recipe.nets["G"]
    label, instance = batch["label"][:, None], batch["instance"][:, None]

    def picture_l1() -> float:
        generator.eval()
        with torch.no_grad():
            error = float((generator(label, instance) - batch["image"]).abs().mean())
        generator.train()
        return error

    initial = picture_l1()
    history = [recipe.step(recipe.nets, batch) for _ in range(40)]
    trained = picture_l1()
    first, last = history[0], history[-1]
    numbers = (
        f"picture L1 {initial:.3f} -> {trained:.3f}, local {first['G_local']:.3f} -> {last['G_local']:.3f}, "
        f"class {first['G_class']:.3f} -> {last['G_class']:.3f}, perc {first['G_perc']:.3f} -> {last['G_perc']:.3f}"
    )
    # seen: picture L1 0.410 -> 0.106, local 1.048 -> 0.586, class 2.742 -> 2.396, perc 0.366 -> 0.061
    assert trained < 0.4 * initial, numbers
    assert last["G_local"] < 0.7 * first["G_local"], numbers
    assert last["G_class"] < first["G_class"] - 0.15, numbers
    assert last["G_perc"] < 0.4 * first["G_perc"], numbers


@pytest.mark.usefixtures("in_tmp")
def test_collage_train_runs_lggan_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """`collage train --arch lggan --preset lggan-tiny`: a dry run, a few steps with a sample grid, a size refusal."""
    argv = [
        "--arch", "lggan", "--preset", "lggan-tiny", "--data=procedural", "--data-length=4", "--batch=2",
        "--num-workers=0", "--threads=1", "--log-every=1", "--snapshot-every=0",
    ]  # fmt: skip
    assert train.main([*argv, "--dry-run"]) == 0
    assert "parameters G 124,996, D 26,130" in capsys.readouterr().out
    assert train.main([*argv, "--steps=3", "--sample-every=3"]) == 0
    run = Path("runs/00001-lggan-tiny")
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint-latest.pt", "config.json", "log.jsonl", "samples-00000003.png",
    ]  # fmt: skip
    ckpt = torch.load(run / "checkpoint-latest.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 3 and {"G", "G_ema", "D"} <= set(ckpt) and "E" not in ckpt
    assert ckpt["perceptual"].startswith("substitute:")
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3] and {"G_local", "G_class"} <= set(
        lines[-1]["losses"]
    )

    assert train.main([*argv, "--size=60", "--dry-run"]) == 2
    assert "size 60 must be a multiple of 2^num_up = 8 (generator.num_up=3)" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# Export: one lggan-tiny checkpoint exported by `collage export`, shared by the tests below.


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A lggan-tiny checkpoint in the trainer's format (G and G_ema differ: the exporter must pick G_ema)."""
    tmp = tmp_path_factory.mktemp("lggan")
    config = {
        "arch": "lggan",
        "preset": "lggan-tiny",
        "data": "procedural",
        "label_set": "landscape",
        "seed": 0,
    }
    config |= get_preset("lggan-tiny")
    torch.manual_seed(0)
    generator, generator_ema = build_generator(config, 14), build_generator(config, 14)
    run = tmp / "00001-lggan-tiny"
    run.mkdir()
    checkpoint = {
        "format_version": 1,
        "config": config,
        "step": 3,
        "G": generator.state_dict(),
        "G_ema": generator_ema.state_dict(),
        "label_set": "landscape",
        "perceptual": "substitute:l1-avgpool-4x-8x+d-feature-matching",
    }
    torch.save(checkpoint, run / "checkpoint-latest.pt")
    out = tmp / "weights" / "tiny-lggan"
    assert export_main([str(run), "--out", str(out)]) == 0
    return {"out": out, "manifest": json.loads((out / "model.json").read_text()), "G": generator_ema.eval()}


def test_manifest_says_what_the_studio_may_offer(exported: dict[str, Any]) -> None:
    manifest = exported["manifest"]
    assert manifest["architecture"] == "lggan" and manifest["image_size"] == [32, 32]
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
    assert manifest["encoder_inputs"] is None and set(manifest["files"]) == {"generator"}
    assert manifest["styles"] == []  # no encoder, no z: no presets
    report = manifest["export"]
    assert report["parity_max_abs_diff"]["generator"] <= 1e-5  # seen: 1.3e-6
    assert report["int16_at_rest"]["generator"]["max_abs_diff"] <= 2e-3
    assert report["params"]["generator"] == sum(p.numel() for p in exported["G"].parameters())
    assert manifest["training"]["config"]["generator_weights"] == "G_ema"


def test_onnxruntime_matches_torch_at_other_sizes(exported: dict[str, Any]) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(exported["out"] / "generator.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == ["label", "instance"]
    generator = prepare_for_export(exported["G"])
    rng = np.random.default_rng(0)
    diffs = []
    for batch, height, width in [(1, 32, 32), (3, 24, 40), (1, 64, 64)]:
        cells = lambda hi: rng.integers(0, hi, (batch, 1, height // 4, width // 4))  # noqa: E731, B023
        up = lambda a: a.repeat(4, 2).repeat(4, 3).astype(np.int64)  # noqa: E731
        feed = {"label": up(cells(14)), "instance": up(cells(3))}
        (image,) = session.run(["image"], feed)
        with torch.no_grad():
            expected = generator(torch.from_numpy(feed["label"]), torch.from_numpy(feed["instance"])).numpy()
        assert image.shape == (batch, 3, height, width)
        diffs.append(float(np.abs(image - expected).max()))
    assert max(diffs) <= 1e-3, diffs  # int16 weights at rest; seen: ≤ 8.8e-5


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_the_server_registry_loads_and_renders_the_exported_model(
    exported: dict[str, Any], runtime: str
) -> None:
    from common.runtime import installed_runtimes
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
    label = np.zeros((1, 1, 32, 48), np.int64)
    label[..., 16:, :] = 3
    label[..., 4:12, 30:40] = 11
    instance = np.zeros_like(label)
    image = model.run_generator(label, instance, np.zeros((1, 0), np.float32))
    with torch.no_grad():
        expected = prepare_for_export(exported["G"])(
            torch.from_numpy(label), torch.from_numpy(instance)
        ).numpy()
    assert image.shape == (1, 3, 32, 48) and np.abs(image).max() <= 1
    assert np.abs(image - expected).max() <= 2e-3  # seen: onnxruntime 6.0e-5, OpenVINO f32 5.9e-5
