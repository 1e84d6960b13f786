"""CollageGAN's base generator: the pyramid's z and φ shapes, the decoder drawing from φ at any multiple of the size
step, z conditioned on the layout, the photo encoder's ε, noise reaching the picture, configs that do not fit
refused, and the default preset's size and cost at 256²."""

from __future__ import annotations

import pytest
import torch

from models.archs.collage_base import build_discriminator, build_generator, get_preset
from models.flops import count_gmacs, count_params
from models.labels import LANDSCAPE
from models.nets.collage_base import BaseGenerator, ServedGenerator
from models.nets.spade import fit_to_encoder
from models.nets.stylegan import NoiseInjection

N = len(LANDSCAPE)


def tiny(seed: int = 0) -> BaseGenerator:
    torch.manual_seed(seed)
    return build_generator(get_preset("collage-base-tiny"), N)


def layout(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocky random labels and instances (4×4 cells), [B,1,H,W] int64 each."""
    gen = torch.Generator().manual_seed(seed)
    cells = (batch, 1, height // 4, width // 4)
    label = torch.randint(0, N, cells, generator=gen).repeat_interleave(4, 2).repeat_interleave(4, 3)
    instance = torch.randint(0, 3, cells, generator=gen).repeat_interleave(4, 2).repeat_interleave(4, 3)
    return label, instance


def live_noise(generator: BaseGenerator) -> BaseGenerator:
    """Noise strengths (0 at init, as StyleGAN2) set to 0.1, so the noise input matters."""
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, NoiseInjection):
                module.strength.fill_(0.1)
    return generator


def test_the_pyramid_gives_z_from_the_bottom_up_end_and_phi_from_the_top_down_path() -> None:
    g = tiny()
    enc = g.scene.encoder
    assert (enc.first_fpn, enc.phi_factor, enc.size_multiple) == (2, 4, 8)  # levels 32, 16 | 8, 4 (FPN)
    label, instance = layout(2, 32, 32)
    with torch.no_grad():
        mu, logvar, phi = enc(label, instance)
        assert mu.shape == logvar.shape == (2, 8)
        assert phi.shape == (2, 16, 8, 8)  # fpn_channels at the finest FPN level, 32/4
        mu_wide, _, phi_wide = enc(*layout(2, 32, 64))  # any multiple of 8: φ follows, z stays a vector
    assert phi_wide.shape == (2, 16, 8, 16) and mu_wide.shape == (2, 8)


def test_the_decoder_draws_the_picture_from_phi_at_the_label_maps_size() -> None:
    g = tiny()
    assert (g.noise_channels, g.size_multiple, g.z_dim) == (5, 8, 8)  # 3 synthesis levels: 1 + 2·2 noise maps
    for height, width in ((32, 32), (16, 40), (64, 32)):
        label, instance = layout(2, height, width)
        noise = torch.randn(2, 5, height, width)
        with torch.no_grad():
            image, mu, _ = g.scene(label, instance, torch.randn(2, 8), noise)
            served = ServedGenerator(g.scene)(label, instance, torch.randn(2, 8), noise)
        assert image.shape == served.shape == (2, 3, height, width) and mu.shape == (2, 8)
        assert served.abs().max() <= 1.0


def test_z_is_conditioned_on_the_layout_and_eps_moves_it() -> None:
    """z = μ(S, E) + σ(S, E)·ε: another map moves μ (the paper's z depends on the layout), and the same map
    with another ε draws another picture."""
    g = live_noise(tiny())
    label, instance = layout(1, 32, 32, seed=1)
    other, _ = layout(1, 32, 32, seed=2)
    noise = torch.randn(1, 5, 32, 32)
    with torch.no_grad():
        mu_a, _, _ = g.scene.encoder(label, instance)
        mu_b, _, _ = g.scene.encoder(other, instance)
        edges_only, _, _ = g.scene.encoder(label, torch.zeros_like(instance))
        first = g.scene(label, instance, torch.zeros(1, 8), noise)[0]
        second = g.scene(label, instance, torch.randn(1, 8), noise)[0]
    assert (mu_a - mu_b).abs().max() > 1e-4
    assert (mu_a - edges_only).abs().max() > 1e-6  # the instance edges are an input too (cat(S, E))
    assert (first - second).abs().mean() > 1e-3


def test_the_photo_encoder_gives_eps_from_a_photo_of_any_size() -> None:
    g = tiny()
    label, instance = layout(2, 32, 32)
    noise = torch.zeros(2, 5, 32, 32)
    photo = torch.rand(2, 3, 48, 48) * 2 - 1  # resized to the encoder's 32² inside
    with torch.no_grad():
        out = g(label, instance, noise, photo)
        style_mu, _ = g.style(fit_to_encoder(photo, (32, 32)))
        direct = g.scene(label, instance, out.style_mu, noise)[0]
        sampled = g(label, instance, noise, photo, eps=torch.randn(2, 8))
    assert out.style_mu.shape == out.style_logvar.shape == (2, 8)
    assert torch.equal(out.style_mu, style_mu)
    assert torch.equal(out.image, direct)  # eps None: ε = the photo's μ, as the served encoder gives it
    assert not torch.equal(sampled.image, out.image) and torch.equal(sampled.style_mu, out.style_mu)


def test_every_noise_channel_reaches_the_picture() -> None:
    g = live_noise(tiny())
    label, instance = layout(1, 32, 32)
    z, zeros = torch.randn(1, 8), torch.zeros(1, 5, 32, 32)
    with torch.no_grad():
        base = g.scene(label, instance, z, zeros)[0]
        for channel in range(5):
            one = zeros.clone()
            one[:, channel] = 1.0
            assert (g.scene(label, instance, z, one)[0] - base).abs().max() > 1e-4, channel


def test_configs_that_do_not_fit_are_refused() -> None:
    config = get_preset("collage-base-tiny")
    config["decoder"]["widths"] = [16, 8]  # up-samples 2×, but φ is 1/4 of the picture
    with pytest.raises(ValueError, match="give it 3 widths"):
        build_generator(config, N)
    config = get_preset("collage-base-tiny")
    config["encoder"]["fpn_levels"] = 1
    with pytest.raises(ValueError, match="fpn_levels"):
        build_generator(config, N)
    config = get_preset("collage-base-tiny")
    config["style"]["image_size"] = 30
    with pytest.raises(ValueError, match="image_size 30"):
        build_generator(config, N)


def test_the_default_preset_costs_about_what_spade_fast_does_at_256() -> None:
    """collage-base at 256² (on the meta device: counted, not computed): 2.79 GMACs per frame for 1.76 M
    parameters (spade-fast: 2.55 / 2.37 M), ≤ 6 GMACs and well inside the 30 MB file limit."""
    config = get_preset("collage-base")
    with torch.device("meta"):
        g = build_generator(config, N)
        d = build_discriminator(config)
        label = torch.zeros(1, 1, 256, 256, dtype=torch.long)
        inputs = (label, label, torch.zeros(1, 128), torch.zeros(1, g.noise_channels, 256, 256))
        gmacs = count_gmacs(ServedGenerator(g.scene), *inputs)
        style_gmacs = count_gmacs(g.style, torch.zeros(1, 3, 128, 128))
        d_gmacs = count_gmacs(d, torch.zeros(1, 3, 256, 256))
    assert (g.noise_channels, g.size_multiple) == (7, 64)
    assert round(gmacs, 2) == 2.79 and gmacs <= 6.0
    assert count_params(g.scene) == 1_757_612  # the generator graph
    assert count_params(g.style) == 533_968 and round(style_gmacs, 2) == 0.19  # the photo encoder graph
    assert count_params(d) == 3_830_545 and round(d_gmacs, 2) == 1.02
