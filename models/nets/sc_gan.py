"""SC-GAN generator (Wang, Qi, Chen, Zhang, Jia, "Image Synthesis via Semantic Composition", ICCV 2021),
reimplemented from the paper and models.md §3; layout details marked [repo] were read in the authors' code
(dvlab-research/SCGAN, no licence: read, never copied).

Two generators, as the paper (and models.md) keep them:
- the semantic vector generator G_V (SVG) turns the label map into per-pixel "semantic vectors" at every scale.
  It is a cascaded refinement network (CRN): two 3×3 convs at the coarsest scale, then per level ×2 nearest
  up-sampling, concatenation with the label map at that scale and two more 3×3 convs. At each level the
  features are averaged over contiguous channel groups into an n-vector per pixel and passed through
  softmax(τ·v) (paper eq. 2, τ = 0.05): one set with n_conv entries for the convolutions, one with n_norm for
  the normalisations [repo]. A small head draws an RGB picture from the last level's features: the L1 loss
  between it and the real picture (L_s, paper eq. 10) is what makes the vectors of similar-looking classes
  similar (without it FID 49.5 -> 82.5). The vectors are per pixel, not per class: a class's vector may vary
  with its surroundings;
- the semantic render generator G_R (SRG) is SPADE's generator layout (start conv on the label map resized to the
  coarsest grid [repo], head, two middle blocks, one block per further ×2) whose ResBlocks use
  SCN -> LeakyReLU -> SCC twice; the block at each resolution reads the vectors of that resolution.
  The learned shortcut (widths differ) is SPADE on the label map -> 3×3 conv [repo]. Output hard-tanh [repo].

Operators (paper §3.2):
- SCC, eq. 4: at pixel p the kernel is Σ_i V_i(p)·k_i. Because V_i(p) is read at the output pixel,
  (Σ_i V_i(p) k_i) * F at p = Σ_i V_i(p) (k_i * F)(p): one ordinary convolution with the n candidates stacked
  as n·C_out output channels, then a per-pixel weighted sum over the n groups. One Conv node and n Mul, n−1 Add
  on 4-D slices in ONNX: the runtimes' fastest kernel, n× a plain conv's cost, no unfold, no per-pixel kernels
  (tests/models/nets/test_sc_gan.py checks it against eq. 4 computed literally with unfold);
- SCN, eq. 5: parameter-free norm, then a per-pixel scale and shift mixed from n candidates by V, written as
  norm(x)·(1 + Σ_i V_i s_i) + Σ_i V_i m_i with candidates initialised to 0 [repo]. The paper's form
  norm(x)·Σ_i V_i s'_i + Σ_i V_i m_i with s' initialised to 1 is the same map (s'_i = 1 + s_i) because V sums
  to 1. The mixing Σ_i V_i (s_i, m_i) is a 1×1 conv of V without bias.

Deterministic: the released config starts G_R from the label map, not from the paper's noise; variety there comes
from an optional VAE encoder (models.md §3.1), which is outside the minimal loss set (no KL), so the exported
graph takes label and instance ids only (docs/contracts.md: z absent, z_dim 0).

Deviations, all [ours]: InstanceNorm as the parameter-free norm (the repo uses synchronised BatchNorm; models.md
§0.1); the label pyramid of the SVG by 2^k×2^k average pooling, which equals the repo's repeated bilinear
halving at multiples of 2^k; the instance-edge channel appended to the label map (optional in models.md, off in
the repo's configs); PyTorch's default initialisation instead of the repo's Xavier(0.02); widths per level as
settings (the repo's are 16,16,8,4,2,1 × ngf and 16,8,4,2,1,1 × nrf), so our presets can cap them; the shortcut
SPADE's hidden width per block. Everything exports to ONNX unchanged: tensors are split by slicing (never
`torch.chunk`), the channel-group average is a fixed 1×1 conv.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from models.nets.blocks import SPADE, downsample_nearest, maybe_spectral, parameter_free_norm, semantic_input

# ----------------------------------------------------------------------------
# The two spatially conditional operators.


class SCC(nn.Module):
    """Spatially conditional convolution (paper eq. 4): n kernel candidates mixed per output pixel by V.

    The candidates are n convs without bias [repo], each with its own spectral norm [repo]; forward stacks their
    weights into one conv of n·fout outputs and sums the n groups weighted by V."""

    def __init__(
        self,
        fin: int,  # input channels
        fout: int,  # output channels
        num_candidates: int = 3,  # n kernel candidates (paper 3; Table 5: more help alignment)
        kernel_size: int = 3,  # candidate kernel size (paper 3)
        spectral: bool = True,  # spectral norm on every candidate (paper, repo)
    ) -> None:
        super().__init__()
        self.fout = fout
        self.num_candidates = num_candidates
        self.padding = kernel_size // 2
        self.candidates = nn.ModuleList(
            maybe_spectral(nn.Conv2d(fin, fout, kernel_size, padding=self.padding, bias=False), spectral)
            for _ in range(num_candidates)
        )

    def forward(self, x: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """x [B,fin,H,W], vectors V [B,n,H,W] (each pixel's mixing weights) -> [B,fout,H,W]."""
        weight = torch.cat([cast(torch.Tensor, conv.weight) for conv in self.candidates])  # [n·fout,fin,k,k]
        out = F.conv2d(x, weight, padding=self.padding)  # [B,n·fout,H,W]: candidate i at channels i·fout…
        # Σ_i V_i·out_i over channel slices, not a [B,n,fout,H,W] view summed over n: 4-D tensors keep
        # OpenVINO's blocked layouts (a 256² sc-gan-fast frame ~30% faster there, onnxruntime unchanged).
        mixed = out[:, : self.fout] * vectors[:, 0:1]  # [B,fout,H,W]
        for i in range(1, self.num_candidates):
            mixed = mixed + out[:, i * self.fout : (i + 1) * self.fout] * vectors[:, i : i + 1]
        return mixed


class SCN(nn.Module):
    """Spatially conditional normalisation (paper eq. 5): norm(x)·(1 + Σ_i V_i s_i) + Σ_i V_i m_i.

    `candidates.weight[:, i]` holds candidate i: its scale s_i in the first C rows, its shift m_i in the last C.
    Zero-initialised, so an untrained SCN is the parameter-free norm."""

    def __init__(
        self,
        channels: int,  # C, channels of the activation being normalised
        num_candidates: int = 4,  # n (scale, shift) candidates (repo 4 for the norms)
        norm: str = "instance",  # parameter-free norm: 'instance' or 'batch'
    ) -> None:
        super().__init__()
        self.channels = channels
        self.norm = parameter_free_norm(norm, channels)
        self.candidates = nn.Conv2d(num_candidates, 2 * channels, 1, bias=False)
        nn.init.zeros_(self.candidates.weight)

    def forward(self, x: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """x [B,C,H,W], vectors V [B,n,H,W] -> [B,C,H,W]."""
        affine = self.candidates(vectors)  # [B,2C,H,W]: Σ_i V_i (s_i, m_i) at every pixel
        scale, shift = affine[:, : self.channels], affine[:, self.channels :]  # [B,C,H,W] each
        return self.norm(x) * (1 + scale) + shift


class SCResBlock(nn.Module):
    """[SCN -> LeakyReLU 0.2 -> SCC] ×2 plus a shortcut: SPADE on the label map -> 3×3 conv when widths differ
    [repo], identity otherwise. Middle width min(fin, fout), as SPADE's block."""

    def __init__(
        self,
        fin: int,  # input channels
        fout: int,  # output channels
        semantic_nc: int,  # channels of the label map the shortcut SPADE reads (one-hot + optional edges)
        num_conv: int = 3,  # SCC kernel candidates (paper 3)
        num_norm: int = 4,  # SCN candidates (repo 4)
        nhidden: int = 128,  # hidden width of the shortcut's SPADE (paper 128); unused without a shortcut
        kernel_size: int = 3,  # kernel of the shortcut SPADE's convs on the label map (paper 3)
        norm: str = "instance",  # parameter-free norm of SCN and of the shortcut SPADE
        spectral: bool = True,  # spectral norm on the SCC candidates and the shortcut conv (paper)
    ) -> None:
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.norm_0 = SCN(fin, num_norm, norm)
        self.conv_0 = SCC(fin, fmiddle, num_conv, spectral=spectral)
        self.norm_1 = SCN(fmiddle, num_norm, norm)
        self.conv_1 = SCC(fmiddle, fout, num_conv, spectral=spectral)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, semantic_nc, nhidden, kernel_size, norm)
            self.conv_s = maybe_spectral(nn.Conv2d(fin, fout, 3, padding=1), spectral)

    def forward(
        self, x: torch.Tensor, seg: torch.Tensor, conv_vectors: torch.Tensor, norm_vectors: torch.Tensor
    ) -> torch.Tensor:
        """x [B,fin,h,w], seg [B,semantic_nc,h,w], conv_vectors [B,num_conv,h,w], norm_vectors [B,num_norm,h,w]
        -> [B,fout,h,w]."""
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, norm_vectors), 0.2), conv_vectors)
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, norm_vectors), 0.2), conv_vectors)
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        return x_s + dx


# ----------------------------------------------------------------------------
# G_V: label map -> semantic vectors at every scale (+ its own picture, for L_s).


def group_average_weight(channels: int, groups: int) -> torch.Tensor:
    """[groups,channels,1,1]: the 1×1 conv averaging channel bin i = [⌊i·C/n⌋, ⌈(i+1)·C/n⌉), PyTorch's adaptive
    average pooling bins, which the repo applies along the channel axis (bins overlap when n does not divide C)."""
    weight = torch.zeros(groups, channels)
    for i in range(groups):
        start, end = (i * channels) // groups, -(-(i + 1) * channels // groups)
        weight[i, start:end] = 1.0 / (end - start)
    return weight[:, :, None, None]


class SemanticVectors(nn.Module):
    """Features [B,C,h,w] -> (conv vectors [B,n_conv,h,w], norm vectors [B,n_norm,h,w]): channel-group averages
    through softmax(τ·v) over the n entries (paper eq. 2). Parameter-free: τ is folded into the averaging weights."""

    weight: torch.Tensor  # [n_conv+n_norm,C,1,1] group-average weights × τ

    def __init__(
        self,
        channels: int,  # C, channels of the SVG level's features
        num_conv: int = 3,  # n of the SCC vectors (paper 3)
        num_norm: int = 4,  # n of the SCN vectors (repo 4)
        temperature: float = 0.05,  # τ (paper 0.05: smaller is smoother)
    ) -> None:
        super().__init__()
        self.num_conv = num_conv
        weight = [group_average_weight(channels, num_conv), group_average_weight(channels, num_norm)]
        self.register_buffer("weight", torch.cat(weight) * temperature, persistent=False)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = F.conv2d(features, self.weight)  # [B,n_conv+n_norm,h,w]: τ·v for both sets
        conv = torch.softmax(logits[:, : self.num_conv], dim=1)  # [B,n_conv,h,w]
        norm = torch.softmax(logits[:, self.num_conv :], dim=1)  # [B,n_norm,h,w]
        return conv, norm


class SemanticVectorGenerator(nn.Module):
    """G_V: a CRN over the label pyramid, coarsest level first, giving semantic vectors at every level; `to_rgb`
    draws its picture from the last level's features (3×3 conv to half width, LeakyReLU, 3×3 conv to RGB,
    hard-tanh [repo]), for L_s only: the served graph never runs it."""

    def __init__(
        self,
        semantic_nc: int,  # channels of the label map (one-hot classes + optional edge channel)
        widths: Sequence[int],  # feature channels per level, coarsest first (repo 16,8,4,2,1,1 × nrf)
        num_conv: int = 3,  # n of the SCC vectors
        num_norm: int = 4,  # n of the SCN vectors
        temperature: float = 0.05,  # τ of the softmax (paper 0.05)
        spectral: bool = True,  # spectral norm on the CRN convs (repo; not on the picture head)
    ) -> None:
        super().__init__()
        if min(widths) < 2:
            raise ValueError(f"SVG widths must be ≥ 2 (the picture head halves the last), got {list(widths)}")
        self.num_levels = len(widths)
        levels: list[nn.Module] = []
        fin = 0  # channels carried up from the previous level (none at the coarsest)
        for i, width in enumerate(widths):
            first = maybe_spectral(nn.Conv2d(fin + semantic_nc, width, 3, padding=1), spectral)
            second = maybe_spectral(nn.Conv2d(width, width, 3, padding=1), spectral)
            # the previous level's output is pre-activation: the next level starts with its LeakyReLU [repo]
            head = [] if i == 0 else [nn.LeakyReLU(0.2)]
            levels.append(nn.Sequential(*head, first, nn.LeakyReLU(0.2), second))
            fin = width
        self.levels = nn.ModuleList(levels)
        self.vectors = nn.ModuleList(SemanticVectors(w, num_conv, num_norm, temperature) for w in widths)
        last = widths[-1]
        self.to_rgb = nn.Sequential(
            nn.Conv2d(last, last // 2, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(last // 2, 3, 3, padding=1),
            nn.Hardtanh(),
        )

    def forward(self, seg: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """seg [B,semantic_nc,H,W] (H, W multiples of 2^(levels-1)) -> (conv vectors, norm vectors: one
        [B,n,H/2^(L-1-t),W/2^(L-1-t)] per level t, coarsest first; the last level's features [B,widths[-1],H,W],
        which `to_rgb` turns into G_V's picture)."""
        conv_vectors, norm_vectors = [], []
        x = seg  # replaced by the coarsest level's output in the first iteration
        for t, (level, vectors) in enumerate(zip(self.levels, self.vectors, strict=True)):
            factor = 2 ** (self.num_levels - 1 - t)
            seg_t = F.avg_pool2d(seg, factor) if factor > 1 else seg  # [B,semantic_nc,H/f,W/f], soft at edges
            if t == 0:
                x = level(seg_t)  # [B,widths[0],H/f,W/f]
            else:
                x = level(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), seg_t], dim=1))
            conv_v, norm_v = vectors(x)
            conv_vectors.append(conv_v)
            norm_vectors.append(norm_v)
        return conv_vectors, norm_vectors, x


# ----------------------------------------------------------------------------


class SCGANOutputs(NamedTuple):
    """What training and the preview need (a NamedTuple, so DDP sees its tensors)."""

    image: torch.Tensor  # [B,3,H,W] G_R's picture, in [-1,1]
    svg_image: torch.Tensor  # [B,3,H,W] G_V's picture (L_s's input), in [-1,1]
    vectors: torch.Tensor  # [B,n_conv,H,W] the full-resolution SCC vectors, in [0,1], summing to 1


class SCGANGenerator(nn.Module):
    """Label ids + instance ids -> RGB in [-1, 1]: G_V's semantic vectors condition every SCC and SCN of G_R.

    Blocks of G_R (paper layout for num_up=5, 256² output): head at H/32, two middle blocks at H/16, one block per
    further ×2 up to full resolution (num_up + 2 blocks); G_V has num_up + 1 levels, one per resolution.
    `forward(label, instance)` is the served graph; `forward(..., details=True)` also runs G_V's picture head and
    returns `SCGANOutputs`."""

    def __init__(
        self,
        label_nc: int,  # N classes (one-hot channels); ids ≥ label_nc encode as all-zero
        ngf: int = 32,  # G_R's base width (repo ADE20K 32)
        channel_mult: Sequence[int] | None = None,  # ngf multiplier per G_R level, coarsest first (num_up+1
        #                                            values); None = repo: min(16, 2^(num_up-j))
        nrf: int = 32,  # G_V's base width (repo ADE20K 32)
        svg_mult: Sequence[int] | None = None,  # nrf multiplier per G_V level, coarsest first (num_up+1
        #                                        values); None = repo: 16, 8, 4, 2, 1, 1
        num_conv: int = 3,  # SCC kernel candidates (paper 3)
        num_norm: int = 4,  # SCN candidates (repo ADE20K 4)
        temperature: float = 0.05,  # τ of the semantic vectors' softmax (paper 0.05)
        nhidden: int | Sequence[int] = 128,  # shortcut SPADE hidden width, or one per block (num_up+2, head
        #                                      first)
        kernel_size: int = 3,  # kernel of the shortcut SPADE's convs on the label map (paper 3)
        num_up: int = 5,  # up-sampling stages; H, W must be multiples of 2^num_up (paper 5: 8² -> 256²)
        norm: str = "instance",  # parameter-free norm of SCN and SPADE (repo: synchronised BatchNorm)
        use_edges: bool = True,  # append the instance-edge channel to the one-hot map (G_V and shortcuts see it)
        spectral: bool = True,  # spectral norm on SCC, the shortcut convs and G_V's CRN (paper)
    ) -> None:
        super().__init__()
        if label_nc < 1 or ngf < 1 or nrf < 1 or num_up < 1:
            raise ValueError("label_nc, ngf, nrf and num_up must be ≥ 1")
        num_blocks = num_up + 2
        hidden = [nhidden] * num_blocks if isinstance(nhidden, int) else list(nhidden)
        if len(hidden) != num_blocks:
            raise ValueError(f"nhidden needs {num_blocks} values (num_up + 2 blocks), got {len(hidden)}")
        repo_mult = [min(16, 2 ** (num_up - j)) for j in range(num_up + 1)]  # 16, 16, 8, 4, 2, 1 at num_up 5
        repo_svg = [min(16, 2 ** (num_up - 1 - j)) for j in range(num_up)] + [1]  # 16, 8, 4, 2, 1, 1
        mult = repo_mult if channel_mult is None else list(channel_mult)
        svg = repo_svg if svg_mult is None else list(svg_mult)
        for name, values in (("channel_mult", mult), ("svg_mult", svg)):
            if len(values) != num_up + 1:
                raise ValueError(f"{name} needs {num_up + 1} values (num_up + 1 levels), got {len(values)}")
        self.label_nc = label_nc
        self.use_edges = use_edges
        self.num_up = num_up
        self.size_multiple = 2**num_up
        semantic_nc = label_nc + (1 if use_edges else 0)
        widths = [ngf * m for m in mult]  # G_R channels per level, coarsest first

        self.svg = SemanticVectorGenerator(
            semantic_nc, [nrf * m for m in svg], num_conv, num_norm, temperature, spectral
        )
        self.fc = nn.Conv2d(semantic_nc, widths[0], 3, padding=1)  # label map at H/2^num_up -> start tensor
        # (fin, fout, level) per block: head, middle_0 (after the first up-sampling), middle_1, up_0…
        plan = [(widths[0], widths[0], 0), (widths[0], widths[1], 1), (widths[1], widths[1], 1)]
        plan += [(widths[j - 1], widths[j], j) for j in range(2, num_up + 1)]
        self.levels = [level for _, _, level in plan]
        self.blocks = nn.ModuleList(
            SCResBlock(fin, fout, semantic_nc, num_conv, num_norm, nh, kernel_size, norm, spectral)
            for (fin, fout, _), nh in zip(plan, hidden, strict=True)
        )
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(
        self, label: torch.Tensor, instance: torch.Tensor, details: bool = False
    ) -> torch.Tensor | SCGANOutputs:
        """label, instance: int64 [B,1,H,W] -> G_R's picture [B,3,H,W] in [-1,1], or with `details` also G_V's
        picture and the full-resolution SCC vectors (`SCGANOutputs`)."""
        seg = semantic_input(label, instance, self.label_nc, self.use_edges)  # [B,N(+1),H,W]
        conv_vectors, norm_vectors, features = self.svg(seg)  # per level, coarsest first
        segs = [downsample_nearest(seg, 2 ** (self.num_up - j)) for j in range(self.num_up + 1)]
        x = self.fc(segs[0])  # [B,w0,H/2^num_up,W/2^num_up]
        level = 0
        for block, block_level in zip(self.blocks, self.levels, strict=True):
            if block_level > level:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
                level = block_level
            x = block(x, segs[level], conv_vectors[level], norm_vectors[level])
        image = F.hardtanh(self.conv_img(F.leaky_relu(x, 0.2)))  # [B,3,H,W]
        if not details:
            return image
        return SCGANOutputs(image, self.svg.to_rgb(features), conv_vectors[-1])
