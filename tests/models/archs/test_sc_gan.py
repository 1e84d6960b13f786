"""The SC-GAN recipe: one step, the preview, a learning test on sc-gan-tiny and `collage train --arch sc-gan`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models import train
from models.archs import get_arch
from models.archs.sc_gan import vector_picture
from models.data.datasets import make_dataset
from models.labels import LANDSCAPE
from models.training.config import resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_batch(count: int) -> dict[str, torch.Tensor]:
    """The first `count` procedural 32² samples, collated: label, instance [B,32,32], image [B,3,32,32]."""
    dataset, _ = make_dataset("procedural", 32, length=count)
    return torch.utils.data.default_collate([dataset[i] for i in range(count)])


def tiny_recipe(*overrides: tuple[str, str]) -> Any:
    config = resolve_config("sc-gan", "sc-gan-tiny", list(overrides))
    config["label_set"] = "landscape"
    torch.manual_seed(0)
    return get_arch("sc-gan").build(config, LANDSCAPE, torch.device("cpu"))


def test_one_step_trains_g_and_d_and_previews_both_generators() -> None:
    batch = tiny_batch(2)
    recipe = tiny_recipe()
    assert set(recipe.nets) == {"G", "D"} and recipe.ema == ("G",)  # no style encoder
    assert recipe.meta == {"perceptual": "substitute:l1-avgpool-4x-8x+d-feature-matching"}
    assert recipe.optimizers["G"].defaults["betas"] == (0.0, 0.999)
    assert recipe.optimizers["G"].defaults["lr"] == 1e-4 and recipe.optimizers["D"].defaults["lr"] == 4e-4
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in recipe.nets.items()}
    losses = recipe.step(recipe.nets, batch)
    assert set(losses) == {"G_gan", "G_feat", "G_perc", "G_svg", "D"}
    assert all(np.isfinite(v) for v in losses.values()) and 0 < losses["D"] < 4
    for name, net in recipe.nets.items():
        changed = [not torch.equal(p, q) for p, q in zip(before[name], net.parameters(), strict=True)]
        assert all(changed), name  # G_V (vectors and picture head), G_R and every SCN candidate learn
    assert all(p.requires_grad for p in recipe.nets["D"].parameters())  # unfrozen after the G step

    for net in recipe.nets.values():
        net.eval()
    state = torch.get_rng_state()
    with torch.no_grad():
        columns = recipe.preview(recipe.nets, batch)
    assert torch.equal(state, torch.get_rng_state())  # the preview never draws from the global RNG
    assert [tuple(c.shape) for c in columns] == [(2, 3, 32, 32)] * 3  # G_R, G_V, the vectors
    assert all(c.abs().max() <= 1 for c in columns)


def test_vector_picture_stretches_each_picture_and_cycles_short_vectors() -> None:
    vectors = torch.full((2, 2, 4, 4), 0.5)
    vectors[0, 0, :2] = 0.52  # two regions a few percent apart, as τ 0.05 leaves them
    vectors[0, 1, :2] = 0.48
    picture = vector_picture(vectors)  # [2,3,4,4]
    assert picture.shape == (2, 3, 4, 4)
    assert torch.equal(picture[:, 0], picture[:, 2])  # n = 2: the third colour repeats the first entry
    assert picture[0].amin() == -1 and picture[0].amax() == 1  # stretched to the full range
    assert torch.equal(picture[1], torch.full((3, 4, 4), -1.0))  # uniform vectors: one flat colour


def test_learns_on_a_fixed_batch() -> None:
    """40 steps on two 32² procedural pairs (lr_g 1e-3): G_V's L1 (L_s), the perceptual substitute and feature
    matching fall, and so does the served picture's L1 distance to the real one (G in eval mode, before and
    after)."""
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
        f"picture L1 {initial:.3f} -> {trained:.3f}, svg {first['G_svg']:.3f} -> {last['G_svg']:.3f}, "
        f"perc {first['G_perc']:.3f} -> {last['G_perc']:.3f}, feat {first['G_feat']:.3f} -> {last['G_feat']:.3f}"
    )
    # seen: picture L1 0.473 -> 0.169, svg 0.738 -> 0.312, perc 0.391 -> 0.092, feat 7.354 -> 2.697 (2.5 s)
    assert trained < 0.5 * initial, numbers
    assert last["G_svg"] < 0.6 * first["G_svg"], numbers
    assert last["G_perc"] < 0.4 * first["G_perc"], numbers
    assert last["G_feat"] < 0.6 * first["G_feat"], numbers


@pytest.mark.usefixtures("in_tmp")
def test_collage_train_runs_sc_gan_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """`collage train --arch sc-gan --preset sc-gan-tiny`: the brief's dry run, a few steps with a sample grid, a
    size refusal."""
    argv = ["--arch", "sc-gan", "--preset", "sc-gan-tiny", "--data", "procedural"]
    assert train.main([*argv, "--steps", "20", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '"arch": "sc-gan"' in out and "parameters G 74,950, D 26,130" in out
    quick = [
        *argv, "--data-length=4", "--batch=2", "--num-workers=0", "--threads=1", "--log-every=1",
        "--snapshot-every=0",
    ]  # fmt: skip
    assert train.main([*quick, "--steps=3", "--sample-every=3"]) == 0
    run = Path("runs/00001-sc-gan-tiny")
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint-latest.pt", "config.json", "log.jsonl", "samples-00000003.png",
    ]  # fmt: skip
    ckpt = torch.load(run / "checkpoint-latest.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 3 and {"G", "G_ema", "D"} <= set(ckpt) and "E" not in ckpt
    assert ckpt["perceptual"].startswith("substitute:")
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3] and "G_svg" in lines[-1]["losses"]

    assert train.main([*quick, "--size=60", "--dry-run"]) == 2
    assert "size 60 must be a multiple of 2^num_up = 8 (generator.num_up=3)" in capsys.readouterr().err
