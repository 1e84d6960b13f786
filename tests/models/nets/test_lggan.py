"""LGGAN generator: each branch's shapes, the grouped local convolution against a per-class loop, the fusion
weights, the paper's parameter count and the compact preset's frame budget."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from models.archs.lggan import build_generator, get_preset
from models.flops import count_gmacs, count_params
from models.nets.blocks import one_hot, semantic_input
from models.nets.lggan import LGGANGenerator, LGGANOutputs, LocalGenerator

LANDSCAPE_NC = 14

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny nets run fastest on one thread (as tests/models/archs/conftest.py's fixture of the same name)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_generator(**overrides: object) -> LGGANGenerator:
    kwargs = get_preset("lggan-tiny")["generator"] | overrides
    torch.manual_seed(0)
    return LGGANGenerator(label_nc=LANDSCAPE_NC, **kwargs).eval()


def blocky_inputs(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Label and instance ids [B,1,H,W] constant over 4×4 cells, so every class shows up in a few regions."""
    gen = torch.Generator().manual_seed(seed)
    label = torch.randint(0, LANDSCAPE_NC, (batch, 1, height // 4, width // 4), generator=gen)
    instance = torch.randint(0, 3, (batch, 1, height // 4, width // 4), generator=gen)
    up = lambda t: t.repeat_interleave(4, 2).repeat_interleave(4, 3)  # noqa: E731
    return up(label), up(instance)


def test_every_branch_has_its_shape_and_range() -> None:
    generator = tiny_generator()
    widths = get_preset("lggan-tiny")["generator"]["encoder_widths"]  # [4, 8, 8, 16]: 32² … 4²
    label, instance = blocky_inputs(2, 32, 32)
    seg = semantic_input(label, instance, LANDSCAPE_NC, True)  # [2,15,32,32]
    with torch.no_grad():
        x_enc, deepest = generator.encoder(seg)
        global_image = generator.global_branch(deepest, seg)  # num_up 3 = E's 3 down-samplings: no resize
        mask = seg[:, :LANDSCAPE_NC]
        local_image, class_images, features = generator.local_branch(x_enc, mask)
        weights = generator.weight_map(x_enc)
        out = generator(label, instance, details=True)
    assert x_enc.shape == (2, widths[2], 8, 8) and deepest.shape == (2, widths[-1], 4, 4)
    assert global_image.shape == local_image.shape == (2, 3, 32, 32)
    assert class_images.shape == (2, 3 * LANDSCAPE_NC, 32, 32) and features.shape == (2, 4, 32, 32)
    assert weights.shape == (2, 2, 32, 32)
    assert isinstance(out, LGGANOutputs) and out.class_logits.shape == (2, LANDSCAPE_NC, LANDSCAPE_NC)
    assert torch.equal(out.global_image, global_image) and torch.equal(out.local_image, local_image)
    for image in (out.image, global_image, local_image, class_images):
        assert image.min() >= -1 and image.max() <= 1 and image.std() > 0.01


def test_grouped_local_convolution_equals_a_loop_over_classes() -> None:
    """Group i of the one grouped conv is exactly class i's own 7×7 conv on F_i = f′ ⊙ M_i (paper eq. 1)."""
    torch.manual_seed(0)
    n, c = 5, 3
    local = LocalGenerator(in_nc=8, label_nc=n, num_res_blocks=1, feature_nc=c, class_kernel=7).eval()
    features = torch.randn(2, c, 16, 24)  # f′
    label = torch.randint(0, n, (2, 1, 4, 6)).repeat_interleave(4, 2).repeat_interleave(4, 3)  # [2,1,16,24]
    mask = one_hot(label, n)  # [2,5,16,24]
    with torch.no_grad():
        grouped = local.class_images(features, mask)  # [2,15,16,24]
        weight, bias = local.class_conv.weight, local.class_conv.bias  # [3N,C,7,7], [3N]
        assert bias is not None
        loop = torch.cat(
            [
                torch.tanh(
                    F.conv2d(
                        features * mask[:, i : i + 1],
                        weight[3 * i : 3 * i + 3],
                        bias[3 * i : 3 * i + 3],
                        padding=3,
                    )
                )
                for i in range(n)
            ],
            dim=1,
        )
    diff = float((grouped - loop).abs().max())
    assert diff < 1e-6, diff  # seen: 2.4e-7


def test_classifier_pools_each_class_over_its_own_pixels() -> None:
    """Semantic-guided average pooling: row i of the logits is the classifier on f′ averaged over class i's mask."""
    torch.manual_seed(0)
    local = LocalGenerator(in_nc=8, label_nc=3, num_res_blocks=1, feature_nc=4).eval()
    features = torch.randn(1, 4, 8, 8)
    label = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    label[..., :, 5:] = 2  # class 1 absent
    mask = one_hot(label, 3)
    with torch.no_grad():
        logits = local.classify(features, mask)  # [1,3,3]
        for i in (0, 2):
            pooled = features[0][:, mask[0, i] > 0].mean(1)  # [4]
            assert torch.allclose(logits[0, i], local.classifier(pooled), atol=1e-6)
        assert torch.allclose(logits[0, 1], local.classifier.bias)  # absent: nothing pooled


def test_weight_maps_sum_to_one_and_fuse_global_and_local() -> None:
    generator = tiny_generator()
    label, instance = blocky_inputs(2, 32, 32, seed=1)
    with torch.no_grad():
        out = generator(label, instance, details=True)
        image = generator(label, instance)
    total = out.weights.sum(1)  # [2,32,32]
    assert float((total - 1).abs().max()) < 1e-6
    assert out.weights.min() >= 0 and out.weights.max() <= 1
    fused = out.weights[:, 0:1] * out.global_image + out.weights[:, 1:2] * out.local_image
    assert torch.equal(image, out.image) and torch.allclose(fused, image, atol=1e-7)


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
    with pytest.raises(ValueError, match="num_up=2 must be ≥ the encoder's 3 down-samplings"):
        tiny_generator(num_up=2, channel_mult=[4, 2, 1], nhidden=8)
    with pytest.raises(ValueError, match="needs ≥ 3 stages"):
        tiny_generator(encoder_widths=[4, 8])
    with pytest.raises(ValueError, match="nhidden needs 5 values"):
        tiny_generator(nhidden=[8, 8])


def test_lggan_paper_parameter_count_matches_the_dp_gan_table() -> None:
    """Cityscapes (35 labels + edges): DP-GAN's table reports 111.1 M for LGGAN's generator, which counts the
    repo's start conv (semantic_nc -> 1024, defined but unused on the encoder path) that we leave out."""
    config = get_preset("lggan-paper")
    with torch.device("meta"):
        generator = build_generator(config, 35)
    unused_start_conv = 36 * 1024 * 9 + 1024
    total = count_params(generator) + unused_start_conv
    assert abs(total / 1e6 - 111.1) / 111.1 < 0.001, total  # seen: 111,123,495
    assert count_params(generator.local_branch.class_conv) == 35 * (64 * 3 * 49 + 3)  # one 7×7 conv per class


def test_lggan_fast_fits_the_frame_budget() -> None:
    config = get_preset("lggan-fast")
    with torch.device("meta"):
        generator = build_generator(config, LANDSCAPE_NC)
        label = torch.zeros(1, 1, 256, 256, dtype=torch.long)  # [1,1,H,W], also the instance map
        gmacs = count_gmacs(generator, label, label)
        local_gmacs = count_gmacs(
            generator.local_branch, torch.zeros(1, 32, 64, 64), torch.zeros(1, 14, 256, 256)
        )
        config["generator"]["class_kernel"] = 7  # the repo's kernel
        repo_kernel = count_gmacs(build_generator(config, LANDSCAPE_NC), label, label)
    assert 3.0 < gmacs <= 6.0, gmacs  # seen: 3.86 (spade-fast's global branch ≈2.55, the local branch 0.81)
    assert 0.5 < local_gmacs < 1.0, local_gmacs  # seen: 0.81, of which the 14 class convs 0.40
    assert gmacs < repo_kernel <= 6.0, repo_kernel  # seen: 5.62
    assert 2_000_000 < count_params(generator) < 4_000_000  # 2–4 M params per served network; seen: 2.50 M
