"""The `oasis` architecture: OASIS (Sushko, Schönfeld et al., ICLR 2021), written from the paper and models.md §5.
Its presets, builders, LabelMix, the training step and what `collage export` serves; the networks are
`models/nets/oasis.py` (G) and `models/nets/seg_discriminator.py` (D).

    collage train --arch oasis --preset oasis-fast --data procedural

Only adversarial supervision: D segments every pixel into the N label classes or an extra "fake" class, so its
feedback to G is dense and label-aware, and no perceptual or feature-matching term is needed (none is used:
the checkpoint records `perceptual: none`). Variety comes from 3D noise instead of an image encoder: z, one
N(0, 1) vector per picture replicated over it, plus optional per-pixel noise channels [ours]; served from the
request's seed as the contract's `z` and `noise` inputs.

- `oasis-paper`: the paper's widths (ngf 64, blocks 1024 … 64, SPADE hidden 128, z 64, BatchNorm) and a
  segmentation D with the paper's encoder widths. For Cityscapes (35 labels + the edge channel) and with the noise
  counted as conv input channels, as the paper concatenates it, G has the 71.1 M parameters of the DP-GAN table.
  Reference only.
- `oasis-fast`: the landscape default, priced like `spade-fast`: 2.64 GMACs and 1.97 M parameters per 256²
  frame (spade-fast 2.55 / 2.37 M); D with six down blocks (256² -> 4², as the paper's), 1.68 GMACs per image.
- `oasis-tiny`: G 73 k, D 19 k parameters, for tests (32² output).

One step (models.md §0, §5):
1. G: fake = G(label, z, noise) with fresh N(0, 1) draws. D, frozen, segments it; G pays the class-balanced
   (N+1)-way cross-entropy of its pixels against the painted labels (`loss.adv`).
2. D on cat(real, fake, LabelMix(real, fake)) in one pass: real pixels as their class, class-balanced; fake pixels
   as the fake class, unweighted (as the paper); plus `loss.labelmix` × the squared error between D's logits
   on the mixed image and the same mix of its logits on real and fake.
Adam (0, 0.999), lr G 1e-4, D 4e-4 (paper). G gets an EMA (the trainer keeps it and export serves it).

Deviations, all [ours]: D reuses step 1's fakes, detached, instead of drawing new ones (one G forward per
step, as our SPADE recipe); D's logits come out at half resolution and are up-sampled (seg_discriminator.py);
the EMA decay is the trainer's `ema_decay` (0.999, warmed up) rather than the paper's 0.9999, which would
average over most of a CPU run. LabelMix and the paper's D loss are in models/losses.py, shared with DP-GAN.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from models.archs import Arch, Batch, ExportRole, ExportSpec, Recipe, load_ema_weights, register, unwrap
from models.archs.spade import check_spade_sizes
from models.labels import LabelSet
from models.losses import labelmix, labelmix_loss, oasis_d_loss, seg_g_loss
from models.nets.dp_gan import DPGenerator
from models.nets.oasis import OASISGenerator
from models.nets.seg_discriminator import SegmentationDiscriminator

LOSS_WEIGHTS = {
    "adv": 1.0,  # G: class-balanced N+1 cross-entropy of its fakes against the painted labels (paper 1)
    "labelmix": 10.0,  # D: LabelMix consistency (authors' code 10; DP-GAN cites 5)
}

OPTIMISER = {
    "lr_g": 1e-4,  # Adam learning rate of G (paper)
    "lr_d": 4e-4,  # Adam learning rate of D (paper)
    "betas": [0.0, 0.999],  # Adam betas of both (paper)
}

PRESETS: dict[str, dict[str, Any]] = {
    "oasis-paper": {
        **OPTIMISER,
        "size": 256,
        "generator": {
            "ngf": 64,
            "channel_mult": [16, 16, 16, 8, 4, 2, 1],
            "nhidden": 128,
            "kernel_size": 3,
            "num_up": 5,
            "norm": "batch",
            "z_dim": 64,
            "noise_channels": 0,
            "spectral": True,
            "share_shortcut_hidden": False,
        },
        "discriminator": {"widths": [128, 128, 256, 256, 512, 512], "spectral": True},
        "loss": dict(LOSS_WEIGHTS),
    },
    "oasis-fast": {
        **OPTIMISER,
        "size": 256,
        "generator": {
            "ngf": 16,
            "channel_mult": [8, 8, 8, 4, 2, 1, 1],  # 128 ch from 8² to 32², then 64, 32, 16, 16 at 256²
            "nhidden": [64, 64, 64, 32, 16, 8],  # per block, 8² … 256²
            "kernel_size": 3,
            "num_up": 5,
            "norm": "instance",
            "z_dim": 64,
            "noise_channels": 4,
            "spectral": True,
            "share_shortcut_hidden": True,
        },
        "discriminator": {"widths": [16, 32, 64, 128, 128, 256], "spectral": True},  # 256² -> 4²
        "loss": dict(LOSS_WEIGHTS),
    },
    "oasis-tiny": {
        **OPTIMISER,
        "size": 32,
        "generator": {
            "ngf": 8,
            "channel_mult": [4, 4, 2, 1, 1],
            "nhidden": 8,
            "kernel_size": 3,
            "num_up": 3,
            "norm": "instance",
            "z_dim": 8,
            "noise_channels": 2,
            "spectral": True,
            "share_shortcut_hidden": True,
        },
        "discriminator": {"widths": [8, 16, 16], "spectral": True},  # 32² -> 4²
        "loss": dict(LOSS_WEIGHTS),
    },
}


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of a preset, so callers may modify it."""
    if name not in PRESETS:
        raise KeyError(f"unknown OASIS preset {name!r}; known: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def build_generator(config: Mapping[str, Any], label_nc: int) -> OASISGenerator:
    """The generator a preset (or a run's saved config) describes, for `label_nc` classes."""
    return OASISGenerator(label_nc=label_nc, **config["generator"])


def build_discriminator(config: Mapping[str, Any], label_nc: int) -> SegmentationDiscriminator:
    """The segmentation discriminator: N+1 logits per pixel, the last one "fake"."""
    return SegmentationDiscriminator(label_nc=label_nc, **config["discriminator"])


# ----------------------------------------------------------------------------
# The recipe.


class NoisedRecipe(Recipe):
    """What OASIS and DP-GAN share: G takes z and per-pixel noise drawn as the server draws them from a seed
    (`self.z_dim`, `self.noise_channels` set by the subclass), and the preview re-rolls one map with two seeds."""

    z_dim: int
    noise_channels: int

    def noise(
        self, batch: int, size: torch.Size, device: torch.device, gen: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(z [B,z_dim], per-pixel noise [B,C,H,W] or None), N(0, 1) as the server draws them from a seed."""
        z = torch.randn(batch, self.z_dim, generator=gen).to(device)
        if not self.noise_channels:
            return z, None
        return z, torch.randn(batch, self.noise_channels, *size, generator=gen).to(device)

    def preview(self, nets: Mapping[str, nn.Module], batch: Batch) -> list[torch.Tensor]:
        """G_ema with the noise of two fixed seeds: the same map re-rolled."""
        label = batch["label"][:, None]
        b, size, device = label.shape[0], label.shape[-2:], label.device
        columns = []
        for seed in (0, 1):
            z, noise = self.noise(b, size, device, torch.Generator().manual_seed(seed))
            columns.append(nets["G"](label, z, noise))
        return columns


class OasisRecipe(NoisedRecipe):
    ema = ("G",)

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
        self.meta = {"perceptual": "none"}  # adversarial supervision only (paper)

    def step(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        label, real = batch["label"], batch["image"]  # [B,H,W] int64, [B,3,H,W]

        # 1. Generator; D only judges (frozen, unwrapped so DDP does not wait for its gradients).
        z, noise = self.noise(real.shape[0], real.shape[-2:], real.device)
        fake = nets["G"](label[:, None], z, noise)  # [B,3,H,W]
        critic = unwrap(nets["D"]).requires_grad_(False)
        g_adv = seg_g_loss(critic(fake), label) * self.weights["adv"]
        self.optimizers["G"].zero_grad(set_to_none=True)
        g_adv.backward()
        self.optimizers["G"].step()
        critic.requires_grad_(True)

        # 2. Discriminator on real, the same fakes and their LabelMix, in one pass.
        fake = fake.detach()
        mixed, mask = labelmix(label, real, fake, self.label_nc)
        real_logits, fake_logits, mixed_logits = nets["D"](torch.cat([real, fake, mixed])).chunk(3)
        d_adv = oasis_d_loss(real_logits, fake_logits, label)
        d_lm = labelmix_loss(mixed_logits, real_logits, fake_logits, mask) * self.weights["labelmix"]
        self.optimizers["D"].zero_grad(set_to_none=True)
        (d_adv + d_lm).backward()
        self.optimizers["D"].step()
        return {"G_adv": g_adv.item(), "D_adv": d_adv.item(), "D_lm": d_lm.item()}


# ----------------------------------------------------------------------------
# Export: G (label, z[, noise]) -> image at any multiple of 2^num_up; no encoder, no instance map.


def generator_inputs(
    generator: OASISGenerator | DPGenerator, batch: int, size: tuple[int, int], seed: int
) -> dict[str, torch.Tensor]:
    """Blocky random labels (8×8 cells, like painted regions), z and per-pixel noise, in forward order."""
    gen = torch.Generator().manual_seed(seed)
    height, width = size
    cells = (batch, 1, -(-height // 8), -(-width // 8))
    label = torch.randint(0, generator.label_nc, cells, generator=gen)
    label = label.repeat_interleave(8, 2).repeat_interleave(8, 3)[:, :, :height, :width].contiguous()
    inputs = {"label": label, "z": torch.randn(batch, generator.z_dim, generator=gen)}
    if generator.noise_channels:
        inputs["noise"] = torch.randn(batch, generator.noise_channels, height, width, generator=gen)
    return inputs  # label [B,1,H,W] int64, z [B,z_dim], noise [B,C,H,W]


def export_spec(
    generator: OASISGenerator | DPGenerator,
    label_set: LabelSet,
    provenance: Mapping[str, Any] | None = None,
    arch: str = "oasis",  # the manifest's architecture: DP-GAN's generator is served the same way
) -> ExportSpec:
    """The served generator of an OASIS (or DP-GAN) model: no style encoder, no instance input; z and noise come
    from the request's seed (docs/contracts.md)."""
    if generator.label_nc != len(label_set):
        raise ValueError(
            f"generator has label_nc={generator.label_nc} but {label_set.name!r} has {len(label_set)} labels"
        )
    role = ExportRole(
        module=generator,
        example=lambda batch, size, seed: generator_inputs(generator, batch, size, seed),
        outputs=("image",),
        fields={
            "label": "label",
            "instance": None,
            "z": "z",
            "z_dim": generator.z_dim,
            "noise": "noise" if generator.noise_channels else None,
            "noise_channels": generator.noise_channels,
            "output": "image",
        },
        spatial=("label", "noise"),
        size_multiple=generator.size_multiple,
    )
    return ExportSpec(arch, label_set, role, provenance=dict(provenance or {}))


def export_checkpoint(checkpoint: Mapping[str, Any], label_set: LabelSet) -> ExportSpec:
    """G rebuilt from the config a checkpoint carries; the EMA copy when there is one."""
    generator = build_generator(checkpoint["config"], len(label_set))
    key = load_ema_weights(checkpoint, generator)
    return export_spec(generator, label_set, {"generator_weights": key})


register(Arch("oasis", PRESETS, "oasis-fast", OasisRecipe, check=check_spade_sizes, export=export_checkpoint))
