"""The DP-GAN recipe: the patch loss's gradient, the feature loss, one step, learning on a tiny batch, the trainer
CLI."""

from __future__ import annotations

import math

import pytest
import torch

from models import train
from models.archs import get_arch
from models.archs.dp_gan import DPGanRecipe, discriminator_losses, feature_loss, generator_losses
from models.data.datasets import make_dataset
from models.labels import LANDSCAPE
from models.training.config import resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")
LANDSCAPE_NC = len(LANDSCAPE)


def tiny_batch(count: int) -> dict[str, torch.Tensor]:
    dataset, _ = make_dataset("procedural", 32, length=count)
    return torch.utils.data.default_collate([dataset[i] for i in range(count)])


def tiny_recipe() -> DPGanRecipe:
    config = resolve_config("dp-gan", "dp-gan-tiny", [])
    config["label_set"] = "landscape"
    torch.manual_seed(0)
    recipe = get_arch("dp-gan").build(config, LANDSCAPE, torch.device("cpu"))
    assert isinstance(recipe, DPGanRecipe)
    return recipe


def test_the_patch_loss_trains_the_heads_and_the_encoder_under_them() -> None:
    """The released code adds the patch loss as a detached float; ours is a tensor. D's patch term alone reaches
    every patch-head parameter and the encoder blocks that feed them, and none of the decoder; G's patch term
    reaches G through the frozen D."""
    batch = tiny_batch(2)
    recipe = tiny_recipe()
    g, d = recipe.nets["G"], recipe.nets["D"]
    label, real = batch["label"], batch["image"]
    z, noise = recipe.noise(2, real.shape[-2:], real.device)
    fake = g(label[:, None], z, noise)

    patch = discriminator_losses(d, real, fake.detach(), label, LANDSCAPE_NC)["patch"]
    assert patch.requires_grad and 1.5 < patch.item() < 2.5  # unsure heads score near 0: hinge 1 + 1
    patch.backward()
    grads = {name: p.grad for name, p in d.named_parameters()}
    # every head weight; not the biases of the last convs, whose real and fake pulls cancel exactly while every
    # score is inside the hinge's margin (as here at the start): d/db [mean relu(1 − s_r) + mean relu(1 + s_f)] = 0
    heads = {n: v for n, v in grads.items() if n.startswith("patch_heads.") and not n.endswith(".8.bias")}
    assert heads and all(v is not None and v.abs().sum() > 0 for v in heads.values())
    encoder = {n: v for n, v in grads.items() if n.startswith("unet.down.")}
    # blocks 1–3 all feed a head (tiny: heads on blocks 2 and 3)
    assert encoder and all(v is not None and v.abs().sum() > 0 for v in encoder.values())
    decoder = {n: v for n, v in grads.items() if n.startswith(("unet.up.", "unet.head."))}
    assert decoder and all(v is None for v in decoder.values())
    assert all(p.grad is None for p in g.parameters())  # the fakes were detached

    d.requires_grad_(False)
    generator_losses(d, fake, real, label)["patch"].backward()
    reached = [p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters()]
    assert sum(reached) > 0.9 * len(reached)


def test_feature_loss_is_the_mean_squared_error_averaged_over_layers() -> None:
    fake = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 2, 2)]
    real = [torch.full((1, 2, 4, 4), 2.0), torch.full((1, 4, 2, 2), 1.0)]
    assert math.isclose(float(feature_loss(fake, real)), (4.0 + 1.0) / 2)  # eq. 6: per layer, then the mean
    fake = [f.requires_grad_() for f in fake]
    real = [r.requires_grad_() for r in real]
    feature_loss(fake, real).backward()
    assert all(r.grad is None for r in real) and all(f.grad is not None for f in fake)  # G's loss only


def test_one_step_trains_g_and_d() -> None:
    batch = tiny_batch(2)
    recipe = tiny_recipe()
    assert recipe.meta == {"perceptual": "none"} and recipe.ema == ("G",) and set(recipe.nets) == {"G", "D"}
    for name, lr in (("G", 1e-4), ("D", 4e-4)):
        assert recipe.optimizers[name].defaults["lr"] == lr
        assert recipe.optimizers[name].defaults["betas"] == (0.0, 0.999)
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in recipe.nets.items()}
    losses = recipe.step(recipe.nets, batch)
    assert set(losses) == {"G_pixel", "G_patch", "G_feat", "D_pixel", "D_patch", "D_lm"}
    assert all(math.isfinite(v) for v in losses.values())
    # at the start D is a coin over N+1 classes (log 15 = 2.71 per term) and its patch scores are near 0
    assert 2.0 < losses["G_pixel"] < 3.5 and 4.5 < losses["D_pixel"] < 6.5 and 1.5 < losses["D_patch"] < 2.5
    assert losses["G_feat"] > 0 and losses["D_lm"] >= 0
    for name, net in recipe.nets.items():
        changed = {
            n: not torch.equal(p, q) for p, (n, q) in zip(before[name], net.named_parameters(), strict=True)
        }
        # all, the patch heads included (their only gradient is the patch loss's), but the heads' last biases: at
        # the start their real and fake hinge pulls cancel exactly (see the test above)
        assert [n for n, c in changed.items() if not c] == (
            ["patch_heads.0.8.bias", "patch_heads.1.8.bias"] if name == "D" else []
        ), name
    assert all(p.requires_grad for p in recipe.nets["D"].parameters())  # unfrozen after the G step

    for net in recipe.nets.values():
        net.eval()
    state = torch.get_rng_state()
    with torch.no_grad():
        columns = recipe.preview(recipe.nets, batch)
    assert torch.equal(state, torch.get_rng_state())  # the preview never draws from the global RNG
    assert [tuple(c.shape) for c in columns] == [(2, 3, 32, 32)] * 2
    assert all(c.abs().max() <= 1 for c in columns) and not torch.equal(columns[0], columns[1])


def test_learns_on_a_tiny_batch() -> None:
    """dp-gan-tiny on 8 procedural pairs: 30 steps in which D's pixel and patch losses fall, then 30 with D frozen
    (lr 0) in which G's loss falls (G at lr 5e-4 to see it within 30 steps), as the OASIS test."""
    batch = tiny_batch(8)
    recipe = tiny_recipe()
    both = [recipe.step(recipe.nets, batch) for _ in range(30)]
    recipe.optimizers["D"].param_groups[0]["lr"] = 0.0
    recipe.optimizers["G"].param_groups[0]["lr"] = 5e-4
    frozen_d = recipe.nets["D"].state_dict()
    g_only = [recipe.step(recipe.nets, batch) for _ in range(30)]

    def mean(steps: list[dict[str, float]], *keys: str) -> float:
        return sum(s[k] for s in steps for k in keys) / len(steps)

    g_keys = ("G_pixel", "G_patch", "G_feat")
    d_pixel = mean(both[:5], "D_pixel"), mean(both[-5:], "D_pixel")
    d_patch = mean(both[:5], "D_patch"), mean(both[-5:], "D_patch")
    g_total = mean(g_only[:1], *g_keys), mean(g_only[-5:], *g_keys)
    g_pixel = g_only[0]["G_pixel"], mean(g_only[-5:], "G_pixel")
    g_patch = g_only[0]["G_patch"], mean(g_only[-5:], "G_patch")
    numbers = (
        f"D pixel {d_pixel[0]:.3f} -> {d_pixel[1]:.3f}, patch {d_patch[0]:.3f} -> {d_patch[1]:.3f}; G (D frozen) "
        f"{g_total[0]:.3f} -> {g_total[1]:.3f}: pixel {g_pixel[0]:.3f} -> {g_pixel[1]:.3f}, "
        f"patch {g_patch[0]:.3f} -> {g_patch[1]:.3f}"
    )
    assert d_pixel[1] < 0.85 * d_pixel[0], numbers  # seen: 5.393 -> 4.230
    assert d_patch[1] < 0.98 * d_patch[0], numbers  # seen: 1.997 -> 1.918
    assert g_total[1] < 0.88 * g_total[0], numbers  # seen: 4.194 -> 3.380
    assert g_pixel[1] < 0.92 * g_pixel[0] and g_patch[1] < 0.5 * g_patch[0], numbers  # seen: 3.495 -> 3.033,
    #                                                                                    0.444 -> 0.116
    weights = {k: v for k, v in recipe.nets["D"].state_dict().items() if not k.endswith(("_u", "_v"))}
    assert all(torch.equal(v, frozen_d[k]) for k, v in weights.items())  # lr 0: D stood still


def test_the_trainer_offers_dp_gan_and_checks_its_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--arch", "dp-gan", "--preset", "dp-gan-tiny", "--data=procedural", "--steps=20", "--dry-run"]
    assert train.main(argv) == 0
    assert "dry run: 4096 samples; parameters G 85,623, D 25,417" in capsys.readouterr().out
    assert train.main([*argv, "--size=60"]) == 2
    assert "size 60 must be a multiple of 2^num_up = 8 (generator.num_up=3)" in capsys.readouterr().err
    assert get_arch("dp-gan").default_preset == "dp-gan-fast"
