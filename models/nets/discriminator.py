"""Multi-scale PatchGAN discriminator (pix2pixHD, as used by SPADE), reimplemented from the papers' description.

Input is cat(one-hot label map, instance edges, image). Each scale is a PatchGAN: 4×4 convs, the first without
norm, then spectral norm + InstanceNorm + LeakyReLU 0.2, last a 1-channel patch-logit conv. The second scale sees
the input average-pooled by 2. Every intermediate feature map is returned for the feature-matching loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.nets.blocks import maybe_spectral, semantic_input

# ----------------------------------------------------------------------------


class PatchDiscriminator(nn.Module):
    """One scale: n_layers 4×4 convs (stride 2 except the last), widths ndf·2^i capped at max_ch, then logits."""

    def __init__(
        self,
        in_ch: int,  # input channels: label channels + 3 image channels
        ndf: int = 64,  # width of the first conv (paper 64)
        n_layers: int = 4,  # convs before the logit conv (SPADE default 4)
        max_ch: int = 512,  # width cap (paper 512)
        spectral: bool = True,  # spectral norm on every conv after the first (paper 'spectralinstance')
    ) -> None:
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(in_ch, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2))]
        fin = ndf
        for i in range(1, n_layers):
            fout = min(ndf * 2**i, max_ch)
            stride = 1 if i == n_layers - 1 else 2
            conv = maybe_spectral(nn.Conv2d(fin, fout, 4, stride=stride, padding=2, bias=False), spectral)
            layers.append(nn.Sequential(conv, nn.InstanceNorm2d(fout, affine=False), nn.LeakyReLU(0.2)))
            fin = fout
        layers.append(nn.Sequential(nn.Conv2d(fin, 1, 4, stride=1, padding=2)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B,in_ch,H,W] -> feature maps of every layer; the last is the patch logits [B,1,h,w]."""
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """`num_scales` PatchGANs on successively 2× average-pooled copies of cat(S, E, image)."""

    def __init__(
        self,
        label_nc: int,  # number of label classes (one-hot channels)
        use_edges: bool = True,  # append the instance-edge channel, as the generator does
        ndf: int = 64,  # width of each PatchGAN's first conv (paper 64)
        n_layers: int = 4,  # convs per PatchGAN before the logits (paper 4)
        num_scales: int = 2,  # number of PatchGANs / image scales (paper 2)
        max_ch: int = 512,  # width cap per PatchGAN (paper 512)
        spectral: bool = True,  # spectral norm (paper)
    ) -> None:
        super().__init__()
        self.label_nc = label_nc
        self.use_edges = use_edges
        in_ch = label_nc + (1 if use_edges else 0) + 3
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_ch, ndf, n_layers, max_ch, spectral) for _ in range(num_scales)
        )

    def forward(
        self, label: torch.Tensor, instance: torch.Tensor, image: torch.Tensor
    ) -> list[list[torch.Tensor]]:
        """label, instance int64 [B,1,H,W], image [B,3,H,W] -> per scale, the list of feature maps (last = logits)."""
        seg = semantic_input(label, instance, self.label_nc, self.use_edges)  # [B,N(+1),H,W]
        x = torch.cat([seg, image], dim=1)  # [B,N(+1)+3,H,W]
        outputs = []
        for i, scale in enumerate(self.scales):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(x))
        return outputs
