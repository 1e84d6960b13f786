"""The `spade` architecture: SPADE/GauGAN (Park et al., CVPR 2019), written from the paper. Its presets, the
builders that turn a config into networks (the networks themselves are `models/nets/`), the training step and
what `collage export` serves all live here.

    collage train --arch spade --preset spade-fast --data procedural

A config is a dict with `generator`, `encoder`, `discriminator` kwargs, `loss` weights, the optimiser settings
and `size`; label_nc comes from the label set at build time. The trainer merges a preset into its defaults; the
exporter rebuilds the networks from the config a checkpoint carries, with the same builders.

- `spade-paper`: the paper's widths (ngf 64, SPADE hidden 128, 1024-channel low-resolution blocks, z 256).
  For ADE20K (151 label channels, no edge channel) the generator without its z layers has 96.49 M parameters,
  the paper's 96.5 M (Cityscapes' 36 channels give 93.05 M, the 93.0 M of the DP-GAN table); the z -> SPADE
  hidden maps add 0.59 M. Reference for speed and size comparisons; too large to serve (≈375 MB of fp32).
- `spade-fast`: the landscape default, ≤ 5 GMACs per 256² frame: ngf 16, widths capped at 128, SPADE hidden
  widths shrinking with resolution, shortcut SPADEs reuse the first SPADE's hidden features, z 64.
- `spade-tiny`: a few thousand parameters for tests (32² output).
- `spade-fast-seg`, `spade-tiny-seg`: the same networks plus OASIS's segmentation discriminator S beside the
  PatchGAN (`models/nets/seg_discriminator.py`): G also learns from S's class-balanced per-pixel cross-entropy
  (`loss.seg`), the label-alignment signal OASIS and DP-GAN add over SPADE; S sees images recoloured at random
  (`seg_augment`, the judge's augmentation strengths) so it must read texture. S is training-only: the exported
  generator is the plain `spade-fast` one, so a `spade-fast` checkpoint starts a `-seg` run (`--init_from`,
  S from scratch) and latency is unchanged.
- `spade-fast-noise`, `spade-tiny-noise`: the `-seg` presets with per-pixel noise in every SPADE's conditioning
  (`noise_channels`, models/nets/blocks.SPADE): without it a region of one class gives G nothing to vary its
  texture by but the distance to the region's edges, which is where the plank streaks under skylines come
  from. The noise convs start at zero, so a `spade-fast(-seg)` checkpoint starts a `-noise` run as the same
  network (`--init_from`); the exported generator takes the contract's `noise` input (drawn from the seed).

The encoder's input size (`encoder.image_size`) is its own setting, not the training `size`: G and D take any
size, so a run at 128² and its fine-tuning at 256² share every weight shape, and the step resizes real images
to the encoder (`fit_to_encoder`). Configs without it (checkpoints written before it existed) fall back to
`size`, which is what they were trained with.

Networks: G the SPADE generator, E the VAE image encoder, D the multi-scale PatchGAN. One step:
1. G and E: z = μ + σ·ε from E(real), resized to E's own input size; fake = G(label, instance, z).
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

import copy
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from models.archs import Arch, Batch, ExportRole, ExportSpec, Recipe, load_ema_weights, register, unwrap
from models.augment import RECOLOUR, recolour
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
from models.nets.discriminator import MultiscaleDiscriminator
from models.nets.seg_discriminator import SegmentationDiscriminator
from models.nets.spade import ConvEncoder, SPADEGenerator, fit_to_encoder, reparameterize

LOSS_WEIGHTS = {
    "gan": 1.0,  # hinge GAN (G form)
    "feat": 10.0,  # discriminator feature matching (SPADE λ=10)
    "kl": 0.05,  # KL of the VAE encoder (SPADE 0.05)
    "vgg": 10.0,  # VGG19 perceptual, when --vgg-weights is given (SPADE λ=10)
    "l1_down": 1.0,  # substitute for VGG: L1 on 4×/8× down-sampled images [ours]
}

OPTIMISER = {
    "lr_g": 1e-4,  # Adam learning rate of G and E (TTUR, paper)
    "lr_d": 4e-4,  # Adam learning rate of D (TTUR, paper)
    "betas": [0.0, 0.9],  # Adam betas of both (authors' code with TTUR)
    "vgg_weights": "",  # torchvision VGG19 state dict for the perceptual loss ("" = the substitute)
}

PRESETS: dict[str, dict[str, Any]] = {
    "spade-paper": {
        **OPTIMISER,
        "size": 256,
        "generator": {
            "ngf": 64,
            "channel_mult": [16, 16, 8, 4, 2, 1],
            "nhidden": 128,
            "kernel_size": 3,
            "num_up": 5,
            "norm": "instance",
            "use_edges": True,
            "z_dim": 256,
            "spectral": True,
            "share_shortcut_hidden": False,
        },
        "encoder": {"image_size": 256, "nef": 64, "max_mult": 8, "num_down": 6},
        "discriminator": {"ndf": 64, "n_layers": 4, "num_scales": 2, "max_ch": 512},
        "loss": dict(LOSS_WEIGHTS),
    },
    "spade-fast": {
        **OPTIMISER,
        "size": 256,
        "generator": {
            "ngf": 16,
            "channel_mult": [8, 8, 4, 2, 1, 1],  # 128 ch at 8² and 16², 16 ch at 128² and 256²
            "nhidden": [64, 64, 64, 32, 32, 16, 8],  # per block: head 8², middle 16², 16², then 32² … 256²
            "kernel_size": 3,
            "num_up": 5,
            "norm": "instance",
            "use_edges": True,
            "z_dim": 64,
            "spectral": True,
            "share_shortcut_hidden": True,
        },
        "encoder": {
            "image_size": 128,  # one E for every stage: 128² (--size=128), then 256² (--init_from)
            "nef": 16,
            "max_mult": 8,
            "num_down": 6,  # 128² -> 2²
        },
        "discriminator": {"ndf": 32, "n_layers": 4, "num_scales": 2, "max_ch": 256},
        "loss": dict(LOSS_WEIGHTS),
    },
    "spade-tiny": {
        **OPTIMISER,
        "size": 32,
        "generator": {
            "ngf": 8,
            "channel_mult": [4, 4, 2, 1],
            "nhidden": 8,
            "kernel_size": 3,
            "num_up": 3,
            "norm": "instance",
            "use_edges": True,
            "z_dim": 8,
            "spectral": True,
            "share_shortcut_hidden": True,
        },
        "encoder": {"image_size": 32, "nef": 8, "max_mult": 2, "num_down": 3},
        "discriminator": {"ndf": 8, "n_layers": 3, "num_scales": 2, "max_ch": 32},
        "loss": dict(LOSS_WEIGHTS),
    },
}

SEG_DISCRIMINATORS = {  # S per base preset: channels after each down block
    "spade-fast": {"widths": [16, 32, 64, 128, 128], "spectral": True},  # 256² -> 8², 1.6 GMACs per image
    "spade-tiny": {"widths": [8, 16, 16], "spectral": True},  # 32² -> 4²
}
PRESETS |= {
    f"{base}-seg": {
        **copy.deepcopy(PRESETS[base]),
        "seg_discriminator": seg,
        "seg_augment": dict(RECOLOUR),  # the judge's recolouring strengths
        "loss": {**LOSS_WEIGHTS, "seg": 1.0},  # OASIS weighs its segmentation loss 1 for G
    }
    for base, seg in SEG_DISCRIMINATORS.items()
}
NOISE_CHANNELS = 4  # per-pixel noise channels of the -noise presets
# The noise convs' learning rate, × lr_g: from zero at G's own rate they grew to a mean |w| of 0.002 in 960 steps
# (the label convs': 0.05), a ~3% share of SPADE's hidden input, too slow to unlearn the edge-drawn texture.
NOISE_LR_MULT = 10.0
PRESETS |= {
    f"{base}-noise": {
        **copy.deepcopy(PRESETS[f"{base}-seg"]),
        "generator": {**PRESETS[f"{base}-seg"]["generator"], "noise_channels": NOISE_CHANNELS},
        "lr_noise_mult": NOISE_LR_MULT,
    }
    for base in SEG_DISCRIMINATORS
}


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of a preset, so callers may modify it."""
    if name not in PRESETS:
        raise KeyError(f"unknown SPADE preset {name!r}; known: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def _size(config: Mapping[str, Any]) -> tuple[int, int]:
    size = config.get("size", 256)
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def build_generator(config: Mapping[str, Any], label_nc: int) -> SPADEGenerator:
    """The generator a preset (or a run's saved config) describes, for `label_nc` classes."""
    return SPADEGenerator(label_nc=label_nc, **config["generator"])


def build_encoder(config: Mapping[str, Any]) -> ConvEncoder:
    """The encoder at its own `image_size` (default: the training size, as in configs that predate the setting),
    producing the generator's z_dim."""
    kwargs = dict(config["encoder"])
    kwargs.setdefault("image_size", _size(config))
    kwargs.setdefault("z_dim", config["generator"]["z_dim"])
    return ConvEncoder(**kwargs)


def build_seg_discriminator(config: Mapping[str, Any], label_nc: int) -> SegmentationDiscriminator:
    """OASIS's segmentation discriminator of a `-seg` preset (its N+1 outputs: `label_nc` classes and fake)."""
    return SegmentationDiscriminator(label_nc=label_nc, **config["seg_discriminator"])


def build_discriminator(config: Mapping[str, Any], label_nc: int) -> MultiscaleDiscriminator:
    """The PatchGAN discriminator; it sees the instance-edge map exactly when the generator does, unless the
    config says otherwise."""
    kwargs = dict(config["discriminator"])
    kwargs.setdefault("use_edges", config["generator"].get("use_edges", True))
    return MultiscaleDiscriminator(label_nc=label_nc, **kwargs)


def split_halves(outputs: DOutputs) -> tuple[DOutputs, DOutputs]:
    """D outputs on cat(fake, real) along the batch -> (outputs on fake, outputs on real)."""
    fake = [[f[: f.shape[0] // 2] for f in scale] for scale in outputs]
    real = [[f[f.shape[0] // 2 :] for f in scale] for scale in outputs]
    return fake, real


def check_spade_sizes(config: Mapping[str, Any]) -> None:
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
        self.noise_channels = g.noise_channels
        if g.noise_channels:  # a checkpoint of the same widths without noise starts it (blocks.SPADE)
            self.init_fresh = ("mlp_noise",)
        betas = (float(config["betas"][0]), float(config["betas"][1]))
        noise = [p for name, p in g.named_parameters() if "mlp_noise" in name]
        rest = [p for name, p in g.named_parameters() if "mlp_noise" not in name]
        g_groups: list[dict[str, Any]] = [{"params": [*rest, *e.parameters()]}]
        if noise:  # the -noise presets' noise convs learn faster (NOISE_LR_MULT)
            g_groups.append({"params": noise, "lr": config["lr_g"] * config.get("lr_noise_mult", 1.0)})
        self.optimizers = {
            "G": torch.optim.Adam(g_groups, lr=config["lr_g"], betas=betas),
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
        noise = self.noise(real.shape[0], real.shape[-2:], real.device)  # [B,C,H,W] or None
        fake = nets["G"](label, instance, reparameterize(mu, logvar), noise)  # [B,3,H,W]
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

    def noise(
        self, batch: int, size: Sequence[int], device: torch.device, gen: torch.Generator | None = None
    ) -> torch.Tensor | None:
        """Per-pixel N(0, 1) noise [B,C,H,W] for G (as the server draws it from a seed), None without it."""
        if not self.noise_channels:
            return None
        return torch.randn(batch, self.noise_channels, *size, generator=gen).to(device)

    def preview(self, nets: Mapping[str, nn.Module], batch: Batch) -> list[torch.Tensor]:
        """G_ema with z = E's μ of the real image (style transfer), and with a fixed random z."""
        label, instance = batch["label"][:, None], batch["instance"][:, None]
        size = cast(ConvEncoder, nets["E"]).image_size
        mu, _ = nets["E"](fit_to_encoder(batch["image"], size))  # [B,z_dim]
        gen = torch.Generator().manual_seed(0)
        z = torch.randn(mu.shape, generator=gen).to(mu.device)
        noise = self.noise(label.shape[0], label.shape[-2:], mu.device, gen)
        return [nets["G"](label, instance, mu, noise), nets["G"](label, instance, z, noise)]


# ----------------------------------------------------------------------------
# Export: G (label, instance, z) -> image at any multiple of 2^num_up, E image -> (mu, logvar) at its own size.


def label_map_inputs(
    label_nc: int, z_dim: int, batch: int, size: tuple[int, int], seed: int, noise_channels: int = 0
) -> dict[str, torch.Tensor]:
    """Random (label, instance, z[, noise]) with several labels and instances, so one-hot and edges are
    exercised."""
    gen = torch.Generator().manual_seed(seed)
    height, width = size
    # Blocky maps (8×8 cells) look like painted regions; per-pixel noise would make every pixel an edge.
    cells = (batch, 1, -(-height // 8), -(-width // 8))
    label = torch.randint(0, label_nc, cells, generator=gen).repeat_interleave(8, 2).repeat_interleave(8, 3)
    instance = torch.randint(0, 4, cells, generator=gen).repeat_interleave(8, 2).repeat_interleave(8, 3)
    label, instance = label[:, :, :height, :width].contiguous(), instance[:, :, :height, :width].contiguous()
    inputs = {"label": label, "instance": instance, "z": torch.randn(batch, z_dim, generator=gen)}
    if noise_channels:
        inputs["noise"] = torch.randn(batch, noise_channels, height, width, generator=gen)
    return inputs  # label, instance [B,1,H,W] int64, z [B,z_dim], noise [B,C,H,W]


def image_inputs(batch: int, size: tuple[int, int], seed: int) -> dict[str, torch.Tensor]:
    """Uniform random pictures [B,3,H,W] in [-1, 1]."""
    return {"image": torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(seed)) * 2 - 1}


def generator_role(generator: SPADEGenerator) -> ExportRole:
    """G as the served generator: dynamic H, W in multiples of 2^num_up; `instance` is dropped from the graph
    (and nulled in the manifest) when G computes no edges."""
    return ExportRole(
        module=generator,
        example=lambda batch, size, seed: label_map_inputs(
            generator.label_nc, generator.z_dim, batch, size, seed, generator.noise_channels
        ),
        outputs=("image",),
        fields={
            "label": "label",
            "instance": "instance",
            "z": "z",
            "z_dim": generator.z_dim,
            "output": "image",
        }
        | (
            {"noise": "noise", "noise_channels": generator.noise_channels} if generator.noise_channels else {}
        ),
        spatial=("label", "instance", "noise"),
        size_multiple=generator.size_multiple,
    )


def encoder_role(encoder: ConvEncoder) -> ExportRole:
    """E as the served style encoder, at its own fixed size (references are resized to it)."""
    return ExportRole(
        module=encoder,
        example=image_inputs,
        outputs=("mu", "logvar"),
        fields={"image": "image", "mu": "mu", "logvar": "logvar"},
        size=encoder.image_size,
    )


def export_spec(
    generator: SPADEGenerator,
    encoder: ConvEncoder | None,
    label_set: LabelSet,
    provenance: Mapping[str, Any] | None = None,
) -> ExportSpec:
    """The served networks of a SPADE model; refuses networks that do not fit the label set or each other."""
    if generator.label_nc != len(label_set):
        raise ValueError(
            f"generator has label_nc={generator.label_nc} but {label_set.name!r} has {len(label_set)} labels"
        )
    if encoder is not None and encoder.fc_mu.out_features != generator.z_dim:
        raise ValueError(
            f"encoder z_dim {encoder.fc_mu.out_features} differs from generator z_dim {generator.z_dim}"
        )
    return ExportSpec(
        architecture="spade",
        label_set=label_set,
        generator=generator_role(generator),
        encoder=encoder_role(encoder) if encoder is not None else None,
        provenance=dict(provenance or {}),
    )


def export_checkpoint(checkpoint: Mapping[str, Any], label_set: LabelSet) -> ExportSpec:
    """G and E rebuilt from the config a checkpoint carries; G is the EMA copy when there is one."""
    config = checkpoint["config"]
    generator = build_generator(config, len(label_set))
    g_key = load_ema_weights(checkpoint, generator)
    encoder = None
    if "E" in checkpoint:
        encoder = build_encoder(config)
        encoder.load_state_dict(checkpoint["E"])
    return export_spec(generator, encoder, label_set, {"generator_weights": g_key})


register(Arch("spade", PRESETS, "spade-fast", SpadeRecipe, check=check_spade_sizes, export=export_checkpoint))
