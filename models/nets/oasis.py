"""OASIS generator (Sushko, Schönfeld et al., "You Only Need Adversarial Supervision for Semantic Image
Synthesis", ICLR 2021), reimplemented from the paper and models.md §5; the discriminator is
`models/nets/seg_discriminator.py`.

A SPADE generator without an encoder: its only source of variety is a 3D noise tensor concatenated to the
one-hot label map, both at the input conv and in the conditioning of every SPADE, so the noise steers γ and β
region by region. The paper samples one 64-d vector per picture and replicates it over the picture (its
"global" sampling, the one it trains with); that is our `z`, the contract's seeded per-picture latent.

Differences from the paper, all [ours]:
- The replicated part of the noise enters as a linear map of z added to each conv's output (blocks.SPADE), which
  equals concatenating z over the picture up to the conv's zero padding at the border, for one small matmul
  instead of z_dim extra input channels in every SPADE.
- Optional per-pixel noise channels (`noise_channels`, the contract's `noise` input, drawn from the same seed)
  are concatenated to the label map beside it, so the seed also re-rolls texture pixel by pixel.
- InstanceNorm instead of (synchronised) BatchNorm as SPADE's parameter-free norm (models.md §0.1: batch 1–8 on
  CPU, and the served batch is 1); no instance-edge channel (OASIS takes none).
- Channel widths, SPADE hidden widths and the number of up-samplings are settings, so one class covers the
  paper's 71 M-parameter network and our CPU presets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.nets.blocks import SPADEResBlock, downsample_nearest, one_hot

# ----------------------------------------------------------------------------


class OASISGenerator(nn.Module):
    """Label ids + z (+ per-pixel noise) -> RGB in [-1, 1].

    num_up + 1 SPADE ResBlocks, the first at H/2^num_up, a ×2 nearest up-sampling after each but the last (paper:
    six blocks from 8² to 256²). Block j takes ngf·channel_mult[j] channels to ngf·channel_mult[j+1]; the
    paper's widths are 1024, 1024, 1024, 512, 256, 128, 64 (ngf 64).
    """

    def __init__(
        self,
        label_nc: int,  # number of label classes (one-hot channels); ids ≥ label_nc encode as all-zero
        ngf: int = 64,  # base width (paper 64)
        channel_mult: Sequence[int] | None = None,  # multiplier of ngf at each block boundary, coarsest first
        #                                            (num_up + 2 values); None = paper: min(16, 2^(num_up+1-j))
        nhidden: int | Sequence[int] = 128,  # SPADE hidden width, or one per block (num_up + 1 values)
        kernel_size: int = 3,  # kernel of SPADE's convs on the conditioning map (paper 3)
        num_up: int = 5,  # up-sampling stages; H and W must be multiples of 2^num_up (paper 5: 8² -> 256²)
        norm: str = "instance",  # SPADE's parameter-free norm: 'instance' [ours] or 'batch' (paper)
        z_dim: int = 64,  # channels of the replicated 3D noise, one N(0, 1) vector per picture (paper 64)
        noise_channels: int = 0,  # per-pixel N(0, 1) noise channels beside it [ours]; 0 = no noise input
        spectral: bool = True,  # spectral norm on the ResBlock convs (paper)
        share_shortcut_hidden: bool = False,  # shortcut SPADE reuses the first SPADE's hidden features [ours]
    ) -> None:
        super().__init__()
        if label_nc < 1 or ngf < 1 or num_up < 1 or z_dim < 1 or noise_channels < 0:
            raise ValueError("label_nc, ngf, num_up and z_dim must be ≥ 1 and noise_channels ≥ 0")
        num_blocks = num_up + 1
        hidden = [nhidden] * num_blocks if isinstance(nhidden, int) else list(nhidden)
        if len(hidden) != num_blocks:
            raise ValueError(f"nhidden needs {num_blocks} values (num_up + 1 blocks), got {len(hidden)}")
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
        cond_nc = label_nc + noise_channels  # conditioning map: one-hot labels, then per-pixel noise
        widths = [ngf * m for m in mult]

        self.fc = nn.Conv2d(cond_nc, widths[0], 3, padding=1)  # down-sampled conditioning -> start tensor
        self.fc_z = nn.Linear(z_dim, widths[0], bias=False)  # the replicated z's share of that conv
        self.blocks = nn.ModuleList(
            SPADEResBlock(
                widths[j],
                widths[j + 1],
                cond_nc,
                hidden[j],
                kernel_size=kernel_size,
                norm=norm,
                z_dim=z_dim,
                spectral=spectral,
                share_shortcut_hidden=share_shortcut_hidden,
            )
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
        conds = [downsample_nearest(cond, 2 ** (self.num_up - j)) for j in range(self.num_up + 1)]
        x = self.fc(conds[0]) + self.fc_z(z)[:, :, None, None]  # [B,w0,H/2^num_up,W/2^num_up]
        for j, block in enumerate(self.blocks):
            x = block(x, conds[j], z)  # [B,w_{j+1},H/2^(num_up-j),W/2^(num_up-j)]
            if j < self.num_up:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))  # [B,3,H,W]
