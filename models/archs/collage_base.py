"""The `collage-base` architecture: CollageGAN's base generator (Li et al., ICCV 2021; models.md §1.1, §1.2, §1.4,
§1.6), a conditional StyleGAN2 that draws the whole scene from the labels and instance edges; the class
generators (`collage-class`) redraw its thing instances afterwards (`collage attach`).

    collage train --arch collage-base --preset collage-base --data procedural
    collage export runs/00008-collage-base --out weights/landscape-collage
    collage attach packs/tree packs/rock packs/house --model weights/landscape-collage

Networks (`models/nets/collage_base.py`): G = the paper's G_b (layout encoder -> z and φ, StyleGAN2 decoder from
φ) plus a photo encoder [ours] for the studio's style images, one module so its EMA keeps them matched; D =
StyleGAN2's residual discriminator, unconditional (the paper names only the real distribution: real scenes).
Served: the generator graph takes label, instance, z and noise, z being the ε of the paper's z = μ(S, E) +
σ(S, E)·ε, so a seed's N(0, 1) draw is the paper's sampling and the encoder graph's μ of a photo transfers its
style; presets are μ of procedural renders per style family (`collage export`).

- `collage-base`: the landscape default, models.md §1.6 with the widths trimmed to spade-fast's cost: encoder
  16 ch at 256² … 128 ch at 32² … 4², FPN over 32² … 4² to φ 128 ch at 32² (the paper's φ side), z 128, mapping
  2 × 128, synthesis 128 ch at 32², 64, 32, 16 at 256² (a 256-px StyleGAN2 without its 4²–16² layers); photo
  encoder at 128² (as spade-fast's: photos are resized to it). 2.79 GMACs and 1.76 M parameters per 256²
  frame (spade-fast 2.55 / 2.37 M), photo encoder 0.53 M; D 256² -> 4², 3.83 M parameters, 1.02 GMACs per image.
- `collage-base-tiny`: for tests, 32² pictures; G 27 k + photo encoder 23 k, D 18 k parameters.
D's linear head fixes its picture size (as `collage-class`'s); `--init_from` a run at a smaller size spreads
the head over the larger final map (`head_for_size` [ours]), so the zoo's 128² → 256² recipe keeps D too.

One step (models.md §1.4 minimal set):
1. G: ε = μ′ + σ′·ε′ from the photo encoder on the real picture, fake = G_b(label, instance, ε, noise). Loss =
   non-saturating logistic softplus(−D(fake)) + KL of the layout's z (λ1 = 0.05, SPADE's weight; the paper's is in
   the unavailable supplement) + KL of the photo's ε (0.05) [ours] + perceptual: VGG19 (λ2 = 10) with
   `--vgg_weights`, else models.md §0.1's substitute, L1 on 4×/8×-average-pooled pictures (λ 10) and L1 feature
   matching on D's features against the paired real picture (mean over D's layers, λ 10) [ours]. The perceptual
   term is the base's only tie to the paired picture (D is unconditional, the layout enters only as φ at 1/8 of
   the side), and what teaches the photo encoder: without it ε would carry nothing of the photo.
2. D: softplus(D(fake)) + softplus(−D(real)) on the step-1 fakes detached; every `r1_every`-th D step adds
   StyleGAN2's lazy R1 γ/2·E‖∇D(real)‖² × r1_every with the lazy Adam correction, as `collage-class`.
Adam β (0, 0.99), lr 2e-3 for both (StyleGAN2). No path-length regularisation and no style mixing (models.md
§1.4 minimal set); EMA of G (the trainer's `ema_decay`, 0.999 warmed up, rather than StyleGAN2's half-life).

Deviations, all [ours]: the photo encoder and its KL (the paper's base has no style input); z's head on the
spatial mean of the bottom-up end, not a flattened map (any picture size); D reuses step 1's fakes; γ = 1 as for
`collage-class`; bilinear up-sampling and pooled down-sampling instead of StyleGAN2's FIR filters
(`models/nets/stylegan.py`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from models.archs import Arch, Batch, ExportRole, ExportSpec, Recipe, load_ema_weights, register, unwrap
from models.archs.collage_class import optimizer_steps
from models.archs.spade import image_inputs, label_map_inputs
from models.labels import LabelSet
from models.losses import PerceptualLoss, kl_loss
from models.nets.collage_base import BaseGenerator, SceneGenerator, ServedGenerator
from models.nets.stylegan import StyleDiscriminator, head_for_size

LOSS_WEIGHTS = {
    "gan": 1.0,  # non-saturating logistic GAN loss, G form
    "kl": 0.05,  # KL of the layout's z (λ1; SPADE's 0.05, CollageGAN's is in the unavailable supplement)
    "kl_style": 0.05,  # KL of the photo encoder's ε [ours, SPADE's weight]
    "vgg": 10.0,  # VGG19 perceptual (λ2), when --vgg_weights is given (SPADE's 10)
    "l1_down": 10.0,  # perceptual substitute (b): L1 of 4×/8× average-pooled pictures [ours; λ2's 10]
    "feat": 10.0,  # perceptual substitute (a): L1 on D's features, mean over layers [ours; pix2pixHD's 10]
    "r1_gamma": 1.0,  # R1 weight γ on real pictures [ours, as collage-class]
    "r1_every": 16,  # lazy R1: every this many D steps, scaled by it (StyleGAN2)
}

OPTIMISER = {
    "lr_g": 2e-3,  # Adam learning rate of G (both encoders, mapping, synthesis) (StyleGAN2)
    "lr_d": 2e-3,  # Adam learning rate of D before the lazy-R1 correction (StyleGAN2)
    "betas": [0.0, 0.99],  # Adam betas of both (StyleGAN2)
    "vgg_weights": "",  # torchvision VGG19 state dict for the perceptual loss ("" = the substitute)
}

PRESETS: dict[str, dict[str, Any]] = {
    "collage-base": {
        **OPTIMISER,
        "size": 256,
        "batch": 4,
        "z_dim": 128,
        "encoder": {
            "widths": [16, 32, 64, 128, 128, 128, 128],  # at 256, 128, 64, 32, 16, 8, 4
            "fpn_levels": 4,  # bottom-up 32 → 4, top-down back to φ at 32²
            "fpn_channels": 128,
        },
        "decoder": {"widths": [128, 64, 32, 16], "w_dim": 128, "mapping_layers": 2},  # at 32, 64, 128, 256
        "style": {"image_size": 128, "widths": [16, 32, 64, 64, 64, 64]},  # at 128 … 4
        "discriminator": {"widths": [16, 32, 64, 128, 128, 256, 256], "mbstd_group": 4},  # at 256 … 4
        "loss": dict(LOSS_WEIGHTS),
    },
    # Tests only: 32² pictures, φ 16 ch at 8².
    "collage-base-tiny": {
        **OPTIMISER,
        "size": 32,
        "batch": 4,
        "steps": 20,
        "z_dim": 8,
        "encoder": {"widths": [8, 16, 16, 16], "fpn_levels": 2, "fpn_channels": 16},  # at 32, 16, 8, 4
        "decoder": {"widths": [16, 16, 8], "w_dim": 16, "mapping_layers": 2},  # at 8, 16, 32
        "style": {"image_size": 32, "widths": [8, 16, 16]},  # at 32, 16, 8
        "discriminator": {"widths": [8, 16, 16, 16], "mbstd_group": 4},  # at 32 … 4
        "loss": dict(LOSS_WEIGHTS),
    },
}


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of a preset, so callers may modify it."""
    if name not in PRESETS:
        raise KeyError(f"unknown collage-base preset {name!r}; known: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def build_generator(config: Mapping[str, Any], label_nc: int) -> BaseGenerator:
    """G (G_b + photo encoder) a preset, or a run's saved config, describes for `label_nc` classes."""
    return BaseGenerator(label_nc, config["z_dim"], config["encoder"], config["decoder"], config["style"])


def build_discriminator(config: Mapping[str, Any]) -> StyleDiscriminator:
    """D on the training pictures (its linear head fixes their size)."""
    return StyleDiscriminator(config["size"], **config["discriminator"])


def check_collage_base(config: Mapping[str, Any]) -> None:
    """The networks fit together and the training size (built on the meta device: no memory, no time)."""
    if config["loss"]["r1_every"] < 1:
        raise ValueError(f"loss.r1_every must be ≥ 1, got {config['loss']['r1_every']}")
    with torch.device("meta"):
        multiple = build_generator(config, 1).size_multiple
        if config["size"] % multiple:
            raise ValueError(
                f"size {config['size']} must be a multiple of {multiple}: the encoder halves it "
                f"{len(config['encoder']['widths']) - 1} times"
            )
        build_discriminator(config)


def feature_l1(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """Mean over D's layers of the L1 between its features of the fake and of the (detached) real picture."""
    return torch.stack([F.l1_loss(f, r.detach()) for f, r in zip(fake, real, strict=True)]).mean()


class CollageBaseRecipe(Recipe):
    ema = ("G",)

    def __init__(self, config: Mapping[str, Any], label_set: LabelSet, device: torch.device) -> None:
        super().__init__()
        g, d = build_generator(config, len(label_set)), build_discriminator(config)
        self.nets = {"G": g.to(device), "D": d.to(device)}
        self.weights = dict(config["loss"])
        b1, b2 = float(config["betas"][0]), float(config["betas"][1])
        lazy = self.weights["r1_every"] / (self.weights["r1_every"] + 1)
        self.optimizers = {
            "G": torch.optim.Adam(g.parameters(), lr=config["lr_g"], betas=(b1, b2)),
            "D": torch.optim.Adam(d.parameters(), lr=config["lr_d"] * lazy, betas=(b1**lazy, b2**lazy)),
        }
        self.perceptual = PerceptualLoss(
            config["vgg_weights"] or None, self.weights["vgg"], self.weights["l1_down"]
        ).to(device)
        self.meta = {"perceptual": self.perceptual.kind}

    def adapt_init(self, key: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """D from a run at a smaller picture size: its linear head spread over this size's final map."""
        d = cast(StyleDiscriminator, self.nets["D"])
        if key == "D" and "fc.weight" in state and state["fc.weight"].shape != d.fc.weight.shape:
            # A head that cannot be spread stays as it is, and the trainer names the misfit.
            with contextlib.suppress(ValueError):
                state["fc.weight"] = head_for_size(state["fc.weight"], d.final_conv.weight.shape[0], d.final)
        return state

    def step(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        gen = cast(BaseGenerator, unwrap(nets["G"]))
        label, instance = batch["label"][:, None], batch["instance"][:, None]  # [B,1,H,W] int64
        real = batch["image"]  # [B,3,H,W]
        b, device = real.shape[0], real.device
        noise = torch.randn(b, gen.noise_channels, *real.shape[-2:], device=device)
        eps = torch.randn(b, gen.z_dim, device=device)

        # 1. G with the real picture as its style; D only judges (frozen, unwrapped so DDP does not wait for it).
        out = nets["G"](label, instance, noise, real, eps)
        critic = cast(StyleDiscriminator, unwrap(nets["D"])).requires_grad_(False)
        pred_fake, fake_feats = critic.judge(out.image)  # [B], features
        w = self.weights
        losses = {
            "G_gan": F.softplus(-pred_fake.float()).mean() * w["gan"],
            "G_kl": kl_loss(out.mu, out.logvar, w["kl"]),
            "G_kl_style": kl_loss(out.style_mu, out.style_logvar, w["kl_style"]),
            "G_perc": self.perceptual(out.image, real),
        }
        if self.perceptual.vgg is None:  # the substitute's D feature matching against the paired picture
            with torch.no_grad():
                real_feats = critic.judge(real)[1]
            losses["G_feat"] = feature_l1(fake_feats, real_feats) * w["feat"]
        self.optimizers["G"].zero_grad(set_to_none=True)
        torch.stack(list(losses.values())).sum().backward()
        self.optimizers["G"].step()
        critic.requires_grad_(True)

        # 2. D on the same fakes; fakes and reals in separate calls (minibatch stddev groups within a call).
        r1_due = optimizer_steps(self.optimizers["D"]) % int(w["r1_every"]) == 0
        real_in = real.detach().requires_grad_(r1_due)
        pred_real = nets["D"](real_in).float()  # [B]
        d_loss = F.softplus(nets["D"](out.image.detach()).float()).mean() + F.softplus(-pred_real).mean()
        r1 = torch.zeros((), device=device)
        if r1_due:
            (grad,) = torch.autograd.grad(pred_real.sum(), real_in, create_graph=True)  # [B,3,H,W]
            r1 = grad.float().pow(2).sum(dim=(1, 2, 3)).mean() * (w["r1_gamma"] / 2) * w["r1_every"]
        self.optimizers["D"].zero_grad(set_to_none=True)
        (d_loss + r1).backward()
        self.optimizers["D"].step()
        # D_r1 is the penalty as applied (× r1_every on due steps, 0 between), as collage-class logs it.
        losses |= {"D": d_loss, "D_r1": r1.detach()}
        return {name: float(loss.item()) for name, loss in losses.items()}

    def preview(self, nets: Mapping[str, nn.Module], batch: Batch) -> list[torch.Tensor]:
        """G_ema with ε = μ′ of the real picture (its style transferred), and with a fixed random ε (a seed);
        noise fixed too (seed 0, not the global RNG)."""
        gen = cast(BaseGenerator, nets["G"])
        label, instance, real = batch["label"][:, None], batch["instance"][:, None], batch["image"]
        b, device = real.shape[0], real.device
        seeded = torch.Generator().manual_seed(0)
        noise = torch.randn(b, gen.noise_channels, *real.shape[-2:], generator=seeded).to(device)
        eps = torch.randn(b, gen.z_dim, generator=seeded).to(device)
        return [gen(label, instance, noise, real).image, gen.scene(label, instance, eps, noise)[0]]


# ----------------------------------------------------------------------------
# Export: the generator (label, instance, z, noise) -> image at any multiple of the encoder's 2^(levels-1), the
# photo encoder image -> (mu, logvar) at its own size (docs/contracts.md).


def generator_inputs(
    scene: SceneGenerator, batch: int, size: tuple[int, int], seed: int
) -> dict[str, torch.Tensor]:
    """SPADE's blocky random (label, instance, z) and N(0, 1) noise, in forward order."""
    inputs = label_map_inputs(scene.label_nc, scene.z_dim, batch, size, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    inputs["noise"] = torch.randn(batch, scene.noise_channels, *size, generator=gen)  # [B,C,H,W]
    return inputs


def export_spec(
    generator: BaseGenerator, label_set: LabelSet, provenance: Mapping[str, Any] | None = None
) -> ExportSpec:
    """The served graphs of a CollageGAN base model; refuses a generator that does not fit the label set."""
    if generator.label_nc != len(label_set):
        raise ValueError(
            f"generator has label_nc={generator.label_nc} but {label_set.name!r} has {len(label_set)} labels"
        )
    scene, style = generator.scene, generator.style
    generator_role = ExportRole(
        module=ServedGenerator(scene),
        example=lambda batch, size, seed: generator_inputs(scene, batch, size, seed),
        outputs=("image",),
        fields={
            "label": "label",
            "instance": "instance",
            "z": "z",
            "z_dim": scene.z_dim,
            "noise": "noise",
            "noise_channels": scene.noise_channels,
            "output": "image",
        },
        spatial=("label", "instance", "noise"),
        size_multiple=scene.size_multiple,
    )
    encoder_role = ExportRole(
        module=style,
        example=image_inputs,
        outputs=("mu", "logvar"),
        fields={"image": "image", "mu": "mu", "logvar": "logvar"},
        size=style.image_size,
    )
    return ExportSpec("collage-base", label_set, generator_role, encoder_role, dict(provenance or {}))


def export_checkpoint(checkpoint: Mapping[str, Any], label_set: LabelSet) -> ExportSpec:
    """G rebuilt from the config a checkpoint carries, the EMA copy when there is one (both graphs from it)."""
    generator = build_generator(checkpoint["config"], len(label_set))
    key = load_ema_weights(checkpoint, generator)
    return export_spec(generator, label_set, {"generator_weights": key})


register(
    Arch(
        "collage-base",
        PRESETS,
        "collage-base",
        CollageBaseRecipe,
        check=check_collage_base,
        export=export_checkpoint,
    )
)
