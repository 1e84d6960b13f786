"""The `spade` architecture: the SPADE/GauGAN training step (Park et al., CVPR 2019), written from the paper.

    collage train --arch spade --preset spade-fast --data procedural

Networks (built by `models/presets.py`, which the exporter uses too): G the SPADE generator, E the VAE image
encoder, D the multi-scale PatchGAN. One step:
1. G and E: z = μ + σ·ε from E(real), resized to E's own input size (presets.py); fake = G(label, instance, z).
   D, frozen, judges cat(fake, real) in one pass. Loss = hinge (G form) + D feature matching (λ=10) +
   perceptual (VGG19 λ=10 with `--vgg_weights`, else the down-sampled L1 substitute of losses.py) + KL
   (0.05). E is trained by G's optimiser, as in the authors' code.
2. D: hinge on cat(fake, real) with the step-1 fakes detached (one G forward per step instead of SPADE's two).
TTUR Adam: G 1e-4, D 4e-4, betas (0, 0.9) as in the authors' code. G gets an EMA (the trainer keeps it).

The `-seg` presets add S, OASIS's segmentation discriminator: in step 1 G also pays `loss.seg` × S's
class-balanced cross-entropy of its fakes against the painted labels; in step 3 S learns real pixels as their
class and fake pixels as class N with D's optimiser settings. S sees every image, real or fake, through the
judge's random recolouring (`seg_augment`, differentiable, as DiffAugment augments both sides): on procedural
landscapes an S that may read class from colour says little to a G whose colours are already right, while
one that must use texture and shape pushes each class's texture apart. S may be missing from an
`--init_from` source (a plain SPADE run): it then starts from scratch, and `--loss.seg=0` lets it learn
before G listens to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import nn

from models.archs import Arch, Batch, Recipe, register, unwrap
from models.augment import recolour
from models.labels import LabelSet
from models.losses import (
    DOutputs,
    PerceptualLoss,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    kl_loss,
    seg_d_loss,
    seg_g_loss,
)
from models.nets.spade import ConvEncoder, fit_to_encoder, reparameterize
from models.presets import PRESETS as NET_PRESETS
from models.presets import build_discriminator, build_encoder, build_generator, build_seg_discriminator

OPTIMISER = {
    "lr_g": 1e-4,  # Adam learning rate of G and E (TTUR, paper)
    "lr_d": 4e-4,  # Adam learning rate of D (TTUR, paper)
    "betas": [0.0, 0.9],  # Adam betas of both (authors' code with TTUR)
    "vgg_weights": "",  # torchvision VGG19 state dict for the perceptual loss ("" = the substitute)
}

PRESETS: dict[str, dict[str, Any]] = {name: {**OPTIMISER, **preset} for name, preset in NET_PRESETS.items()}


def split_halves(outputs: DOutputs) -> tuple[DOutputs, DOutputs]:
    """D outputs on cat(fake, real) along the batch -> (outputs on fake, outputs on real)."""
    fake = [[f[: f.shape[0] // 2] for f in scale] for scale in outputs]
    real = [[f[f.shape[0] // 2 :] for f in scale] for scale in outputs]
    return fake, real


def check_config(config: Mapping[str, Any]) -> None:
    """G up-samples num_up times from a (size/2^num_up)² grid, so any other size breaks its first skip sum."""
    size, num_up = config["size"], config["generator"]["num_up"]
    multiple = 2**num_up
    if size % multiple:
        near = [n for n in (size // multiple * multiple, (size // multiple + 1) * multiple) if n >= multiple]
        raise ValueError(
            f"size {size} must be a multiple of 2^num_up = {multiple} (generator.num_up={num_up}); "
            f"e.g. {' or '.join(f'--size={n}' for n in near)}"
        )


class SpadeRecipe(Recipe):
    ema = ("G",)

    def __init__(self, config: Mapping[str, Any], label_set: LabelSet, device: torch.device) -> None:
        super().__init__()
        n = len(label_set)
        g, e, d = build_generator(config, n), build_encoder(config), build_discriminator(config, n)
        self.nets = {"G": g.to(device), "D": d.to(device), "E": e.to(device)}
        betas = (float(config["betas"][0]), float(config["betas"][1]))
        self.optimizers = {
            "G": torch.optim.Adam([*g.parameters(), *e.parameters()], lr=config["lr_g"], betas=betas),
            "D": torch.optim.Adam(d.parameters(), lr=config["lr_d"], betas=betas),
        }
        if "seg_discriminator" in config:
            s = build_seg_discriminator(config, n).to(device)
            self.nets["S"] = s
            self.optimizers["S"] = torch.optim.Adam(s.parameters(), lr=config["lr_d"], betas=betas)
            self.init_optional = ("S",)
            self.seg_augment = dict(config["seg_augment"])
        self.weights = dict(config["loss"])
        self.perceptual = PerceptualLoss(
            config["vgg_weights"] or None, self.weights["vgg"], self.weights["l1_down"]
        ).to(device)
        self.meta = {"perceptual": self.perceptual.kind}

    def step(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        label, instance = batch["label"][:, None], batch["instance"][:, None]  # [B,1,H,W] int64
        real = batch["image"]  # [B,3,H,W]
        label2, instance2 = torch.cat([label, label]), torch.cat([instance, instance])  # for cat(fake, real)

        # 1. Generator and encoder; D only judges (frozen, unwrapped so DDP does not wait for its gradients).
        encoder = cast(ConvEncoder, unwrap(nets["E"]))
        mu, logvar = nets["E"](fit_to_encoder(real, encoder.image_size))  # [B,z_dim] each
        fake = nets["G"](label, instance, reparameterize(mu, logvar))  # [B,3,H,W]
        critic = unwrap(nets["D"]).requires_grad_(False)
        pred_fake, pred_real = split_halves(critic(label2, instance2, torch.cat([fake, real])))
        g_gan = hinge_g_loss(pred_fake) * self.weights["gan"]
        g_feat = feature_matching_loss(pred_fake, pred_real, self.weights["feat"])
        g_perc = self.perceptual(fake, real)
        g_kl = kl_loss(mu, logvar, self.weights["kl"])
        losses = {"G_gan": g_gan, "G_feat": g_feat, "G_perc": g_perc, "G_kl": g_kl}
        seg_critic = unwrap(nets["S"]).requires_grad_(False) if "S" in nets else None
        if seg_critic is not None:
            fake_seg = seg_critic(recolour(fake, self.seg_augment))  # [B,N+1,H,W]
            losses["G_seg"] = seg_g_loss(fake_seg, batch["label"]) * self.weights["seg"]
        self.optimizers["G"].zero_grad(set_to_none=True)
        torch.stack(list(losses.values())).sum().backward()
        self.optimizers["G"].step()
        critic.requires_grad_(True)

        # 2. Discriminator on the same fakes.
        pred_fake, pred_real = split_halves(nets["D"](label2, instance2, torch.cat([fake.detach(), real])))
        d_loss = hinge_d_loss(pred_real, pred_fake)
        self.optimizers["D"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizers["D"].step()
        losses["D"] = d_loss

        # 3. Segmentation discriminator (the -seg presets) on the same fakes.
        if seg_critic is not None:
            seg_critic.requires_grad_(True)
            both = recolour(torch.cat([real, fake.detach()]), self.seg_augment)  # [2B,3,H,W]
            real_logits, fake_logits = nets["S"](both).chunk(2)  # [B,N+1,H,W] each
            s_loss = seg_d_loss(real_logits, fake_logits, batch["label"])
            self.optimizers["S"].zero_grad(set_to_none=True)
            s_loss.backward()
            self.optimizers["S"].step()
            losses["S"] = s_loss
        return {name: loss.item() for name, loss in losses.items()}

    def preview(self, nets: Mapping[str, nn.Module], batch: Batch) -> list[torch.Tensor]:
        """G_ema with z = E's μ of the real image (style transfer), and with a fixed random z."""
        label, instance = batch["label"][:, None], batch["instance"][:, None]
        size = cast(ConvEncoder, nets["E"]).image_size
        mu, _ = nets["E"](fit_to_encoder(batch["image"], size))  # [B,z_dim]
        z = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0)).to(mu.device)
        return [nets["G"](label, instance, mu), nets["G"](label, instance, z)]


register(Arch("spade", PRESETS, "spade-fast", SpadeRecipe, check=check_config))
