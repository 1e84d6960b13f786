"""CollageGAN's class generator: shapes of the encoder, crop and decoder; the torch feature crop is the numpy
slice the server takes; z depends on the context; sizes that do not fit are refused; the served preset's size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.archs.collage_class import build_discriminator, build_generator, get_preset
from models.flops import count_params
from models.labels import LANDSCAPE
from models.nets.collage import ClassGenerator, feature_crop

N = len(LANDSCAPE)


def crop_inputs(batch: int, side: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random (context, labels, mask, valid) at side², an instance in the central half."""
    gen = torch.Generator().manual_seed(seed)
    context = torch.rand(batch, 3, side, side, generator=gen) * 2 - 1
    labels = torch.randint(0, N, (batch, 1, side, side), generator=gen)
    mask = torch.zeros(batch, 1, side, side)
    mask[:, :, side // 4 + 1 : 3 * side // 4 - 1, side // 4 + 2 : 3 * side // 4 - 2] = 1.0
    valid = torch.ones(batch, 1, side, side)
    valid[:, :, :, : side // 8] = 0.0  # the context box leaves the picture on the left
    return context, labels, mask, valid


def tiny() -> ClassGenerator:
    torch.manual_seed(0)
    return build_generator(get_preset("collage-class-tiny"), N)


def test_shapes_through_encoder_crop_and_decoder() -> None:
    g = tiny()
    assert (g.context_size, g.target_size, g.noise_channels, g.z_dim) == (32, 16, 3, 8)
    inputs = crop_inputs(2, 32)
    with torch.no_grad():
        mu, logvar, phi_prime = g.encoder(*inputs)
        assert mu.shape == logvar.shape == (2, 8)
        assert phi_prime.shape == (2, 16, 16, 16)  # fpn_channels at the finest FPN level, 32/2
        phi = feature_crop(phi_prime)
        assert phi.shape == (2, 16, 8, 8)
        image = g.decoder(phi, mu, torch.randn(2, 3, 16, 16))
        assert image.shape == (2, 3, 16, 16)
        joined, mu2, _ = g(*inputs, torch.randn(2, 3, 16, 16), eps=torch.randn(2, 8))
    assert joined.shape == (2, 3, 16, 16) and torch.equal(mu2, mu)


def test_feature_crop_is_the_servers_numpy_slice() -> None:
    g = tiny()
    with torch.no_grad():
        _, _, phi_prime = g.encoder(*crop_inputs(2, 32, seed=1))
    array = phi_prime.numpy()  # what the exported encoder hands the server
    side = array.shape[-1]
    np.testing.assert_array_equal(
        feature_crop(phi_prime).numpy(), array[:, :, side // 4 : 3 * side // 4, side // 4 : 3 * side // 4]
    )
    with pytest.raises(ValueError, match="multiple of 4"):
        feature_crop(torch.zeros(1, 2, 6, 6))


def test_decoding_the_numpy_crop_gives_the_generators_picture() -> None:
    """The served path (encoder graph → numpy slice → decoder graph) is the trained one."""
    g = tiny()
    inputs, noise = crop_inputs(2, 32, seed=2), torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        joined, mu, _ = g(*inputs, noise)
        _, _, phi_prime = g.encoder(*inputs)
        q = phi_prime.shape[-1] // 4
        phi = torch.from_numpy(phi_prime.numpy()[:, :, q : 3 * q, q : 3 * q].copy())
        assert torch.equal(g.decoder(phi, mu, noise), joined)


def test_z_depends_on_the_context() -> None:
    g = tiny()
    context, labels, mask, valid = crop_inputs(1, 32, seed=3)
    with torch.no_grad():
        mu_a, _, _ = g.encoder(context, labels, mask, valid)
        mu_b, _, _ = g.encoder(-context, labels, mask, valid)
    assert not torch.allclose(mu_a, mu_b)


def test_a_decoder_that_misses_the_box_size_is_refused() -> None:
    config = get_preset("collage-class-tiny")
    config["decoder"]["widths"] = [16, 8, 8]  # 8 -> 32, but the box of a 32² context is 16²
    with pytest.raises(ValueError, match=r"draws 32² from φ 8².*use 2 decoder widths"):
        build_generator(config, N)


def test_served_preset_fits_the_weight_budget() -> None:
    """models.md §0.1: 2–4 M parameters per served network; the class model is encoder + decoder."""
    config = get_preset("collage-class")
    with torch.device("meta"):
        g, d = build_generator(config, N), build_discriminator(config)
    assert (g.context_size, g.target_size) == (64, 32)
    assert 1_000_000 < count_params(g) < 3_000_000
    assert count_params(d) < 3_000_000
