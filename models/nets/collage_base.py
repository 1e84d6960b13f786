"""CollageGAN's base generator (Li et al., ICCV 2021; models.md §1.1, §1.2, §1.6 "Base"): a conditional StyleGAN2
that draws the whole scene from cat(S, E), the one-hot labels and the instance edges.

The paper's architecture, as for the class generators (`models/nets/collage.py`):
- **encoder** (`LayoutEncoder`): a conv stem and residual down blocks on cat(S, E) (Encoder¹); their last
  `fpn_levels` levels are an FPN (Encoder²). The top-down path gives the spatial feature φ′, which is φ (the base
  model's feature crop is the identity); the end of the bottom-up path gives z's Gaussian (μ, log σ²), so z is
  conditioned on the layout and does not pass through the top-down path;
- **decoder**: StyleGAN2's skip synthesis started from φ instead of the learned 4×4 constant (the layers below
  φ's resolution skipped), styled by w = mapping(z) in every layer, with explicit per-pixel noise
  (`models/nets/stylegan.py`).

What the paper's base leaves out and the studio needs, a style taken from a photo, is [ours]: a separate
`StyleEncoder` (photo -> μ, log σ², SPADE's VAE trick) gives the ε of the paper's reparameterised
z = μ(S, E) + σ(S, E)·ε. At training ε is sampled from the photo's Gaussian (the real picture); a seed draws it
from N(0, 1), which is exactly the paper's sampling of z. So the contract's (docs/contracts.md) graphs are:
- generator (`ServedGenerator`): label, instance, z (= ε: a seeded N(0, 1) draw or the encoder's μ), noise ->
  image clipped to [-1, 1];
- encoder (`StyleEncoder`): a photo at its own fixed size -> mu, logvar of ε.

The generator takes any picture size that is a multiple of `size_multiple` (as SPADE's), the photo encoder one
fixed size: z's head reads the spatial mean of the bottom-up end [ours: the paper's flattened map, kept by the
class generators, would fix the picture size].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.nets.blocks import semantic_input
from models.nets.spade import fit_to_encoder
from models.nets.stylegan import (
    EqualConv2d,
    EqualLinear,
    MappingNetwork,
    ResDownBlock,
    SkipSynthesis,
    lrelu,
)


class LayoutEncoder(nn.Module):
    """cat(S, E) -> (μ, log σ², φ): conv stem, residual down blocks, FPN (as `ClassEncoder`, on the layout only).

    Levels are the resolutions H, H/2, …, H/2^(L-1) with `widths[l]` channels each; the last `fpn_levels` form
    the bottom-up path. Top-down: a 1×1 lateral per bottom-up level to `fpn_channels`, nearest up-sampling and
    adding from the coarsest level to the finest, a 3×3 smoothing conv -> φ at the finest bottom-up level,
    H / 2^(L - fpn_levels). z's head is linear on the coarsest map's spatial mean."""

    def __init__(
        self,
        label_nc: int,  # number of label classes (one-hot channels; the edge channel is added)
        widths: list[int],  # channels at H, H/2, …: len(widths) levels, widths[0] after the stem conv
        fpn_levels: int,  # how many of the coarsest levels form the FPN (≥ 2); φ is at the finest of them
        fpn_channels: int,  # channels of the laterals and of φ
        z_dim: int,  # latent width
    ) -> None:
        super().__init__()
        levels = len(widths)
        if not 2 <= fpn_levels <= levels:
            raise ValueError(f"fpn_levels must be in 2..len(widths) = {levels}, got {fpn_levels}")
        self.label_nc, self.z_dim, self.fpn_channels = label_nc, z_dim, fpn_channels
        self.first_fpn = levels - fpn_levels  # index of the finest FPN level
        self.phi_factor = 2**self.first_fpn  # picture side / φ side
        self.size_multiple = 2 ** (levels - 1)  # sides that halve exactly down to the coarsest level
        self.stem = EqualConv2d(label_nc + 1, widths[0], 3)
        self.downs = nn.ModuleList(ResDownBlock(a, b) for a, b in zip(widths, widths[1:], strict=False))
        self.laterals = nn.ModuleList(
            EqualConv2d(widths[i], fpn_channels, 1) for i in range(self.first_fpn, levels)
        )
        self.smooth = EqualConv2d(fpn_channels, fpn_channels, 3)
        self.z_head = EqualLinear(widths[-1], 2 * z_dim)

    def forward(
        self,
        label: torch.Tensor,  # [B,1,H,W] int64 label ids
        instance: torch.Tensor,  # [B,1,H,W] int64 instance ids (0 = stuff); only their edges are used
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> mu [B,z_dim], logvar [B,z_dim], phi [B,fpn_channels,H/phi_factor,W/phi_factor]."""
        x = semantic_input(label, instance, self.label_nc, use_edges=True)  # [B,N+1,H,W]
        x = lrelu(self.stem(x))  # [B,w0,H,W]
        feats = [x]
        for down in self.downs:
            x = down(x)  # [B,w_l,H/2^l,W/2^l]
            feats.append(x)
        bottom_up = feats[self.first_fpn :]
        top = self.laterals[-1](bottom_up[-1])  # [B,F,h,w] at the coarsest level
        for lateral, feat in zip(reversed(self.laterals[:-1]), reversed(bottom_up[:-1]), strict=True):
            top = F.interpolate(top, scale_factor=2.0, mode="nearest") + lateral(feat)  # [B,F,2h,2w]
        phi = self.smooth(top)  # [B,F,H/phi_factor,W/phi_factor]
        stats = self.z_head(bottom_up[-1].mean(dim=(2, 3)))  # [B,2·z_dim]
        return stats[:, : self.z_dim], stats[:, self.z_dim :], phi


class StyleEncoder(nn.Module):
    """A photo -> (μ, log σ²) of ε [ours]: conv stem, residual down blocks, a linear head on the flattened
    coarsest map. Fixed input size (the head's width depends on it), like SPADE's encoder: photos of any size
    are resized to `image_size` first (`fit_to_encoder`, the server's antialiased resize)."""

    def __init__(
        self,
        image_size: int,  # side of the square photo it reads
        widths: list[int],  # channels at image_size, image_size/2, …; the last level feeds the head
        z_dim: int,  # latent width (the generator's)
    ) -> None:
        super().__init__()
        levels = len(widths)
        if levels < 1 or image_size % 2 ** (levels - 1):
            raise ValueError(f"image_size {image_size} must be a multiple of 2^(len(widths)-1)")
        self.image_size = (image_size, image_size)
        self.z_dim = z_dim
        self.stem = EqualConv2d(3, widths[0], 3)
        self.downs = nn.Sequential(*(ResDownBlock(a, b) for a, b in zip(widths, widths[1:], strict=False)))
        coarsest = image_size // 2 ** (levels - 1)
        self.head = EqualLinear(widths[-1] * coarsest * coarsest, 2 * z_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image [B,3,S,S] in [-1,1] at image_size -> (mu, logvar), each [B,z_dim]."""
        x = self.downs(lrelu(self.stem(image)))  # [B,C,s,s]
        stats = self.head(x.flatten(1))  # [B,2·z_dim]
        return stats[:, : self.z_dim], stats[:, self.z_dim :]


class SceneGenerator(nn.Module):
    """The paper's G_b: layout encoder -> (z, φ), mapping z -> w, StyleGAN2 synthesis from φ. Takes the ε of
    z = μ + σ·ε as an input, so the served graph is this network with its picture clipped."""

    def __init__(
        self,
        label_nc: int,  # number of label classes
        z_dim: int,  # latent width
        encoder: Mapping[str, Any],  # LayoutEncoder kwargs: widths, fpn_levels, fpn_channels
        decoder: Mapping[str, Any],  # widths (synthesis channels from φ's side up), w_dim, mapping_layers
    ) -> None:
        super().__init__()
        self.encoder = LayoutEncoder(label_nc, z_dim=z_dim, **encoder)
        self.mapping = MappingNetwork(z_dim, decoder["w_dim"], decoder["mapping_layers"])
        self.synthesis = SkipSynthesis(self.encoder.fpn_channels, decoder["widths"], decoder["w_dim"])
        if self.synthesis.factor != self.encoder.phi_factor:
            raise ValueError(
                f"φ is 1/{self.encoder.phi_factor} of the picture but the decoder up-samples "
                f"{self.synthesis.factor}×: give it {self.encoder.first_fpn + 1} widths"
            )
        self.label_nc, self.z_dim = label_nc, z_dim
        self.noise_channels = self.synthesis.noise_channels
        self.size_multiple = self.encoder.size_multiple

    def forward(
        self,
        label: torch.Tensor,  # [B,1,H,W] int64
        instance: torch.Tensor,  # [B,1,H,W] int64
        eps: torch.Tensor,  # [B,z_dim]: ε of z = μ + σ·ε (an N(0, 1) draw, or from a photo)
        noise: torch.Tensor,  # [B,noise_channels,H,W] N(0, 1)
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> image [B,3,H,W] (unclipped, ≈[-1,1]), mu, logvar [B,z_dim] of the layout's z."""
        mu, logvar, phi = self.encoder(label, instance)
        z = mu + torch.exp(0.5 * logvar) * eps  # [B,z_dim]
        return self.synthesis(phi, self.mapping(z), noise), mu, logvar


class BaseOutputs(NamedTuple):
    """One training forward: the picture and the two Gaussians the KL terms pull towards N(0, 1)."""

    image: torch.Tensor  # [B,3,H,W], unclipped
    mu: torch.Tensor  # [B,z_dim]: the layout's z (the paper's)
    logvar: torch.Tensor  # [B,z_dim]
    style_mu: torch.Tensor  # [B,z_dim]: the photo's ε [ours]
    style_logvar: torch.Tensor  # [B,z_dim]


class BaseGenerator(nn.Module):
    """G_b and the photo encoder in one module: what the trainer optimises and averages (EMA), so the served
    graphs are always a matching pair. Export takes `ServedGenerator(G.scene)` and `G.style` apart."""

    def __init__(
        self,
        label_nc: int,  # number of label classes
        z_dim: int,  # latent width (z, ε and the contract's `z` input)
        encoder: Mapping[str, Any],  # LayoutEncoder kwargs: widths, fpn_levels, fpn_channels
        decoder: Mapping[str, Any],  # widths, w_dim, mapping_layers
        style: Mapping[str, Any],  # StyleEncoder kwargs: image_size, widths
    ) -> None:
        super().__init__()
        self.scene = SceneGenerator(label_nc, z_dim, encoder, decoder)
        self.style = StyleEncoder(z_dim=z_dim, **style)
        self.label_nc, self.z_dim = label_nc, z_dim
        self.noise_channels, self.size_multiple = self.scene.noise_channels, self.scene.size_multiple

    def forward(
        self,
        label: torch.Tensor,  # [B,1,H,W] int64
        instance: torch.Tensor,  # [B,1,H,W] int64
        noise: torch.Tensor,  # [B,noise_channels,H,W]
        photo: torch.Tensor,  # [B,3,H',W'] in [-1,1]: the style (training: the paired real picture)
        eps: torch.Tensor | None = None,  # [B,z_dim] N(0,1) for ε = μ + σ·eps from the photo; None: ε = μ
    ) -> BaseOutputs:
        """The training forward (one call, so DDP sees every parameter used): the photo's ε, then G_b."""
        style_mu, style_logvar = self.style(fit_to_encoder(photo, self.style.image_size))
        style = style_mu if eps is None else style_mu + torch.exp(0.5 * style_logvar) * eps  # [B,z_dim]
        image, mu, logvar = self.scene(label, instance, style, noise)
        return BaseOutputs(image, mu, logvar, style_mu, style_logvar)


class ServedGenerator(nn.Module):
    """The generator graph of docs/contracts.md: (label, instance, z, noise) -> image clipped to [-1, 1] in the
    graph (training leaves it unclipped: a clip would stop the gradient of every saturated pixel)."""

    def __init__(self, scene: SceneGenerator) -> None:
        super().__init__()
        self.scene = scene

    def forward(
        self, label: torch.Tensor, instance: torch.Tensor, z: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """label, instance [B,1,H,W] int64, z [B,z_dim] (ε), noise [B,noise_channels,H,W] -> [B,3,H,W]."""
        return self.scene(label, instance, z, noise)[0].clamp(-1.0, 1.0)
