"""The `segmenter` architecture: the evaluator's judge, trained on procedural renders (never served).

    collage train --arch segmenter --preset segmenter-small --data procedural
    collage train --arch segmenter --preset segmenter-256 --data procedural --init_from RUN

One network (`S`, a `SegNet`), one AdamW optimiser, no discriminator. On procedural data a naive segmenter
reads class from colour alone, so a map flat-filled with each class's mean colour scores near the ceiling and
the judge cannot tell texture from paint (issue 6). Every training image is therefore recoloured at random —
hue rotation, saturation, brightness, contrast, a colour cast and sometimes plain grey — so colour is at most a
weak cue and the net must use texture, shape and position. Loss: cross-entropy with per-batch class weights
∝ 1/sqrt(pixel frequency), so small classes (flowers, house, rock) are not drowned by sky. The trainer's
`--init_from RUN` starts from an earlier judge's weights and EMA (fine-tuning with another augmentation or at
another size, e.g. segmenter-small → segmenter-256: both presets build the same net).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.archs import Arch, Batch, Recipe, register
from models.labels import LabelSet, get_label_set
from models.nets.segmenter import SegNet

# Strength chosen by measurement (judge-only `collage eval`, 256 held-out layouts at 256²): with any hue
# (hue 1.0, grey 25%) the judge reached only mIoU 0.56 after 2000 steps — flowers (a pink tint plus dots that
# are sub-pixel at 128²) scored 0.01 — while the flat-colour baseline sat at 0.49× the reference, far below
# the 0.8× the issue requires. A quarter turn of hue, narrower saturation and fewer grey images keep colour a
# weak cue and leave texture the strong one. SPADE's segmentation discriminator recolours with the same strengths.
RECOLOUR = {
    "hue": 0.25,  # hue rotation drawn from ±hue·180° (1.0 = any hue)
    "saturation_min": 0.3,  # saturation factor drawn from [min, max]
    "saturation_max": 1.5,
    "grey_p": 0.15,  # probability of a fully grey image
    "brightness": 0.2,  # additive shift drawn from ±brightness (images in [0,1])
    "contrast_min": 0.6,  # contrast factor around the image mean drawn from [min, max]
    "contrast_max": 1.4,
    "cast": 0.1,  # per-channel gain drawn from 1 ± cast (a colour cast)
}
_AUGMENT = {**RECOLOUR, "flip_p": 0.5}  # flip_p: probability of a left-right flip (image and labels)

PRESETS: dict[str, dict[str, Any]] = {
    # The judge used by `collage eval`: ~1.5 M params, ~0.25 s per batch-8 step at 128² on 2 cores.
    "segmenter-small": {
        "size": 128,
        "batch": 8,
        "steps": 4500,
        "ema_decay": 0.999,
        "checkpoint_every": 250,
        "snapshot_every": 1000,
        "sample_every": 500,
        "S": {"width": 16, "levels": 4, "max_width": 256},
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "class_weight_power": 0.5,  # class weight ∝ frequency^-power within each batch (0 = plain CE)
        "augment": dict(_AUGMENT),
    },
    # The same net fine-tuned at the evaluation size (`--init_from` a segmenter-small run): blossoms, pebbles and
    # rocks are a few pixels at 256², which a 128² judge blurs away: segmenter-small alone scored mIoU 0.643 on
    # 100 held-out renders after 2,000 steps; the committed judge (3,000 small + 2,000 here) scores 0.853 on 500.
    "segmenter-256": {
        "size": 256,
        "batch": 4,
        "steps": 2000,
        "ema_decay": 0.999,
        "checkpoint_every": 250,
        "snapshot_every": 500,
        "sample_every": 500,
        "S": {"width": 16, "levels": 4, "max_width": 256},
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "class_weight_power": 0.5,
        "augment": dict(_AUGMENT),
    },
    # Tests only: a few thousand parameters at 32².
    "segmenter-tiny": {
        "size": 32,
        "batch": 4,
        "steps": 20,
        "S": {"width": 8, "levels": 2, "max_width": 16},
        "lr": 1e-2,
        "weight_decay": 0.0,
        "class_weight_power": 0.5,
        "augment": dict(_AUGMENT),
    },
}

# RGB <-> YIQ: hue is the angle in the (I, Q) chroma plane, saturation its radius.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def recolour(
    images: torch.Tensor, cfg: Mapping[str, float], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random colour augmentation per image: images [B,3,H,W] in [-1,1] -> same shape and range.

    Draws from `generator` (or torch's global RNG, which the trainer seeds and checkpoints).
    """
    b, device = images.shape[0], images.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=generator).to(device)  # [B]

    x = (images + 1) / 2  # [B,3,H,W] in [0,1]
    yiq = torch.einsum("ij,bjhw->bihw", _RGB_TO_YIQ.to(device), x)
    theta = uniform(-math.pi, math.pi) * cfg["hue"]
    sat = uniform(cfg["saturation_min"], cfg["saturation_max"])
    sat = torch.where(
        torch.rand(b, generator=generator).to(device) < cfg["grey_p"], torch.zeros_like(sat), sat
    )
    cos, sin = (sat * torch.cos(theta))[:, None, None], (sat * torch.sin(theta))[:, None, None]  # [B,1,1]
    i, q = yiq[:, 1], yiq[:, 2]  # [B,H,W]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    x = torch.einsum("ij,bjhw->bihw", _YIQ_TO_RGB.to(device), yiq)
    gain = 1 + cfg["cast"] * (2 * torch.rand(b, 3, generator=generator).to(device) - 1)  # [B,3]
    x = x * gain[:, :, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # [B,1,1,1]
    contrast = uniform(cfg["contrast_min"], cfg["contrast_max"])[:, None, None, None]
    x = (x - mean) * contrast + mean + uniform(-cfg["brightness"], cfg["brightness"])[:, None, None, None]
    return x.clamp(0, 1) * 2 - 1


def random_flip(image: torch.Tensor, label: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip image [B,3,H,W] and label [B,H,W] left-right together, each sample with probability p."""
    flip = torch.rand(image.shape[0]).to(image.device) < p  # [B]
    image = torch.where(flip[:, None, None, None], image.flip(-1), image)
    label = torch.where(flip[:, None, None], label.flip(-1), label)
    return image, label


def class_weights(label: torch.Tensor, num_classes: int, power: float) -> torch.Tensor:
    """[N] weights ∝ (pixel count)^-power for the classes in this batch (absent classes: 0)."""
    counts = torch.bincount(label.reshape(-1), minlength=num_classes).float()  # [N]
    weights = counts.clamp(min=1).pow(-power)
    weights = torch.where(counts > 0, weights, torch.zeros_like(weights))
    return weights / weights[counts > 0].mean()


def build_segnet(config: Mapping[str, Any], num_classes: int) -> SegNet:
    return SegNet(num_classes=num_classes, **config["S"])


class SegmenterRecipe(Recipe):
    ema = ("S",)
    broadcast_buffers = True  # BatchNorm running statistics

    def __init__(self, config: Mapping[str, Any], label_set: LabelSet, device: torch.device) -> None:
        super().__init__()
        self.config = config
        self.num_classes = len(label_set)
        net = build_segnet(config, self.num_classes).to(device)
        self.nets = {"S": net}
        self.optimizers = {
            "S": torch.optim.AdamW(net.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
        }

    def step(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        net, opt, aug = nets["S"], self.optimizers["S"], self.config["augment"]
        image, label = random_flip(batch["image"], batch["label"], aug["flip_p"])
        image = recolour(image, aug)
        logits = net(image)  # [B,N,H,W]
        weight = class_weights(label, self.num_classes, self.config["class_weight_power"])
        loss = F.cross_entropy(logits, label, weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        accuracy = (logits.detach().argmax(1) == label).float().mean()
        return {"ce": loss.item(), "pixel_acc": accuracy.item()}

    def preview(self, nets: Mapping[str, nn.Module], batch: Batch) -> list[torch.Tensor]:
        """Prediction on the clean image, the image in grey, and the prediction on the grey image."""
        net = nets["S"]
        palette = torch.tensor(get_label_set(self.config["label_set"]).palette(), dtype=torch.float32)
        palette = (palette / 127.5 - 1).to(batch["image"].device)  # [N,3] in [-1,1]
        grey = batch["image"].mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)  # [B,3,H,W]
        columns = [palette[net(batch["image"]).argmax(1)].permute(0, 3, 1, 2), grey]
        columns.append(palette[net(grey).argmax(1)].permute(0, 3, 1, 2))
        return columns


def load_segmenter(path: str | Path) -> tuple[SegNet, int, dict[str, Any]]:
    """A trained judge from a `collage train --arch segmenter` checkpoint or run folder.

    Returns (net in eval mode, training size, provenance). Prefers the EMA weights.
    """
    path = Path(path)
    file = path / "checkpoint-latest.pt" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"segmenter checkpoint {file} does not exist")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle/zip errors of several kinds for a file that is no checkpoint
        raise ValueError(f"{file} is not a segmenter checkpoint: {e}") from None
    config = ckpt.get("config") or {} if isinstance(ckpt, dict) else {}
    if config.get("arch") != "segmenter":
        raise ValueError(f"{file} is a {config.get('arch') or 'non-collage'} checkpoint, not a segmenter")
    label_set = get_label_set(str(ckpt.get("label_set") or config["label_set"]))
    net = build_segnet(config, len(label_set))
    key = "S_ema" if "S_ema" in ckpt else "S"
    net.load_state_dict(ckpt[key])
    info = {"weights": key, "step": ckpt.get("step"), "size": config["size"], "preset": config.get("preset")}
    return net.eval(), int(config["size"]), info


register(Arch(name="segmenter", presets=PRESETS, default_preset="segmenter-small", build=SegmenterRecipe))
