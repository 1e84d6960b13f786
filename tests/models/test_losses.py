"""Losses: hinge values on known logits, feature matching, KL, VGG19 loading, the perceptual substitute and
OASIS's class-balanced segmentation loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from models.losses import (
    PerceptualLoss,
    VGG19Features,
    class_balanced_weights,
    downsampled_l1_loss,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    kl_loss,
    seg_d_loss,
    seg_g_loss,
)


def d_out(*logits: float) -> list[list[torch.Tensor]]:
    """One scale per value: a dummy feature map and a 1×1 patch logit."""
    return [[torch.full((1, 2, 2, 2), v), torch.full((1, 1, 1, 1), v)] for v in logits]


def test_hinge_losses_on_known_logits() -> None:
    # scale 1: real 0.5 -> relu(0.5)=0.5, fake -2 -> relu(-1)=0; scale 2: real 2 -> 0, fake 0 -> 1
    assert hinge_d_loss(d_out(0.5, 2.0), d_out(-2.0, 0.0)).item() == pytest.approx((0.5 + 0 + 0 + 1) / 2)
    assert hinge_g_loss(d_out(-2.0, 0.0)).item() == pytest.approx(1.0)


def test_feature_matching_ignores_logits_and_applies_lambda() -> None:
    fake = d_out(1.0, 1.0)
    real = d_out(0.0, 1.0)
    # only the first scale's feature map differs (by 1); logits are not matched; mean over 2 scales, λ=10
    assert feature_matching_loss(fake, real).item() == pytest.approx(10 * 1.0 / 2)
    assert feature_matching_loss(fake, real, weight=1.0).item() == pytest.approx(0.5)
    real[0][0].requires_grad_(True)
    fake[0][0].requires_grad_(True)
    feature_matching_loss(fake, real).backward()
    assert real[0][0].grad is None and fake[0][0].grad is not None  # real features are detached


def test_kl_is_zero_at_the_prior_and_matches_the_closed_form() -> None:
    zeros = torch.zeros(4, 8)
    assert kl_loss(zeros, zeros).item() == 0.0
    mu = torch.full((2, 3), 1.0)
    logvar = torch.full((2, 3), math.log(2.0))
    per_dim = 0.5 * (2.0 + 1.0 - 1.0 - math.log(2.0))  # KL(N(1,2)||N(0,1)) = (σ² + μ² − 1 − log σ²) / 2
    assert kl_loss(mu, logvar, weight=1.0).item() == pytest.approx(3 * per_dim, rel=1e-6)
    assert kl_loss(mu, logvar).item() == pytest.approx(0.05 * 3 * per_dim, rel=1e-6)


def test_losses_of_bf16_outputs_are_computed_in_fp32() -> None:
    # Under bf16 autocast the nets hand back bf16: near the optimum the KL is a near-cancellation that bf16
    # arithmetic rounds away, so the losses must compute in fp32 from the (already rounded) inputs.
    gen = torch.Generator().manual_seed(0)
    mu = (0.01 * torch.randn(4, 64, generator=gen)).bfloat16()
    logvar = (0.01 * torch.randn(4, 64, generator=gen)).bfloat16()
    logits = [[torch.randn(2, 1, 4, 4, generator=gen).bfloat16()] for _ in range(2)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kl = kl_loss(mu, logvar, weight=1.0)
        d = hinge_d_loss(logits, logits)
        g = hinge_g_loss(logits)
    assert kl.dtype == d.dtype == g.dtype == torch.float32
    exact = kl_loss(mu.float(), logvar.float(), weight=1.0)
    assert kl.item() == pytest.approx(exact.item(), rel=1e-5)
    assert d.item() == pytest.approx(hinge_d_loss(*[[[x.float() for x in s] for s in logits]] * 2).item())


def test_substitute_perceptual_is_downsampled_l1() -> None:
    loss = PerceptualLoss()
    assert loss.kind.startswith("substitute:")
    real = torch.zeros(1, 3, 32, 32)
    fake = torch.zeros(1, 3, 32, 32)
    fake[..., :16, :] = 0.5  # top half brighter: survives 4× and 8× pooling unchanged
    assert loss(fake, real).item() == pytest.approx(0.25)
    noise = torch.zeros(1, 3, 32, 32)
    noise[..., ::2, ::2] = 1.0
    noise[..., 1::2, 1::2] = -1.0  # zero-mean per 2×2 cell: invisible after pooling
    assert downsampled_l1_loss(noise, real).item() == pytest.approx(0.0, abs=1e-7)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised VGG19 in torchvision's state-dict layout (features.N.*, classifier.*)."""
    torch.manual_seed(0)
    trunk = VGG19Features()
    state = {f"features.{k}": v.clone() for k, v in trunk.features.state_dict().items()}
    for i in (30, 32, 34):  # the conv5_2..conv5_4 torchvision also stores (unused by the loss)
        state[f"features.{i}.weight"] = torch.randn(512, 512, 3, 3) * 0.01
        state[f"features.{i}.bias"] = torch.zeros(512)
    state["classifier.6.weight"] = torch.randn(10, 16)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    torch.save(state, path)
    return path


def test_vgg_perceptual_loads_a_torchvision_state_dict(vgg_file: Path) -> None:
    loss = PerceptualLoss(vgg_weights=vgg_file)
    assert loss.kind.startswith("vgg19:vgg19-random.pth:sha256=")
    state = torch.load(vgg_file, weights_only=True)
    assert loss.vgg is not None
    assert torch.equal(loss.vgg.features[28].weight, state["features.28.weight"])  # conv5_1
    assert not any(p.requires_grad for p in loss.vgg.parameters())

    gen = torch.Generator().manual_seed(1)
    real = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    fake = (torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1).requires_grad_(True)
    assert loss(real, real).item() == 0.0
    value = loss(fake, real)
    assert value.item() > 0
    value.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    loss.train()
    assert not loss.vgg.training  # the trunk stays in eval mode


def test_vgg_weights_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PerceptualLoss(vgg_weights=tmp_path / "missing.pth")
    bad = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a torchvision VGG19 state dict"):
        PerceptualLoss(vgg_weights=bad)


def test_class_balanced_weights_undo_class_frequency() -> None:
    label = torch.tensor([[[0, 0, 0, 1]], [[0, 0, 0, 2]]])  # [2,1,4]: class 0 six pixels, 1 and 2 one each
    weights = class_balanced_weights(label, 5)
    assert weights.shape == label.shape
    # 8 pixels over 3 present classes: class 0 gets 8/(3·6), the single pixels 8/3; each class sums to 8/3
    assert weights[label == 0].tolist() == pytest.approx([8 / 18] * 6)
    assert weights[label == 1].item() == pytest.approx(8 / 3) == weights[label == 2].item()
    assert class_balanced_weights(torch.tensor([[0, 1], [2, 3]]), 4).tolist() == [[1, 1], [1, 1]]


def test_segmentation_losses_point_real_to_its_class_and_fake_to_the_last() -> None:
    label = torch.tensor([[[0, 1], [1, 1]]])  # [1,2,2]
    sure = 20 * torch.nn.functional.one_hot(label, 3).permute(0, 3, 1, 2).float()  # [1,3,2,2] logits
    fake_class = 20 * torch.nn.functional.one_hot(torch.full_like(label, 2), 3).permute(0, 3, 1, 2).float()
    assert seg_d_loss(sure, fake_class, label).item() < 1e-6  # D right on both
    assert seg_d_loss(fake_class, sure, label).item() > 30  # D wrong on both
    assert seg_g_loss(sure, label).item() < 1e-6 and seg_g_loss(fake_class, label).item() > 15
    # the rare class 0 weighs as much as class 1's three pixels together: 4/(2·1) vs 4/(2·3) each
    wrong_at_0 = sure.clone()
    wrong_at_0[0, :, 0, 0] = torch.tensor([0.0, 20.0, 0.0])
    wrong_at_1 = sure.clone()
    wrong_at_1[0, :, 0, 1] = torch.tensor([20.0, 0.0, 0.0])
    assert seg_g_loss(wrong_at_0, label).item() == pytest.approx(3 * seg_g_loss(wrong_at_1, label).item())
    # D's fake term carries the same weights (unlike OASIS): a fake read as real costs 3× more at the rare pixel
    fake_wrong_at_0, fake_wrong_at_1 = fake_class.clone(), fake_class.clone()
    fake_wrong_at_0[0, :, 0, 0] = torch.tensor([20.0, 0.0, 0.0])
    fake_wrong_at_1[0, :, 0, 1] = torch.tensor([0.0, 20.0, 0.0])
    assert seg_d_loss(sure, fake_wrong_at_0, label).item() == pytest.approx(
        3 * seg_d_loss(sure, fake_wrong_at_1, label).item()
    )
