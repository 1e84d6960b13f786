"""Multi-scale PatchGAN: feature lists per scale, patch logit sizes, spectral norm, conditioning on the labels."""

from __future__ import annotations

import torch
from torch.nn.utils import parametrize

from models.archs.spade import build_discriminator, get_preset
from models.nets.discriminator import MultiscaleDiscriminator


def inputs(batch: int = 2, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    label = torch.randint(0, 14, (batch, 1, size, size), generator=gen)
    instance = torch.randint(0, 3, (batch, 1, size, size), generator=gen)
    image = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    return label, instance, image


def test_two_scales_of_feature_lists_ending_in_patch_logits() -> None:
    torch.manual_seed(0)
    disc = MultiscaleDiscriminator(label_nc=14, ndf=8, n_layers=3, num_scales=2, max_ch=32)
    outputs = disc(*inputs())
    assert len(outputs) == 2
    assert [len(features) for features in outputs] == [4, 4]  # n_layers convs + the logit conv
    assert [f.shape[1] for f in outputs[0]] == [8, 16, 32, 1]
    # 4×4 convs with padding 2: 32 -> 17 -> 9 (stride 2), 10, 11 (stride 1); the second scale sees 16×16
    assert outputs[0][-1].shape == (2, 1, 11, 11)
    assert outputs[1][-1].shape == (2, 1, 7, 7)


def test_spectral_norm_on_all_but_first_and_last_conv() -> None:
    disc = build_discriminator(get_preset("spade-tiny"), 14)
    scale = disc.scales[0]
    flags = [parametrize.is_parametrized(layer[0]) for layer in scale.layers]
    assert flags == [False, True, True, False]
    assert disc.use_edges  # follows the generator's edge channel


def test_logits_depend_on_label_map_and_gradients_reach_the_image() -> None:
    torch.manual_seed(0)
    disc = MultiscaleDiscriminator(label_nc=14, ndf=8, n_layers=3, max_ch=32).eval()
    label, instance, image = inputs()
    image.requires_grad_(True)
    logits = disc(label, instance, image)[0][-1]
    other = disc((label + 5) % 14, instance, image)[0][-1]
    assert (logits - other).abs().mean() > 1e-4
    logits.mean().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
