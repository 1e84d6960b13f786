"""The `sc-gan` architecture: SC-GAN (Wang et al., ICCV 2021; models.md §3), semantic vectors from the label map
conditioning every convolution (SCC) and normalisation (SCN) of the render generator. Its presets, builders,
training step and what `collage export` serves live here; the generator is `models/nets/sc_gan.py`.

    collage train --arch sc-gan --preset sc-gan-fast --data procedural [--size=128]

Both generators of the paper stay (models.md §3.1): G_V (SVG) makes the semantic vectors and a picture of its
own, G_R (SRG) renders with SCC and SCN. Served is the whole generator minus G_V's picture head.

- `sc-gan-paper`: the released ADE20K config (ngf = nrf = 32, 3 conv and 4 norm candidates, τ 0.05, SPADE hidden
  128, no instance edges). For ADE20K's 151 label channels the generator has 60.85 M parameters; the paper
  reports 66.2 M without saying for which config (tests/models/nets/test_sc_gan.py). Reference for size only.
- `sc-gan-fast`: the landscape default, 2.75 M parameters and 3.78 GMACs per 256² frame (≤ 6; spade-fast 2.55,
  oasis-fast 2.64, dp-gan-fast 3.57, lggan-fast 3.86): models.md's compact ngf = nrf = 16, n_conv 3, n_norm 4,
  τ 0.05; G_R's widths 96, 96, 64, 32, 16, 16 (8² … 256², spade-fast's shape capped at 96 because every SCC
  costs three convs), G_V's 128, 128, 64, 32, 16, 16 (the repo's 16, 8, 4, 2, 1, 1 × nrf capped at 128), the
  shortcut SPADEs' hidden widths of spade-fast. Of the 3.78 GMACs the SCCs take 2.16, G_V 0.95 and the three
  learned shortcuts (SPADE + the repo's 3×3 conv) 0.62.
- `sc-gan-tiny`: G 75 k, D 26 k parameters, for tests (32² output).

No style input: the released config starts G_R from the label map (the paper's noise input is not used) and the
multimodal VAE encoder is outside models.md's minimal loss set, so there is no encoder E, no z and no KL, and the
exported generator takes label and instance ids only (capabilities: style_image false, z_dim 0, noise false).

Networks: G the SC-GAN generator, D SPADE's multi-scale PatchGAN on cat(one-hot, edges, image)
(models/nets/discriminator.py) [ours: models.md §3.3 accepts it as the compact stand-in for the repo's CC-FPSE
feature-pyramid semantics-embedding D]. One step:
1. G: one forward pass gives G_R's picture and G_V's; D, frozen, judges cat(G_R's picture, real). Loss, models.md
   §3.3's minimal set (paper eq. 6): hinge (G form, λ 1) + D feature matching (λ 10) + perceptual (VGG19 λ 10 with
   `--vgg_weights`, else the down-sampled L1 substitute of losses.py [ours, models.md §0.1]) on G_R's picture,
   + L_s = λ 2 · L1(G_V's picture, real) (paper eq. 10; "must keep": without it the vectors collapse).
2. D: hinge on cat(G_R's picture, real) with the step-1 pictures detached (one G forward per step, as our SPADE;
   the repo runs G again).
Adam (0, 0.999), lr G 1e-4, D 4e-4 (paper §3.4, repo). The trainer keeps an EMA of G, which is what is served
[ours: the paper serves G; the repo has an EMA variant of its model], decay the trainer's `ema_decay`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.archs import Arch, Batch, ExportSpec, Recipe, load_ema_weights, register, unwrap
from models.archs.lggan import export_spec
from models.archs.spade import build_discriminator, check_spade_sizes, split_halves
from models.labels import LabelSet
from models.losses import PerceptualLoss, feature_matching_loss, hinge_d_loss, hinge_g_loss
from models.nets.sc_gan import SCGANGenerator, SCGANOutputs

LOSS_WEIGHTS = {
    "gan": 1.0,  # hinge GAN on G_R's picture (G form; paper λ_gan 1)
    "feat": 10.0,  # discriminator feature matching (paper λ_fm 10)
    "vgg": 10.0,  # VGG19 perceptual, when --vgg-weights is given (paper λ_p 10)
    "l1_down": 1.0,  # substitute for VGG: L1 on 4×/8× down-sampled images [ours, as our SPADE]
    "svg": 2.0,  # L_s: L1 between G_V's picture and the real one (paper λ_s 2, repo lambda_w_recon 2)
}

OPTIMISER = {
    "lr_g": 1e-4,  # Adam learning rate of G (paper, TTUR)
    "lr_d": 4e-4,  # Adam learning rate of D (paper, TTUR)
    "betas": [0.0, 0.999],  # Adam betas of both (paper §3.4, repo configs)
    "vgg_weights": "",  # torchvision VGG19 state dict for the perceptual loss ("" = the substitute)
}

PRESETS: dict[str, dict[str, Any]] = {
    "sc-gan-paper": {
        **OPTIMISER,
        "size": 256,
        "generator": {
            "ngf": 32,
            "channel_mult": [16, 16, 8, 4, 2, 1],
            "nrf": 32,
            "svg_mult": [16, 8, 4, 2, 1, 1],
            "num_conv": 3,
            "num_norm": 4,
            "temperature": 0.05,
            "nhidden": 128,
            "kernel_size": 3,
            "num_up": 5,
            "norm": "instance",
            "use_edges": False,  # the released configs take no instance map
            "spectral": True,
        },
        "discriminator": {"ndf": 64, "n_layers": 4, "num_scales": 2, "max_ch": 512},
        "loss": dict(LOSS_WEIGHTS),
    },
    "sc-gan-fast": {
        **OPTIMISER,
        "size": 256,
        "generator": {
            "ngf": 16,
            "channel_mult": [6, 6, 4, 2, 1, 1],  # G_R: 96 ch at 8² and 16², 64 at 32², … 16 at 256²
            "nrf": 16,
            "svg_mult": [8, 8, 4, 2, 1, 1],  # G_V: 128 ch at 8² and 16², 64 at 32², … 16 at 256²
            "num_conv": 3,
            "num_norm": 4,
            "temperature": 0.05,
            "nhidden": [64, 64, 64, 32, 32, 16, 8],  # shortcut SPADEs per block: only 32², 64², 128² have one
            "kernel_size": 3,
            "num_up": 5,
            "norm": "instance",
            "use_edges": True,
            "spectral": True,
        },
        "discriminator": {"ndf": 32, "n_layers": 4, "num_scales": 2, "max_ch": 256},
        "loss": dict(LOSS_WEIGHTS),
    },
    "sc-gan-tiny": {
        **OPTIMISER,
        "size": 32,
        "generator": {
            "ngf": 8,
            "channel_mult": [2, 2, 1, 1],  # 16 ch at 4² and 8², 8 at 16² and 32²
            "nrf": 8,
            "svg_mult": [2, 2, 1, 1],
            "num_conv": 3,
            "num_norm": 4,
            "temperature": 0.05,
            "nhidden": 8,
            "kernel_size": 3,
            "num_up": 3,
            "norm": "instance",
            "use_edges": True,
            "spectral": True,
        },
        "discriminator": {"ndf": 8, "n_layers": 3, "num_scales": 2, "max_ch": 32},
        "loss": dict(LOSS_WEIGHTS),
    },
}


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of a preset, so callers may modify it."""
    if name not in PRESETS:
        raise KeyError(f"unknown SC-GAN preset {name!r}; known: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def build_generator(config: Mapping[str, Any], label_nc: int) -> SCGANGenerator:
    """The generator a preset (or a run's saved config) describes, for `label_nc` classes."""
    return SCGANGenerator(label_nc=label_nc, **config["generator"])


def vector_picture(vectors: torch.Tensor) -> torch.Tensor:
    """SCC vectors [B,n,H,W] -> [B,3,H,W] in [-1,1]: the first three entries as RGB (cycled when n < 3), each
    picture stretched to its own range, since τ 0.05 keeps the vectors within a few percent of 1/n. Regions
    drawn alike share a colour (the paper's Fig. 3 finding, e.g. both eyes)."""
    rgb = vectors[:, [i % vectors.shape[1] for i in range(3)]]  # [B,3,H,W]
    low = rgb.amin((1, 2, 3), keepdim=True)
    high = rgb.amax((1, 2, 3), keepdim=True)
    return (rgb - low) / (high - low).clamp(min=1e-8) * 2 - 1


class SCGANRecipe(Recipe):
    ema = ("G",)

    def __init__(self, config: Mapping[str, Any], label_set: LabelSet, device: torch.device) -> None:
        super().__init__()
        n = len(label_set)
        g, d = build_generator(config, n), build_discriminator(config, n)
        self.nets = {"G": g.to(device), "D": d.to(device)}
        betas = (float(config["betas"][0]), float(config["betas"][1]))
        self.optimizers = {
            "G": torch.optim.Adam(g.parameters(), lr=config["lr_g"], betas=betas),
            "D": torch.optim.Adam(d.parameters(), lr=config["lr_d"], betas=betas),
        }
        self.weights = dict(config["loss"])
        self.perceptual = PerceptualLoss(
            config["vgg_weights"] or None, self.weights["vgg"], self.weights["l1_down"]
        ).to(device)
        self.meta = {"perceptual": self.perceptual.kind}

    def step(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        label, instance = batch["label"][:, None], batch["instance"][:, None]  # [B,1,H,W] int64
        real = batch["image"]  # [B,3,H,W]
        label2, instance2 = torch.cat([label, label]), torch.cat([instance, instance])  # for cat(fake, real)

        # 1. Generator (G_R and G_V); D only judges (frozen, unwrapped so DDP does not wait for its gradients).
        out: SCGANOutputs = nets["G"](label, instance, details=True)
        critic = unwrap(nets["D"]).requires_grad_(False)
        pred_fake, pred_real = split_halves(critic(label2, instance2, torch.cat([out.image, real])))
        losses = {
            "G_gan": hinge_g_loss(pred_fake) * self.weights["gan"],
            "G_feat": feature_matching_loss(pred_fake, pred_real, self.weights["feat"]),
            "G_perc": self.perceptual(out.image, real),
            "G_svg": F.l1_loss(out.svg_image, real) * self.weights["svg"],
        }
        self.optimizers["G"].zero_grad(set_to_none=True)
        torch.stack(list(losses.values())).sum().backward()
        self.optimizers["G"].step()
        critic.requires_grad_(True)

        # 2. Discriminator on the same pictures.
        pred_fake, pred_real = split_halves(
            nets["D"](label2, instance2, torch.cat([out.image.detach(), real]))
        )
        d_loss = hinge_d_loss(pred_real, pred_fake)
        self.optimizers["D"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizers["D"].step()
        losses["D"] = d_loss
        return {name: loss.item() for name, loss in losses.items()}

    def preview(self, nets: Mapping[str, nn.Module], batch: Batch) -> list[torch.Tensor]:
        """G_ema's picture, G_V's picture and the full-resolution SCC vectors as colours."""
        out: SCGANOutputs = nets["G"](batch["label"][:, None], batch["instance"][:, None], details=True)
        return [out.image, out.svg_image, vector_picture(out.vectors)]


# ----------------------------------------------------------------------------
# Export: G (label, instance) -> image at any multiple of 2^num_up; no encoder, no z: served as LGGAN
# (export_spec and its example inputs in models/archs/lggan.py).


def export_checkpoint(checkpoint: Mapping[str, Any], label_set: LabelSet) -> ExportSpec:
    """G rebuilt from the config a checkpoint carries: the EMA copy when there is one."""
    generator = build_generator(checkpoint["config"], len(label_set))
    key = load_ema_weights(checkpoint, generator)
    return export_spec(generator, label_set, {"generator_weights": key}, arch="sc-gan")


register(
    Arch("sc-gan", PRESETS, "sc-gan-fast", SCGANRecipe, check=check_spade_sizes, export=export_checkpoint)
)
