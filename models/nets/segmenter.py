"""The judge: a compact U-Net that segments landscape images into label ids.

No pretrained DeepLab or Inception weights can be had here, so the evaluator (`models/eval/`) scores
label alignment (mIoU) and realism (a Fréchet distance in this net's feature space, "FD-seg") with a net we
train ourselves on procedural renders under strong colour augmentation (`models/archs/segmenter.py`).
It is never exported or served. [ours] design: a U-Net (encoder/decoder with skips) whose full-resolution
level is narrow, so fine texture reaches the classifier cheaply, plus a global-context term at the bottleneck
(image-level pooling, as in ParseNet/PSPNet) so that large ambiguous regions (hill vs mountain vs grass
without colour cues) can use the whole scene.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SegNet(nn.Module):
    """U-Net: level 0 at full resolution, each further level halves the size and doubles the width (capped)."""

    def __init__(
        self,
        num_classes: int = 14,  # output logits per pixel (LANDSCAPE has 14 labels)
        width: int = 16,  # channels at full resolution; doubles per level
        levels: int = 4,  # stride-2 downsamplings; the bottleneck sits at 1/2**levels of the input
        max_width: int = 256,  # cap on the channel count of the deepest levels
        in_channels: int = 3,  # RGB in [-1, 1]
    ) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be ≥ 1, got {levels}")
        widths = [min(width * 2**i, max_width) for i in range(levels + 1)]
        self.widths = widths
        self.stem = nn.Sequential(conv_bn_relu(in_channels, widths[0]), conv_bn_relu(widths[0], widths[0]))
        self.down = nn.ModuleList(
            nn.Sequential(
                conv_bn_relu(widths[i], widths[i + 1], stride=2), conv_bn_relu(widths[i + 1], widths[i + 1])
            )
            for i in range(levels)
        )
        # Global context: the image-mean of the bottleneck, projected and added back everywhere.
        self.context = nn.Sequential(nn.Linear(widths[-1], widths[-1]), nn.ReLU(inplace=True))
        # Decoder, FPN-style: project the coarser level to the skip's width (1×1, at low resolution),
        # upsample, add the skip, then one 3×3 conv; cheaper than concatenating at full resolution.
        self.lateral = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 1) for i in reversed(range(levels)))
        self.up = nn.ModuleList(conv_bn_relu(widths[i], widths[i]) for i in reversed(range(levels)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    @property
    def feature_dim(self) -> int:
        """Length of the `features()` vector."""
        return self.widths[-1] + self.widths[-2]

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B,3,H,W] -> per-level features, full resolution first; the last one carries global context."""
        skips = [self.stem(x)]  # [B,w0,H,W]
        for block in self.down:
            skips.append(block(skips[-1]))  # [B,w_i,H/2**i,W/2**i]
        bottleneck = skips[-1]
        context = self.context(bottleneck.mean(dim=(2, 3)))  # [B,wL]
        skips[-1] = bottleneck + context[:, :, None, None]
        return skips

    def _decode(self, skips: list[torch.Tensor]) -> torch.Tensor:
        y = skips[-1]
        for lateral, block, skip in zip(self.lateral, self.up, reversed(skips[:-1]), strict=True):
            y = F.interpolate(lateral(y), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(y + skip)
        return self.head(y)  # [B,N,H,W]

    @staticmethod
    def _pool(skips: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([skips[-1].mean(dim=(2, 3)), skips[-2].mean(dim=(2, 3))], dim=1)  # [B,feature_dim]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B,3,H,W] in [-1,1] (any H, W ≥ 2**levels) -> logits [B,num_classes,H,W]."""
        return self._decode(self._encode(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x [B,3,H,W] -> pooled features [B,feature_dim] for the Fréchet distance (FD-seg).

        The spatial means of the two deepest encoder levels: the same role as Inception's pool3 in FID —
        what the judge "thinks" the image contains, including texture statistics, with layout averaged out.
        """
        return self._pool(self._encode(x))

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both of the above from one encoder pass (what the evaluator needs per image)."""
        skips = self._encode(x)
        return self._decode(skips), self._pool(skips)
