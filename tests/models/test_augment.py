"""Random recolouring: identity at zero strength, grey keeps luma, hue turns colour not luma, range kept.
Random resampling: identity at zero strength, removes fine detail from the images it picks, grain is bounded."""

from __future__ import annotations

import torch

from models.archs.segmenter import PRESETS
from models.augment import RESAMPLE, recolour, resample

IDENTITY = {
    "hue": 0.0,
    "saturation_min": 1.0,
    "saturation_max": 1.0,
    "grey_p": 0.0,
    "brightness": 0.0,
    "contrast_min": 1.0,
    "contrast_max": 1.0,
    "cast": 0.0,
    "flip_p": 0.0,
}


def _images(b: int = 6) -> torch.Tensor:
    return torch.rand(b, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8  # [B,3,16,16]


def test_recolour_without_strength_is_the_identity() -> None:
    x = _images()
    assert torch.allclose(recolour(x, IDENTITY), x, atol=1e-5)


def test_recolour_grey_makes_channels_equal_and_keeps_luma() -> None:
    x = _images()
    grey = recolour(x, IDENTITY | {"grey_p": 1.0})
    assert torch.allclose(grey[:, 0], grey[:, 1], atol=1e-5) and torch.allclose(
        grey[:, 1], grey[:, 2], atol=1e-5
    )
    luma = (torch.tensor([0.299, 0.587, 0.114])[None, :, None, None] * (x + 1) / 2).sum(1) * 2 - 1
    assert torch.allclose(grey[:, 0], luma, atol=1e-5)


def test_recolour_hue_rotation_changes_colour_not_luma_and_differs_per_image() -> None:
    x = _images()
    gen = torch.Generator().manual_seed(1)
    rotated = recolour(x, IDENTITY | {"hue": 1.0}, generator=gen)
    weights = torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]
    unclamped = (rotated > -1) & (rotated < 1)
    assert unclamped.float().mean() > 0.5
    luma_in, luma_out = (weights * x).sum(1), (weights * rotated).sum(1)
    ok = unclamped.all(1)
    assert torch.allclose(luma_in[ok], luma_out[ok], atol=1e-4)
    assert (rotated - x).abs().mean() > 0.05
    # each image has its own angle: the per-image colour change differs
    change = (rotated - x).mean(dim=(2, 3))  # [B,3]
    assert change.std(0).max() > 1e-3


def test_full_augmentation_stays_in_range() -> None:
    out = recolour(
        _images(32) * 1.25, PRESETS["segmenter-small"]["augment"], torch.Generator().manual_seed(2)
    )
    assert out.min() >= -1 and out.max() <= 1


NO_RESAMPLE = {"resample_p": 0.0, "resample_max": 2.5, "grain": 0.0}


def _high_frequency(x: torch.Tensor) -> torch.Tensor:
    """Per image, the mean |difference| between horizontal neighbours: [B]."""
    return (x[..., 1:] - x[..., :-1]).abs().mean(dim=(1, 2, 3))


def test_resample_without_strength_is_the_identity() -> None:
    x = _images()
    assert torch.equal(resample(x, NO_RESAMPLE), x)


def test_resample_blurs_every_picked_image() -> None:
    x = _images(8)
    out = resample(x, NO_RESAMPLE | {"resample_p": 1.0}, torch.Generator().manual_seed(3))
    # white-noise images lose most of their neighbour differences when sampled down ≥ 1.0× and back
    assert (_high_frequency(out) < 0.8 * _high_frequency(x)).sum() >= 6
    assert out.min() >= -1 and out.max() <= 1


def test_resample_grain_is_bounded_and_differs_per_image() -> None:
    x = torch.zeros(16, 3, 8, 8)
    out = resample(x, NO_RESAMPLE | {"grain": 0.05}, torch.Generator().manual_seed(4))
    assert out.abs().max() <= 0.05 + 1e-6
    assert out.abs().amax(dim=(1, 2, 3)).std() > 0.005  # amplitude drawn per image


def test_judge_presets_train_with_resampling() -> None:
    for name in ("segmenter-small", "segmenter-256"):
        aug = PRESETS[name]["augment"]
        assert {k: aug[k] for k in RESAMPLE} == RESAMPLE
