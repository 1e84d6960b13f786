"""The `collage-class` architecture: its dataset of instance crops is deterministic per index, its config takes
`--thing`, one training step through the real trainer writes a checkpoint and a sample grid, and a few dozen
steps on a fixed batch make G auto-encode the visible context."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from models.archs import get_arch
from models.archs.collage_class import CollageClassRecipe, get_preset, visible_in_box, wrap_dataset
from models.data.crops import ProceduralCrops
from models.data.datasets import ProceduralLandscapes
from models.labels import LANDSCAPE
from models.train import parse_args
from models.training.config import ConfigError, resolve_config


def test_crops_are_deterministic_per_index() -> None:
    crops = ProceduralCrops("tree", length=6, seed=0, size=128, context_size=32, target_size=16)
    first = crops[3]
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in first.items()}
    assert shapes == {
        "context": ((3, 32, 32), torch.float32),
        "labels": ((32, 32), torch.int64),
        "mask": ((1, 32, 32), torch.float32),
        "valid": ((1, 32, 32), torch.float32),
        "image": ((3, 16, 16), torch.float32),
        "label": ((16, 16), torch.int64),
    }
    again = ProceduralCrops("tree", length=6, seed=0, size=128, context_size=32, target_size=16)[3]
    assert all(torch.equal(first[k], again[k]) for k in first)  # a fresh dataset (another worker): the same
    twice = crops[3]
    assert all(torch.equal(first[k], twice[k]) for k in first)
    assert not torch.equal(first["image"], crops[4]["image"])
    assert first["context"].abs().max() <= 1 and first["image"].abs().max() <= 1
    assert torch.equal(first["label"], first["labels"][8:24, 8:24])  # the square box is the central half
    in_box = first["mask"][0, 8:24, 8:24].sum()
    assert in_box > 0 and first["mask"].sum() == in_box  # the whole instance lies in the box
    assert (first["labels"][first["mask"][0] > 0] == LANDSCAPE["tree"].id).all()


def test_the_trainers_route_gives_the_same_crops() -> None:
    """wrap_dataset (the trainer's pictures, --data procedural) and ProceduralCrops cut the same samples."""
    config = get_preset("collage-class-tiny") | {"data_seed": 5, "thing": "rock"}
    wrapped = wrap_dataset(ProceduralLandscapes(128, 4, 5), LANDSCAPE, config)
    direct = ProceduralCrops("rock", length=4, seed=5, size=128, context_size=32, target_size=16)
    assert len(wrapped) == 4
    ours, theirs = wrapped[1], direct[1]
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_thing_is_a_config_key() -> None:
    import models.archs.collage_class  # noqa: F401  (registers the arch)

    flags, overrides = parse_args(["--arch", "collage-class", "--thing", "house", "--loss.r1_gamma=0.5"])
    config = resolve_config(flags["arch"] or "", None, overrides)
    assert (config["preset"], config["thing"], config["loss"]["r1_gamma"]) == ("collage-class", "house", 0.5)
    assert get_arch("collage-class").presets["collage-class-tiny"]["context_size"] == 32
    with pytest.raises(ConfigError, match="removal must be blur or zeros"):
        resolve_config("collage-class", "collage-class-tiny", [("removal", "smudge")])
    with pytest.raises(ConfigError, match="draws 32² from φ 8²"):
        resolve_config("collage-class", "collage-class-tiny", [("decoder.widths", "[16,8,8]")])
    with pytest.raises(ValueError, match="'sky' is not a thing class"):
        CollageClassRecipe(
            get_preset("collage-class-tiny") | {"thing": "sky"}, LANDSCAPE, torch.device("cpu")
        )


def test_visible_pixels_are_the_box_minus_instance_and_padding() -> None:
    mask, valid = torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    mask[:, :, 3:5, 3:5] = 1.0
    valid[:, :, :, :3] = 0.0
    visible = visible_in_box(mask, valid)  # the central 4×4, rows and columns 2..5
    expected = torch.ones(4, 4)
    expected[1:3, 1:3] = 0.0  # the instance
    expected[:, :1] = 0.0  # column 2 is outside the picture
    assert torch.equal(visible[0, 0], expected)


def test_one_run_through_the_trainer(tmp_path: Path, one_thread: None) -> None:
    """The real training loop with the crop dataset (what --data procedural gives once the trainer wraps its
    pictures): checkpoint with G, its EMA and D; a sample grid of box-sized tiles."""
    from models.training.loop import training_loop

    config = resolve_config(
        "collage-class",
        "collage-class-tiny",
        [("steps", "2"), ("num_workers", "0"), ("threads", "1"), ("sample_count", "2"), ("data_length", "4")],
    )
    config["label_set"] = LANDSCAPE.name
    pictures = ProceduralLandscapes(config["size"], config["data_length"], config["data_seed"])
    summary = training_loop(config, tmp_path, wrap_dataset(pictures, LANDSCAPE, config), LANDSCAPE)
    assert summary["step"] == 2 and {"G_gan", "G_l1_visible", "D", "D_r1"} <= set(summary["losses"])
    checkpoint = torch.load(tmp_path / "checkpoint-latest.pt", map_location="cpu", weights_only=True)
    assert {"G", "G_ema", "D"} <= set(checkpoint) and checkpoint["perceptual"].startswith("substitute")
    grid = np.asarray(Image.open(tmp_path / "samples-00000002.png"))
    assert grid.shape == (2 * 16, 5 * 16, 3)  # label | context box | G(μ) | G(μ+σε) | real, 16² each


def test_a_few_dozen_steps_teach_g_to_auto_encode_the_context(one_thread: None) -> None:
    """On one fixed batch of four tree crops, the L1 on the box's visible pixels (what G must copy from its
    context) falls by more than a third in 40 steps; so does the down-sampled L1 (colour and layout)."""
    torch.manual_seed(0)
    crops = ProceduralCrops("tree", length=8, seed=0, size=128, context_size=32, target_size=16)
    batch = default_collate([crops[i] for i in range(4)])
    recipe = CollageClassRecipe(get_preset("collage-class-tiny"), LANDSCAPE, torch.device("cpu"))
    history = [recipe.step(recipe.nets, batch) for _ in range(40)]

    def mean(key: str, part: slice) -> float:
        return float(np.mean([h[key] for h in history[part]]))

    visible = mean("G_l1_visible", slice(0, 5)), mean("G_l1_visible", slice(-5, None))
    down = mean("G_l1_down", slice(0, 5)), mean("G_l1_down", slice(-5, None))
    print(f"G_l1_visible {visible[0]:.3f} -> {visible[1]:.3f}; G_l1_down {down[0]:.3f} -> {down[1]:.3f}")  # noqa: T201
    assert visible[1] < 0.65 * visible[0], visible
    assert down[1] < 0.65 * down[0], down
    assert all(np.isfinite(v) for h in history for v in h.values())


def test_collage_train_runs_on_instance_crops_of_procedural_pictures(tmp_path: Path) -> None:
    """`collage train --arch collage-class --data procedural`: the trainer wraps its picture dataset into crops
    (Arch.wrap_dataset); without the hook the first step would refuse the whole pictures."""
    from models import train

    args = [
        "--arch",
        "collage-class",
        "--preset",
        "collage-class-tiny",
        "--thing",
        "house",
        "--data",
        "procedural",
    ]
    args += ["--size=64", "--batch=2", "--steps=2", "--data_length=16", "--num_workers=0", "--threads=1"]
    assert train.main([*args, "--runs-dir", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert logged and "G_l1_visible" in logged[-1]["losses"]
