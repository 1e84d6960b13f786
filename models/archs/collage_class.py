"""The `collage_class` architecture: one CollageGAN class-specific generator (Li et al., ICCV 2021; models.md
§1.3, §1.4, §1.6), a conditional StyleGAN2 that draws one thing class's instance box from its context.

    collage train --arch collage-class --thing house --data procedural [--size=256] [--removal=zeros]
    collage export runs/00007-collage-class --out packs/house      # a class pack: two graphs + class_pack.json
    collage attach packs/tree packs/rock packs/house --model weights/landscape-spade

The name is the module's: the registry imports `models.archs.<arch name>` on first use and `collage train
--help` lists the modules, so a hyphenated name would be found by neither until the registry maps '-' to '_'.

One model per thing class: `thing` (tree | rock | house on procedural landscapes) is a config key, so each
class is its own run. `size` is the side of the pictures the instances are cut from (procedural renders);
the generator itself always reads a `context_size`² context and draws its central half, `context_size/2`².
Samples are `models.data.crops.ClassCrops` of the run's picture dataset (`wrap_dataset`).

Networks: G = `ClassGenerator` (encoder → fixed central-half feature crop → StyleGAN2 decoder; one module so its
EMA keeps encoder and decoder matched), D = StyleGAN2's residual discriminator, unconditional (the paper names
only the real distribution: real instance boxes). One step:
1. G: fake = G(context, labels, mask, valid, noise, ε) with z = μ + σ·ε. Loss = non-saturating logistic
   (softplus(−D(fake))) + KL on z (λ 0.05, SPADE's weight, models.md §1.4 minimal set) + the perceptual
   substitute of models.md §0.1 [ours]: D is unconditional, so D feature matching against the paired box is
   meaningless; instead L1 on 4×/8×-average-pooled images (colour and layout of the whole box, instance
   included) plus L1 on the box's visible pixels (inside the picture, outside the instance), which G sees in
   its context and must auto-encode — the tie to the paired real picture the paper's VGG term gives.
2. D: softplus(D(fake)) + softplus(−D(real)) on the step-1 fakes detached; every `r1_every`-th D step adds
   StyleGAN2's lazy R1 penalty γ/2·E‖∇D(real)‖² × r1_every, and D's Adam uses StyleGAN2's lazy-regularisation
   correction (lr and betas to the power r1_every/(r1_every+1)).
Adam β (0, 0.99) and lr 2e-3 for both (StyleGAN2). No path-length regularisation and no style mixing (models.md
§1.4 minimal set). The trainer keeps an EMA of G.

γ defaults to 1 [ours]: StyleGAN2-ADA's heuristic 0.0002·T²/batch gives 0.1 for 64² boxes at batch 8, FFHQ at
1024² used 10; 1 sits between and is one flag away (`--loss.r1_gamma`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from models.archs import Arch, Batch, ClassPackSpec, ExportRole, Recipe, load_ema_weights, register, unwrap
from models.data.crops import ClassCrops, thing_class
from models.labels import LabelSet
from models.losses import downsampled_l1_loss, kl_loss
from models.nets.collage import ClassGenerator, ClippedDecoder, central_half, feature_crop
from models.nets.stylegan import StyleDiscriminator

LOSS_WEIGHTS = {
    "gan": 1.0,  # non-saturating logistic GAN loss, G form
    "kl": 0.05,  # KL of z (SPADE's 0.05; CollageGAN's λ1 is in the unavailable supplement)
    "l1_down": 10.0,  # perceptual substitute (a): L1 of 4×/8× average-pooled boxes [ours; λ2 = VGG's 10]
    "l1_visible": 10.0,  # perceptual substitute (b): L1 on the box's visible context pixels [ours]
    "r1_gamma": 1.0,  # R1 weight γ on real boxes [ours, see the module docstring]
    "r1_every": 16,  # lazy R1: every this many D steps, scaled by it (StyleGAN2)
}

OPTIMISER = {
    "lr_g": 2e-3,  # Adam learning rate of G (encoder and decoder) (StyleGAN2)
    "lr_d": 2e-3,  # Adam learning rate of D before the lazy-R1 correction (StyleGAN2)
    "betas": [0.0, 0.99],  # Adam betas of both (StyleGAN2)
}

CROPS = {
    "thing": "tree",  # the thing class this generator draws: tree | rock | house (procedural landscapes)
    "removal": "blur",  # how the instance leaves its context: blur (colours only; the paper's default) | zeros
    "min_side": 12,  # skip instances whose tight box is shorter on both sides, in picture pixels (models.md §1.5)
}

PRESETS: dict[str, dict[str, Any]] = {
    # 64² context -> 32² box: the generators shipped here, sized for CPU training (a step costs ~1/4 of the
    # 128² preset's) and for the boxes they draw — in 256² pictures a house's is ~37 px and a tree's ~26 px, so
    # 32² loses little; at 512² they are upsampled ~2×. φ′ is 16² and φ 8².
    "collage-class": {
        **OPTIMISER,
        **CROPS,
        "size": 256,  # procedural pictures the instances are cut from
        "batch": 8,
        "ema_decay": 0.999,
        "context_size": 64,
        "z_dim": 64,
        "encoder": {
            "widths": [32, 64, 128, 128, 128],  # at 64, 32, 16, 8, 4
            "fpn_levels": 3,  # bottom-up 16 → 4, top-down back to φ′ at 16²
            "fpn_channels": 64,
        },
        "decoder": {"widths": [128, 64, 32], "w_dim": 128, "mapping_layers": 2},  # at 8, 16, 32
        "discriminator": {"widths": [64, 128, 128, 128], "mbstd_group": 4},  # at 32 … 4
        "loss": dict(LOSS_WEIGHTS),
    },
    # 128² context -> 64² box. φ′ is 32² and φ 16², the paper's class-model sizes at half its resolution.
    # Not trained here (4× the compute of `collage-class` per step); for larger pictures and faster machines.
    "collage-class-128": {
        **OPTIMISER,
        **CROPS,
        "size": 256,  # procedural pictures the instances are cut from (a tree's box is ~26 px, a house's ~37)
        "batch": 8,
        "ema_decay": 0.999,
        "context_size": 128,
        "z_dim": 64,
        "encoder": {
            "widths": [32, 64, 96, 128, 128, 128],  # at 128, 64, 32, 16, 8, 4
            "fpn_levels": 4,  # bottom-up 32 → 4, top-down back to φ′ at 32²
            "fpn_channels": 64,
        },
        "decoder": {"widths": [128, 64, 32], "w_dim": 128, "mapping_layers": 2},  # at 16, 32, 64
        "discriminator": {"widths": [32, 64, 128, 128, 128], "mbstd_group": 4},  # at 64 … 4
        "loss": dict(LOSS_WEIGHTS),
    },
    # Tests only: a few ten thousand parameters, 32² context -> 16² box, 128² pictures.
    "collage-class-tiny": {
        **OPTIMISER,
        **CROPS,
        "size": 128,
        "batch": 4,
        "steps": 20,
        "context_size": 32,
        "z_dim": 8,
        "encoder": {"widths": [8, 16, 16, 16], "fpn_levels": 3, "fpn_channels": 16},  # φ′ 16², φ 8²
        "decoder": {"widths": [16, 8], "w_dim": 16, "mapping_layers": 2},  # at 8, 16
        "discriminator": {"widths": [8, 16, 16], "mbstd_group": 4},  # at 16, 8, 4
        "loss": dict(LOSS_WEIGHTS),
    },
}

PERCEPTUAL = "substitute:l1-avgpool-4x-8x+l1-visible-context"  # recorded in checkpoints (meta) [ours]


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of a preset, so callers may modify it."""
    if name not in PRESETS:
        raise KeyError(f"unknown collage-class preset {name!r}; known: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def build_generator(config: Mapping[str, Any], label_nc: int) -> ClassGenerator:
    """G (encoder + decoder) a preset, or a run's saved config, describes for `label_nc` classes."""
    return ClassGenerator(
        label_nc, config["context_size"], config["z_dim"], config["encoder"], config["decoder"]
    )


def build_discriminator(config: Mapping[str, Any]) -> StyleDiscriminator:
    """D on the boxes G draws: context_size / 2 on a side."""
    return StyleDiscriminator(config["context_size"] // 2, **config["discriminator"])


def check_collage_class(config: Mapping[str, Any]) -> None:
    """The networks fit together (built on the meta device: no memory, no time) and the crop keys are sane."""
    if config["removal"] not in ("blur", "zeros"):
        raise ValueError(f"removal must be blur or zeros, got {config['removal']!r}")
    if config["min_side"] < 1:
        raise ValueError(f"min_side must be ≥ 1, got {config['min_side']}")
    if config["loss"]["r1_every"] < 1:
        raise ValueError(f"loss.r1_every must be ≥ 1, got {config['loss']['r1_every']}")
    with torch.device("meta"):
        build_generator(config, 1)
        build_discriminator(config)


def wrap_dataset(pictures: Dataset[Any], label_set: LabelSet, config: Mapping[str, Any]) -> ClassCrops:
    """The run's training samples: instance crops of `config['thing']` from the picture dataset the trainer's
    `--data` gives (its length and seed: `data_length`, `data_seed`). The trainer's `build_dataset` is to call
    this after `make_dataset`; until that hook exists `collage train` hands this arch whole pictures, and the
    first step stops with a message saying so."""
    size = config["context_size"]
    return ClassCrops(
        pictures, thing_class(label_set, config["thing"]), size, size // 2, config["removal"],
        seed=config["data_seed"], min_side=config["min_side"],
    )  # fmt: skip


def visible_in_box(mask: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """[B,1,S,S] instance mask and validity -> [B,1,S/2,S/2]: 1 on the square box's pixels that G sees in its
    context (inside the picture, outside the instance), 0 elsewhere."""
    start, stop = central_half(mask.shape[-1])
    box = (slice(None), slice(None), slice(start, stop), slice(start, stop))
    return valid[box] * (1.0 - mask[box])


def masked_l1(fake: torch.Tensor, real: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |fake − real| over the pixels where weight [B,1,H,W] is 1 (0 when there are none)."""
    diff = (fake.float() - real.float()).abs() * weight  # [B,3,H,W]
    return diff.sum() / (weight.sum() * fake.shape[1]).clamp(min=1.0)


def optimizer_steps(opt: torch.optim.Optimizer) -> int:
    """Steps an Adam optimiser has taken (its state, which checkpoints carry, so lazy R1 keeps its rhythm across
    a resume)."""
    state = next(iter(opt.state.values()), None)
    return int(state["step"]) if state is not None else 0


class CollageClassRecipe(Recipe):
    ema = ("G",)

    def __init__(self, config: Mapping[str, Any], label_set: LabelSet, device: torch.device) -> None:
        super().__init__()
        thing_class(label_set, config["thing"])  # refuses a class the label set does not have as a thing
        g, d = build_generator(config, len(label_set)), build_discriminator(config)
        self.nets = {"G": g.to(device), "D": d.to(device)}
        self.weights = dict(config["loss"])
        b1, b2 = float(config["betas"][0]), float(config["betas"][1])
        lazy = self.weights["r1_every"] / (self.weights["r1_every"] + 1)
        self.optimizers = {
            "G": torch.optim.Adam(g.parameters(), lr=config["lr_g"], betas=(b1, b2)),
            "D": torch.optim.Adam(d.parameters(), lr=config["lr_d"] * lazy, betas=(b1**lazy, b2**lazy)),
        }
        self.meta = {"perceptual": PERCEPTUAL}

    def step(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        if "context" not in batch:
            raise RuntimeError(
                "collage-class trains on instance crops, but the batch is whole pictures: the trainer must wrap "
                "its dataset with models.archs.collage_class.wrap_dataset"
            )
        gen = cast(ClassGenerator, unwrap(nets["G"]))
        real = batch["image"]  # [B,3,T,T]
        inputs = (batch["context"], batch["labels"][:, None], batch["mask"], batch["valid"])
        b, side = real.shape[0], gen.target_size
        noise = torch.randn(b, gen.noise_channels, side, side, device=real.device)
        eps = torch.randn(b, gen.z_dim, device=real.device)

        # 1. G (encoder and decoder); D only judges (frozen, unwrapped so DDP does not wait for its gradients).
        fake, mu, logvar = nets["G"](*inputs, noise, eps)  # [B,3,T,T], [B,z], [B,z]
        critic = unwrap(nets["D"]).requires_grad_(False)
        w = self.weights
        losses = {
            "G_gan": F.softplus(-critic(fake).float()).mean() * w["gan"],
            "G_kl": kl_loss(mu, logvar, w["kl"]),
            "G_l1_down": downsampled_l1_loss(fake, real) * w["l1_down"],
            "G_l1_visible": masked_l1(fake, real, visible_in_box(batch["mask"], batch["valid"]))
            * w["l1_visible"],
        }
        self.optimizers["G"].zero_grad(set_to_none=True)
        torch.stack(list(losses.values())).sum().backward()
        self.optimizers["G"].step()
        critic.requires_grad_(True)

        # 2. D on the same fakes; fakes and reals in separate calls (minibatch stddev groups within a call).
        r1_due = optimizer_steps(self.optimizers["D"]) % int(w["r1_every"]) == 0
        real_in = real.detach().requires_grad_(r1_due)
        pred_real = nets["D"](real_in).float()  # [B]
        d_loss = F.softplus(nets["D"](fake.detach()).float()).mean() + F.softplus(-pred_real).mean()
        r1 = torch.zeros((), device=real.device)
        if r1_due:
            (grad,) = torch.autograd.grad(pred_real.sum(), real_in, create_graph=True)  # [B,3,T,T]
            r1 = grad.float().pow(2).sum(dim=(1, 2, 3)).mean() * (w["r1_gamma"] / 2) * w["r1_every"]
        self.optimizers["D"].zero_grad(set_to_none=True)
        (d_loss + r1).backward()
        self.optimizers["D"].step()
        # D_r1 is the penalty as applied (× r1_every on due steps, 0 between): its log-window mean is the
        # per-step average γ/2·E‖∇D‖².
        losses |= {"D": d_loss, "D_r1": r1.detach()}
        return {name: float(loss.item()) for name, loss in losses.items()}

    def preview(self, nets: Mapping[str, nn.Module], batch: Batch) -> list[torch.Tensor]:
        """The context over the box (instance removed: what G must fill), G_ema with z = μ, and with
        z = μ + σ·ε for a fixed ε; noise fixed too (seed 0, not the global RNG)."""
        gen = cast(ClassGenerator, nets["G"])
        context = batch["context"]
        b, side, device = context.shape[0], gen.target_size, context.device
        seeded = torch.Generator().manual_seed(0)
        noise = torch.randn(b, gen.noise_channels, side, side, generator=seeded).to(device)
        eps = torch.randn(b, gen.z_dim, generator=seeded).to(device)
        inputs = (context, batch["labels"][:, None], batch["mask"], batch["valid"], noise)
        start, stop = central_half(context.shape[-1])
        return [context[:, :, start:stop, start:stop], gen(*inputs)[0], gen(*inputs, eps)[0]]


# ----------------------------------------------------------------------------
# Export: a class pack (docs/contracts.md "Class generators"), two graphs at fixed sizes with the feature crop
# between them left to the caller: encoder (context, labels, mask, valid) -> (mu, logvar, phi_prime) at S²,
# decoder (phi, z, noise) -> image at T², clipped.


def context_inputs(label_nc: int, side: int, batch: int, seed: int) -> dict[str, torch.Tensor]:
    """Random encoder inputs shaped like context crops: blocky labels and pictures, an instance blob inside
    the central half, and a band of padding (valid 0, context 0) on one side, so every input matters."""
    gen = torch.Generator().manual_seed(seed)
    cell = max(side // 8, 1)
    cells = (batch, 1, -(-side // cell), -(-side // cell))

    def blocky(values: torch.Tensor) -> torch.Tensor:  # [B,C,h,w] -> [B,C,side,side]
        return values.repeat_interleave(cell, 2).repeat_interleave(cell, 3)[:, :, :side, :side].contiguous()

    context = blocky(torch.rand(batch, 3, *cells[2:], generator=gen) * 2 - 1)  # [B,3,S,S]
    labels = blocky(torch.randint(0, label_nc, cells, generator=gen))  # [B,1,S,S] int64
    mask, valid = torch.zeros(batch, 1, side, side), torch.ones(batch, 1, side, side)
    start, stop = central_half(side)
    for b in range(batch):
        y0, x0 = (int(v) for v in torch.randint(start, (start + stop) // 2, (2,), generator=gen))
        mask[b, :, y0 : y0 + side // 4, x0 : x0 + side // 4] = 1.0
        valid[b, :, : int(torch.randint(0, start, (1,), generator=gen)), :] = 0.0  # rows above the picture
    return {"context": context * valid, "labels": labels, "mask": mask, "valid": valid}


def decoder_inputs(generator: ClassGenerator, batch: int, seed: int) -> dict[str, torch.Tensor]:
    """Decoder inputs as the server makes them: φ the central half of the encoder's φ′ on `context_inputs`,
    z = μ + σ·ε, noise N(0, 1); so the 16-bit weights are checked on the features they will really see."""
    enc, side = generator.encoder, generator.context_size
    with torch.no_grad():
        mu, logvar, phi_prime = enc(*context_inputs(enc.label_nc, side, batch, seed).values())
    gen = torch.Generator().manual_seed(seed + 1)
    eps = torch.randn(mu.shape, generator=gen)
    noise = torch.randn(
        batch, generator.noise_channels, generator.target_size, generator.target_size, generator=gen
    )
    return {
        "phi": feature_crop(phi_prime).contiguous(),
        "z": mu + torch.exp(0.5 * logvar) * eps,
        "noise": noise,
    }


def export_spec(
    generator: ClassGenerator,
    label_set: LabelSet,
    config: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
) -> ClassPackSpec:
    """The class pack of a trained generator for `config['thing']`; refuses one that does not fit the label set."""
    encoder, side = generator.encoder, generator.context_size
    if encoder.label_nc != len(label_set):
        raise ValueError(
            f"generator has label_nc={encoder.label_nc} but {label_set.name!r} has {len(label_set)} labels"
        )
    thing = str(config["thing"])
    encoder_role = ExportRole(
        module=encoder,
        example=lambda batch, size, seed: context_inputs(encoder.label_nc, side, batch, seed),
        outputs=("mu", "logvar", "phi_prime"),
        fields={},
        size=(side, side),
    )
    decoder_role = ExportRole(
        module=ClippedDecoder(generator.decoder),
        example=lambda batch, size, seed: decoder_inputs(generator, batch, seed),
        outputs=("image",),
        fields={},
        size=(generator.target_size, generator.target_size),
    )
    entry = {
        "thing": thing,
        "class_id": thing_class(label_set, thing),
        "label_set": label_set.name,
        "context_size": side,
        "target_size": generator.target_size,
        "phi_size": encoder.phi_size,
        "z_dim": generator.z_dim,
        "noise_channels": generator.noise_channels,
        "removal": config["removal"],
        "min_side": int(config["min_side"]),
    }
    return ClassPackSpec(label_set, encoder_role, decoder_role, entry, dict(provenance or {}))


def export_checkpoint(checkpoint: Mapping[str, Any], label_set: LabelSet) -> ClassPackSpec:
    """G rebuilt from the config a checkpoint carries, as a class pack; the EMA copy when there is one."""
    config = checkpoint["config"]
    generator = build_generator(config, len(label_set))
    g_key = load_ema_weights(checkpoint, generator)
    return export_spec(generator, label_set, config, {"generator_weights": g_key})


register(
    Arch(
        "collage-class",
        PRESETS,
        "collage-class",
        CollageClassRecipe,
        check=check_collage_class,
        export=export_checkpoint,
        wrap_dataset=wrap_dataset,
    )
)
