import pytest
import torch

from models.nets.segmenter import SegNet


@pytest.mark.parametrize(("levels", "height", "width"), [(2, 32, 32), (3, 48, 40), (4, 64, 96)])
def test_logits_keep_the_input_size(levels: int, height: int, width: int) -> None:
    net = SegNet(num_classes=14, width=4, levels=levels, max_width=16).eval()
    x = torch.rand(2, 3, height, width) * 2 - 1
    logits = net(x)
    assert logits.shape == (2, 14, height, width)
    assert torch.isfinite(logits).all()


def test_features_are_pooled_vectors_of_feature_dim() -> None:
    net = SegNet(num_classes=5, width=4, levels=3, max_width=8).eval()
    assert net.widths == [4, 8, 8, 8]
    assert net.feature_dim == 16
    # Any input size gives the same vector length: crops and full images share one feature space.
    for size in (24, 64):
        assert net.features(torch.zeros(3, 3, size, size)).shape == (3, 16)


def test_logits_and_features_match_the_separate_calls() -> None:
    torch.manual_seed(0)
    net = SegNet(num_classes=6, width=4, levels=2, max_width=16).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    logits, feats = net.logits_and_features(x)
    assert torch.allclose(logits, net(x), atol=1e-6)
    assert torch.allclose(feats, net.features(x), atol=1e-6)


def test_features_depend_on_texture_not_only_on_mean_colour() -> None:
    torch.manual_seed(0)
    net = SegNet(num_classes=3, width=4, levels=2, max_width=16).eval()
    flat = torch.zeros(1, 3, 32, 32)
    noisy = flat + 0.5 * torch.randn(1, 3, 32, 32)
    noisy = noisy - noisy.mean() + flat.mean()  # same mean colour, different texture
    assert (net.features(flat) - net.features(noisy)).abs().max() > 1e-3


def test_levels_must_be_positive() -> None:
    with pytest.raises(ValueError, match="levels"):
        SegNet(levels=0)
