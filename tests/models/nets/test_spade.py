"""SPADE generator, encoder and shared blocks: shapes, ranges, determinism, paper parameter counts, GMACs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.archs.spade import build_encoder, build_generator, get_preset
from models.flops import count_gmacs, count_params
from models.nets.blocks import SPADEResBlock, downsample_nearest, instance_edges, one_hot
from models.nets.spade import ConvEncoder, SPADEGenerator, fit_to_encoder

LANDSCAPE_NC = 14


def tiny_generator(**overrides: object) -> SPADEGenerator:
    kwargs = get_preset("spade-tiny")["generator"] | overrides
    torch.manual_seed(0)
    return SPADEGenerator(label_nc=LANDSCAPE_NC, **kwargs).eval()


def blocky_inputs(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    label = torch.randint(0, LANDSCAPE_NC, (batch, 1, height // 4, width // 4), generator=gen)
    instance = torch.randint(0, 3, (batch, 1, height // 4, width // 4), generator=gen)
    up = lambda t: t.repeat_interleave(4, 2).repeat_interleave(4, 3)  # noqa: E731
    return up(label), up(instance)


def test_one_hot_matches_torch_and_zeroes_unknown_ids() -> None:
    label = torch.tensor([[[[0, 3], [13, 14]]]])  # [1,1,2,2]; 14 is outside a 14-class set
    encoded = one_hot(label, LANDSCAPE_NC)
    assert encoded.shape == (1, 14, 2, 2) and encoded.dtype == torch.float32
    assert torch.equal(encoded[0, :, 0, 0], F.one_hot(torch.tensor(0), 14).float())
    assert torch.equal(encoded[0, :, 1, 0], F.one_hot(torch.tensor(13), 14).float())
    assert encoded[0, :, 1, 1].sum() == 0


def test_instance_edges_marks_both_sides_of_every_boundary() -> None:
    label = torch.zeros(1, 1, 4, 5, dtype=torch.long)
    instance = torch.zeros_like(label)
    label[..., :, 3:] = 2  # class boundary between columns 2 and 3
    instance[..., 2:, :2] = 1  # an instance in the bottom-left corner, same class as its surroundings
    edges = instance_edges(label, instance)[0, 0]
    expected = torch.tensor(
        [
            [0, 0, 1, 1, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 0],
            [0, 1, 1, 1, 0],
        ],
        dtype=torch.float32,
    )
    assert torch.equal(edges, expected)


def test_strided_downsampling_equals_nearest_interpolation() -> None:
    seg = torch.rand(2, 5, 32, 48)
    for factor in (1, 2, 8):
        expected = F.interpolate(seg, size=(32 // factor, 48 // factor), mode="nearest")
        assert torch.equal(downsample_nearest(seg, factor), expected)


def test_generator_shapes_range_and_dynamic_size() -> None:
    generator = tiny_generator()
    for batch, height, width in [(2, 32, 32), (1, 16, 40)]:
        label, instance = blocky_inputs(batch, height, width)
        with torch.no_grad():
            image = generator(label, instance, torch.randn(batch, generator.z_dim))
        assert image.shape == (batch, 3, height, width)
        assert image.min() >= -1 and image.max() <= 1
        assert image.std() > 0.01  # not a constant picture


def test_same_z_same_image_different_z_different_image() -> None:
    generator = tiny_generator()
    label, instance = blocky_inputs(1, 32, 32)
    z = torch.randn(1, generator.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        first = generator(label, instance, z)
        again = generator(label, instance, z.clone())
        other = generator(label, instance, z + 1.0)
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 1e-3


def test_label_map_and_edges_change_the_picture() -> None:
    generator = tiny_generator()
    label, instance = blocky_inputs(1, 32, 32)
    z = torch.zeros(1, generator.z_dim)
    with torch.no_grad():
        base = generator(label, instance, z)
        relabelled = generator((label + 1) % LANDSCAPE_NC, instance, z)
        split = instance.clone()
        split[..., 1:7, 1:3] = 7  # a new instance inside 4×4 blocks: new edges, same labels
        new_instances = generator(label, split, z)
    assert (base - relabelled).abs().mean() > 1e-3
    assert (base - new_instances).abs().mean() > 1e-4  # only the edge channel differs


def test_generator_rejects_wrong_per_block_widths() -> None:
    with pytest.raises(ValueError, match="nhidden needs 5 values"):
        tiny_generator(nhidden=[8, 8])
    with pytest.raises(ValueError, match="channel_mult needs 4 values"):
        tiny_generator(channel_mult=[1, 1])


def test_shortcut_reuses_first_spade_hidden_features() -> None:
    shared = SPADEResBlock(16, 8, label_nc=5, nhidden=4, share_shortcut_hidden=True)
    own = SPADEResBlock(16, 8, label_nc=5, nhidden=4, share_shortcut_hidden=False)
    assert shared.norm_s.mlp_shared is None and own.norm_s.mlp_shared is not None
    hidden_conv = 5 * 4 * 9 + 4
    assert count_params(own) - count_params(shared) == hidden_conv
    out = shared(torch.randn(2, 16, 8, 8), torch.rand(2, 5, 8, 8))
    assert out.shape == (2, 8, 8, 8)


def test_encoder_maps_an_image_to_mu_and_logvar() -> None:
    config = get_preset("spade-tiny")
    encoder = build_encoder(config).eval()
    image = torch.rand(3, 3, 32, 32) * 2 - 1
    mu, logvar = encoder(image)
    z_dim = config["generator"]["z_dim"]
    assert mu.shape == (3, z_dim) and logvar.shape == (3, z_dim)
    assert not torch.allclose(mu[0], mu[1])
    with pytest.raises(ValueError, match="encoder expects"):
        encoder(torch.zeros(1, 3, 64, 64))


def test_encoder_size_is_a_preset_setting_apart_from_the_training_size() -> None:
    fast = get_preset("spade-fast")
    assert fast["size"] == 256 and build_encoder(fast).image_size == (128, 128)
    assert build_encoder(get_preset("spade-paper")).image_size == (256, 256)
    assert build_encoder(get_preset("spade-tiny")).image_size == (32, 32)
    # Configs written before the setting existed: the encoder works at the training size, as it did then.
    old = fast | {"size": 128, "encoder": {k: v for k, v in fast["encoder"].items() if k != "image_size"}}
    assert build_encoder(old).image_size == (128, 128)
    build_encoder(fast).load_state_dict(
        build_encoder(old).state_dict()
    )  # strict: a 128² run's E fits a 256² run


def test_fit_to_encoder_resizes_without_aliasing() -> None:
    image = torch.rand(2, 3, 16, 16)
    assert fit_to_encoder(image, (16, 16)) is image  # already the encoder's size: untouched
    # A one-pixel ±1 checkerboard shrunk 3×: plain sampling picks one pixel per cell and keeps ±1 (aliasing);
    # an antialiased resize averages each 3×3 neighbourhood towards 0.
    checker = (torch.arange(48)[:, None] + torch.arange(48)[None]) % 2 * 2.0 - 1  # [48,48]
    checker = checker.expand(1, 3, 48, 48)
    assert F.interpolate(checker, size=(16, 16), mode="nearest").abs().min() == 1
    small = fit_to_encoder(checker, (16, 16))
    assert small.shape == (1, 3, 16, 16) and small.abs().max() < 0.5
    flat = torch.full((1, 3, 40, 24), 0.25)  # any size, either direction, keeps flat colours
    assert torch.allclose(fit_to_encoder(flat, (16, 32)), torch.full((1, 3, 16, 32), 0.25))


def test_encoder_paper_layout_ends_at_4x4_with_512_channels() -> None:
    with torch.device("meta"):
        encoder = ConvEncoder(256)
    assert encoder.fc_mu.in_features == 512 * 4 * 4 and encoder.fc_mu.out_features == 256


@pytest.mark.parametrize(
    ("label_nc", "reported_m"),
    [
        (151, 96.5),
        (36, 93.0),
    ],  # ADE20K 150 + "unlabeled" (SPADE Table 4); Cityscapes 35 + edges (DP-GAN table)
)
def test_spade_paper_parameter_count_matches_the_paper(label_nc: int, reported_m: float) -> None:
    """The reported counts are of the generator with label-map input (no VAE fc layer) and no edge channel."""
    config = get_preset("spade-paper")
    with torch.device("meta"):
        generator = SPADEGenerator(label_nc=label_nc, **(config["generator"] | {"use_edges": False}))
    z_layers = sum(
        count_params(m.mlp_z) for m in generator.modules() if getattr(m, "mlp_z", None) is not None
    )
    assert z_layers == 18 * (256 * 128 + 128)  # one z -> hidden map per SPADE with its own hidden conv
    without_z = count_params(generator) - z_layers
    assert abs(without_z / 1e6 - reported_m) / reported_m < 0.005
    assert abs(count_params(generator) / 1e6 - reported_m) / reported_m < 0.01  # z adds 0.59 M


def test_spade_fast_fits_the_frame_budget() -> None:
    with torch.device("meta"):
        generator = build_generator(get_preset("spade-fast"), LANDSCAPE_NC)
        label = torch.zeros(1, 1, 256, 256, dtype=torch.long)  # [1,1,H,W], also the instance map
        z = torch.zeros(1, generator.z_dim)
    gmacs = count_gmacs(generator, label, label, z)
    assert 1.0 < gmacs <= 5.0
    assert count_params(generator) < 4_000_000  # 2–4 M params per served network (the design budget)
    assert generator.z_dim == 64 and generator.use_edges


def test_noise_varies_the_picture_and_starts_as_the_generator_without_it() -> None:
    """Per-pixel noise in every SPADE: its convs start at zero, so the generator is the one without noise with
    the same weights (exactly); once they are not zero, other noise gives another picture, the same noise the
    same one; a generator with noise refuses to run without it."""
    plain = tiny_generator()
    noisy = tiny_generator(noise_channels=2)
    noise_weights = {k for k in noisy.state_dict() if "mlp_noise" in k}
    assert noise_weights and set(noisy.state_dict()) - noise_weights == set(plain.state_dict())
    noisy.load_state_dict(plain.state_dict() | {k: noisy.state_dict()[k] for k in noise_weights})
    label, instance = blocky_inputs(1, 32, 32)
    z = torch.randn(1, plain.z_dim, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(noisy(label, instance, z, noise), plain(label, instance, z))
        for name in noise_weights:
            noisy.state_dict()[name].normal_(0.0, 0.3)
        first = noisy(label, instance, z, noise)
        assert torch.equal(first, noisy(label, instance, z, noise.clone()))
        assert (first - noisy(label, instance, z, torch.randn_like(noise))).abs().mean() > 1e-3
    with pytest.raises(ValueError, match="takes 2 noise channels and got none"):
        noisy(label, instance, z)
