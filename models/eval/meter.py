"""Accumulating scores over a set of images: segmentation, judge features, texture, streaks and thing-class
crops."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.eval.judge import Judge
from models.eval.metrics import StreakMeter, TextureMeter, confusion_matrix, instance_boxes, square_crop

THING_CLASSES = ("tree", "rock", "house")  # crop FD-seg classes (the CollageGAN class generators)
CROP_SIZE = 64  # crops are resized to CROP_SIZE² before the judge sees them
CROP_SCALE = 1.25  # crop side = CROP_SCALE × the longer side of the instance box
MIN_CROP_SIDE = 8  # instances whose box is smaller than this (at eval size) are skipped
MAX_CROPS = 1000  # per class and image set


@dataclass
class SetMeter:
    """Everything measured on one set of images (generated, reference, flat or held-out renders)."""

    num_classes: int
    thing_ids: tuple[int, ...]
    conf: np.ndarray = field(init=False)
    texture: TextureMeter = field(init=False)
    streak: StreakMeter = field(init=False)
    features: list[np.ndarray] = field(default_factory=list)
    crops: dict[int, list[np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.conf = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.texture = TextureMeter(self.num_classes)
        self.streak = StreakMeter(self.num_classes)
        self.crops = {c: [] for c in self.thing_ids}

    def add(self, judge: Judge, images: np.ndarray, labels: np.ndarray, instances: np.ndarray) -> None:
        pred, feats = judge.segment(images)
        self.conf += confusion_matrix(pred, labels, self.num_classes)
        self.features.append(feats)
        self.texture.add(images, labels)
        self.streak.add(images, labels)
        crops: list[np.ndarray] = []
        classes: list[int] = []
        for image, label, instance in zip(images, labels, instances, strict=True):
            for cls, rows, cols in instance_boxes(instance, label, self.thing_ids):
                if max(rows.stop - rows.start, cols.stop - cols.start) < MIN_CROP_SIDE:
                    continue
                if sum(len(f) for f in self.crops[cls]) + classes.count(cls) >= MAX_CROPS:
                    continue
                crops.append(square_crop(image, rows, cols, CROP_SCALE, CROP_SIZE))
                classes.append(cls)
        if crops:
            crop_feats = judge.features(np.stack(crops))  # [K,D]
            for cls in set(classes):
                self.crops[cls].append(crop_feats[np.array(classes) == cls])

    def all_features(self) -> np.ndarray:
        return np.concatenate(self.features)

    def crop_features(self, cls: int) -> np.ndarray:
        return np.concatenate(self.crops[cls]) if self.crops[cls] else np.zeros((0, 1), np.float32)
