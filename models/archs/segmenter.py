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

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.archs import Arch, Batch, Recipe, register
from models.augment import RECOLOUR, RESAMPLE, recolour, resample
from models.checkpoints import LATEST, read_checkpoint
from models.labels import LabelSet, get_label_set
from models.nets.segmenter import SegNet

# flip_p: probability of a left-right flip (image and labels). RESAMPLE came after the first judge's stages 1–2.
_AUGMENT = {**RECOLOUR, **RESAMPLE, "flip_p": 0.5}

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


def check_segmenter_sizes(config: Mapping[str, Any]) -> None:
    """SegNet takes sides of at least 2^levels: it halves them `levels` times, and below that its BatchNorm
    layers see a single pixel per image (an error at batch 1)."""
    levels = config["S"]["levels"]
    if config["size"] < 2**levels:
        raise ValueError(f"size {config['size']} must be at least 2^levels = {2**levels} (S.levels={levels})")


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
        if "resample_p" in aug:  # absent from runs made before it existed (--resume keeps their config)
            image = resample(image, aug)
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
    """A trained judge from a `collage train --arch segmenter` checkpoint or run folder (its latest checkpoint).

    Returns (net in eval mode, training size, provenance). Prefers the EMA weights. Read like every checkpoint
    (`read_checkpoint`): a truncated or foreign file is a `CheckpointError` (a ValueError) naming it.
    """
    path = Path(path)
    file = path / LATEST if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"segmenter checkpoint {file} does not exist")
    ckpt = read_checkpoint(file)
    config = ckpt.get("config") or {}
    if config.get("arch") != "segmenter":
        raise ValueError(f"{file} is a {config.get('arch') or 'non-collage'} checkpoint, not a segmenter")
    label_set = get_label_set(str(ckpt.get("label_set") or config["label_set"]))
    net = build_segnet(config, len(label_set))
    key = "S_ema" if "S_ema" in ckpt else "S"
    net.load_state_dict(ckpt[key])
    info = {"weights": key, "step": ckpt.get("step"), "size": config["size"], "preset": config.get("preset")}
    return net.eval(), int(config["size"]), info


register(Arch("segmenter", PRESETS, "segmenter-small", SegmenterRecipe, check=check_segmenter_sizes))
