"""The `dp-gan` architecture: DP-GAN (Li, Cheng, Gall, BMVC 2022), written from the paper and models.md §2. Its
presets, builders, losses, the training step and what `collage export` serves; the networks are
`models/nets/dp_gan.py`.

    collage train --arch dp-gan --preset dp-gan-fast --data procedural

OASIS plus scale: G's SPADEs take γ and β from a second pyramid learnt on the full-resolution map, and D supervises
at three levels, each term of the paper's minimal set (eq. 3, 5–9):
- pixel: D segments every pixel into the N classes or "fake", class-balanced (OASIS's loss, `models/losses.py`);
- patch: hinge scores from heads on D's encoder (4th and 6th blocks), averaged over heads. The released code
  adds these as detached Python floats, so its heads never learn and G never hears them; ours are tensors and
  train both (the paper's intent, models.md §2.2);
- feature: G matches D's decoder features on its picture to those on the paired real picture (mean squared
  error per layer, averaged over layers, eq. 6);
- LabelMix on D's pixel logits (λ 5, the paper's; the released code's default is 10).
No VGG term (optional in the paper, off by default): the checkpoint records `perceptual: none`. Variety comes from
3D noise as in OASIS: z, one N(0, 1) vector per picture replicated over it, plus optional per-pixel noise
channels [ours]; served from the request's seed as the contract's `z` and `noise` inputs. No encoder, so no style
image, and no instance map (DP-GAN takes neither).

- `dp-gan-paper`: the paper's widths (ngf 64, blocks 1024 … 64, pyramid 32/64, z 64, BatchNorm, D 128 … 512 with
  64-channel BatchNorm patch heads). For Cityscapes (35 labels), with the noise counted as input channels as the
  paper concatenates it, G has 67.2 M parameters: the 69.5 M of its Table 5 less the kernels the released code
  spends on a second copy of α_0 in the 8² SPADEs (tests/models/nets/test_dp_gan.py). Reference only.
- `dp-gan-fast`: the landscape default: oasis-fast's synthesis widths (128 ch from 8² to 32², then 64, 32, 16, 16)
  and the paper's pyramid proportions scaled with ngf (stem ngf/2 = 8, every level ngf = 16 channels, so SPADEs
  see 32 channels): 3.57 GMACs and 1.36 M parameters per 256² frame (oasis-fast 2.64 / 1.97 M, spade-fast
  2.55 / 2.37 M); D is oasis-fast's U-Net with 32-channel patch heads on its 4th (16²) and 6th (4²) blocks,
  3.03 M parameters and 1.69 GMACs per 256² image.
- `dp-gan-tiny`: G 86 k, D 25 k parameters, for tests (32² output).

One step:
1. G: fake = G(label, z, noise) with fresh N(0, 1) draws. D, frozen, judges it; G pays the pixel, patch and
   feature terms (`loss.pixel`, `loss.patch`, `loss.feat`), the last against D's features of the real picture.
2. D on cat(real, fake, LabelMix(real, fake)) in one pass: the pixel term (real as its class, class-balanced;
   fake as class N), the patch hinge on real and fake, and `loss.labelmix` × LabelMix's consistency error.
Adam (0, 0.999), lr G 1e-4, D 4e-4 (paper). G gets an EMA (the trainer keeps it and export serves it).

Deviations, all [ours]: D reuses step 1's fakes, detached (one G forward per step, as our OASIS recipe); the
EMA decay is the trainer's `ema_decay` (0.999, warmed up) rather than the paper's 0.9999; the network deviations
are listed in `models/nets/dp_gan.py`. Where paper and released code differ we follow the paper: the patch
gradient kept, the feature term averaged over layers (the code sums it), λ_LM 5 (the code's default 10).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.archs import Arch, Batch, ExportSpec, load_ema_weights, register, unwrap
from models.archs.oasis import NoisedRecipe, export_spec
from models.archs.spade import check_spade_sizes
from models.labels import LabelSet
from models.losses import hinge_d_loss, hinge_g_loss, labelmix, labelmix_loss, oasis_d_loss, seg_g_loss
from models.nets.dp_gan import DPDiscriminator, DPGenerator

LOSS_WEIGHTS = {
    "pixel": 1.0,  # class-balanced N+1 cross-entropy: G's fakes as the painted classes, D's real/fake (paper 1)
    "patch": 1.0,  # hinge on the patch heads' scores, averaged over heads, for G and D (paper 1)
    "feat": 1.0,  # G: MSE between D's decoder features on fake and real, averaged over layers (paper 1)
    "labelmix": 5.0,  # D: LabelMix consistency (paper 5; released code 10)
}

OPTIMISER = {
    "lr_g": 1e-4,  # Adam learning rate of G (paper)
    "lr_d": 4e-4,  # Adam learning rate of D (paper)
    "betas": [0.0, 0.999],  # Adam betas of both (paper)
}

PRESETS: dict[str, dict[str, Any]] = {
    "dp-gan-paper": {
        **OPTIMISER,
        "size": 256,
        "generator": {
            "ngf": 64,
            "channel_mult": [16, 16, 16, 8, 4, 2, 1],
            "pyramid_stem": 32,
            "pyramid_widths": 64,
            "kernel_size": 3,
            "num_up": 5,
            "norm": "batch",
            "z_dim": 64,
            "noise_channels": 0,
            "spectral": True,
        },
        "discriminator": {
            "widths": [128, 128, 256, 256, 512, 512],
            "patch_at": [4, 6],
            "patch_width": 64,
            "patch_norm": "batch",
            "spectral": True,
        },
        "loss": dict(LOSS_WEIGHTS),
    },
    "dp-gan-fast": {
        **OPTIMISER,
        "size": 256,
        "generator": {
            "ngf": 16,
            "channel_mult": [8, 8, 8, 4, 2, 1, 1],  # 128 ch from 8² to 32², then 64, 32, 16, 16 at 256²
            "pyramid_stem": 8,  # the paper's stem is ngf/2
            "pyramid_widths": 16,  # α_0 … α_5, every level ngf wide as the paper's
            "kernel_size": 3,
            "num_up": 5,
            "norm": "instance",
            "z_dim": 64,
            "noise_channels": 4,
            "spectral": True,
        },
        "discriminator": {
            "widths": [16, 32, 64, 128, 128, 256],  # 256² -> 4², as oasis-fast
            "patch_at": [4, 6],  # 16² and 4² features, as the paper
            "patch_width": 32,
            "patch_norm": "spectral",
            "spectral": True,
        },
        "loss": dict(LOSS_WEIGHTS),
    },
    "dp-gan-tiny": {
        **OPTIMISER,
        "size": 32,
        "generator": {
            "ngf": 8,
            "channel_mult": [4, 4, 2, 1, 1],
            "pyramid_stem": 4,
            "pyramid_widths": 8,
            "kernel_size": 3,
            "num_up": 3,
            "norm": "instance",
            "z_dim": 8,
            "noise_channels": 2,
            "spectral": True,
        },
        "discriminator": {
            "widths": [8, 16, 16],  # 32² -> 4²
            "patch_at": [2, 3],  # 8² and 4² features
            "patch_width": 8,
            "patch_norm": "spectral",
            "spectral": True,
        },
        "loss": dict(LOSS_WEIGHTS),
    },
}


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of a preset, so callers may modify it."""
    if name not in PRESETS:
        raise KeyError(f"unknown DP-GAN preset {name!r}; known: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def build_generator(config: Mapping[str, Any], label_nc: int) -> DPGenerator:
    """The dual-pyramid generator a preset (or a run's saved config) describes, for `label_nc` classes."""
    return DPGenerator(label_nc=label_nc, **config["generator"])


def build_discriminator(config: Mapping[str, Any], label_nc: int) -> DPDiscriminator:
    """The U-Net discriminator: N+1 logits per pixel (the last "fake"), patch scores, decoder features."""
    return DPDiscriminator(label_nc=label_nc, **config["discriminator"])


# ----------------------------------------------------------------------------
# The three levels of supervision.


def feature_loss(fake_feats: Sequence[torch.Tensor], real_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean squared error between D's decoder features of fake and (detached) real pictures, averaged over layers
    (paper eq. 6)."""
    terms = [F.mse_loss(f.float(), r.detach().float()) for f, r in zip(fake_feats, real_feats, strict=True)]
    return torch.stack(terms).mean()


def generator_losses(
    critic: nn.Module, fake: torch.Tensor, real: torch.Tensor, label: torch.Tensor
) -> dict[str, torch.Tensor]:
    """G's unweighted terms for fake, real [B,3,H,W] painted from label [B,H,W]: "pixel" (D should read each
    pixel as its painted class), "patch" (hinge, G form) and "feat" (match D's features on the real picture)."""
    logits, scores, feats = critic(fake)
    with torch.no_grad():
        _, _, real_feats = critic(real)
    return {
        "pixel": seg_g_loss(logits, label),
        "patch": hinge_g_loss([[s] for s in scores]),
        "feat": feature_loss(feats, real_feats),
    }


def discriminator_losses(
    disc: nn.Module, real: torch.Tensor, fake: torch.Tensor, label: torch.Tensor, num_classes: int
) -> dict[str, torch.Tensor]:
    """D's unweighted terms on real and (detached) fake [B,3,H,W] and their LabelMix, judged in one pass:
    "pixel" (N+1 cross-entropy), "patch" (hinge on every head; a tensor, so it trains the heads and the encoder
    under them, unlike the released code's float) and "labelmix"."""
    batch = real.shape[0]
    mixed, mask = labelmix(label, real, fake, num_classes)
    logits, scores, _ = disc(torch.cat([real, fake, mixed]))
    real_logits, fake_logits, mixed_logits = logits.chunk(3)  # [B,N+1,H,W] each
    real_scores = [[s[:batch]] for s in scores]
    fake_scores = [[s[batch : 2 * batch]] for s in scores]  # the LabelMix third only regularises the logits
    return {
        "pixel": oasis_d_loss(real_logits, fake_logits, label),
        "patch": hinge_d_loss(real_scores, fake_scores),
        "labelmix": labelmix_loss(mixed_logits, real_logits, fake_logits, mask),
    }


# ----------------------------------------------------------------------------
# The recipe.


class DPGanRecipe(NoisedRecipe):
    ema = ("G",)
    # broadcast_buffers stays off (spectral norm): under torchrun each process keeps its own running statistics
    # of the adaptation pyramid's BatchNorm, and the checkpoint (hence the EMA and the export) takes rank 0's.

    def __init__(self, config: Mapping[str, Any], label_set: LabelSet, device: torch.device) -> None:
        super().__init__()
        self.label_nc = len(label_set)
        g, d = build_generator(config, self.label_nc), build_discriminator(config, self.label_nc)
        self.nets = {"G": g.to(device), "D": d.to(device)}
        betas = (float(config["betas"][0]), float(config["betas"][1]))
        self.optimizers = {
            "G": torch.optim.Adam(g.parameters(), lr=config["lr_g"], betas=betas),
            "D": torch.optim.Adam(d.parameters(), lr=config["lr_d"], betas=betas),
        }
        self.weights = dict(config["loss"])
        self.z_dim, self.noise_channels = g.z_dim, g.noise_channels
        # no VGG (optional in the paper, off by default); D's feature matching is part of the method, not a stand-in
        self.meta = {"perceptual": "none"}

    def step(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        label, real = batch["label"], batch["image"]  # [B,H,W] int64, [B,3,H,W]
        w = self.weights

        # 1. Generator; D only judges (frozen, unwrapped so DDP does not wait for its gradients).
        z, noise = self.noise(real.shape[0], real.shape[-2:], real.device)
        fake = nets["G"](label[:, None], z, noise)  # [B,3,H,W]
        critic = unwrap(nets["D"]).requires_grad_(False)
        g = generator_losses(critic, fake, real, label)
        g_pixel, g_patch, g_feat = g["pixel"] * w["pixel"], g["patch"] * w["patch"], g["feat"] * w["feat"]
        self.optimizers["G"].zero_grad(set_to_none=True)
        (g_pixel + g_patch + g_feat).backward()
        self.optimizers["G"].step()
        critic.requires_grad_(True)

        # 2. Discriminator on real, the same fakes and their LabelMix, in one pass.
        d = discriminator_losses(nets["D"], real, fake.detach(), label, self.label_nc)
        d_pixel, d_patch = d["pixel"] * w["pixel"], d["patch"] * w["patch"]
        d_lm = d["labelmix"] * w["labelmix"]
        self.optimizers["D"].zero_grad(set_to_none=True)
        (d_pixel + d_patch + d_lm).backward()
        self.optimizers["D"].step()
        terms = {"G_pixel": g_pixel, "G_patch": g_patch, "G_feat": g_feat}
        terms |= {"D_pixel": d_pixel, "D_patch": d_patch, "D_lm": d_lm}
        return {k: v.item() for k, v in terms.items()}


# ----------------------------------------------------------------------------
# Export: G (label, z[, noise]) -> image at any multiple of 2^num_up; no encoder, no instance map: served as OASIS
# (export_spec and its example inputs in models/archs/oasis.py).


def export_checkpoint(checkpoint: Mapping[str, Any], label_set: LabelSet) -> ExportSpec:
    """G rebuilt from the config a checkpoint carries; the EMA copy when there is one."""
    generator = build_generator(checkpoint["config"], len(label_set))
    key = load_ema_weights(checkpoint, generator)
    return export_spec(generator, label_set, {"generator_weights": key}, arch="dp-gan")


register(
    Arch("dp-gan", PRESETS, "dp-gan-fast", DPGanRecipe, check=check_spade_sizes, export=export_checkpoint)
)
