"""SPADE/GauGAN generator and its VAE image encoder (Park et al., CVPR 2019), reimplemented from the paper.

Differences from the paper, all [ours]:
- The generator always takes z. The paper's VAE mode maps z through a linear layer to a fixed 8×8×1024 start
  tensor, which pins the output size. Here the start tensor is a 3×3 conv of the down-sampled label map (the
  paper's non-VAE input), so H and W may be any multiple of 2^num_up, and z enters the conditioning of every
  SPADE (see blocks.SPADE). Adding fc(z) to the start tensor instead would be erased by the first InstanceNorm.
- One-hot encoding and the instance-edge map are computed inside forward() from raw ids, so the exported ONNX
  graph takes ids (see docs/contracts.md).
- Per-block SPADE hidden widths and shortcut hidden sharing, to fit a 256² frame in a few GMACs on CPU.
- Optional per-pixel noise in every SPADE's conditioning (`noise_channels`, OASIS's 3D noise; blocks.SPADE says
  why): the contract's `noise` input, drawn by the server from the request's seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.nets.blocks import SPADEResBlock, downsample_nearest, maybe_spectral, semantic_input

# ----------------------------------------------------------------------------


class SPADEGenerator(nn.Module):
    """Label ids + instance ids + z -> RGB in [-1, 1].

    Blocks (paper layout for num_up=5, 256² output): head at H/32, two middle blocks at H/16, then one block per
    further ×2 up-sampling up to full resolution: num_up + 2 SPADE ResBlocks in all. Width at level j (resolution
    H/2^(num_up-j)) is ngf·channel_mult[j]; the paper's is 1024,1024,512,256,128,64 (ngf 64).
    """

    def __init__(
        self,
        label_nc: int,  # number of label classes (one-hot channels); ids ≥ label_nc encode as all-zero
        ngf: int = 64,  # base width (paper 64)
        channel_mult: Sequence[int] | None = None,  # multiplier of ngf per resolution level, coarsest first
        #                                            (num_up+1 values); None = paper: min(16, 2^(num_up-j))
        nhidden: int | Sequence[int] = 128,  # SPADE hidden width, or one per block (num_up+2, head first)
        #                                      so high-resolution blocks can use a smaller one (paper 128)
        kernel_size: int = 3,  # kernel of SPADE's convs on the label map (paper 3)
        num_up: int = 5,  # up-sampling stages; H and W must be multiples of 2^num_up (paper 5: 8² -> 256²)
        norm: str = "instance",  # parameter-free norm in SPADE. 'instance' by default: at our batch sizes (1–8)
        #                          BatchNorm statistics are noisy and its eval-mode running statistics differ
        #                          from what training saw; InstanceNorm behaves the same in training, in eval
        #                          and at serving batch 1 (paper Table 4: SPADE works with either)
        use_edges: bool = True,  # append the instance-edge channel to the one-hot map (paper: when instances exist)
        z_dim: int = 256,  # style latent size (paper 256); z comes from the encoder, a preset or a seeded draw
        spectral: bool = True,  # spectral norm on the ResBlock convs (paper)
        share_shortcut_hidden: bool = False,  # shortcut SPADE reuses the first SPADE's hidden features (cheaper)
        noise_channels: int = 0,  # per-pixel N(0, 1) noise channels in every SPADE's conditioning; 0 = none
    ) -> None:
        super().__init__()
        if label_nc < 1 or ngf < 1 or num_up < 1 or z_dim < 1 or noise_channels < 0:
            raise ValueError(
                "label_nc, ngf, num_up and z_dim must be ≥ 1 (a style input is not optional), noise_channels ≥ 0"
            )
        num_blocks = num_up + 2
        hidden = [nhidden] * num_blocks if isinstance(nhidden, int) else list(nhidden)
        if len(hidden) != num_blocks:
            raise ValueError(f"nhidden needs {num_blocks} values (num_up + 2 blocks), got {len(hidden)}")
        self.label_nc = label_nc
        self.use_edges = use_edges
        self.num_up = num_up
        self.z_dim = z_dim
        self.noise_channels = noise_channels
        self.size_multiple = 2**num_up
        semantic_nc = label_nc + (1 if use_edges else 0)
        mult = (
            [min(16, 2 ** (num_up - j)) for j in range(num_up + 1)] if channel_mult is None else channel_mult
        )
        if len(mult) != num_up + 1:
            raise ValueError(f"channel_mult needs {num_up + 1} values (num_up + 1 levels), got {len(mult)}")
        widths = [ngf * m for m in mult]  # channels per resolution level, coarsest first

        self.fc = nn.Conv2d(semantic_nc, widths[0], 3, padding=1)  # down-sampled label map -> start tensor
        # (fin, fout, level) per block: head, middle_0 (after the first up-sampling), middle_1, up_0…
        plan = [(widths[0], widths[0], 0), (widths[0], widths[1], 1), (widths[1], widths[1], 1)]
        plan += [(widths[j - 1], widths[j], j) for j in range(2, num_up + 1)]
        self.levels = [level for _, _, level in plan]
        self.blocks = nn.ModuleList(
            SPADEResBlock(
                fin,
                fout,
                semantic_nc,
                nh,
                kernel_size=kernel_size,
                norm=norm,
                z_dim=z_dim,
                spectral=spectral,
                share_shortcut_hidden=share_shortcut_hidden,
                noise_nc=noise_channels,
            )
            for (fin, fout, _), nh in zip(plan, hidden, strict=True)
        )
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(
        self, label: torch.Tensor, instance: torch.Tensor, z: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """label, instance: int64 [B,1,H,W]; z: float [B,z_dim]; noise: float [B,noise_channels,H,W] (only when
        noise_channels > 0) -> image [B,3,H,W] in [-1,1]."""
        seg = semantic_input(label, instance, self.label_nc, self.use_edges)  # [B,N(+1),H,W]
        factors = [2 ** (self.num_up - j) for j in range(self.num_up + 1)]
        segs = [downsample_nearest(seg, f) for f in factors]
        noises: list[torch.Tensor | None] = [None] * len(factors)
        if self.noise_channels:
            if noise is None:
                raise ValueError(f"this generator takes {self.noise_channels} noise channels and got none")
            noises = [
                downsample_nearest(noise, f) for f in factors
            ]  # a strided slice keeps N(0, 1) per pixel
        x = self.fc(segs[0])  # [B,w0,H/2^num_up,W/2^num_up]
        level = 0
        for block, block_level in zip(self.blocks, self.levels, strict=True):
            if block_level > level:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
                level = block_level
            x = block(x, segs[level], z, noises[level])
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))  # [B,3,H,W]


# ----------------------------------------------------------------------------


class ConvEncoder(nn.Module):
    """VAE image encoder (paper appendix): stride-2 3×3 convs with InstanceNorm and LeakyReLU, then two linear
    heads for μ and log σ². The flattened size depends on the input size, so the encoder works at one fixed
    `image_size` (the exported graph has a dynamic batch only), independent of the generator's size: images of
    another size go through `fit_to_encoder` first."""

    def __init__(
        self,
        image_size: int | Sequence[int] = 256,  # input H, W (an int means square)
        nef: int = 64,  # width of the first conv (paper 64)
        max_mult: int = 8,  # cap on the width multiplier (paper 8 -> 512 channels)
        num_down: int = 6,  # stride-2 convs (paper 6: 256² -> 4²)
        z_dim: int = 256,  # latent size; must match the generator's z_dim
        spectral: bool = True,  # spectral norm on the convs (paper: 'spectralinstance')
    ) -> None:
        super().__init__()
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"image_size must be an int or (H, W), got {image_size!r}")
        self.image_size: tuple[int, int] = (int(size[0]), int(size[1]))
        layers: list[nn.Module] = []
        fin, (h, w) = 3, self.image_size
        for i in range(num_down):
            fout = nef * min(max_mult, 2**i)
            conv = maybe_spectral(nn.Conv2d(fin, fout, 3, stride=2, padding=1), spectral)
            layers += [conv, nn.InstanceNorm2d(fout, affine=False), nn.LeakyReLU(0.2)]
            fin, h, w = fout, (h + 1) // 2, (w + 1) // 2
        if h * w > 64:
            raise ValueError(
                f"image_size {self.image_size} leaves {h}×{w} after {num_down} convs; add num_down"
            )
        self.convs = nn.Sequential(*layers)
        self.fc_mu = nn.Linear(fin * h * w, z_dim)
        self.fc_var = nn.Linear(fin * h * w, z_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image float [B,3,H,W] in [-1,1] at image_size -> (mu, logvar), each [B,z_dim]."""
        if tuple(image.shape[-2:]) != self.image_size or image.shape[1] != 3:
            raise ValueError(
                f"encoder expects [B,3,{self.image_size[0]},{self.image_size[1]}], got {image.shape}"
            )
        x = torch.flatten(self.convs(image), 1)  # [B,C·h·w]
        return self.fc_mu(x), self.fc_var(x)


def fit_to_encoder(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """image [B,3,H,W] -> [B,3,size[0],size[1]]: how a picture of any size reaches an encoder fixed at `size`.

    Anti-aliased bilinear, so down-sampling (training at 256² with a 128² encoder) averages neighbouring pixels
    instead of skipping them, which would alias the fine textures the style code summarises. The evaluator
    resizes the same way; the server's Pillow resize (antialiased bicubic) is close to it.
    """
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = μ + σ·ε with ε ~ N(0, 1): keeps the sample differentiable w.r.t. μ and log σ² (paper appendix)."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
