"""LGGAN generator (Tang et al., "Local Class-Specific and Global Image-Level Generative Adversarial Networks for
Semantic-Guided Scene Generation", CVPR 2020), reimplemented from the paper; layout details marked [repo] were
read in the authors' code (Ha0Tang/LGGAN, semantic_image_synthesis), never copied.

One shared encoder E reads the label map (+ instance edges); three branches share its features and their outputs
are fused per pixel:
- global G_g: a SPADE generator whose start tensor is E's deepest feature map resized to the start grid (nearest),
  fed straight into the head block: the repo has no start conv on this path. Its parameter count then matches
  the 111.1 M that DP-GAN's table reports for LGGAN on Cityscapes (tests/models/nets/test_lggan.py);
- local G_l: residual blocks on E's 1/4-resolution features, two transposed convs back to full resolution -> f′.
  Class i's features are F_i = f′ ⊙ M_i (M_i its one-hot mask); each class has its own conv + tanh, its
  "sub-generator" (7×7 in the repo), and a 3×3 conv + tanh over the N class pictures gives the local picture
  (the paper's "conv" variant, better than summing them). The N class convs are ONE grouped conv (groups=N) on
  the stacked F_1 … F_N: one graph node instead of N, no Python loop, and exactly the per-class convs (a test
  checks it);
- classification module (training only): each F_i pooled over its class's pixels (the paper's semantic-guided
  average pooling; the repo averages over the whole image) and one shared linear layer predicting i;
- weight map G_w: two transposed conv + InstanceNorm + ReLU blocks on E's 1/4 features, a 1×1 conv to two
  channels and a channel softmax -> W_g, W_l, summing to 1 at every pixel. Picture = W_g·I_global + W_l·I_local.

No z and no style encoder: LGGAN's generator is deterministic (the repo runs SPADE's code with its VAE off), so
the exported graph takes label and instance ids only (docs/contracts.md: z absent, z_dim 0).

Deviations, all [ours]: zero padding where the repo pads by reflection (7×7 convs, residual blocks); spectral
norm only on the SPADE blocks' convs as in our SPADE (the paper puts it on every layer, the repo's encoder and
local layers are plain conv + InstanceNorm); compact widths per preset (models/archs/lggan.py); the paper's
SPADE choices of our SPADE generator (InstanceNorm as SPADE's parameter-free norm, per-block hidden widths,
shortcut hidden sharing). Everything exports to ONNX unchanged: the class stack is a broadcast multiply and a
reshape, the weight maps are sliced, never chunked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.nets.blocks import SPADEResBlock, downsample_nearest, semantic_input

# ----------------------------------------------------------------------------


class LGGANOutputs(NamedTuple):
    """Every branch's output, for the training losses and the preview (a NamedTuple, so DDP sees its tensors)."""

    image: torch.Tensor  # [B,3,H,W] fused picture W_g·I_global + W_l·I_local, in [-1,1]
    global_image: torch.Tensor  # [B,3,H,W] I_global, in [-1,1]
    local_image: torch.Tensor  # [B,3,H,W] I_local, in [-1,1]
    class_images: torch.Tensor  # [B,3N,H,W] I_1 … I_N, channels 3i..3i+2 are class i's picture, in [-1,1]
    weights: torch.Tensor  # [B,2,H,W] softmax weight maps: channel 0 W_g, channel 1 W_l
    class_logits: torch.Tensor  # [B,N,N] row i: the classifier's logits for F_i (target i)


def conv_norm_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    """conv -> InstanceNorm (no affine) -> ReLU: the repo's unit for every non-SPADE layer of G."""
    return nn.Sequential(conv, nn.InstanceNorm2d(channels, affine=False), nn.ReLU())


def up_block(fin: int, fout: int) -> nn.Sequential:
    """×2 up-sampling transposed 3×3 conv (stride 2, output padding 1: exactly 2H×2W) + InstanceNorm + ReLU."""
    return conv_norm_relu(nn.ConvTranspose2d(fin, fout, 3, stride=2, padding=1, output_padding=1), fout)


# ----------------------------------------------------------------------------


class SharedEncoder(nn.Module):
    """E: a 7×7 conv at full resolution, then one stride-2 3×3 conv per further width, each followed by
    InstanceNorm + ReLU (paper Fig. 2; repo widths 64, 128, 256, 512, 1024). All three branches train it."""

    def __init__(
        self,
        in_nc: int,  # channels of the label map (one-hot classes + optional edge channel)
        widths: Sequence[int],  # output channels per stage: full resolution, then 1/2, 1/4, … (≥ 3 stages)
    ) -> None:
        super().__init__()
        if len(widths) < 3:
            raise ValueError(
                f"encoder_widths needs ≥ 3 stages (full, 1/2 and 1/4 resolution), got {list(widths)}"
            )
        self.widths = list(widths)
        self.num_down = len(widths) - 1
        stages = [conv_norm_relu(nn.Conv2d(in_nc, widths[0], 7, padding=3), widths[0])]
        stages += [
            conv_norm_relu(nn.Conv2d(fin, fout, 3, stride=2, padding=1), fout)
            for fin, fout in zip(widths[:-1], widths[1:], strict=True)
        ]
        self.stages = nn.ModuleList(stages)

    def forward(self, seg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """seg [B,in_nc,H,W] -> (x_enc [B,widths[2],H/4,W/4] for the local branch and the weight map,
        deepest [B,widths[-1],H/2^num_down,W/2^num_down] for the global branch)."""
        x, x_enc = seg, seg
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == 2:
                x_enc = x
        return x_enc, x


class GlobalGenerator(nn.Module):
    """G_g: SPADE ResBlocks from E's deepest features up to full resolution (the block plan of
    models/nets/spade.py: head at H/2^num_up, two middle blocks at twice that, one block per further ×2), then
    LeakyReLU -> 3×3 conv -> tanh. The head block takes E's features as they are (no start conv [repo])."""

    def __init__(
        self,
        in_nc: int,  # channels of E's deepest features (the head block's input)
        semantic_nc: int,  # channels of the SPADE conditioning map (one-hot + optional edge channel)
        ngf: int = 64,  # base width (paper 64)
        channel_mult: Sequence[int] | None = None,  # ngf multiplier per level, coarsest first (num_up+1
        #                                            values); None = paper: min(16, 2^(num_up-j))
        nhidden: int | Sequence[int] = 128,  # SPADE hidden width, or one per block (num_up+2, head first)
        kernel_size: int = 3,  # kernel of SPADE's convs on the label map (paper 3)
        num_up: int = 5,  # up-sampling stages: starts at H/2^num_up (paper 5: 8² -> 256²)
        norm: str = "instance",  # SPADE's parameter-free norm (see models/nets/spade.py for why instance)
        spectral: bool = True,  # spectral norm on the ResBlock convs (paper)
        share_shortcut_hidden: bool = False,  # shortcut SPADE reuses the first SPADE's hidden features
    ) -> None:
        super().__init__()
        num_blocks = num_up + 2
        hidden = [nhidden] * num_blocks if isinstance(nhidden, int) else list(nhidden)
        if len(hidden) != num_blocks:
            raise ValueError(f"nhidden needs {num_blocks} values (num_up + 2 blocks), got {len(hidden)}")
        mult = (
            [min(16, 2 ** (num_up - j)) for j in range(num_up + 1)] if channel_mult is None else channel_mult
        )
        if len(mult) != num_up + 1:
            raise ValueError(f"channel_mult needs {num_up + 1} values (num_up + 1 levels), got {len(mult)}")
        widths = [ngf * m for m in mult]  # channels per resolution level, coarsest first
        self.num_up = num_up
        # (fin, fout, level) per block: head, middle_0 (after the first up-sampling), middle_1, up_0…
        plan = [(in_nc, widths[0], 0), (widths[0], widths[1], 1), (widths[1], widths[1], 1)]
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
                spectral=spectral,
                share_shortcut_hidden=share_shortcut_hidden,
            )
            for (fin, fout, _), nh in zip(plan, hidden, strict=True)
        )
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """x [B,in_nc,H/2^num_up,W/2^num_up], seg [B,semantic_nc,H,W] -> I_global [B,3,H,W] in [-1,1]."""
        segs = [downsample_nearest(seg, 2 ** (self.num_up - j)) for j in range(self.num_up + 1)]
        level = 0
        for block, block_level in zip(self.blocks, self.levels, strict=True):
            if block_level > level:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
                level = block_level
            x = block(x, segs[level])
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))  # [B,3,H,W]


class ResnetBlock(nn.Module):
    """x + [3×3 conv -> IN -> ReLU -> 3×3 conv -> IN] (pix2pixHD's block, as the repo's local branch uses)."""

    def __init__(self, channels: int) -> None:  # channels in = out
        super().__init__()
        self.body = nn.Sequential(
            conv_norm_relu(nn.Conv2d(channels, channels, 3, padding=1), channels),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.InstanceNorm2d(channels, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LocalGenerator(nn.Module):
    """G_l with its classification module: residual blocks on E's 1/4 features, two ×2 transposed convs
    (in -> 2C -> C, the repo's 256 -> 128 -> 64) to f′, then the class-specific sub-generators on f′ ⊙ M_i as one
    grouped conv, and a 3×3 conv fusing the N class pictures into I_local."""

    def __init__(
        self,
        in_nc: int,  # channels of E's 1/4-resolution features
        label_nc: int,  # N classes: one sub-generator (and one classifier output) per class
        num_res_blocks: int = 9,  # residual blocks at 1/4 resolution (paper 9)
        feature_nc: int = 64,  # C, channels of f′ and of each class's features F_i (paper 64)
        class_kernel: int = 7,  # kernel of each class's conv (repo 7)
    ) -> None:
        super().__init__()
        self.label_nc = label_nc
        self.feature_nc = feature_nc
        self.res = nn.Sequential(*(ResnetBlock(in_nc) for _ in range(num_res_blocks)))
        self.up = nn.Sequential(up_block(in_nc, 2 * feature_nc), up_block(2 * feature_nc, feature_nc))
        # groups=N: output channels 3i..3i+2 see only input channels C·i..C·i+C-1, i.e. class i's F_i.
        self.class_conv = nn.Conv2d(
            label_nc * feature_nc, 3 * label_nc, class_kernel, padding=class_kernel // 2, groups=label_nc
        )
        self.fuse = nn.Conv2d(3 * label_nc, 3, 3, padding=1)
        self.classifier = nn.Linear(feature_nc, label_nc)

    def features(self, x_enc: torch.Tensor) -> torch.Tensor:
        """x_enc [B,in_nc,H/4,W/4] -> f′ [B,C,H,W]."""
        return self.up(self.res(x_enc))

    def class_images(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """f′ [B,C,H,W], one-hot mask [B,N,H,W] -> class pictures [B,3N,H,W] in [-1,1] (I_i at channels 3i..3i+2).

        The stack [F_1 … F_N] has N·C channels: memory grows with N·C·H·W (≈ 15 M floats per 256² sample at
        N=14, C=16), the price of LGGAN's per-class generation."""
        stack = (mask[:, :, None] * features[:, None]).flatten(1, 2)  # [B,N,1,H,W]·[B,1,C,H,W] -> [B,N·C,H,W]
        return torch.tanh(self.class_conv(stack))  # [B,3N,H,W]

    def classify(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """f′ [B,C,H,W], mask [B,N,H,W] -> logits [B,N,N]: row i classifies F_i pooled over class i's pixels
        (the paper's semantic-guided average pooling; an absent class pools nothing: its row is the bias)."""
        area = mask.sum((2, 3)).clamp(min=1.0)  # [B,N]
        pooled = torch.einsum("bchw,bnhw->bnc", features, mask) / area[:, :, None]  # [B,N,C]
        return self.classifier(pooled)  # [B,N,N]

    def forward(
        self, x_enc: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x_enc [B,in_nc,H/4,W/4], mask [B,N,H,W] -> (I_local [B,3,H,W], class pictures [B,3N,H,W], f′ [B,C,H,W])."""
        features = self.features(x_enc)  # [B,C,H,W]
        class_images = self.class_images(features, mask)  # [B,3N,H,W]
        return torch.tanh(self.fuse(class_images)), class_images, features


class WeightMapGenerator(nn.Module):
    """G_w: two ×2 transposed conv + IN + ReLU blocks (in -> in/2 -> in/4, the repo's 256 -> 128 -> 64), a 1×1 conv
    to 2 channels and a softmax over them: per-pixel weights of the global and the local picture that sum to 1
    (the paper lists IN + ReLU after the 1×1 conv too; the repo, followed here, feeds its output to the softmax)."""

    def __init__(self, in_nc: int) -> None:  # channels of E's 1/4-resolution features (≥ 4)
        super().__init__()
        if in_nc < 4:
            raise ValueError(f"encoder_widths[2] = {in_nc}: G_w halves it twice, it must be ≥ 4")
        self.body = nn.Sequential(
            up_block(in_nc, in_nc // 2), up_block(in_nc // 2, in_nc // 4), nn.Conv2d(in_nc // 4, 2, 1)
        )

    def forward(self, x_enc: torch.Tensor) -> torch.Tensor:
        """x_enc [B,in_nc,H/4,W/4] -> [B,2,H,W]: channel 0 W_g, channel 1 W_l, W_g + W_l = 1."""
        return torch.softmax(self.body(x_enc), dim=1)


# ----------------------------------------------------------------------------


class LGGANGenerator(nn.Module):
    """Label ids + instance ids -> RGB in [-1, 1]: E, then G_g, G_l and G_w fused as W_g·I_global + W_l·I_local.

    `forward(label, instance)` is the served graph (the fused picture); `forward(..., details=True)` also returns
    every branch and the classifier's logits (`LGGANOutputs`), which the training losses need.
    """

    def __init__(
        self,
        label_nc: int,  # N classes (one-hot channels, local sub-generators, classifier outputs)
        encoder_widths: Sequence[int] = (64, 128, 256, 512, 1024),  # E's widths, full resolution first
        ngf: int = 64,  # G_g's base width (paper 64)
        channel_mult: Sequence[int] | None = None,  # G_g's ngf multiplier per level; None = paper
        nhidden: int | Sequence[int] = 128,  # G_g's SPADE hidden width, or one per block (paper 128)
        kernel_size: int = 3,  # kernel of SPADE's convs on the label map (paper 3)
        num_up: int = 5,  # G_g's up-sampling stages; H, W must be multiples of 2^num_up (paper 5: 8² -> 256²)
        norm: str = "instance",  # SPADE's parameter-free norm
        use_edges: bool = True,  # append the instance-edge channel to the one-hot map (E and SPADE see it)
        spectral: bool = True,  # spectral norm on G_g's ResBlock convs
        share_shortcut_hidden: bool = False,  # G_g's shortcut SPADEs reuse the first SPADE's hidden features
        num_res_blocks: int = 9,  # G_l's residual blocks at 1/4 resolution (paper 9)
        local_nc: int = 64,  # C, G_l's feature width per class (paper 64)
        class_kernel: int = 7,  # kernel of each class's conv (repo 7)
    ) -> None:
        super().__init__()
        if label_nc < 1 or num_up < 1:
            raise ValueError("label_nc and num_up must be ≥ 1")
        self.label_nc = label_nc
        self.use_edges = use_edges
        self.num_up = num_up
        self.size_multiple = 2**num_up  # G_g's start grid, which E's down-samplings divide too
        semantic_nc = label_nc + (1 if use_edges else 0)
        self.encoder = SharedEncoder(semantic_nc, encoder_widths)
        if num_up < self.encoder.num_down:
            raise ValueError(
                f"num_up={num_up} must be ≥ the encoder's {self.encoder.num_down} down-samplings: G_g starts "
                "at or below the resolution of E's deepest features"
            )
        self.global_branch = GlobalGenerator(
            encoder_widths[-1],
            semantic_nc,
            ngf,
            channel_mult,
            nhidden,
            kernel_size,
            num_up,
            norm,
            spectral,
            share_shortcut_hidden,
        )
        enc_nc = encoder_widths[2]  # channels of x_enc, E's 1/4-resolution features
        self.local_branch = LocalGenerator(enc_nc, label_nc, num_res_blocks, local_nc, class_kernel)
        self.weight_map = WeightMapGenerator(enc_nc)

    def forward(
        self, label: torch.Tensor, instance: torch.Tensor, details: bool = False
    ) -> torch.Tensor | LGGANOutputs:
        """label, instance: int64 [B,1,H,W] -> the fused picture [B,3,H,W] in [-1,1], or with `details` every
        branch's output (`LGGANOutputs`)."""
        seg = semantic_input(label, instance, self.label_nc, self.use_edges)  # [B,N(+1),H,W]
        mask = seg[:, : self.label_nc]  # [B,N,H,W] one-hot M_1 … M_N (the edge channel is not a class)
        x_enc, deepest = self.encoder(seg)  # [B,w2,H/4,W/4], [B,w_last,H/2^num_down,W/2^num_down]
        # G_g's start grid, nearest as the repo's resize: [B,w_last,H/2^num_up,W/2^num_up]
        start = downsample_nearest(deepest, 2 ** (self.num_up - self.encoder.num_down))
        global_image = self.global_branch(start, seg)  # [B,3,H,W]
        # [B,3,H,W], [B,3N,H,W], [B,C,H,W]
        local_image, class_images, features = self.local_branch(x_enc, mask)
        weights = self.weight_map(x_enc)  # [B,2,H,W]
        image = weights[:, 0:1] * global_image + weights[:, 1:2] * local_image  # [B,3,H,W]
        if not details:
            return image
        logits = self.local_branch.classify(features, mask)  # [B,N,N]
        return LGGANOutputs(image, global_image, local_image, class_images, weights, logits)
