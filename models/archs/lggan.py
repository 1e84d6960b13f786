"""The `lggan` architecture: LGGAN (Tang et al., CVPR 2020; models.md §4), local class-specific and global
image-level generation fused by a learned weight map. Its presets, builders, training step and what `collage
export` serves live here; the generator is `models/nets/lggan.py`.

    collage train --arch lggan --preset lggan-fast --data procedural [--size=128]

- `lggan-paper`: the released widths (encoder 64…1024, SPADE ngf 64 with 128 hidden, 9 residual blocks, local
  width 64). On Cityscapes (35 labels + edges) the generator has 110.79 M parameters, 111.1 M with the repo's
  unused start conv: DP-GAN's table's 111.1 M. Reference for size and speed only.
- `lggan-fast`: the landscape default, 2.50 M parameters and 3.86 GMACs per 256² frame (the project's budget is
  ≤ 6): encoder 8…128 (÷8), the global branch of `spade-fast` (≈2.55 GMACs), 3 residual blocks instead of 9,
  local width 16 (models.md §4 compact), and 3×3 class convs where the repo has 7×7 [ours]. With 7×7
  (`--generator.class_kernel=7`) the frame is 5.62 GMACs, but GMACs undercount it: a grouped conv gets no
  blocked-layout kernel on either CPU runtime, and the 14 class convs' 2.16 GMACs took half of a ~0.6 s frame
  (onnxruntime and OpenVINO, 2 threads; `spade-fast` ~0.1 s); 3×3 roughly halves the frame. The paper does not
  fix the kernel ("several convolutional layers" per class). The local branch's cost grows with the number of
  classes: N·C·3·k² MACs a pixel for the class convs.
- `lggan-tiny`: 125 k parameters for tests (32² output).

No style input: LGGAN's generator is deterministic (the repo runs SPADE's code with its VAE off, models.md §8
lists no style image), so there is no encoder E, no z and no KL, and the exported generator takes label and
instance ids only. The studio's style image and seed do not apply to it (capabilities: style_image false,
z_dim 0, noise false).

Networks: G the LGGAN generator, D SPADE's multi-scale PatchGAN on cat(one-hot, edges, image)
(models/nets/discriminator.py; the paper's semantic-guided D_s, its image-guided D_i is for cross-view
translation only). One step:
1. G: every branch from one forward pass; D, frozen, judges cat(fused, real). Loss, models.md §4's minimal set:
   hinge (G form) + D feature matching (λ 10) + perceptual (VGG19 λ 10 with `--vgg_weights`, else the
   down-sampled L1 substitute of losses.py [ours, models.md §0.1]), all on the fused picture, + the class-masked
   local L1 Σ_i |real ⊙ M_i − I_i| (paper eq. 2, λ 1) + the classification cross-entropy over the classes present
   (paper eq. 5, λ 1). The repo also applies GAN, feature matching and VGG to the global and the local picture
   on their own; the minimal set leaves those out [ours].
2. D: hinge on cat(fused, real) with the step-1 pictures detached (one G forward per step, as our SPADE).
TTUR Adam: G 1e-4, D 4e-4, betas (0, 0.9) (the repo's TTUR; the paper's text says β2 0.999). The trainer keeps
an EMA of G, which is what is served.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.archs import Arch, Batch, ExportRole, ExportSpec, Recipe, load_ema_weights, register, unwrap
from models.archs.spade import build_discriminator, label_map_inputs, split_halves
from models.labels import LabelSet
from models.losses import PerceptualLoss, feature_matching_loss, hinge_d_loss, hinge_g_loss
from models.nets.blocks import one_hot
from models.nets.lggan import LGGANGenerator, LGGANOutputs
from models.nets.sc_gan import SCGANGenerator

LOSS_WEIGHTS = {
    "gan": 1.0,  # hinge GAN on the fused picture (G form)
    "feat": 10.0,  # discriminator feature matching on the fused picture (repo λ=10)
    "vgg": 10.0,  # VGG19 perceptual on the fused picture, when --vgg-weights is given (repo λ=10)
    "l1_down": 1.0,  # substitute for VGG: L1 on 4×/8× down-sampled images [ours, as our SPADE]
    "local": 1.0,  # class-masked L1 of the per-class pictures (paper eq. 2, repo λ=1)
    "class": 1.0,  # classification cross-entropy on the per-class features (paper eq. 5, repo λ=1)
}

OPTIMISER = {
    "lr_g": 1e-4,  # Adam learning rate of G (TTUR)
    "lr_d": 4e-4,  # Adam learning rate of D (TTUR)
    "betas": [0.0, 0.9],  # Adam betas of both (the repo's TTUR setting)
    "vgg_weights": "",  # torchvision VGG19 state dict for the perceptual loss ("" = the substitute)
}

PRESETS: dict[str, dict[str, Any]] = {
    "lggan-paper": {
        **OPTIMISER,
        "size": 256,
        "generator": {
            "encoder_widths": [64, 128, 256, 512, 1024],
            "ngf": 64,
            "channel_mult": [16, 16, 8, 4, 2, 1],
            "nhidden": 128,
            "kernel_size": 3,
            "num_up": 5,
            "norm": "instance",
            "use_edges": True,
            "spectral": True,
            "share_shortcut_hidden": False,
            "num_res_blocks": 9,
            "local_nc": 64,
            "class_kernel": 7,
        },
        "discriminator": {"ndf": 64, "n_layers": 4, "num_scales": 2, "max_ch": 512},
        "loss": dict(LOSS_WEIGHTS),
    },
    "lggan-fast": {
        **OPTIMISER,
        "size": 256,
        "generator": {
            "encoder_widths": [8, 16, 32, 64, 128],  # 256² … 16²; the local branch and G_w read the 32-ch 64²
            "ngf": 16,
            "channel_mult": [
                8,
                8,
                4,
                2,
                1,
                1,
            ],  # spade-fast's global branch: 128 ch at 8² and 16², 16 at 256²
            "nhidden": [64, 64, 64, 32, 32, 16, 8],  # per block: head 8², middle 16², 16², then 32² … 256²
            "kernel_size": 3,
            "num_up": 5,
            "norm": "instance",
            "use_edges": True,
            "spectral": True,
            "share_shortcut_hidden": True,
            "num_res_blocks": 3,
            "local_nc": 16,
            "class_kernel": 3,  # the repo's 7 costs ~2× the frame time (module docstring) [ours]
        },
        "discriminator": {"ndf": 32, "n_layers": 4, "num_scales": 2, "max_ch": 256},
        "loss": dict(LOSS_WEIGHTS),
    },
    "lggan-tiny": {
        **OPTIMISER,
        "size": 32,
        "generator": {
            "encoder_widths": [4, 8, 8, 16],  # 32² … 4²
            "ngf": 8,
            "channel_mult": [4, 4, 2, 1],
            "nhidden": 8,
            "kernel_size": 3,
            "num_up": 3,
            "norm": "instance",
            "use_edges": True,
            "spectral": True,
            "share_shortcut_hidden": True,
            "num_res_blocks": 1,
            "local_nc": 4,
            "class_kernel": 7,
        },
        "discriminator": {"ndf": 8, "n_layers": 3, "num_scales": 2, "max_ch": 32},
        "loss": dict(LOSS_WEIGHTS),
    },
}


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of a preset, so callers may modify it."""
    if name not in PRESETS:
        raise KeyError(f"unknown LGGAN preset {name!r}; known: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def build_generator(config: Mapping[str, Any], label_nc: int) -> LGGANGenerator:
    """The generator a preset (or a run's saved config) describes, for `label_nc` classes."""
    return LGGANGenerator(label_nc=label_nc, **config["generator"])


def check_lggan_sizes(config: Mapping[str, Any]) -> None:
    """G_g up-samples num_up times from a (size/2^num_up)² grid (which E's down-samplings also divide)."""
    size, num_up = config["size"], config["generator"]["num_up"]
    multiple = 2**num_up
    if size % multiple:
        near = [n for n in (size // multiple * multiple, (size // multiple + 1) * multiple) if n >= multiple]
        raise ValueError(
            f"size {size} must be a multiple of 2^num_up = {multiple} (generator.num_up={num_up}); "
            f"e.g. {' or '.join(f'--size={n}' for n in near)}"
        )


# ----------------------------------------------------------------------------
# The local losses (paper eqs. 2 and 5).


def local_l1_loss(class_images: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_i mean |real ⊙ M_i − I_i| over classes i (paper eq. 2): class pictures [B,3N,H,W], real [B,3,H,W], one-hot
    mask [B,N,H,W]. Each class's sub-generator must draw the real picture on its own pixels and 0 elsewhere."""
    target = (mask[:, :, None] * real[:, None]).flatten(1, 2)  # [B,N,3,H,W] -> [B,3N,H,W]
    return F.l1_loss(class_images, target) * mask.shape[1]


def class_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of row i of logits [B,N,N] against class i, averaged over the (sample, class) pairs whose class
    has pixels in the sample's mask [B,N,H,W] (paper eq. 5: void classes are filtered out)."""
    batch, n = logits.shape[:2]
    present = (mask.amax((2, 3)) > 0).flatten().float()  # [B·N]
    target = torch.arange(n, device=logits.device).repeat(batch)  # [B·N]: row i of each sample is class i
    ce = F.cross_entropy(logits.float().flatten(0, 1), target, reduction="none")  # [B·N]
    return (ce * present).sum() / present.sum().clamp(min=1.0)


class LGGANRecipe(Recipe):
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
        self.perceptual = PerceptualLoss(
            config["vgg_weights"] or None, self.weights["vgg"], self.weights["l1_down"]
        ).to(device)
        self.meta = {"perceptual": self.perceptual.kind}

    def step(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        label, instance = batch["label"][:, None], batch["instance"][:, None]  # [B,1,H,W] int64
        real = batch["image"]  # [B,3,H,W]
        label2, instance2 = torch.cat([label, label]), torch.cat([instance, instance])  # for cat(fake, real)
        mask = one_hot(label, self.label_nc)  # [B,N,H,W] M_1 … M_N

        # 1. Generator; D only judges (frozen, unwrapped so DDP does not wait for its gradients).
        out: LGGANOutputs = nets["G"](label, instance, details=True)
        critic = unwrap(nets["D"]).requires_grad_(False)
        pred_fake, pred_real = split_halves(critic(label2, instance2, torch.cat([out.image, real])))
        losses = {
            "G_gan": hinge_g_loss(pred_fake) * self.weights["gan"],
            "G_feat": feature_matching_loss(pred_fake, pred_real, self.weights["feat"]),
            "G_perc": self.perceptual(out.image, real),
            "G_local": local_l1_loss(out.class_images, real, mask) * self.weights["local"],
            "G_class": class_loss(out.class_logits, mask) * self.weights["class"],
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
        """G_ema's fused picture, its global and local pictures, and the local weight W_l (white: local)."""
        out: LGGANOutputs = nets["G"](batch["label"][:, None], batch["instance"][:, None], details=True)
        local_weight = (out.weights[:, 1:2] * 2 - 1).expand(-1, 3, -1, -1)  # [B,3,H,W] in [-1,1]
        return [out.image, out.global_image, out.local_image, local_weight]


# ----------------------------------------------------------------------------
# Export: G (label, instance) -> image at any multiple of 2^num_up; no encoder, no z.


def generator_inputs(label_nc: int, batch: int, size: tuple[int, int], seed: int) -> dict[str, torch.Tensor]:
    """SPADE's blocky (label, instance) examples without z: several labels and instances, so one-hot, edges and
    every class's sub-generator are exercised."""
    inputs = label_map_inputs(label_nc, 1, batch, size, seed)
    del inputs["z"]  # drawn after label and instance, which are therefore SPADE's examples exactly
    return inputs  # label, instance [B,1,H,W] int64


def generator_role(generator: LGGANGenerator | SCGANGenerator) -> ExportRole:
    """G as the served generator: dynamic H, W in multiples of 2^num_up; no z input (z_dim 0); `instance` is
    dropped from the graph (and nulled in the manifest) when G computes no edges. SC-GAN's is served alike."""
    return ExportRole(
        module=generator,
        example=lambda batch, size, seed: generator_inputs(generator.label_nc, batch, size, seed),
        outputs=("image",),
        fields={"label": "label", "instance": "instance", "z": None, "z_dim": 0, "output": "image"},
        spatial=("label", "instance"),
        size_multiple=generator.size_multiple,
    )


def export_spec(
    generator: LGGANGenerator | SCGANGenerator,
    label_set: LabelSet,
    provenance: Mapping[str, Any] | None = None,
    arch: str = "lggan",  # the manifest's architecture: SC-GAN's deterministic generator is served the same way
) -> ExportSpec:
    """The served network of an LGGAN (or SC-GAN) model; refuses a generator built for another number of labels."""
    if generator.label_nc != len(label_set):
        raise ValueError(
            f"generator has label_nc={generator.label_nc} but {label_set.name!r} has {len(label_set)} labels"
        )
    return ExportSpec(
        architecture=arch,
        label_set=label_set,
        generator=generator_role(generator),
        provenance=dict(provenance or {}),
    )


def export_checkpoint(checkpoint: Mapping[str, Any], label_set: LabelSet) -> ExportSpec:
    """G rebuilt from the config a checkpoint carries: the EMA copy when there is one."""
    generator = build_generator(checkpoint["config"], len(label_set))
    key = load_ema_weights(checkpoint, generator)
    return export_spec(generator, label_set, {"generator_weights": key})


register(Arch("lggan", PRESETS, "lggan-fast", LGGANRecipe, check=check_lggan_sizes, export=export_checkpoint))
