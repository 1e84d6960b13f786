"""SPADE presets (network kwargs, loss weights, training size) and the builders that turn a config into nets.

A config is a dict with `generator`, `encoder`, `discriminator` kwargs, `loss` weights and `size`; label_nc comes
from the label set at build time. The trainer merges a preset into its defaults; the exporter rebuilds the
networks from the config a checkpoint carries, with the same builders.

The encoder's input size (`encoder.image_size`) is its own setting, not the training `size`: G and D take any
size, so a run at 128² and its fine-tuning at 256² share every weight shape, and the step resizes real images
to the encoder (`fit_to_encoder`). Configs without it (checkpoints written before it existed) fall back to
`size`, which is what they were trained with.

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
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from models.augment import RECOLOUR
from models.nets.discriminator import MultiscaleDiscriminator
from models.nets.seg_discriminator import SegmentationDiscriminator
from models.nets.spade import ConvEncoder, SPADEGenerator

LOSS_WEIGHTS = {
    "gan": 1.0,  # hinge GAN (G form)
    "feat": 10.0,  # discriminator feature matching (SPADE λ=10)
    "kl": 0.05,  # KL of the VAE encoder (SPADE 0.05)
    "vgg": 10.0,  # VGG19 perceptual, when --vgg-weights is given (SPADE λ=10)
    "l1_down": 1.0,  # substitute for VGG: L1 on 4×/8× down-sampled images [ours]
}

PRESETS: dict[str, dict[str, Any]] = {
    "spade-paper": {
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
