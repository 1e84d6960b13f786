"""StyleGAN2 pieces for CollageGAN's decoder and discriminator (models.md §1, §1.6), written from the paper
(Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020).

Everything here must export to ONNX as it stands (models.md §0.1):
- the modulated convolution scales the input channels by the style, runs one plain convolution with the shared
  weight, then scales the output channels by the demodulation factor. StyleGAN2's reference folds the batch
  into a grouped convolution with a per-sample kernel; that needs the batch size baked into the graph and runs
  as B small convolutions, while this form is one ordinary Conv node and equal up to rounding (the factors are
  per channel, so they commute with the convolution);
- per-pixel noise is a forward input, one tensor [B,noise_channels,H,W] at the output size, so the server
  draws it from the request's seed (docs/contracts.md) and the same seed gives the same picture; a layer at a
  lower resolution reads its channel with a strided slice, which keeps the values N(0, 1), and whose stride is
  fixed by the layer's level, so one graph takes any output size (the base generator's dynamic H, W);
- up-sampling is bilinear ×2 before the convolution [ours]: StyleGAN2's transposed convolution with a FIR
  low-pass filter is a detail we drop for compact CPU models; down-sampling in D is a 2×2 average pool [ours].

Weights use StyleGAN2's equalised learning rate: stored N(0, 1), scaled by 1/sqrt(fan_in) at every forward,
so Adam's step size is the same for every layer whatever its width. The leaky ReLUs carry StyleGAN2's gain
sqrt(2), which keeps activations near unit variance through the stack.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2.0)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's activation: leaky ReLU (slope 0.2) times sqrt(2)."""
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> [B,C,2H,2W], bilinear (an ONNX Resize node)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


# ----------------------------------------------------------------------------
# Equalised-learning-rate layers.


class EqualLinear(nn.Module):
    """Linear layer with the equalised learning rate (and StyleGAN2's `lr_mul` for the mapping network)."""

    def __init__(
        self,
        in_features: int,  # input width
        out_features: int,  # output width
        bias_init: float = 0.0,  # initial bias (1 for the style affines, so styles start at 1)
        lr_mul: float = 1.0,  # learning-rate multiplier (0.01 in the mapping network, StyleGAN2)
        activate: bool = False,  # apply lrelu (with gain) after the bias
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)  # [B,out]
        return lrelu(out) if self.activate else out


class EqualConv2d(nn.Module):
    """Stride-1 'same' convolution with the equalised learning rate."""

    def __init__(
        self,
        in_channels: int,  # input channels
        out_channels: int,  # output channels
        kernel_size: int,  # odd square kernel
        bias: bool = True,  # add a learned per-channel bias
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)  # [B,out,H,W]


# ----------------------------------------------------------------------------
# Generator side: mapping, modulated convolution, noise, toRGB, the skip synthesis network.


class MappingNetwork(nn.Module):
    """z -> w: an MLP of `layers` EqualLinear + lrelu at `lr_mul` (StyleGAN2: 8 × 512, lr_mul 0.01).

    No normalisation of z [ours]: here z is an encoder's latent under a KL term, not a pure N(0, 1) draw, and
    StyleGAN2's second-moment normalisation would discard its norm (1 of z_dim degrees of freedom, which
    matters for a small z)."""

    def __init__(
        self,
        z_dim: int,  # latent width
        w_dim: int,  # style width (output of every layer)
        layers: int,  # number of linear layers (≥ 1)
        lr_mul: float = 0.01,  # learning-rate multiplier of every layer (StyleGAN2)
    ) -> None:
        super().__init__()
        widths = [z_dim] + [w_dim] * layers
        self.net = nn.Sequential(
            *(
                EqualLinear(a, b, lr_mul=lr_mul, activate=True)
                for a, b in zip(widths, widths[1:], strict=False)
            )
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # [B,w_dim]


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated (and optionally demodulated) convolution, in the export-friendly form.

    Per sample b with style s_b (one factor per input channel): y = conv(x · s_b, W) · d_b, where
    d_b[j] = 1 / sqrt(Σ_i s_b[i]² Σ_k W[j,i,k]² + ε) makes each output channel unit-variance for unit-variance
    input. Equal to a convolution with the per-sample kernel W[j,i,k] · s_b[i] · d_b[j] (StyleGAN2's grouped
    form) because both factors are constant over space."""

    def __init__(
        self,
        in_channels: int,  # input channels (also the style width the affine produces)
        out_channels: int,  # output channels
        kernel_size: int,  # odd square kernel (3 for the convs, 1 for toRGB)
        w_dim: int,  # width of w, the mapping network's output
        demodulate: bool = True,  # divide by the expected output std (off for toRGB, as StyleGAN2)
    ) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)  # w -> per-input-channel style
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w)  # [B,in]
        weight = self.weight * self.scale  # [out,in,k,k]
        x = F.conv2d(x * style[:, :, None, None], weight, padding=self.padding)  # [B,out,H,W]
        if self.demodulate:
            energy = weight.pow(2).sum(dim=(2, 3))  # [out,in]: Σ_k W²
            demod = torch.rsqrt(style.pow(2) @ energy.t() + 1e-8)  # [B,out]
            x = x * demod[:, :, None, None]
        return x


class NoiseInjection(nn.Module):
    """x + strength · noise, one learned strength per channel, zero at first (StyleGAN2 learns one per layer)."""

    def __init__(self, channels: int) -> None:  # channels of the activation the noise is added to
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.strength * noise  # [B,C,H,W] + [1,C,1,1]·[B,1,H,W]


class StyledConv(nn.Module):
    """[×2 bilinear up-sampling] → modulated 3×3 conv → noise → bias → lrelu: one StyleGAN2 synthesis layer."""

    def __init__(
        self,
        in_channels: int,  # input channels
        out_channels: int,  # output channels
        w_dim: int,  # width of w
        up: bool = False,  # double the resolution first
    ) -> None:
        super().__init__()
        self.up = up
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim)
        self.noise = NoiseInjection(out_channels)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = upsample2(x)  # [B,in,2H,2W]
        return lrelu(self.noise(self.conv(x, w), noise) + self.bias)  # [B,out,H',W']


class ToRGB(nn.Module):
    """Modulated 1×1 conv to RGB without demodulation, plus bias; adds the up-sampled running RGB skip."""

    def __init__(self, in_channels: int, w_dim: int) -> None:  # channels of the features; width of w
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, 3, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        rgb = self.conv(x, w) + self.bias  # [B,3,H,W]
        return rgb if skip is None else rgb + upsample2(skip)


def noise_slice(noise: torch.Tensor, channel: int, step: int) -> torch.Tensor:
    """Channel `channel` of noise [B,L,H,W] at every `step`-th pixel: a strided slice (exact N(0,1) values, and a
    plain Slice node in ONNX with constant steps, whatever H and W)."""
    return noise[:, channel : channel + 1, ::step, ::step]  # [B,1,H/step,W/step]


class SkipSynthesis(nn.Module):
    """StyleGAN2's "skip" synthesis network started from a spatial feature map instead of the learned 4×4
    constant (CollageGAN: the layers below the input's resolution are skipped).

    At the input resolution: one styled conv and a toRGB. Then per level: up-sample, two styled convs, a toRGB
    added to the up-sampled RGB so far. Every styled conv takes one channel of `noise` (in order), so
    `noise_channels` = 1 + 2 · (levels - 1). Any input size: the output is `factor` times larger."""

    def __init__(
        self,
        in_channels: int,  # channels of the input feature map
        widths: list[int],  # channels per resolution: widths[0] at the input's, widths[i] at 2^i times it
        w_dim: int,  # width of w
    ) -> None:
        super().__init__()
        if not widths:
            raise ValueError("widths must name at least one resolution")
        self.factor = 2 ** (len(widths) - 1)  # output side / input side
        self.noise_channels = 1 + 2 * (len(widths) - 1)
        self.first = StyledConv(in_channels, widths[0], w_dim)
        self.first_rgb = ToRGB(widths[0], w_dim)
        self.ups = nn.ModuleList()
        self.convs = nn.ModuleList()
        self.rgbs = nn.ModuleList()
        for a, b in zip(widths, widths[1:], strict=False):
            self.ups.append(StyledConv(a, b, w_dim, up=True))
            self.convs.append(StyledConv(b, b, w_dim))
            self.rgbs.append(ToRGB(b, w_dim))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x [B,C,h,w], w [B,w_dim], noise [B,noise_channels,H,W] -> image [B,3,H,W] (unbounded; ≈[-1,1]), where
        H, W = factor · (h, w)."""
        step = self.factor
        x = self.first(x, w, noise_slice(noise, 0, step))  # [B,w0,h,w]
        rgb = self.first_rgb(x, w)  # [B,3,h,w]
        for i, (up, conv, to_rgb) in enumerate(zip(self.ups, self.convs, self.rgbs, strict=True)):
            step //= 2
            x = up(x, w, noise_slice(noise, 1 + 2 * i, step))  # [B,w_i,2h,2w]
            x = conv(x, w, noise_slice(noise, 2 + 2 * i, step))
            rgb = to_rgb(x, w, rgb)  # [B,3,2h,2w]
        return rgb


# ----------------------------------------------------------------------------
# Discriminator: residual blocks, minibatch standard deviation, the StyleGAN2 residual D.


class ResDownBlock(nn.Module):
    """StyleGAN2's residual D block: conv 3×3 → lrelu → ↓2 → conv 3×3 → lrelu, plus a ↓2 → 1×1 skip, summed
    and divided by sqrt(2) (keeps the variance). The second conv runs after the pool [ours: 4× cheaper than
    StyleGAN2's blur + stride-2 conv]. Also the encoder's down-sampling block."""

    def __init__(self, in_channels: int, out_channels: int) -> None:  # channels in; channels out
        super().__init__()
        self.conv1 = EqualConv2d(in_channels, in_channels, 3)
        self.conv2 = EqualConv2d(in_channels, out_channels, 3)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = lrelu(self.conv1(x))  # [B,in,H,W]
        h = lrelu(self.conv2(F.avg_pool2d(h, 2)))  # [B,out,H/2,W/2]
        return (h + self.skip(F.avg_pool2d(x, 2))) / LRELU_GAIN


def minibatch_stddev(x: torch.Tensor, group_size: int, channels: int = 1) -> torch.Tensor:
    """x [B,C,H,W] -> [B,C+channels,H,W]: per group of consecutive samples, the std over the group of every
    feature, averaged over each of `channels` feature slices and space, appended as constant maps (StyleGAN2).

    It lets D see a batch's variety, so a collapsed G is told apart from real data. Groups are consecutive
    samples [ours; StyleGAN2 strides them], so D calls on fakes and reals must stay separate anyway; the group
    shrinks to the largest divisor of B that is ≤ group_size."""
    b, c, h, w = x.shape
    group = min(group_size, b)
    while b % group:
        group -= 1
    y = x.float().reshape(b // group, group, channels, c // channels, h, w)
    y = (y - y.mean(dim=1, keepdim=True)).pow(2).mean(dim=1)  # [B/g,ch,C/ch,H,W] variance over the group
    y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))  # [B/g,ch]
    y = y.repeat_interleave(group, dim=0).to(x.dtype)  # [B,ch]
    return torch.cat([x, y[:, :, None, None].expand(b, channels, h, w)], dim=1)


def head_for_size(fc_weight: torch.Tensor, channels: int, final: int) -> torch.Tensor:
    """D's first linear weight as stored [out, channels·f·f], trained on f×f final maps, made to take
    final×final maps [ours]: each cell's weights spread evenly over the k×k cells that cover its part of the
    picture at the new size, so a map that is the old one up-sampled ×k (nearest) gives exactly the old
    output. It lets a D trained at 128² go on judging at 256² (`--init_from` across sizes) instead of starting
    from nothing. The effective weight is divided by k², the stored one by k: EqualLinear's 1/sqrt(fan_in)
    already falls by k. Only a larger final map whose side is a multiple of f; anything else is a ValueError."""
    out, flat = fc_weight.shape
    f = math.isqrt(flat // channels)
    if channels * f * f != flat or final < f or final % f:
        raise ValueError(f"a head for {flat} inputs ({channels} channels) cannot be spread over {final}²")
    k = final // f
    w = fc_weight.reshape(out, channels, f, f)
    w = w.repeat_interleave(k, dim=2).repeat_interleave(k, dim=3) / k  # [out,C,final,final]
    return w.reshape(out, channels * final * final)


class StyleDiscriminator(nn.Module):
    """StyleGAN2's residual discriminator, unconditional: fromRGB 1×1 → residual down blocks → minibatch std →
    conv 3×3 → flatten → linear → linear → one logit per image. Trained with the non-saturating logistic loss
    and a lazy R1 penalty (models/archs/collage_class.py)."""

    def __init__(
        self,
        size: int,  # side of the images it judges
        widths: list[int],  # channels per resolution: widths[0] at size, widths[i] at size / 2^i
        mbstd_group: int = 4,  # samples per minibatch-stddev group (StyleGAN2: 4)
        mbstd_channels: int = 1,  # feature slices the std is averaged over (StyleGAN2: 1)
    ) -> None:
        super().__init__()
        levels = len(widths) - 1
        if levels < 1 or size % 2**levels:
            raise ValueError(
                f"size {size} must be a multiple of 2^(len(widths)-1) = {2**levels}, with ≥ 2 widths"
            )
        if widths[-1] % mbstd_channels:
            raise ValueError(
                f"widths[-1] = {widths[-1]} is not divisible by mbstd_channels = {mbstd_channels}"
            )
        self.size = size
        self.mbstd_group, self.mbstd_channels = mbstd_group, mbstd_channels
        self.from_rgb = EqualConv2d(3, widths[0], 1)
        self.blocks = nn.Sequential(*(ResDownBlock(a, b) for a, b in zip(widths, widths[1:], strict=False)))
        self.final = size // 2**levels  # side of the last block's map, which the linear head flattens
        self.final_conv = EqualConv2d(widths[-1] + mbstd_channels, widths[-1], 3)
        self.fc = EqualLinear(widths[-1] * self.final**2, widths[-1], activate=True)
        self.out = EqualLinear(widths[-1], 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image [B,3,size,size] -> logits [B]."""
        return self.judge(image)[0]

    def judge(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """image [B,3,size,size] -> (logits [B], the features after fromRGB and after every block): the
        features are what a paired generator's feature-matching loss compares (models/archs/collage_base.py)."""
        features = [lrelu(self.from_rgb(image))]  # [B,w0,size,size]
        for block in self.blocks:
            features.append(block(features[-1]))  # [B,w_i,size/2^i,size/2^i]
        x = minibatch_stddev(features[-1], self.mbstd_group, self.mbstd_channels)  # [B,C+ch,f,f]
        x = lrelu(self.final_conv(x))  # [B,C,f,f]
        return self.out(self.fc(x.flatten(1)))[:, 0], features  # [B], list
