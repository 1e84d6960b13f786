"""The OASIS recipe: LabelMix, the class-balanced N+1 loss, one step, learning on a tiny batch, the trainer CLI."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models import train
from models.archs import Recipe, get_arch
from models.archs.oasis import labelmix, labelmix_loss, oasis_d_loss
from models.data.datasets import make_dataset
from models.labels import LANDSCAPE
from models.losses import class_balanced_weights
from models.training.config import resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")
LANDSCAPE_NC = len(LANDSCAPE)


def tiny_batch(count: int) -> dict[str, torch.Tensor]:
    dataset, _ = make_dataset("procedural", 32, length=count)
    return torch.utils.data.default_collate([dataset[i] for i in range(count)])


def tiny_recipe() -> Recipe:
    config = resolve_config("oasis", "oasis-tiny", [])
    config["label_set"] = "landscape"
    torch.manual_seed(0)
    return get_arch("oasis").build(config, LANDSCAPE, torch.device("cpu"))


def test_labelmix_sends_each_class_wholly_to_one_side() -> None:
    rows = torch.tensor([[0, 0, 3, 3], [0, 0, 3, 3], [5, 5, 3, 0], [5, 5, 3, 0]])  # [4,4]
    label = torch.stack([rows, rows.flip(1)])  # [2,4,4]
    real, fake = torch.ones(2, 3, 4, 4), -torch.ones(2, 3, 4, 4)
    sides: dict[int, set[float]] = {0: set(), 3: set(), 5: set()}
    torch.manual_seed(0)
    for _ in range(20):
        mixed, mask = labelmix(label, real, fake, LANDSCAPE_NC)
        assert mask.shape == (2, 1, 4, 4) and set(mask.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(mixed, mask.expand_as(real) * 2 - 1)  # real where the mask is 1, fake elsewhere
        for c in sides:
            side = mask[:, 0][label == c].unique()  # one coin per class, shared by the batch
            assert side.numel() == 1
            sides[c].add(float(side))
    assert all(s == {0.0, 1.0} for s in sides.values())  # every class landed on both sides over 20 draws


def test_labelmix_loss_spares_a_pixelwise_discriminator_and_not_a_spatial_one() -> None:
    """A 1×1-conv D judges each pixel alone, so its logits on the mix are exactly the mix of its logits; a 3×3
    conv sees across the class boundaries and pays for it."""
    torch.manual_seed(0)
    label = torch.randint(0, 4, (2, 4, 4)).repeat_interleave(4, 1).repeat_interleave(4, 2)  # [2,16,16]
    real, fake = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    mixed, mask = labelmix(label, real, fake, 4)
    for kernel, zero in ((1, True), (3, False)):
        disc = nn.Conv2d(3, 5, kernel, padding=kernel // 2)
        loss = labelmix_loss(disc(mixed), disc(real), disc(fake), mask)
        assert (loss < 1e-12) == zero, (kernel, float(loss))


def test_class_balanced_weights_and_the_d_loss_on_a_known_map() -> None:
    """12 sky pixels and 4 house pixels: each present class carries half the total weight (sky 16/(2·12) = 2/3,
    house 16/(2·4) = 2). The real term is weighted with them; the fake term is not (paper)."""
    house = 9
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    label[0, :, 3] = house
    weights = class_balanced_weights(label, LANDSCAPE_NC)
    assert torch.allclose(weights[label == 0], torch.tensor(2 / 3)) and torch.allclose(
        weights[label == house], torch.tensor(2.0)
    )
    assert math.isclose(float(weights.sum()), label.numel(), rel_tol=1e-6)

    uniform = math.log(LANDSCAPE_NC + 1)  # cross-entropy of all-zero logits
    real_logits = torch.zeros(1, LANDSCAPE_NC + 1, 4, 4)
    fake_logits = torch.zeros(1, LANDSCAPE_NC + 1, 4, 4)
    fake_logits[0, LANDSCAPE_NC] = 50.0 * (label[0] == 0)  # sky pixels surely "fake", house pixels unsure
    loss = oasis_d_loss(real_logits, fake_logits, label)
    # real: weighted mean = uniform · mean(weights) = uniform; fake: 4 of 16 pixels unsure, unweighted (a
    # class-balanced fake term would give 4·2/16 = 0.5)
    assert math.isclose(float(loss), uniform * (1 + 4 / 16), rel_tol=1e-5)


def test_one_step_trains_g_and_d() -> None:
    batch = tiny_batch(2)
    recipe = tiny_recipe()
    assert recipe.meta == {"perceptual": "none"} and recipe.ema == ("G",)
    for name, lr in (("G", 1e-4), ("D", 4e-4)):
        assert recipe.optimizers[name].defaults["lr"] == lr
        assert recipe.optimizers[name].defaults["betas"] == (0.0, 0.999)
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in recipe.nets.items()}
    losses = recipe.step(recipe.nets, batch)
    assert set(losses) == {"G_adv", "D_adv", "D_lm"} and all(math.isfinite(v) for v in losses.values())
    # at the start D is a coin over N+1 classes: each of its terms, and G's, is near log(15) = 2.71
    assert 2.0 < losses["G_adv"] < 3.5 and 4.5 < losses["D_adv"] < 6.5 and losses["D_lm"] >= 0
    for name, net in recipe.nets.items():
        changed = [not torch.equal(p, q) for p, q in zip(before[name], net.parameters(), strict=True)]
        assert sum(changed) > 0.9 * len(changed), name
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
    """oasis-tiny on 8 procedural pairs: 30 steps in which D's loss falls, then 30 with D frozen (lr 0) in which
    G learns to make D read its pictures as the painted classes (G at lr 5e-4 to see it within 30 steps)."""
    batch = tiny_batch(8)
    recipe = tiny_recipe()
    both = [recipe.step(recipe.nets, batch) for _ in range(30)]
    recipe.optimizers["D"].param_groups[0]["lr"] = 0.0
    recipe.optimizers["G"].param_groups[0]["lr"] = 5e-4
    frozen_d = recipe.nets["D"].state_dict()
    g_only = [recipe.step(recipe.nets, batch) for _ in range(30)]

    def mean(steps: list[dict[str, float]], key: str) -> float:
        return sum(s[key] for s in steps) / len(steps)

    d_start, d_end = mean(both[:5], "D_adv"), mean(both[-5:], "D_adv")
    g_start, g_end = g_only[0]["G_adv"], mean(g_only[-5:], "G_adv")
    numbers = f"D {d_start:.3f} -> {d_end:.3f}, G (D frozen) {g_start:.3f} -> {g_end:.3f}"
    assert d_end < 0.85 * d_start, numbers  # seen: 5.485 -> 4.259
    assert g_end < 0.92 * g_start, numbers  # seen: 3.430 -> 3.015
    weights = {k: v for k, v in recipe.nets["D"].state_dict().items() if not k.endswith(("_u", "_v"))}
    assert all(torch.equal(v, frozen_d[k]) for k, v in weights.items())  # lr 0: D stood still


def test_the_trainer_offers_oasis_and_checks_its_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--arch", "oasis", "--preset", "oasis-tiny", "--data", "procedural", "--steps", "20", "--dry-run"]
    assert train.main(argv) == 0
    assert "dry run: 4096 samples; parameters G 73,163, D 19,447" in capsys.readouterr().out
    assert train.main([*argv, "--size=60"]) == 2
    assert "size 60 must be a multiple of 2^num_up = 8 (generator.num_up=3)" in capsys.readouterr().err
    assert get_arch("oasis").default_preset == "oasis-fast"
