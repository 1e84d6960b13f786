"""DP-GAN networks (Li, Cheng, Gall, "Dual Pyramid Generative Adversarial Networks for Semantic Image
Synthesis", BMVC 2022), reimplemented from the paper, its supplement's tables and models.md §2.

Generator: two pyramids. The spatial adaptation learning pyramid runs Conv-BatchNorm-ReLU blocks on the
full-resolution cat(S, z) and halves the resolution level by level down to the synthesis pyramid's start
(α_0 is its coarsest level). The image synthesis pyramid is OASIS's SPADE generator, except that every SPADE
takes γ and β from one 3×3 conv each straight on the pyramid's features at its own resolution,
cat(α_i, Up(α_0)) (paper eq. 2), instead of running a hidden conv on the resized label map. Conditioning thus
flows from fine to coarse while synthesis flows from coarse to fine ("bi-directional"), and even the 8² blocks
see what the full-resolution map says about small objects.

Discriminator: OASIS's U-Net segmenter (`seg_discriminator.py`: pixel level, N+1 classes) plus two patch heads on
encoder blocks (patch level, hinge) and its decoder features for feature matching (feature level).

Differences from the paper, all [ours]:
- z (the 3D noise, one N(0, 1) vector per picture replicated over it) enters the two convs that see cat(S, z)
  (the pyramid's first block and the synthesis pyramid's input conv) as a linear map added to the conv's output,
  as in `oasis.py`: the same up to the zero padding at the border; optional per-pixel noise channels are
  concatenated to S beside it, as OASIS's `noise`.
- InstanceNorm as SPADE's parameter-free norm by default (models.md §0.1); the adaptation pyramid keeps the
  paper's BatchNorm: InstanceNorm there would subtract z's spatially constant offset right after the first conv,
  removing the noise altogether, and in eval mode BatchNorm is a fixed affine map, which exports as one.
- The coarsest SPADEs take α_0 alone, as eq. 2 says (γ^0 = Conv(α^0)); the released code concatenates α_0 with
  itself there, which a conv over α_0 with summed kernels equals.
- Pyramid widths are per level and the synthesis widths are settings, so one class covers the paper's 69.5 M
  network and our CPU presets.
- Patch heads with spectral norm instead of BatchNorm by default: our D judges real, fake and LabelMix images in
  one batch, whose BatchNorm statistics would tie each score to the other images (`patch_norm="batch"` is the
  paper's head). The decoder stops at half resolution, as `SegmentationDiscriminator`, so the paper's last
  (full-resolution) feature map is not matched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.nets.blocks import SPADE, downsample_nearest, maybe_spectral, one_hot
from models.nets.seg_discriminator import SegmentationDiscriminator

# ----------------------------------------------------------------------------
# Generator.


def conv_block(fin: int, fout: int, stride: int) -> nn.Sequential:
    """The adaptation pyramid's block: 3×3 conv, BatchNorm, ReLU (paper Table 6)."""
    return nn.Sequential(nn.Conv2d(fin, fout, 3, stride=stride, padding=1), nn.BatchNorm2d(fout), nn.ReLU())


class AdaptationPyramid(nn.Module):
    """Spatial adaptation learning pyramid: cat(S, z) at full resolution -> α_0 … α_num_up, coarsest first.

    A stem block, one more block at full resolution (α_num_up), then one stride-2 block per level down to
    H/2^num_up (α_0). Paper: stem 32, every level 64 channels.
    """

    def __init__(
        self,
        cond_nc: int,  # channels of the per-pixel input: one-hot labels (+ per-pixel noise)
        z_dim: int,  # size of the replicated noise vector
        stem: int,  # width of the first block (paper 32)
        widths: Sequence[int],  # width of each level α_0 … α_num_up, coarsest first (paper 64 each)
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(cond_nc, stem, 3, padding=1)
        self.stem_z = nn.Linear(z_dim, stem, bias=False)  # the replicated z's share of the stem conv
        self.stem_act = nn.Sequential(nn.BatchNorm2d(stem), nn.ReLU())
        fine_to_coarse = list(reversed(widths))
        self.levels = nn.ModuleList([conv_block(stem, fine_to_coarse[0], 1)])
        self.levels.extend(
            conv_block(fin, fout, 2)
            for fin, fout in zip(fine_to_coarse[:-1], fine_to_coarse[1:], strict=True)
        )

    def forward(self, cond: torch.Tensor, z: torch.Tensor) -> list[torch.Tensor]:
        """cond [B,cond_nc,H,W], z [B,z_dim] -> [α_0 [B,w_0,H/2^k,W/2^k], …, α_k [B,w_k,H,W]], k = num_up."""
        x = self.stem_act(self.stem(cond) + self.stem_z(z)[:, :, None, None])  # [B,stem,H,W]
        alphas = []
        for level in self.levels:
            x = level(x)  # [B,w,H/2^i,W/2^i], i = 0, 1, …
            alphas.append(x)
        return alphas[::-1]


class DPResBlock(nn.Module):
    """SPADE ResBlock whose SPADEs have no hidden conv: γ and β are convs straight on the pyramid's features.

    Two [SPADE -> LeakyReLU 0.2 -> 3×3 conv] stages plus a shortcut (SPADE -> 1×1 conv when widths differ), middle
    width min(fin, fout), spectral norm on the convs: OASIS's block with DP-GAN's SPADE.
    """

    def __init__(
        self,
        fin: int,  # input channels
        fout: int,  # output channels
        cond_nc: int,  # channels of the conditioning features: α_i (+ Up(α_0))
        kernel_size: int = 3,  # kernel of the γ and β convs (paper 3)
        norm: str = "instance",  # SPADE's parameter-free norm: 'instance' [ours] or 'batch' (paper)
        spectral: bool = True,  # spectral norm on the block's convs (paper)
    ) -> None:
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = maybe_spectral(nn.Conv2d(fin, fmiddle, 3, padding=1), spectral)
        self.conv_1 = maybe_spectral(nn.Conv2d(fmiddle, fout, 3, padding=1), spectral)
        # The pyramid's features are SPADE's hidden features as they come (`shared=` an identity), so no SPADE
        # builds a hidden conv; each applies its γ and β convs to them through `modulate`.
        identity = nn.Identity()
        self.norm_0 = SPADE(fin, cond_nc, cond_nc, kernel_size, norm, shared=identity)
        self.norm_1 = SPADE(fmiddle, cond_nc, cond_nc, kernel_size, norm, shared=identity)
        if self.learned_shortcut:
            self.conv_s = maybe_spectral(nn.Conv2d(fin, fout, 1, bias=False), spectral)
            self.norm_s = SPADE(fin, cond_nc, cond_nc, kernel_size, norm, shared=identity)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x [B,fin,h,w], cond [B,cond_nc,h,w] -> [B,fout,h,w]."""
        x_s = self.conv_s(self.norm_s.modulate(x, cond)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0.modulate(x, cond), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1.modulate(dx, cond), 0.2))
        return x_s + dx


class DPGenerator(nn.Module):
    """Label ids + z (+ per-pixel noise) -> RGB in [-1, 1], through the dual pyramid.

    num_up + 1 DP ResBlocks, the first at H/2^num_up, a ×2 nearest up-sampling after each but the last (the
    released code: six blocks from 8² to 256²; the paper's Table 8 lists five). Block j takes ngf·channel_mult[j]
    channels to ngf·channel_mult[j+1] (paper 1024, 1024, 1024, 512, 256, 128, 64) and is conditioned on α_0 (j = 0)
    or cat(α_j, bilinear Up(α_0)).
    """

    def __init__(
        self,
        label_nc: int,  # number of label classes (one-hot channels); ids ≥ label_nc encode as all-zero
        ngf: int = 64,  # base width of the synthesis pyramid (paper 64)
        channel_mult: Sequence[int] | None = None,  # multiplier of ngf at each block boundary, coarsest first
        #                                            (num_up + 2 values); None = paper: min(16, 2^(num_up+1-j))
        pyramid_stem: int = 32,  # width of the adaptation pyramid's first block (paper 32)
        pyramid_widths: int | Sequence[int] = 64,  # width of α_0 … α_num_up, coarsest first (paper 64 each)
        kernel_size: int = 3,  # kernel of SPADE's γ and β convs (paper 3)
        num_up: int = 5,  # up-sampling stages; H and W must be multiples of 2^num_up (paper 5: 8² -> 256²)
        norm: str = "instance",  # SPADE's parameter-free norm: 'instance' [ours] or 'batch' (paper)
        z_dim: int = 64,  # size of the replicated 3D noise, one N(0, 1) vector per picture (paper 64)
        noise_channels: int = 0,  # per-pixel N(0, 1) noise channels beside the labels [ours]; 0 = none
        spectral: bool = True,  # spectral norm on the ResBlock convs (paper)
    ) -> None:
        super().__init__()
        if label_nc < 1 or ngf < 1 or num_up < 1 or z_dim < 1 or noise_channels < 0 or pyramid_stem < 1:
            raise ValueError(
                "label_nc, ngf, num_up, z_dim and pyramid_stem must be ≥ 1 and noise_channels ≥ 0"
            )
        num_blocks = num_up + 1
        alpha = [pyramid_widths] * num_blocks if isinstance(pyramid_widths, int) else list(pyramid_widths)
        if len(alpha) != num_blocks:
            raise ValueError(
                f"pyramid_widths needs {num_blocks} values (num_up + 1 levels), got {len(alpha)}"
            )
        mult = (
            [min(16, 2 ** (num_up + 1 - j)) for j in range(num_up + 2)]
            if channel_mult is None
            else list(channel_mult)
        )
        if len(mult) != num_up + 2:
            raise ValueError(f"channel_mult needs {num_up + 2} values (num_up + 2), got {len(mult)}")
        self.label_nc = label_nc
        self.num_up = num_up
        self.z_dim = z_dim
        self.noise_channels = noise_channels
        self.size_multiple = 2**num_up
        cond_nc = label_nc + noise_channels  # per-pixel input: one-hot labels, then per-pixel noise
        widths = [ngf * m for m in mult]

        self.pyramid = AdaptationPyramid(cond_nc, z_dim, pyramid_stem, alpha)
        self.fc = nn.Conv2d(cond_nc, widths[0], 3, padding=1)  # down-sampled cat(S, noise) -> start tensor
        self.fc_z = nn.Linear(z_dim, widths[0], bias=False)  # the replicated z's share of that conv
        cond_widths = [alpha[0]] + [a + alpha[0] for a in alpha[1:]]  # block j sees α_0, or cat(α_j, Up(α_0))
        self.blocks = nn.ModuleList(
            DPResBlock(widths[j], widths[j + 1], cond_widths[j], kernel_size, norm, spectral)
            for j in range(num_blocks)
        )
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(
        self, label: torch.Tensor, z: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """label int64 [B,1,H,W]; z float [B,z_dim]; noise float [B,noise_channels,H,W] (only when
        noise_channels > 0) -> image [B,3,H,W] in [-1,1]."""
        cond = one_hot(label, self.label_nc)  # [B,N,H,W]
        if self.noise_channels:
            if noise is None:
                raise ValueError(f"this generator takes {self.noise_channels} noise channels and got none")
            cond = torch.cat([cond, noise], dim=1)  # [B,N+C_noise,H,W]
        alphas = self.pyramid(cond, z)  # α_j [B,a_j,H/2^(num_up-j),W/2^(num_up-j)], coarsest first
        start = downsample_nearest(cond, self.size_multiple)  # [B,N+C_noise,H/2^num_up,W/2^num_up]
        x = self.fc(start) + self.fc_z(z)[:, :, None, None]  # [B,w0,H/2^num_up,W/2^num_up]
        for j, block in enumerate(self.blocks):
            if j == 0:
                feats = alphas[0]
            else:  # α_j beside α_0 brought up to α_j's resolution (paper eq. 2)
                coarse = F.interpolate(
                    alphas[0], scale_factor=float(2**j), mode="bilinear", align_corners=False
                )
                feats = torch.cat([alphas[j], coarse], dim=1)  # [B,a_j+a_0,h,w]
            x = block(x, feats)  # [B,w_{j+1},H/2^(num_up-j),W/2^(num_up-j)]
            if j < self.num_up:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))  # [B,3,H,W]


# ----------------------------------------------------------------------------
# Discriminator.


def patch_head(fin: int, width: int, norm: str) -> nn.Sequential:
    """A patch-level critic on an encoder feature map: stride-2 3×3 conv, three 3×3 [conv, norm, LeakyReLU 0.2],
    3×3 conv to one score per patch (paper: BatchNorm, no spectral norm)."""
    if norm not in ("batch", "spectral"):
        raise ValueError(f"patch_norm must be 'batch' or 'spectral', got {norm!r}")
    spectral = norm == "spectral"
    layers: list[nn.Module] = [
        maybe_spectral(nn.Conv2d(fin, width, 3, stride=2, padding=1), spectral),
        nn.LeakyReLU(0.2),
    ]
    for _ in range(3):
        layers.append(maybe_spectral(nn.Conv2d(width, width, 3, padding=1), spectral))
        if not spectral:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.LeakyReLU(0.2))
    layers.append(maybe_spectral(nn.Conv2d(width, 1, 3, padding=1), spectral))
    return nn.Sequential(*layers)


class DPDiscriminator(nn.Module):
    """The U-Net segmenter with supervision at three levels: pixel (N+1 logits), patch (a hinge score map per
    head on encoder blocks `patch_at`) and feature (the decoder's block outputs after the first)."""

    def __init__(
        self,
        label_nc: int,  # N semantic classes; the logits have N+1 channels (the last is "fake")
        widths: Sequence[int] = (128, 128, 256, 256, 512, 512),  # per encoder block (paper)
        patch_at: Sequence[int] = (4, 6),  # encoder blocks (1-based) that feed a patch head (paper 4th, 6th)
        patch_width: int = 64,  # channels inside each patch head (paper 64)
        patch_norm: str = "spectral",  # patch heads: 'spectral' norm [ours] or 'batch' (paper)
        spectral: bool = True,  # spectral norm on every U-Net conv (paper)
    ) -> None:
        super().__init__()
        widths = list(widths)
        if not patch_at or any(not 1 <= i <= len(widths) for i in patch_at):
            raise ValueError(f"patch_at must name encoder blocks 1 … {len(widths)}, got {list(patch_at)}")
        self.label_nc = label_nc
        self.unet = SegmentationDiscriminator(label_nc, widths, spectral)
        self.patch_at = tuple(patch_at)
        self.patch_heads = nn.ModuleList(patch_head(widths[i - 1], patch_width, patch_norm) for i in patch_at)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """image [B,3,H,W] -> (logits [B,N+1,H,W], patch scores [B,1,h_i,w_i] per head, decoder features
        [B,c_i,h_i,w_i] per up block but the first). `SegmentationDiscriminator.forward`'s pass, keeping the
        encoder and decoder maps it discards."""
        skips = []
        x = image
        for block in self.unet.down:
            x = block(x)  # [B,w_i,H/2^(i+1),W/2^(i+1)]
            skips.append(x)
        scores = [head(skips[i - 1]) for head, i in zip(self.patch_heads, self.patch_at, strict=True)]
        feats = []
        for block, skip in zip(self.unet.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))  # [B,w_skip,h_skip,w_skip]
            feats.append(x)
        logits = self.unet.head(x)  # [B,N+1,H/2,W/2]
        logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return logits, scores, feats[1:]
