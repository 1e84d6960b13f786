"""SC-GAN generator: shapes and ranges, SCC against the paper's eq. 4 computed literally, SCN's properties, the
semantic vectors against the repo's channel pooling, the label pyramid, the parameter count of the released
config and the compact preset's frame budget."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from models.archs.sc_gan import build_generator, get_preset
from models.flops import count_gmacs, count_params
from models.nets.blocks import semantic_input
from models.nets.sc_gan import SCC, SCN, SCGANGenerator, SCGANOutputs, SemanticVectors

LANDSCAPE_NC = 14

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny nets run fastest on one thread (as tests/models/archs/conftest.py's fixture of the same name)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_generator(**overrides: object) -> SCGANGenerator:
    kwargs = get_preset("sc-gan-tiny")["generator"] | overrides
    torch.manual_seed(0)
    return SCGANGenerator(label_nc=LANDSCAPE_NC, **kwargs).eval()


def blocky_inputs(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Label and instance ids [B,1,H,W] constant over 4×4 cells, so every class shows up in a few regions."""
    gen = torch.Generator().manual_seed(seed)
    label = torch.randint(0, LANDSCAPE_NC, (batch, 1, height // 4, width // 4), generator=gen)
    instance = torch.randint(0, 3, (batch, 1, height // 4, width // 4), generator=gen)
    up = lambda t: t.repeat_interleave(4, 2).repeat_interleave(4, 3)  # noqa: E731
    return up(label), up(instance)


def per_pixel_kernel_conv(x: torch.Tensor, vectors: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Eq. 4 as written: at every pixel p build the kernel Σ_i V_i(p)·k_i and apply it to p's neighbourhood.
    x [B,fin,H,W], vectors [B,n,H,W], kernels [n,fout,fin,k,k] -> [B,fout,H,W] (zero padding, stride 1)."""
    batch, _, height, width = x.shape
    k = kernels.shape[-1]
    patches = F.unfold(x, k, padding=k // 2)  # [B,fin·k·k,H·W]
    per_pixel = torch.einsum("bnp,nof->bpof", vectors.flatten(2), kernels.flatten(2))  # [B,H·W,fout,fin·k·k]
    out = torch.einsum("bpof,bfp->bop", per_pixel, patches)  # [B,fout,H·W]
    return out.view(batch, -1, height, width)


# ----------------------------------------------------------------------------
# The operators.


def test_scc_equals_the_per_pixel_kernels_of_eq_4() -> None:
    """One stacked conv + a per-pixel weighted sum is exactly the spatially varying kernel Σ_i V_i(p)·k_i."""
    torch.manual_seed(0)
    scc = SCC(fin=5, fout=7, num_candidates=3, kernel_size=3).eval()  # spectral norm: eval uses stored u, v
    x = torch.randn(2, 5, 9, 11)
    vectors = torch.softmax(torch.randn(2, 3, 9, 11) * 3, dim=1)  # far from uniform
    with torch.no_grad():
        kernels = torch.stack([conv.weight for conv in scc.candidates])  # [3,7,5,3,3], spectrally normalised
        got = scc(x, vectors)
        expected = per_pixel_kernel_conv(x, vectors, kernels)
        one_hot = F.one_hot(torch.randint(0, 3, (2, 9, 11)), 3).permute(0, 3, 1, 2).float()  # [2,3,9,11]
        picked = scc(x, one_hot)
        plain = torch.stack([F.conv2d(x, k, padding=1) for k in kernels])  # [3,2,7,9,11]: each candidate
    assert got.shape == (2, 7, 9, 11)
    diff = float((got - expected).abs().max())
    assert diff < 1e-5, diff  # seen: 7.2e-7
    chosen = (plain * one_hot.permute(1, 0, 2, 3)[:, :, None]).sum(0)  # each pixel's own candidate
    assert float((picked - chosen).abs().max()) < 1e-5  # a one-hot vector selects its candidate's plain conv


def test_scn_is_the_parameter_free_norm_until_trained_then_mixes_its_candidates() -> None:
    torch.manual_seed(0)
    scn = SCN(channels=6, num_candidates=4)
    x = torch.randn(2, 6, 8, 8) * 3 + 1
    vectors = torch.softmax(torch.randn(2, 4, 8, 8) * 3, dim=1)
    normed = F.instance_norm(x)
    assert torch.allclose(scn(x, vectors), normed, atol=1e-6)  # zero-initialised candidates: identity affine

    with torch.no_grad():
        scn.candidates.weight.normal_()
    s, m = scn.candidates.weight[:6, :, 0, 0], scn.candidates.weight[6:, :, 0, 0]  # [C,n] scales, shifts
    with torch.no_grad():
        out = scn(x, vectors)
        # the paper's eq. 5: scale candidates s'_i = 1 + s_i (initialised to 1), no "1 +" outside; equal since ΣV = 1
        scale = torch.einsum("bnhw,cn->bchw", vectors, 1 + s)
        shift = torch.einsum("bnhw,cn->bchw", vectors, m)
        assert torch.allclose(out, normed * scale + shift, atol=1e-5)
        # a pixel whose vector is one-hot on candidate i gets exactly that candidate's scale and shift
        one_hot = torch.zeros(2, 4, 8, 8)
        one_hot[:, 2] = 1
        candidate_2 = normed * (1 + s[:, 2, None, None]) + m[:, 2, None, None]
        assert torch.allclose(scn(x, one_hot), candidate_2, atol=1e-5)
        # and like any normalisation it ignores a per-channel affine change of its input
        gain, offset = torch.rand(1, 6, 1, 1) + 0.5, torch.randn(1, 6, 1, 1)
        assert torch.allclose(scn(x * gain + offset, vectors), out, atol=1e-4)


def test_semantic_vectors_pool_channel_groups_as_the_repo_then_softmax() -> None:
    """Channel bins of PyTorch's adaptive average pooling (the repo pools along channels), then softmax(τ·v); the
    bins overlap when n does not divide C (16 channels into 3)."""
    torch.manual_seed(0)
    features = torch.randn(2, 16, 5, 7) * 10
    conv, norm = SemanticVectors(16, num_conv=3, num_norm=4, temperature=0.05)(features)
    for got, n in ((conv, 3), (norm, 4)):
        pooled = F.adaptive_avg_pool3d(features[:, None], (n, 5, 7))[:, 0]  # [2,n,5,7]
        assert torch.allclose(got, torch.softmax(0.05 * pooled, dim=1), atol=1e-6)
        assert got.shape == (2, n, 5, 7) and torch.allclose(got.sum(1), torch.ones(2, 5, 7))


def test_the_label_pyramid_is_the_repos_repeated_bilinear_halving() -> None:
    label, instance = blocky_inputs(1, 32, 32)
    label[..., 5, 7] = 3  # a one-pixel region, so the pooling has something to average
    seg = semantic_input(label, instance, LANDSCAPE_NC, True)  # [1,15,32,32]
    halved = seg
    for _ in range(3):
        halved = F.interpolate(halved, scale_factor=0.5, mode="bilinear", align_corners=False)
    assert torch.allclose(F.avg_pool2d(seg, 8), halved, atol=1e-6)


# ----------------------------------------------------------------------------
# The generator.


def test_every_part_has_its_shape_and_range() -> None:
    generator = tiny_generator()
    label, instance = blocky_inputs(2, 32, 32)
    seg = semantic_input(label, instance, LANDSCAPE_NC, True)
    with torch.no_grad():
        conv_vectors, norm_vectors, features = generator.svg(seg)
        out = generator(label, instance, details=True)
        image = generator(label, instance)
    assert [tuple(v.shape) for v in conv_vectors] == [(2, 3, s, s) for s in (4, 8, 16, 32)]
    assert [tuple(v.shape) for v in norm_vectors] == [(2, 4, s, s) for s in (4, 8, 16, 32)]
    for v in conv_vectors + norm_vectors:
        assert v.min() >= 0 and v.max() <= 1 and float((v.sum(1) - 1).abs().max()) < 1e-6
    assert features.shape == (2, 8, 32, 32)  # nrf 8 × svg_mult 1 at full resolution
    assert isinstance(out, SCGANOutputs) and torch.equal(out.image, image)
    assert out.svg_image.shape == out.image.shape == (2, 3, 32, 32)
    assert torch.equal(out.vectors, conv_vectors[-1])
    for picture in (out.image, out.svg_image):
        assert picture.min() >= -1 and picture.max() <= 1 and picture.std() > 0.01


def test_any_multiple_of_the_start_grid_and_labels_and_edges_matter() -> None:
    generator = tiny_generator()
    assert generator.size_multiple == 8
    label, instance = blocky_inputs(1, 16, 40)
    with torch.no_grad():
        base = generator(label, instance)
        relabelled = generator((label + 1) % LANDSCAPE_NC, instance)
        split = instance.clone()
        split[..., 1:7, 1:3] = 7  # new instance edges inside 4×4 cells, same labels
        new_instances = generator(label, split)
    assert base.shape == (1, 3, 16, 40)
    assert (base - relabelled).abs().mean() > 1e-3
    assert (base - new_instances).abs().mean() > 1e-5  # only the edge channel differs


def test_configs_the_generator_cannot_build_are_refused() -> None:
    with pytest.raises(ValueError, match="nhidden needs 5 values"):
        tiny_generator(nhidden=[8, 8])
    with pytest.raises(ValueError, match="svg_mult needs 4 values"):
        tiny_generator(svg_mult=[2, 1])
    with pytest.raises(ValueError, match="SVG widths must be ≥ 2"):
        tiny_generator(nrf=1)


def test_sc_gan_paper_parameter_count() -> None:
    """The released ADE20K config (151 label channels, no edges): 60.85 M. The paper's 66.2 M names no config;
    most of ours are G_R's 512-channel SCCs (three candidates each), G_V is 6.13 M."""
    config = get_preset("sc-gan-paper")
    with torch.device("meta"):
        generator = build_generator(config, 151)
    total = count_params(generator)
    assert abs(total / 1e6 - 60.85) < 0.01, total  # seen: 60,854,662
    assert abs(count_params(generator.svg) / 1e6 - 6.13) < 0.01
    assert count_params(generator.blocks[0].conv_0) == 3 * 512 * 512 * 9  # three 3×3 candidates, no bias


def test_sc_gan_fast_fits_the_frame_budget() -> None:
    config = get_preset("sc-gan-fast")
    with torch.device("meta"):
        generator = build_generator(config, LANDSCAPE_NC)
        label = torch.zeros(1, 1, 256, 256, dtype=torch.long)  # [1,1,H,W], also the instance map
        gmacs = count_gmacs(generator, label, label)
        svg_gmacs = count_gmacs(generator.svg, torch.zeros(1, LANDSCAPE_NC + 1, 256, 256))
    assert 3.0 < gmacs <= 6.0, gmacs  # seen: 3.78 (spade-fast 2.55, dp-gan-fast 3.57, lggan-fast 3.86)
    assert 0.8 < svg_gmacs < 1.1, svg_gmacs  # seen: 0.95
    assert 2_000_000 < count_params(generator) < 4_000_000  # 2–4 M params per served network; seen: 2.75 M
