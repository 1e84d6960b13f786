"""Shared building blocks of the SPADE family: label encoding, SPADE normalisation and the SPADE ResBlock.

Reimplementation of the spatially-adaptive normalisation of Park et al., "Semantic Image Synthesis with
Spatially-Adaptive Normalization" (CVPR 2019), written from the paper. OASIS, DP-GAN, SC-GAN and LGGAN reuse
these blocks. Everything here must export to ONNX unchanged: one-hot encoding compares against an arange, edges
use slicing and padding, tensors are split by slicing (never `torch.chunk`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

EDGE_KEY = 1024  # instance ids are combined with label ids as label*1024 + instance (pix2pixHD convention)

# ----------------------------------------------------------------------------
# Label encoding (runs inside the exported graph, so the server can send raw ids).


def one_hot(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Ids [B,1,H,W] (int64) -> one-hot float [B,num_classes,H,W]; ids ≥ num_classes give all-zero pixels.

    A comparison against an arange exports to a plain `Equal` node, unlike `F.one_hot`.
    """
    classes = torch.arange(num_classes, device=label.device, dtype=label.dtype).view(1, num_classes, 1, 1)
    return (label == classes).to(torch.float32)  # [B,N,H,W]


def instance_edges(label: torch.Tensor, instance: torch.Tensor) -> torch.Tensor:
    """Boundary map [B,1,H,W] (float 0/1): 1 where a 4-neighbour has a different (label, instance) pair.

    Both pixels on either side of a boundary are marked, as in pix2pixHD. Keying on label*1024+instance
    makes stuff regions (instance 0) produce edges between different classes too.
    """
    key = label * EDGE_KEY + instance  # [B,1,H,W]
    dx = (key[:, :, :, 1:] != key[:, :, :, :-1]).to(torch.float32)  # [B,1,H,W-1]
    dy = (key[:, :, 1:, :] != key[:, :, :-1, :]).to(torch.float32)  # [B,1,H-1,W]
    edges = torch.maximum(F.pad(dx, (1, 0)), F.pad(dx, (0, 1)))
    edges = torch.maximum(edges, torch.maximum(F.pad(dy, (0, 0, 1, 0)), F.pad(dy, (0, 0, 0, 1))))
    return edges  # [B,1,H,W]


def semantic_input(
    label: torch.Tensor, instance: torch.Tensor, label_nc: int, use_edges: bool
) -> torch.Tensor:
    """The conditioning map S (+E): one-hot ids, optionally followed by the instance-edge channel."""
    seg = one_hot(label, label_nc)  # [B,N,H,W]
    if use_edges:
        seg = torch.cat([seg, instance_edges(label, instance)], dim=1)  # [B,N+1,H,W]
    return seg


def downsample_nearest(seg: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest down-sampling by an integer factor as a strided slice: exact and export-friendly.

    Equals `F.interpolate(seg, scale_factor=1/factor, mode="nearest")` when H and W are multiples of factor.
    """
    return seg if factor == 1 else seg[:, :, ::factor, ::factor]


def parameter_free_norm(kind: str, channels: int) -> nn.Module:
    """The normalisation SPADE denormalises: affine off, the affine part comes from the label map."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    raise ValueError(f"norm must be 'instance' or 'batch', got {kind!r}")


def maybe_spectral(module: nn.Module, enabled: bool) -> nn.Module:
    return spectral_norm(module) if enabled else module


# ----------------------------------------------------------------------------
# SPADE: out = norm(x) * (1 + gamma(m)) + beta(m), gamma/beta from a small conv net on the label map m.


class SPADE(nn.Module):
    """Spatially-adaptive denormalisation (paper Fig. 2).

    Split into `hidden` (the shared conv + ReLU on the label map) and `modulate` so that a ResBlock's shortcut
    can reuse the hidden features of its first SPADE.

    With `z_dim` > 0 a style latent enters the conditioning [ours, after OASIS's 3D noise]: a linear map of z is
    added to the hidden conv's output, which equals concatenating z broadcast over space to the label map
    (up to zero padding at the border) for one small matmul instead of z_dim extra input channels. z has to
    enter here: a spatially constant offset added to the activations is exactly what the parameter-free
    InstanceNorm removes.

    With `noise_nc` > 0 per-pixel noise enters the same way [ours, OASIS's per-pixel 3D noise]: a conv of the
    noise map added to the hidden conv's output, which equals concatenating the noise to the label map, split
    in two so that a checkpoint without noise loads with this conv at zero (the network it was, to start from).
    Inside a region of one class the label map is constant; without noise the only thing that varies there is
    the distance to the region's edges, so texture had to be drawn from the edges (planks hanging from a
    skyline, bands along a shore).
    """

    def __init__(
        self,
        norm_nc: int,  # channels of the activation being normalised
        label_nc: int,  # channels of the conditioning map (one-hot classes + optional edge channel)
        nhidden: int = 128,  # width of the shared hidden conv (paper 128); the main cost at small ngf
        kernel_size: int = 3,  # kernel of the convs acting on the label map (paper 3; 1 hurts, Table 4)
        norm: str = "instance",  # parameter-free norm: 'instance' or 'batch'
        z_dim: int = 0,  # style latent size fed into the hidden features; 0 = label map only
        shared: nn.Module | None = None,  # reuse another SPADE's hidden features instead of computing its own
        noise_nc: int = 0,  # per-pixel noise channels fed into the hidden features; 0 = none
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.norm_nc = norm_nc
        self.norm = parameter_free_norm(norm, norm_nc)
        self.mlp_shared: nn.Module | None = None
        self.mlp_z: nn.Module | None = None
        self.mlp_noise: nn.Conv2d | None = None
        if shared is None:
            self.mlp_shared = nn.Conv2d(label_nc, nhidden, kernel_size, padding=pad)
            if z_dim > 0:
                self.mlp_z = nn.Linear(z_dim, nhidden)
            if noise_nc > 0:
                self.mlp_noise = nn.Conv2d(noise_nc, nhidden, kernel_size, padding=pad, bias=False)
                nn.init.zeros_(self.mlp_noise.weight)  # starts as the SPADE without noise (class docstring)
        self.mlp_gamma = nn.Conv2d(nhidden, norm_nc, kernel_size, padding=pad)
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, kernel_size, padding=pad)

    def hidden(
        self, seg: torch.Tensor, z: torch.Tensor | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Label map at the activation's resolution [B,label_nc,h,w] (+ z [B,z_dim], + noise at the same
        resolution [B,noise_nc,h,w]) -> [B,nhidden,h,w]."""
        if self.mlp_shared is None:
            raise RuntimeError("this SPADE shares another SPADE's hidden features; call modulate() with them")
        h = self.mlp_shared(seg)
        if self.mlp_z is not None:
            if z is None:
                raise ValueError("this SPADE was built with z_dim > 0 and needs z")
            h = h + self.mlp_z(z)[:, :, None, None]
        if self.mlp_noise is not None:
            if noise is None:
                raise ValueError("this SPADE was built with noise_nc > 0 and needs noise")
            h = h + self.mlp_noise(noise)
        return F.relu(h)

    def modulate(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)

    def forward(
        self,
        x: torch.Tensor,
        seg: torch.Tensor,
        z: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B,C,h,w], seg [B,label_nc,h,w] and noise [B,noise_nc,h,w] (already at x's resolution), z [B,z_dim]
        -> [B,C,h,w]."""
        return self.modulate(x, self.hidden(seg, z, noise))


class SPADEResBlock(nn.Module):
    """Two [SPADE -> LeakyReLU 0.2 -> conv] stages plus a shortcut (SPADE -> 1×1 conv when widths differ).

    Middle width = min(fin, fout) as in the paper's appendix. With `share_shortcut_hidden` the shortcut SPADE
    keeps its own gamma/beta conv but reuses the first SPADE's hidden features (saves one label-map conv).
    """

    def __init__(
        self,
        fin: int,  # input channels
        fout: int,  # output channels
        label_nc: int,  # conditioning map channels
        nhidden: int = 128,  # SPADE hidden width for this block
        kernel_size: int = 3,  # SPADE kernel size on the label map
        norm: str = "instance",  # parameter-free norm inside SPADE
        z_dim: int = 0,  # style latent size fed to every SPADE of the block; 0 = none
        spectral: bool = True,  # spectral norm on the block's convs (as in the SPADE generator)
        share_shortcut_hidden: bool = False,  # shortcut SPADE reuses norm_0's hidden features
        noise_nc: int = 0,  # per-pixel noise channels fed to every SPADE of the block; 0 = none
    ) -> None:
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.share_shortcut_hidden = share_shortcut_hidden
        self.conv_0 = maybe_spectral(nn.Conv2d(fin, fmiddle, 3, padding=1), spectral)
        self.conv_1 = maybe_spectral(nn.Conv2d(fmiddle, fout, 3, padding=1), spectral)
        self.norm_0 = SPADE(fin, label_nc, nhidden, kernel_size, norm, z_dim, noise_nc=noise_nc)
        self.norm_1 = SPADE(fmiddle, label_nc, nhidden, kernel_size, norm, z_dim, noise_nc=noise_nc)
        if self.learned_shortcut:
            self.conv_s = maybe_spectral(nn.Conv2d(fin, fout, 1, bias=False), spectral)
            shared = self.norm_0 if share_shortcut_hidden else None
            self.norm_s = SPADE(fin, label_nc, nhidden, kernel_size, norm, z_dim, shared, noise_nc)

    def forward(
        self,
        x: torch.Tensor,
        seg: torch.Tensor,
        z: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B,fin,h,w], seg [B,label_nc,h,w], z [B,z_dim] or None, noise [B,noise_nc,h,w] or None
        -> [B,fout,h,w]."""
        hidden_0 = self.norm_0.hidden(seg, z, noise)  # [B,nhidden,h,w]
        if self.learned_shortcut:
            hidden_s = hidden_0 if self.share_shortcut_hidden else self.norm_s.hidden(seg, z, noise)
            x_s = self.conv_s(self.norm_s.modulate(x, hidden_s))
        else:
            x_s = x
        dx = self.conv_0(F.leaky_relu(self.norm_0.modulate(x, hidden_0), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg, z, noise), 0.2))
        return x_s + dx
