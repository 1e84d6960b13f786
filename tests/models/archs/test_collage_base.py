"""The collage-base recipe: one step trains every part of G (both encoders, mapping, synthesis) and D, the preview,
learning on a tiny batch, and `collage train` (dry run, a short run, a size it cannot take)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import train
from models.archs import get_arch
from models.archs.collage_base import CollageBaseRecipe, feature_l1
from models.data.datasets import make_dataset
from models.ema import make_ema
from models.labels import LANDSCAPE
from models.losses import downsampled_l1_loss
from models.nets.stylegan import head_for_size
from models.training.config import ConfigError, resolve_config
from models.training.setup import load_init_weights

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_batch(count: int) -> dict[str, torch.Tensor]:
    dataset, _ = make_dataset("procedural", 32, length=count)
    return torch.utils.data.default_collate([dataset[i] for i in range(count)])


def tiny_recipe() -> CollageBaseRecipe:
    config = resolve_config("collage-base", "collage-base-tiny", [])
    torch.manual_seed(0)
    recipe = get_arch("collage-base").build(config, LANDSCAPE, torch.device("cpu"))
    assert isinstance(recipe, CollageBaseRecipe)
    return recipe


def test_init_from_a_smaller_size_keeps_d_with_its_head_spread_over_the_larger_map() -> None:
    small = tiny_recipe()  # 32²: D's final map 4²
    source = {"G": small.nets["G"].state_dict(), "D": small.nets["D"].state_dict()}
    source["G_ema"] = source["G"]
    config = resolve_config("collage-base", "collage-base-tiny", [("size", "64")])
    large = get_arch("collage-base").build(config, LANDSCAPE, torch.device("cpu"))  # D's final map 8²
    load_init_weights(large, {"G": make_ema(large.nets["G"])}, source)
    d = large.nets["D"].state_dict()
    assert all(torch.equal(d[k], v) for k, v in source["D"].items() if k != "fc.weight")
    assert torch.equal(d["fc.weight"], head_for_size(source["D"]["fc.weight"], 16, 8))
    assert all(torch.equal(v, source["G"][k]) for k, v in large.nets["G"].state_dict().items())

    bigger = {"G": large.nets["G"].state_dict(), "D": d}
    bigger["G_ema"] = bigger["G"]
    with pytest.raises(ConfigError, match=r"D does not fit .* fc\.weight"):  # 64² -> 32²: not spread back
        load_init_weights(small, {"G": make_ema(small.nets["G"])}, bigger)


def test_feature_l1_is_the_mean_over_layers() -> None:
    fake = [torch.zeros(1, 2, 4, 4, requires_grad=True), torch.zeros(1, 4, 2, 2, requires_grad=True)]
    real = [torch.full((1, 2, 4, 4), 2.0, requires_grad=True), torch.full((1, 4, 2, 2), 1.0)]
    loss = feature_l1(fake, real)
    assert math.isclose(loss.item(), (2.0 + 1.0) / 2)
    loss.backward()
    assert real[0].grad is None and all(f.grad is not None for f in fake)  # G's loss only


def test_one_step_trains_g_and_d() -> None:
    batch = tiny_batch(4)
    recipe = tiny_recipe()
    assert recipe.ema == ("G",) and set(recipe.nets) == {"G", "D"}
    assert recipe.meta == {"perceptual": "substitute:l1-avgpool-4x-8x+d-feature-matching"}
    lazy = 16 / 17  # StyleGAN2's lazy-regularisation correction of D's Adam
    assert recipe.optimizers["G"].defaults["lr"] == 2e-3
    assert math.isclose(recipe.optimizers["D"].defaults["lr"], 2e-3 * lazy)
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in recipe.nets.items()}
    losses = recipe.step(recipe.nets, batch)
    assert set(losses) == {"G_gan", "G_kl", "G_kl_style", "G_perc", "G_feat", "D", "D_r1"}
    assert all(math.isfinite(v) for v in losses.values())
    assert 0.5 < losses["G_gan"] < 0.9 and 1.2 < losses["D"] < 1.6  # an unsure D: log 2 per term
    assert losses["D_r1"] > 0  # the first D step is an R1 step (then every 16th)
    for name, net in recipe.nets.items():
        unchanged = [
            n for p, (n, q) in zip(before[name], net.named_parameters(), strict=True) if torch.equal(p, q)
        ]
        assert unchanged == [], (name, unchanged)  # the noise strengths and both encoders included
    assert all(p.requires_grad for p in recipe.nets["D"].parameters())  # unfrozen after the G step
    assert recipe.step(recipe.nets, batch)["D_r1"] == 0.0  # lazy: not on the next step

    for net in recipe.nets.values():
        net.eval()
    state = torch.get_rng_state()
    with torch.no_grad():
        columns = recipe.preview(recipe.nets, batch)
    assert torch.equal(state, torch.get_rng_state())  # the preview never draws from the global RNG
    assert [tuple(c.shape) for c in columns] == [(4, 3, 32, 32)] * 2
    assert not torch.equal(columns[0], columns[1])  # the photo's style vs a seed's


def style_gap(recipe: CollageBaseRecipe, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Down-sampled L1 to the real pictures of G drawn with each picture's own photo as its style, and with
    its neighbour's (the batch rolled by one): how much of a picture's colours G takes from the photo."""
    gen, real = recipe.nets["G"], batch["image"]
    label, instance = batch["label"][:, None], batch["instance"][:, None]
    noise = torch.zeros(real.shape[0], 5, *real.shape[-2:])
    with torch.no_grad():
        own = gen(label, instance, noise, real).image
        other = gen(label, instance, noise, real.roll(1, 0)).image
    return downsampled_l1_loss(own, real).item(), downsampled_l1_loss(other, real).item()


def test_learns_on_a_tiny_batch() -> None:
    """collage-base-tiny on 8 procedural pairs (4–8 s on one thread): 30 steps in which the perceptual substitute
    (the tie to the paired picture) and D's loss fall, then 30 with D frozen (lr 0) in which G's whole loss
    falls, as the DP-GAN test; by then G draws a picture's colours from its photo (the photo encoder learnt)."""
    batch = tiny_batch(8)
    recipe = tiny_recipe()
    untrained_gap = style_gap(recipe, batch)
    both = [recipe.step(recipe.nets, batch) for _ in range(30)]
    recipe.optimizers["D"].param_groups[0]["lr"] = 0.0
    frozen_d = {k: v.clone() for k, v in recipe.nets["D"].state_dict().items()}
    g_only = [recipe.step(recipe.nets, batch) for _ in range(30)]
    own, other = style_gap(recipe, batch)

    def mean(steps: list[dict[str, float]], *keys: str) -> float:
        return sum(s[k] for s in steps for k in keys) / len(steps)

    g_keys = ("G_gan", "G_kl", "G_kl_style", "G_perc", "G_feat")
    perc = mean(both[:5], "G_perc"), mean(both[-5:], "G_perc"), mean(g_only[-5:], "G_perc")
    d = mean(both[:5], "D"), mean(both[-5:], "D")
    g_total = mean(g_only[:5], *g_keys), mean(g_only[-5:], *g_keys)
    g_feat = mean(g_only[:5], "G_feat"), mean(g_only[-5:], "G_feat")
    numbers = (
        f"G_perc {perc[0]:.3f} -> {perc[1]:.3f} -> {perc[2]:.3f}, D {d[0]:.3f} -> {d[1]:.3f}; G (D frozen) "
        f"{g_total[0]:.3f} -> {g_total[1]:.3f}, G_feat {g_feat[0]:.3f} -> {g_feat[1]:.3f}; own photo "
        f"{untrained_gap[0]:.3f} -> {own:.3f}, a neighbour's {untrained_gap[1]:.3f} -> {other:.3f}"
    )
    print(numbers)  # noqa: T201
    assert perc[1] < 0.9 * perc[0] and perc[2] < 0.6 * perc[0], numbers  # seen: 4.336 -> 3.652 -> 2.278
    assert d[1] < 0.85 * d[0], numbers  # seen: 1.354 -> 0.964
    assert g_total[1] < 0.75 * g_total[0], numbers  # seen: 8.105 -> 5.221
    assert g_feat[1] < 0.75 * g_feat[0], numbers  # seen: 3.821 -> 2.246
    assert own < 0.7 * other, numbers  # seen: 0.222 vs 0.433 (untrained: 0.433 vs 0.435)
    assert all(math.isfinite(v) for h in both + g_only for v in h.values())
    assert all(
        torch.equal(v, frozen_d[k]) for k, v in recipe.nets["D"].state_dict().items()
    )  # lr 0: D stood still


def test_collage_train_runs_collage_base_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--arch",
        "collage-base",
        "--preset",
        "collage-base-tiny",
        "--data",
        "procedural",
        "--steps",
        "20",
    ]
    assert train.main([*argv, "--dry-run"]) == 0
    assert "dry run: 4096 samples; parameters G 50,513, D 18,297" in capsys.readouterr().out
    assert train.main([*argv, "--dry-run", "--size=36"]) == 2
    assert "size 36 must be a multiple of 8: the encoder halves it 3 times" in capsys.readouterr().err
    assert get_arch("collage-base").default_preset == "collage-base"

    run_argv = [
        *argv[:-1], "3", "--data-length=4", "--batch=2", "--num-workers=0", "--threads=1", "--sample-every=0",
        "--snapshot-every=0", "--runs-dir", str(tmp_path),
    ]  # fmt: skip
    assert train.main(run_argv) == 0
    run = tmp_path / "00001-collage-base-tiny"
    checkpoint = torch.load(run / "checkpoint-latest.pt", map_location="cpu", weights_only=True)
    assert checkpoint["step"] == 3 and {"G", "G_ema", "D"} <= set(checkpoint)
    assert any(k.startswith("style.") for k in checkpoint["G_ema"])  # the photo encoder is averaged with G
    grid = np.asarray(Image.open(run / "samples-00000003.png"))
    assert grid.shape == (4 * 32, 4 * 32, 3)  # label | G(the photo's μ) | G(a seed) | real, per sample
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert {"G_perc", "G_feat", "G_kl", "G_kl_style", "D_r1"} <= set(lines[-1]["losses"])
