"""CollageGAN's class-specific generator (Li et al., ICCV 2021; models.md §1.3 and §1.6 "Class model").

One generator per thing class draws the instance's square box from its context: the box enlarged 2× around
the same centre, cut from the picture with the instance removed (blurred or zeroed), plus that box's label
map, the instance's own mask and a validity map (the parts outside the picture are padded). Three parts, as in
the paper:

- **encoder** (`ClassEncoder`): convolution and residual down-sampling on cat(context, one-hot labels, instance
  mask, validity); its last `fpn_levels` levels are an FPN. The bottom-up end gives z (μ, log σ² through a
  linear head on the flattened coarsest map), so z depends on the context; the top-down path gives the
  spatial feature φ′;
- **feature crop** (`feature_crop`): parameter-free. The square box is always the context's central half
  (`common.crops` pads and never clips), so the crop is the fixed central half of φ′ — a slice, no RoIAlign.
  The server does the same slice in numpy between the two exported graphs;
- **decoder** (`ClassDecoder`): StyleGAN2's skip synthesis started from φ instead of the 4×4 constant, styled
  by w = mapping(z) in every layer, with explicit per-pixel noise (`models/nets/stylegan.py`).

The instance-mask input is [ours] (models.md §1.6): without it two touching trees of the same class would be
one blob in the labels. The validity input is [ours] too: it tells padding from black pixels.

Export (models.md §0.1): encoder (context, labels, mask, valid) -> (mu, logvar, phi_prime) and decoder
(phi, z, noise) -> image (`ClippedDecoder`: clipped to [-1, 1] in the graph) are separate graphs at fixed sizes;
`ClassGenerator` joins them for training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.nets.blocks import one_hot
from models.nets.stylegan import (
    EqualConv2d,
    EqualLinear,
    MappingNetwork,
    ResDownBlock,
    SkipSynthesis,
    lrelu,
)


def central_half(side: int) -> tuple[int, int]:
    """[start, stop) of the central half of a side (the square box inside the context box); side % 4 == 0."""
    if side % 4:
        raise ValueError(f"the feature map side {side} must be a multiple of 4 to have an exact central half")
    return side // 4, 3 * side // 4


def feature_crop(phi_prime: torch.Tensor) -> torch.Tensor:
    """φ′ [B,C,P,P] -> φ [B,C,P/2,P/2]: the part of the context's features over the square box. The server
    computes `phi_prime[:, :, P//4 : 3*P//4, P//4 : 3*P//4]` on the encoder's numpy output, the same slice."""
    start, stop = central_half(phi_prime.shape[-1])
    return phi_prime[:, :, start:stop, start:stop]


class ClassEncoder(nn.Module):
    """cat(context, one-hot labels, mask, valid) -> (μ, log σ², φ′): conv stem, residual down blocks, FPN.

    Levels are the resolutions S, S/2, …, S/2^(L-1) with `widths[l]` channels each; the last `fpn_levels`
    form the bottom-up path. Top-down: a 1×1 lateral per bottom-up level to `fpn_channels`, nearest
    up-sampling and adding from the coarsest level to the finest, a 3×3 smoothing conv -> φ′ at the finest
    bottom-up level. z comes from the coarsest map (it does not pass through the top-down path, as in the
    paper), so the z head's linear layer fixes the input size."""

    def __init__(
        self,
        label_nc: int,  # number of label classes (one-hot channels)
        context_size: int,  # S: side of the context crop (fixed by the z head)
        widths: list[int],  # channels at S, S/2, …: len(widths) levels, widths[0] after the stem conv
        fpn_levels: int,  # how many of the coarsest levels form the FPN (≥ 2); φ′ is at the finest of them
        fpn_channels: int,  # channels of the laterals and of φ′
        z_dim: int,  # latent width
    ) -> None:
        super().__init__()
        levels = len(widths)
        if not 2 <= fpn_levels <= levels:
            raise ValueError(f"fpn_levels must be in 2..len(widths) = {levels}, got {fpn_levels}")
        if context_size % 2 ** (levels - 1):
            raise ValueError(f"context_size {context_size} must be a multiple of 2^(len(widths)-1)")
        self.label_nc, self.context_size, self.z_dim = label_nc, context_size, z_dim
        self.phi_size = context_size // 2 ** (levels - fpn_levels)  # side of φ′
        self.fpn_channels = fpn_channels
        self.first_fpn = levels - fpn_levels  # index of the finest FPN level
        self.stem = EqualConv2d(3 + label_nc + 2, widths[0], 3)
        self.downs = nn.ModuleList(ResDownBlock(a, b) for a, b in zip(widths, widths[1:], strict=False))
        self.laterals = nn.ModuleList(
            EqualConv2d(widths[i], fpn_channels, 1) for i in range(self.first_fpn, levels)
        )
        self.smooth = EqualConv2d(fpn_channels, fpn_channels, 3)
        coarsest = context_size // 2 ** (levels - 1)
        self.z_head = EqualLinear(widths[-1] * coarsest * coarsest, 2 * z_dim)

    def forward(
        self,
        context: torch.Tensor,  # [B,3,S,S] in [-1,1], the instance removed
        labels: torch.Tensor,  # [B,1,S,S] int64 label ids (one-hot inside, so the server sends raw ids)
        mask: torch.Tensor,  # [B,1,S,S] float 0/1: the instance's own pixels
        valid: torch.Tensor,  # [B,1,S,S] float 0/1: pixels inside the picture
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> mu [B,z_dim], logvar [B,z_dim], phi_prime [B,fpn_channels,P,P]."""
        x = torch.cat([context, one_hot(labels, self.label_nc), mask, valid], dim=1)  # [B,3+N+2,S,S]
        x = lrelu(self.stem(x))  # [B,w0,S,S]
        feats = [x]
        for down in self.downs:
            x = down(x)  # [B,w_l,S/2^l,S/2^l]
            feats.append(x)
        bottom_up = feats[self.first_fpn :]
        top = self.laterals[-1](bottom_up[-1])  # [B,F,coarsest,coarsest]
        for lateral, feat in zip(reversed(self.laterals[:-1]), reversed(bottom_up[:-1]), strict=True):
            top = F.interpolate(top, scale_factor=2.0, mode="nearest") + lateral(feat)  # [B,F,2r,2r]
        phi_prime = self.smooth(top)  # [B,F,P,P]
        stats = self.z_head(bottom_up[-1].flatten(1))  # [B,2·z_dim]
        return stats[:, : self.z_dim], stats[:, self.z_dim :], phi_prime


class ClassDecoder(nn.Module):
    """(φ, z, noise) -> the square box: mapping MLP z -> w, then StyleGAN2's skip synthesis from φ."""

    def __init__(
        self,
        in_channels: int,  # channels of φ (the encoder's fpn_channels)
        in_size: int,  # side of φ (half the side of φ′)
        widths: list[int],  # synthesis channels at in_size, 2·in_size, …; output side in_size·2^(len-1)
        z_dim: int,  # latent width
        w_dim: int,  # style width
        mapping_layers: int,  # depth of the mapping MLP (StyleGAN2: 8; compact: 2)
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.synthesis = SkipSynthesis(in_channels, widths, w_dim)
        self.in_size, self.out_size = in_size, in_size * self.synthesis.factor
        self.noise_channels = self.synthesis.noise_channels

    def forward(self, phi: torch.Tensor, z: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """phi [B,C,s,s], z [B,z_dim], noise [B,noise_channels,T,T] -> image [B,3,T,T] (≈[-1,1], unclamped)."""
        return self.synthesis(phi, self.mapping(z), noise)


class ClippedDecoder(nn.Module):
    """The decoder as served: its image clipped to [-1, 1] inside the graph, the range every served image has
    (docs/contracts.md), so the composition stage blends it without a clip of its own. Training leaves the
    output unclipped: a clip there would stop the gradient of every saturated pixel."""

    def __init__(self, decoder: ClassDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, phi: torch.Tensor, z: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """phi [B,C,s,s], z [B,z_dim], noise [B,noise_channels,T,T] -> image [B,3,T,T] in [-1,1]."""
        return self.decoder(phi, z, noise).clamp(-1.0, 1.0)


class ClassGenerator(nn.Module):
    """Encoder, feature crop and decoder in one module: what the trainer optimises and averages (EMA), so the
    served encoder and decoder are always a matching pair. Export takes `.encoder` and `.decoder` apart."""

    def __init__(
        self,
        label_nc: int,  # number of label classes
        context_size: int,  # S, side of the context crop; the output is S/2 (the central half)
        z_dim: int,  # latent width
        encoder: Mapping[str, Any],  # ClassEncoder kwargs: widths, fpn_levels, fpn_channels
        decoder: Mapping[str, Any],  # ClassDecoder kwargs: widths, w_dim, mapping_layers
    ) -> None:
        super().__init__()
        self.encoder = ClassEncoder(label_nc, context_size, z_dim=z_dim, **encoder)
        phi_size = self.encoder.phi_size // 2
        self.decoder = ClassDecoder(self.encoder.fpn_channels, phi_size, z_dim=z_dim, **decoder)
        central_half(self.encoder.phi_size)  # refuses a φ′ without an exact central half
        if self.decoder.out_size * 2 != context_size:
            raise ValueError(
                f"the decoder draws {self.decoder.out_size}² from φ {phi_size}², but the square box of a "
                f"{context_size}² context is {context_size // 2}²: use {_levels_hint(phi_size, context_size // 2)} "
                "decoder widths"
            )
        self.context_size, self.target_size, self.z_dim = context_size, context_size // 2, z_dim
        self.noise_channels = self.decoder.noise_channels

    def forward(
        self,
        context: torch.Tensor,  # [B,3,S,S] in [-1,1]
        labels: torch.Tensor,  # [B,1,S,S] int64
        mask: torch.Tensor,  # [B,1,S,S] float
        valid: torch.Tensor,  # [B,1,S,S] float
        noise: torch.Tensor,  # [B,noise_channels,T,T]
        eps: torch.Tensor | None = None,  # [B,z_dim] N(0,1) for z = μ + σ·ε; None: z = μ
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> image [B,3,T,T], mu [B,z_dim], logvar [B,z_dim]."""
        mu, logvar, phi_prime = self.encoder(context, labels, mask, valid)
        z = mu if eps is None else mu + torch.exp(0.5 * logvar) * eps  # [B,z_dim]
        return self.decoder(feature_crop(phi_prime), z, noise), mu, logvar


def _levels_hint(phi_size: int, target: int) -> str:
    """How many decoder widths take φ's side to the target side (a message for a config that misses)."""
    levels = 1
    while phi_size * 2 ** (levels - 1) < target:
        levels += 1
    return f"{levels}" if phi_size * 2 ** (levels - 1) == target else "no number of"
