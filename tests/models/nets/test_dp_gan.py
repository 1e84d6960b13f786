"""DP-GAN's dual-pyramid generator and its three-level discriminator: shapes, ranges, how the pyramids meet, the
3D noise, the paper's size, the frame budget."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from models.archs.dp_gan import build_discriminator, build_generator, get_preset
from models.archs.oasis import build_generator as build_oasis_generator
from models.archs.oasis import get_preset as get_oasis_preset
from models.flops import count_gmacs, count_params
from models.nets.blocks import downsample_nearest
from models.nets.dp_gan import DPDiscriminator, DPGenerator

LANDSCAPE_NC = 14


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny nets run fastest on one thread; two threads spin badly when the shared CPU is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_generator(**overrides: object) -> DPGenerator:
    torch.manual_seed(0)
    return DPGenerator(label_nc=LANDSCAPE_NC, **(get_preset("dp-gan-tiny")["generator"] | overrides)).eval()


def inputs(
    generator: DPGenerator, batch: int, height: int, width: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blocky labels [B,1,H,W] (4×4 cells), z [B,z_dim] and per-pixel noise [B,C,H,W]."""
    gen = torch.Generator().manual_seed(seed)
    label = torch.randint(0, LANDSCAPE_NC, (batch, 1, height // 4, width // 4), generator=gen)
    label = label.repeat_interleave(4, 2).repeat_interleave(4, 3)
    z = torch.randn(batch, generator.z_dim, generator=gen)
    return label, z, torch.randn(batch, generator.noise_channels, height, width, generator=gen)


def test_generator_shapes_range_and_dynamic_size() -> None:
    generator = tiny_generator()
    for batch, height, width in [(2, 32, 32), (1, 16, 40)]:
        with torch.no_grad():
            image = generator(*inputs(generator, batch, height, width))
        assert image.shape == (batch, 3, height, width)
        assert image.min() >= -1 and image.max() <= 1 and image.std() > 0.01


def test_each_block_sees_its_pyramid_level_beside_the_coarsest() -> None:
    """α_0 … α_3 go from 4² to 32² (tiny: 8 channels each); block 0 is conditioned on α_0 alone, block j on
    cat(α_j, bilinear Up(α_0)) (paper eq. 2)."""
    generator = tiny_generator()
    label, z, noise = inputs(generator, 2, 32, 32)
    cond = torch.cat([F.one_hot(label[:, 0], LANDSCAPE_NC).permute(0, 3, 1, 2).float(), noise], 1)
    with torch.no_grad():
        alphas = generator.pyramid(cond, z)
    assert [tuple(a.shape) for a in alphas] == [(2, 8, 4, 4), (2, 8, 8, 8), (2, 8, 16, 16), (2, 8, 32, 32)]
    seen: list[torch.Tensor] = []
    hooks = [b.register_forward_pre_hook(lambda _, args: seen.append(args[1])) for b in generator.blocks]
    with torch.no_grad():
        generator(label, z, noise)
    for hook in hooks:
        hook.remove()
    assert torch.equal(seen[0], alphas[0])
    for j in range(1, 4):
        up = F.interpolate(alphas[0], size=alphas[j].shape[-2:], mode="bilinear", align_corners=False)
        assert torch.allclose(seen[j], torch.cat([alphas[j], up], 1), atol=1e-6), j


def test_a_small_object_reaches_the_coarsest_block() -> None:
    """A 2×2 object off the 8-pixel grid vanishes from the 4² label map an OASIS block sees at the start, but the
    adaptation pyramid, learnt from the full-resolution map, carries it into α_0 (the paper's small objects)."""
    generator = tiny_generator()
    label, z, noise = inputs(generator, 1, 32, 32)
    label[:] = 0
    dotted = label.clone()
    dotted[..., 13:15, 21:23] = 9  # a house of four pixels, none on the stride-8 grid
    conds = [
        torch.cat([F.one_hot(m[:, 0], LANDSCAPE_NC).permute(0, 3, 1, 2).float(), noise], 1)
        for m in (label, dotted)
    ]
    assert torch.equal(downsample_nearest(conds[0], 8), downsample_nearest(conds[1], 8))
    with torch.no_grad():
        alpha_0 = [generator.pyramid(c, z)[0] for c in conds]  # [1,8,4,4] each
    assert (alpha_0[0] - alpha_0[1]).abs().max() > 1e-3


def test_z_and_per_pixel_noise_both_re_roll_the_picture() -> None:
    generator = tiny_generator()
    label, z, noise = inputs(generator, 1, 32, 32)
    with torch.no_grad():
        image = generator(label, z, noise)
        assert torch.equal(image, generator(label, z, noise))  # deterministic: all randomness is an input
        z_change = (generator(label, torch.randn_like(z), noise) - image).abs().mean()
        noise_change = (generator(label, z, torch.randn_like(noise)) - image).abs().mean()
    assert z_change > 1e-3 and noise_change > 1e-3, (z_change, noise_change)
    with pytest.raises(ValueError, match="takes 2 noise channels and got none"):
        generator(label, z)
    without = tiny_generator(noise_channels=0)
    assert without(label, z).shape == (1, 3, 32, 32)  # no per-pixel noise input at all


def test_z_enters_the_pyramid_as_the_replicated_noise_channels_of_the_paper() -> None:
    """stem(cond) + stem_z(z) equals one conv over cat(cond, z replicated over the picture) whose z-kernels sum to
    stem_z's weights, away from the border (where the concatenated form sees zero padding)."""
    pyramid = tiny_generator().pyramid
    n, z_dim = LANDSCAPE_NC + 2, 8
    cond, z = torch.rand(1, n, 8, 8), torch.randn(1, z_dim)
    kernels = torch.randn(pyramid.stem.out_channels, z_dim, 3, 3)
    pyramid.stem_z.weight.data = kernels.sum((2, 3))
    weight = torch.cat([pyramid.stem.weight, kernels], dim=1)  # [out, N+C+z_dim, 3, 3]
    replicated = z[:, :, None, None].expand(1, z_dim, 8, 8)
    with torch.no_grad():
        ours = pyramid.stem(cond) + pyramid.stem_z(z)[:, :, None, None]
        paper = F.conv2d(torch.cat([cond, replicated], 1), weight, pyramid.stem.bias, padding=1)
    assert torch.allclose(ours[..., 1:-1, 1:-1], paper[..., 1:-1, 1:-1], atol=1e-5)


def test_discriminator_gives_pixel_patch_and_feature_outputs() -> None:
    """Tiny (32², three encoder blocks): N+1 logits per pixel, patch scores from blocks 2 (8²) and 3 (4²) at half
    their size, the decoder's second block (16²). The 256² presets, shapes only (meta device): heads on the 4th
    (16²) and 6th (4²) blocks as the paper, four decoder maps (16² … 128²)."""
    torch.manual_seed(0)
    disc = build_discriminator(get_preset("dp-gan-tiny"), LANDSCAPE_NC)
    logits, scores, feats = disc(torch.rand(2, 3, 32, 48) * 2 - 1)
    assert logits.shape == (2, LANDSCAPE_NC + 1, 32, 48)
    assert [tuple(s.shape) for s in scores] == [(2, 1, 4, 6), (2, 1, 2, 3)]
    assert [tuple(f.shape) for f in feats] == [(2, 8, 16, 24)]
    for preset, channels in (("dp-gan-fast", (128, 64, 32, 16)), ("dp-gan-paper", (256, 256, 128, 128))):
        with torch.device("meta"):
            disc = build_discriminator(get_preset(preset), LANDSCAPE_NC)
            logits, scores, feats = disc(torch.zeros(1, 3, 256, 256))
        assert logits.shape == (1, LANDSCAPE_NC + 1, 256, 256)
        assert [tuple(s.shape) for s in scores] == [(1, 1, 8, 8), (1, 1, 2, 2)]
        assert [tuple(f.shape) for f in feats] == [
            (1, c, s, s) for c, s in zip(channels, (16, 32, 64, 128), strict=True)
        ]


def test_patch_heads_norms_and_bad_settings_are_refused() -> None:
    paper = build_discriminator(get_preset("dp-gan-paper"), LANDSCAPE_NC)  # BatchNorm heads, as released
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in paper.patch_heads.modules()) == 6
    fast = build_discriminator(get_preset("dp-gan-fast"), LANDSCAPE_NC)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    with pytest.raises(ValueError, match="patch_at must name encoder blocks 1 … 3"):
        DPDiscriminator(LANDSCAPE_NC, widths=[8, 16, 16], patch_at=[2, 4])
    with pytest.raises(ValueError, match="patch_norm must be 'batch' or 'spectral'"):
        DPDiscriminator(LANDSCAPE_NC, widths=[8, 16, 16], patch_at=[3], patch_norm="instance")
    with pytest.raises(ValueError, match="pyramid_widths needs 4 values"):
        tiny_generator(pyramid_widths=[8, 8])
    with pytest.raises(ValueError, match="channel_mult needs 5 values"):
        tiny_generator(channel_mult=[4, 2, 1])


def test_dp_gan_paper_parameter_count_matches_the_paper() -> None:
    """69.5 M (paper supp. Table 5; Cityscapes, 35 labels). The paper concatenates its 64 noise channels to the
    label map, so they are counted as per-pixel noise channels, without our linear z maps (which replace exactly
    those channels); and the released code's coarsest SPADEs see cat(α_0, α_0), whose second copy's kernels are
    added back."""
    config = get_preset("dp-gan-paper")
    with torch.device("meta"):
        generator = DPGenerator(label_nc=35, **(config["generator"] | {"noise_channels": 64}))
    z_maps = count_params(generator.fc_z) + count_params(generator.pyramid.stem_z)
    first = generator.blocks[0]
    second_copy = sum(
        s.mlp_gamma.weight.numel() + s.mlp_beta.weight.numel() for s in (first.norm_0, first.norm_1)
    )
    count = count_params(generator) - z_maps + second_copy
    assert abs(count / 1e6 - 69.5) / 69.5 < 0.005, count  # seen: 69.51 M


def test_dp_gan_fast_stays_within_the_frame_budget() -> None:
    with torch.device("meta"):
        generator = build_generator(get_preset("dp-gan-fast"), LANDSCAPE_NC)
        oasis = build_oasis_generator(get_oasis_preset("oasis-fast"), LANDSCAPE_NC)
        label = torch.zeros(1, 1, 256, 256, dtype=torch.long)  # [1,1,H,W]
        z = torch.zeros(1, generator.z_dim)
        noise = torch.zeros(1, generator.noise_channels, 256, 256)
        gmacs = count_gmacs(generator, label, z, noise)
        oasis_gmacs = count_gmacs(oasis, label, z, noise)
    assert gmacs <= 6.0 and gmacs < 1.5 * oasis_gmacs  # seen: 3.57 vs oasis-fast 2.64 GMACs per 256² frame
    assert count_params(generator) < 4_000_000  # 2–4 M params per served network; seen: 1.36 M
    assert generator.z_dim == 64 and generator.noise_channels == 4
