"""OASIS generator and its N+1 discriminator: shapes, ranges, the 3D noise, the paper's size, the frame budget."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from models.archs.oasis import build_discriminator, build_generator, get_preset
from models.archs.spade import build_generator as build_spade_generator
from models.archs.spade import get_preset as get_spade_preset
from models.flops import count_gmacs, count_params
from models.nets.oasis import OASISGenerator

LANDSCAPE_NC = 14


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny nets run fastest on one thread; two threads spin badly when the shared CPU is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_generator(**overrides: object) -> OASISGenerator:
    torch.manual_seed(0)
    return OASISGenerator(label_nc=LANDSCAPE_NC, **(get_preset("oasis-tiny")["generator"] | overrides)).eval()


def inputs(
    generator: OASISGenerator, batch: int, height: int, width: int, seed: int = 0
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


def test_z_and_per_pixel_noise_both_re_roll_the_picture() -> None:
    generator = tiny_generator()
    label, z, noise = inputs(generator, 1, 32, 32)
    other_z, other_noise = torch.randn_like(z), torch.randn_like(noise)
    with torch.no_grad():
        image = generator(label, z, noise)
        assert torch.equal(image, generator(label, z, noise))  # deterministic: all randomness is an input
        z_change = (generator(label, other_z, noise) - image).abs().mean()
        noise_change = (generator(label, z, other_noise) - image).abs().mean()
    assert z_change > 1e-3 and noise_change > 1e-3, (z_change, noise_change)
    with pytest.raises(ValueError, match="takes 2 noise channels and got none"):
        generator(label, z)
    without = tiny_generator(noise_channels=0)
    assert without(label, z).shape == (1, 3, 32, 32)  # no per-pixel noise input at all


def test_z_enters_as_the_replicated_noise_channels_of_the_paper() -> None:
    """fc(cond) + fc_z(z) equals one conv over cat(cond, z replicated over the picture) whose z-kernels sum to
    fc_z's weights, away from the border (where the concatenated form sees zero padding)."""
    generator = tiny_generator()
    n, z_dim = LANDSCAPE_NC + generator.noise_channels, generator.z_dim
    cond = torch.rand(1, n, 8, 8)
    z = torch.randn(1, z_dim)
    kernels = torch.randn(generator.fc.out_channels, z_dim, 3, 3)
    generator.fc_z.weight.data = kernels.sum((2, 3))
    weight = torch.cat([generator.fc.weight, kernels], dim=1)  # [out, N+C+z_dim, 3, 3]
    replicated = z[:, :, None, None].expand(1, z_dim, 8, 8)
    with torch.no_grad():
        ours = generator.fc(cond) + generator.fc_z(z)[:, :, None, None]
        paper = F.conv2d(torch.cat([cond, replicated], 1), weight, generator.fc.bias, padding=1)
    assert torch.allclose(ours[..., 1:-1, 1:-1], paper[..., 1:-1, 1:-1], atol=1e-5)


def test_discriminator_labels_every_pixel_with_n_plus_one_classes() -> None:
    torch.manual_seed(0)
    disc = build_discriminator(get_preset("oasis-tiny"), LANDSCAPE_NC)
    assert disc(torch.rand(2, 3, 32, 48) * 2 - 1).shape == (2, LANDSCAPE_NC + 1, 32, 48)
    fast = build_discriminator(get_preset("oasis-fast"), LANDSCAPE_NC)
    assert len(fast.down) == 6 and fast.head.out_channels == LANDSCAPE_NC + 1  # 256² -> 4², as the paper


def test_bad_widths_are_refused() -> None:
    with pytest.raises(ValueError, match="nhidden needs 4 values"):
        tiny_generator(nhidden=[8, 8])
    with pytest.raises(ValueError, match="channel_mult needs 5 values"):
        tiny_generator(channel_mult=[4, 2, 1])


def test_oasis_paper_parameter_count_matches_the_paper() -> None:
    """71.1 M (DP-GAN table, Cityscapes: 35 labels + the instance-edge channel). The paper concatenates its 64
    noise channels to the label map, so they are counted here as per-pixel noise channels, without our linear z
    maps (which replace exactly those channels)."""
    config = get_preset("oasis-paper")
    with torch.device("meta"):
        generator = OASISGenerator(label_nc=36, **(config["generator"] | {"noise_channels": 64}))
    z_maps = count_params(generator.fc_z) + sum(
        count_params(m.mlp_z) for m in generator.modules() if getattr(m, "mlp_z", None) is not None
    )
    assert abs((count_params(generator) - z_maps) / 1e6 - 71.1) / 71.1 < 0.005  # seen: 71.14 M


def test_oasis_fast_costs_what_spade_fast_costs() -> None:
    with torch.device("meta"):
        generator = build_generator(get_preset("oasis-fast"), LANDSCAPE_NC)
        spade = build_spade_generator(get_spade_preset("spade-fast"), LANDSCAPE_NC)
        label = torch.zeros(1, 1, 256, 256, dtype=torch.long)  # [1,1,H,W]
        z = torch.zeros(1, generator.z_dim)
        noise = torch.zeros(1, generator.noise_channels, 256, 256)
        gmacs = count_gmacs(generator, label, z, noise)
        spade_gmacs = count_gmacs(spade, label, label, torch.zeros(1, spade.z_dim))
    assert 0.8 * spade_gmacs < gmacs < 1.2 * spade_gmacs  # seen: 2.64 vs 2.55 GMACs per 256² frame
    assert count_params(generator) < 4_000_000  # 2–4 M params per served network; seen: 1.97 M
    assert generator.z_dim == 64 and generator.noise_channels == 4
