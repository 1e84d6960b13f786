"""Loaders for the public datasets the papers train on (ADE20K, COCO-Stuff, Cityscapes), as pairs folders.

Each maps the dataset's own folder layout and label encoding onto `PairsDataset`; `make_dataset` picks one by the
`--data` spec (`ade20k:PATH`, `cocostuff:PATH`, `cityscapes:PATH`). Nothing here downloads anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from models.data.datasets import PairsDataset, Size, _find_pairs, _images_in, _read_png, _split_dir
from models.labels import ADE20K, CITYSCAPES, COCO_STUFF, COCO_STUFF_UNLABELED_VALUE


def ade20k_dataset(
    root: str | os.PathLike[str], size: Size, split: str = "train", augment: bool = False
) -> PairsDataset:
    """ADEChallengeData2016: images/{training,validation}/*.jpg + annotations/…/*.png (0 = unlabeled, 1..150).

    ADE20K ships no instance maps for the 150 classes, so instances are connected components of thing classes.
    """
    root = Path(root)
    if (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"
    sub = _split_dir(split, {"train": "training", "val": "validation"}, "ADE20K")
    pairs = _find_pairs(
        _images_in(root / "images" / sub, "*.jpg"),
        lambda im: root / "annotations" / sub / f"{im.stem}.png",
        where=root / "images" / sub,
    )
    return PairsDataset(pairs, size, ADE20K, _read_png, augment=augment)


def _read_cocostuff_label(path: Path) -> np.ndarray:
    label = _read_png(path).astype(np.int64)
    label[label == COCO_STUFF_UNLABELED_VALUE] = COCO_STUFF.background  # 255 → 182 "unlabeled"
    return label


def cocostuff_dataset(
    root: str | os.PathLike[str], size: Size, split: str = "train", augment: bool = False
) -> PairsDataset:
    """COCO-Stuff 164k: images/{train2017,val2017}/*.jpg + stuffthingmaps_trainval2017/{split}/*.png.

    The label maps may also sit in annotations/{split}/ (where the official instructions unzip them). Pixel
    value 255 (unlabeled) becomes id 182; instances are connected components of thing classes.
    """
    root = Path(root)
    sub = _split_dir(split, {"train": "train2017", "val": "val2017"}, "COCO-Stuff")
    labels = root / "stuffthingmaps_trainval2017" / sub
    if not labels.is_dir():
        labels = root / "annotations" / sub
    pairs = _find_pairs(
        _images_in(root / "images" / sub, "*.jpg"),
        lambda im: labels / f"{im.stem}.png",
        where=root / "images" / sub,
    )
    return PairsDataset(pairs, size, COCO_STUFF, _read_cocostuff_label, augment=augment)


def _read_cityscapes_instances(path: Path) -> np.ndarray:
    """*_instanceIds.png: label_id*1000 + k on instance pixels, the plain label id (< 1000) elsewhere."""
    raw = _read_png(path).astype(np.int64)
    return np.where(raw >= 1000, raw, 0)


def cityscapes_dataset(
    root: str | os.PathLike[str], size: Size, split: str = "train", augment: bool = False
) -> PairsDataset:
    """Cityscapes: leftImg8bit/{split}/{city}/*_leftImg8bit.png + gtFine/{split}/{city}/*_gtFine_{labelIds,instanceIds}.png."""
    root = Path(root)
    sub = _split_dir(split, {"train": "train", "val": "val", "test": "test"}, "Cityscapes")
    suffix = "_leftImg8bit"

    def gt(image: Path, kind: str) -> Path:
        stem = image.stem.removesuffix(suffix)
        return root / "gtFine" / sub / image.parent.name / f"{stem}_gtFine_{kind}.png"

    pairs = _find_pairs(
        _images_in(root / "leftImg8bit" / sub, f"*/*{suffix}.png"),
        lambda im: gt(im, "labelIds"),
        lambda im: gt(im, "instanceIds"),
        where=root / "leftImg8bit" / sub,
    )
    return PairsDataset(pairs, size, CITYSCAPES, _read_png, _read_cityscapes_instances, augment)
