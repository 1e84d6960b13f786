"""StyleGAN2 pieces: the export-friendly modulated conv equals StyleGAN2's grouped form, demodulation keeps unit
variance, noise is an explicit input that reaches every layer, and minibatch-stddev groups stay apart."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.nets.stylegan import (
    EqualLinear,
    ModulatedConv2d,
    SkipSynthesis,
    StyleDiscriminator,
    head_for_size,
    minibatch_stddev,
    noise_slice,
)


def grouped_reference(conv: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's own formulation: a per-sample kernel W·s (demodulated per output channel), the batch folded
    into the channels of one grouped convolution."""
    b, cin, h, wd = x.shape
    style = conv.affine(w)  # [B,in]
    kernel = conv.weight[None] * conv.scale * style[:, None, :, None, None]  # [B,out,in,k,k]
    if conv.demodulate:
        kernel = kernel * torch.rsqrt(kernel.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    cout, k = kernel.shape[1], kernel.shape[-1]
    out = F.conv2d(
        x.reshape(1, b * cin, h, wd), kernel.reshape(b * cout, cin, k, k), padding=k // 2, groups=b
    )
    return out.reshape(b, cout, h, wd)


@pytest.mark.parametrize(("kernel", "demodulate"), [(3, True), (1, False), (3, False)])
def test_modulated_conv_equals_the_grouped_formulation(kernel: int, demodulate: bool) -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(12, 10, kernel, w_dim=16, demodulate=demodulate)
    x, w = torch.randn(3, 12, 9, 9), torch.randn(3, 16) * 2  # styles spread well away from 1
    with torch.no_grad():
        ours, reference = conv(x, w), grouped_reference(conv, x, w)
    assert (ours - reference).abs().max().item() < 1e-5


def test_demodulation_keeps_unit_variance() -> None:
    torch.manual_seed(0)
    demod = ModulatedConv2d(64, 64, 3, w_dim=32)
    plain = ModulatedConv2d(64, 64, 3, w_dim=32, demodulate=False)
    plain.load_state_dict(demod.state_dict())
    x, w = torch.randn(4, 64, 32, 32), torch.randn(4, 32) * 4  # styles ~ 1 ± 4: far from unit gain
    with torch.no_grad():
        stds = demod(x, w).std(dim=(1, 2, 3))  # [B]
        plain_stds = plain(x, w).std(dim=(1, 2, 3))
    # zero padding loses a little energy on the border rows and columns, hence not exactly 1
    assert ((stds - 1).abs() < 0.1).all(), stds
    assert ((plain_stds - 1).abs() > 0.5).all(), plain_stds  # the same conv without demodulation does not


def synthesis_with_noise() -> SkipSynthesis:
    """A 4² -> 16² synthesis (5 noise channels) whose noise strengths are switched on (they start at 0)."""
    torch.manual_seed(0)
    net = SkipSynthesis(8, [8, 8, 4], w_dim=8)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("noise.strength"):
                p.fill_(0.5)
    return net


def test_noise_is_an_input_that_reaches_every_layer() -> None:
    net = synthesis_with_noise()
    assert net.noise_channels == 5 and net.factor == 4
    x, w = torch.randn(2, 8, 4, 4), torch.randn(2, 8)
    zeros = torch.zeros(2, 5, 16, 16)
    with torch.no_grad():
        base = net(x, w, zeros)
        assert torch.equal(base, net(x, w, zeros))  # zero (or any fixed) noise: deterministic
        assert not torch.allclose(base, net(x, w, torch.randn(2, 5, 16, 16)))
        for channel in range(5):  # each layer reads its own channel
            one = zeros.clone()
            one[:, channel] = 1.0
            assert (net(x, w, one) - base).abs().max() > 1e-3, channel


def test_fresh_layers_ignore_noise() -> None:
    """StyleGAN2 starts every noise strength at 0: noise only matters once G learns to use it."""
    torch.manual_seed(0)
    net = SkipSynthesis(8, [8, 4], w_dim=8)
    x, w = torch.randn(2, 8, 4, 4), torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(net(x, w, torch.zeros(2, 3, 8, 8)), net(x, w, torch.randn(2, 3, 8, 8)))


def test_noise_slice_subsamples_the_full_size_channel() -> None:
    noise = torch.randn(2, 3, 16, 16)
    assert torch.equal(noise_slice(noise, 1, 4), noise[:, 1:2, ::4, ::4])
    assert noise_slice(noise, 2, 1).shape == (2, 1, 16, 16)


def test_minibatch_stddev_groups_consecutive_samples() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 4, 2, 2)
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 5, 2, 2) and torch.equal(out[:, :4], x)
    changed = x.clone()
    changed[6] += 10.0  # only the second group (samples 4..7) may notice
    again = minibatch_stddev(changed, group_size=4)
    assert torch.equal(again[:4, 4], out[:4, 4]) and not torch.allclose(again[4:, 4], out[4:, 4])
    assert minibatch_stddev(torch.randn(3, 4, 2, 2), group_size=4).shape == (3, 5, 2, 2)  # group of 3


def test_discriminator_gives_one_logit_per_image_and_refuses_bad_sizes() -> None:
    d = StyleDiscriminator(16, [8, 16, 16])
    assert d(torch.randn(5, 3, 16, 16)).shape == (5,)
    with pytest.raises(ValueError, match="multiple of 2"):
        StyleDiscriminator(18, [8, 16, 16])


def test_a_head_spread_over_a_larger_map_gives_the_old_output_on_the_up_sampled_map() -> None:
    torch.manual_seed(0)
    old, new = EqualLinear(6 * 2 * 2, 5), EqualLinear(6 * 4 * 4, 5)
    new.bias.data.copy_(old.bias.data)
    new.weight.data.copy_(head_for_size(old.weight.data, channels=6, final=4))
    x = torch.randn(3, 6, 2, 2)
    up = F.interpolate(x, scale_factor=2, mode="nearest")  # [3,6,4,4]
    diff = (new(up.flatten(1)) - old(x.flatten(1))).abs().max().item()
    assert diff < 1e-5, diff
    assert (
        new(torch.randn(3, 96)) - old(x.flatten(1))
    ).abs().max() > 0.1  # not a head that ignores its input
    for final in (1, 3):  # smaller, or not a multiple
        with pytest.raises(ValueError, match="cannot be spread"):
            head_for_size(old.weight.data, channels=6, final=final)
