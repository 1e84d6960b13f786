"""OASIS's segmentation discriminator (Schönfeld/Sushko et al., ICLR 2021), reimplemented from the paper.

A U-Net that sees only the image and labels every pixel with one of N+1 classes: the N semantic classes for
real pixels, class N for "fake". Trained as an (N+1)-way class-balanced cross-entropy (`models/losses.py`), it
tells the generator, pixel by pixel, whether what it painted reads as the class that was asked for: the
label-alignment signal a PatchGAN's single real/fake logit lacks, which is what lifts OASIS's and DP-GAN's mIoU
over SPADE's. Residual blocks with spectral norm and LeakyReLU 0.2; the decoder concatenates the encoder's
features at each scale. The logits come out at half resolution and are up-sampled bilinearly to the image
(OASIS decodes to full resolution; at 256² its last block alone would cost as much as our generator).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.nets.blocks import maybe_spectral

# ----------------------------------------------------------------------------


class ResBlock(nn.Module):
    """Pre-activation residual block: LReLU-conv3×3-LReLU-conv3×3 (+ learned 1×1 shortcut), then optionally
    a 2× average-pool."""

    def __init__(
        self,
        fin: int,  # input channels
        fout: int,  # output channels
        down: bool,  # halve the resolution after the sum
        spectral: bool = True,  # spectral norm on every conv (OASIS)
    ) -> None:
        super().__init__()
        self.down = down
        self.conv1 = maybe_spectral(nn.Conv2d(fin, fout, 3, padding=1), spectral)
        self.conv2 = maybe_spectral(nn.Conv2d(fout, fout, 3, padding=1), spectral)
        self.shortcut = maybe_spectral(nn.Conv2d(fin, fout, 1, bias=False), spectral)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B,fin,H,W] -> [B,fout,H/2,W/2] (down) or [B,fout,H,W]."""
        h = self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(x, 0.2)), 0.2))
        out = h + self.shortcut(x)
        return F.avg_pool2d(out, 2) if self.down else out


class SegmentationDiscriminator(nn.Module):
    """U-Net: `len(widths)` down blocks to 1/2^k resolution, as many up blocks back to 1/2 with skips, then a
    1×1 conv to N+1 logits, up-sampled to the input size."""

    def __init__(
        self,
        label_nc: int,  # N semantic classes; the logits have N+1 channels (the last is "fake")
        widths: tuple[int, ...] | list[int] = (16, 32, 64, 128, 128),  # per down block
        spectral: bool = True,  # spectral norm on every conv (OASIS)
    ) -> None:
        super().__init__()
        self.label_nc = label_nc
        widths = list(widths)
        self.down = nn.ModuleList(
            ResBlock(fin, fout, True, spectral) for fin, fout in zip([3, *widths[:-1]], widths, strict=True)
        )
        # Up block i takes the previous decoder output (or the bottleneck) cat the encoder skip of that size.
        self.up = nn.ModuleList()
        fin = widths[-1]
        for skip in reversed(widths[:-1]):
            self.up.append(ResBlock(fin + skip, skip, False, spectral))
            fin = skip
        self.head = nn.Conv2d(fin, label_nc + 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image [B,3,H,W] -> logits [B,N+1,H,W]; sides that are not multiples of 2^len(widths) lose their
        odd rows in the pools and are restored by nearest/bilinear resizing."""
        skips = []
        x = image
        for block in self.down:
            x = block(x)  # [B,w_i,H/2^(i+1),W/2^(i+1)]
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))  # [B,w_skip,h_skip,w_skip]
        logits = self.head(x)  # [B,N+1,H/2,W/2]
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
