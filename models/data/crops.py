"""Instance crops for CollageGAN's class generators: what one training sample of a class generator is.

Per instance of a thing class (models.md §1.3): the context box (the instance's square box enlarged 2×, padded
where it leaves the picture) cut from the real picture with the instance removed, the same box of the label
map and of the instance's mask, and the target — the real picture inside the square box. The geometry is
`common.crops`, the one the server's composition stage cuts with.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset

from common.crops import (
    Box,
    Removal,
    context_box,
    crop_padded,
    remove_instance,
    resize_square,
    square_box,
    tight_box,
)
from models.labels import LANDSCAPE, LabelSet

MIN_SIDE = 12  # skip instances whose tight box is shorter on both sides: too small to be worth a model
MIN_FILL = 0.25  # [ours] skip instances covering less of their tight box: mostly hidden behind others,
#                  their fragments (a house seen through a tree) teach the generator nothing about the class


@dataclass(frozen=True)
class InstanceCrop:
    context: np.ndarray  # S×S×3 uint8: the context box of the picture, the instance removed
    labels: np.ndarray  # S×S uint8 label ids of the context box (0 where it leaves the picture)
    mask: np.ndarray  # S×S bool: the instance's own pixels in the context box
    valid: np.ndarray  # S×S bool: context pixels inside the picture
    target: np.ndarray  # T×T×3 uint8: the real picture in the square box (the context's central half)
    box: Box  # the square box in picture coordinates
    instance_id: int


def usable_instances(
    label: np.ndarray,  # H×W uint8 label ids
    instance: np.ndarray,  # H×W int instance ids (0 = stuff)
    class_id: int,  # the thing class the generator is for
    min_side: int = MIN_SIDE,  # skip instances whose tight box is smaller on both sides
    min_fill: float = MIN_FILL,  # skip instances covering less of their tight box
) -> list[tuple[int, np.ndarray]]:
    """(instance id, H×W mask) of every usable instance of `class_id`, largest first (the order composition
    pastes them in). Cheap next to cutting a crop, so a training item picks its instance before cutting one."""
    ids = [int(i) for i in np.unique(instance[label == class_id]) if i != 0]
    masks = [(i, (instance == i) & (label == class_id)) for i in ids]
    masks.sort(key=lambda item: -int(item[1].sum()))
    usable = []
    for instance_id, mask in masks:
        tight = tight_box(mask)
        if max(tight.height, tight.width) >= min_side and mask.sum() >= min_fill * tight.height * tight.width:
            usable.append((instance_id, mask))
    return usable


def crop_instance(
    label: np.ndarray,  # H×W uint8 label ids
    image: np.ndarray,  # H×W×3 uint8 picture (the real one when training)
    mask: np.ndarray,  # H×W bool: the instance's pixels
    instance_id: int,  # recorded in the crop
    removal: Removal,  # how the instance is removed from its context
    context_size: int,  # side the context box is resized to
    target_size: int,  # side the square box is resized to
) -> InstanceCrop:
    """One instance's context, label and mask crops and its target, in `common.crops`' geometry."""
    square = square_box(tight_box(mask))
    ctx = context_box(square)
    in_picture = crop_padded(np.ones(label.shape, bool), ctx, False)
    crop_mask = crop_padded(mask, ctx, False)
    context = remove_instance(crop_padded(image, ctx), crop_mask, removal)
    return InstanceCrop(
        context=resize_square(context, context_size, nearest=False),
        labels=resize_square(crop_padded(label, ctx), context_size, nearest=True),
        mask=resize_square(crop_mask, context_size, nearest=True),
        valid=resize_square(in_picture, context_size, nearest=True),
        target=resize_square(crop_padded(image, square), target_size, nearest=False),
        box=square,
        instance_id=instance_id,
    )


def instance_crops(
    label: np.ndarray,  # H×W uint8 label ids
    instance: np.ndarray,  # H×W int instance ids (0 = stuff)
    image: np.ndarray,  # H×W×3 uint8 picture (the real one when training)
    class_id: int,  # the thing class the generator is for
    removal: Removal,  # how the instance is removed from its context
    context_size: int = 256,  # side the context box is resized to
    target_size: int = 128,  # side the square box is resized to
    min_side: int = MIN_SIDE,  # skip instances whose tight box is smaller on both sides
    min_fill: float = MIN_FILL,  # skip instances covering less of their tight box
) -> Iterator[InstanceCrop]:
    """Every usable instance of `class_id` in one picture, largest first."""
    for instance_id, mask in usable_instances(label, instance, class_id, min_side, min_fill):
        yield crop_instance(label, image, mask, instance_id, removal, context_size, target_size)


# ---------------------------------------------------------------------------------------------------------
# Training samples of a class generator, as tensors (the `collage_class` architecture's dataset).

CROP_STREAM = 21  # [ours] tags the RNG that picks an item's instance, apart from the renderer's streams
SEARCH = 64  # pictures an item looks through for an instance of its class before giving up


class ClassCrops(Dataset[dict[str, torch.Tensor]]):
    """Item i: one instance of a thing class from picture i of any picture dataset (the sample dicts of
    docs/contracts.md: procedural, cached or real pairs), as a class generator's training sample.

    The instance is one of the picture's usable ones (`instance_crops`), drawn from an RNG seeded by
    (seed, i) alone, so item i is the same in every worker, epoch and resumed run. A picture without one is
    replaced by pictures drawn at random from the same RNG until one has (random rather than the next one, so
    that a run of empty pictures does not make a run of copies of one instance); every item exists and the
    length stays the picture count. A class missing from `SEARCH` pictures in a row is a config error, raised
    on first use.

    Sample tensors (S = context_size, T = target_size = S/2):
      context [3,S,S] in [-1,1] (instance removed), labels [S,S] int64, mask [1,S,S] and valid [1,S,S] float
      0/1, image [3,T,T] in [-1,1] (the real square box, what G must draw), and label [T,T] int64 — the
      labels' central half, which is the square box: the trainer draws its sample grid from `label` and
      `image`, so those two share a size.
    """

    def __init__(
        self,
        pictures: Dataset[Any],  # sample dicts with label [H,W], instance [H,W], image [3,H,W] in [-1,1]
        class_id: int,  # the thing class the generator is for
        context_size: int,  # S: side the context box is resized to
        target_size: int,  # T: side the square box is resized to; must be S/2 (the central half)
        removal: Removal,  # how the instance is removed from its context: blur | zeros
        seed: int = 0,  # seeds the choice of instance per item
        min_side: int = MIN_SIDE,  # skip instances whose tight box is smaller on both sides (picture pixels)
        min_fill: float = MIN_FILL,  # skip instances covering less of their tight box
    ) -> None:
        if context_size != 2 * target_size or context_size % 4:
            raise ValueError(
                f"context_size {context_size} must be twice target_size {target_size} and a multiple of 4: "
                "the square box is the context's central half"
            )
        if removal not in ("blur", "zeros"):
            raise ValueError(f"removal must be blur or zeros, got {removal!r}")
        self.pictures, self.class_id, self.removal, self.seed = pictures, class_id, removal, seed
        self.context_size, self.target_size = context_size, target_size
        self.min_side, self.min_fill = min_side, min_fill
        self.length = len(cast(Sized, pictures))

    def __len__(self) -> int:
        return self.length

    def picture_arrays(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Picture `index` as (H×W uint8 labels, H×W instance ids, H×W×3 uint8): straight from the dataset's
        `arrays` when it has one (the procedural shards are uint8; going through the float sample and back
        cost more than cutting the crop), else from its sample dict."""
        arrays = getattr(self.pictures, "arrays", None)
        if arrays is not None:
            label, instance, rgb = arrays(index)
            return label.astype(np.uint8, copy=False), instance, rgb
        sample = self.pictures[index]
        image = ((sample["image"] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)  # [3,H,W]
        return (
            sample["label"].numpy().astype(np.uint8),
            sample["instance"].numpy(),
            image.permute(1, 2, 0).numpy(),
        )

    def crops_of(self, index: int) -> list[InstanceCrop]:
        """Every usable instance of the class in picture `index`, largest first."""
        label, instance, rgb = self.picture_arrays(index)
        crops = instance_crops(
            label, instance, rgb, self.class_id, self.removal,
            self.context_size, self.target_size, self.min_side, self.min_fill,
        )  # fmt: skip
        return list(crops)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = np.random.default_rng([self.seed, index, CROP_STREAM])
        picture = index
        for _ in range(SEARCH):
            label, instance, rgb = self.picture_arrays(picture)
            usable = usable_instances(label, instance, self.class_id, self.min_side, self.min_fill)
            if usable:
                instance_id, mask = usable[int(rng.integers(len(usable)))]
                crop = crop_instance(
                    label, rgb, mask, instance_id, self.removal, self.context_size, self.target_size
                )
                return crop_tensors(crop)
            picture = int(rng.integers(self.length))
        raise ValueError(
            f"no instance of class {self.class_id} with a tight box of at least {self.min_side} px in "
            f"{SEARCH} pictures tried for item {index}: render larger pictures (--size) or lower min_side"
        )


def crop_tensors(crop: InstanceCrop) -> dict[str, torch.Tensor]:
    """An `InstanceCrop` as the sample tensors `ClassCrops` yields."""
    side = crop.labels.shape[0]
    start, stop = side // 4, 3 * side // 4
    labels = torch.from_numpy(crop.labels.astype(np.int64))  # [S,S]
    return {
        "context": _image_tensor(crop.context),  # [3,S,S]
        "labels": labels,
        "mask": torch.from_numpy(crop.mask).float()[None],  # [1,S,S]
        "valid": torch.from_numpy(crop.valid).float()[None],  # [1,S,S]
        "image": _image_tensor(crop.target),  # [3,T,T]
        "label": labels[start:stop, start:stop].clone(),  # [T,T] the square box's labels
    }


def _image_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 -> [3,H,W] float in [-1,1] (as the picture datasets scale images)."""
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div(127.5).sub(1.0)


class ProceduralCrops(ClassCrops):
    """`ClassCrops` of procedural landscapes: picture i is `render_sample(seed, i, size)` (or read from the
    shard cache under `cache_dir`, the same picture), `thing` a landscape thing class by name."""

    def __init__(
        self,
        thing: str,  # tree | rock | house
        length: int,  # number of pictures, and of items
        seed: int,  # dataset seed: picture i depends only on (seed, i), the instance choice on (seed, i) too
        size: int,  # side of the rendered pictures (instances are cut from these)
        context_size: int,  # S
        target_size: int,  # T = S/2
        removal: Removal = "blur",  # blur | zeros
        cache_dir: str | None = None,  # render the pictures once into shards here (`--data_cache`)
        min_side: int = MIN_SIDE,  # skip smaller instances (picture pixels)
    ) -> None:
        from models.data.datasets import ProceduralLandscapes  # imported here: it imports scipy, slowly

        class_id = thing_class(LANDSCAPE, thing)
        pictures = ProceduralLandscapes(size, length, seed, cache_dir)
        super().__init__(pictures, class_id, context_size, target_size, removal, seed, min_side)


def thing_class(label_set: LabelSet, thing: str) -> int:
    """The id of the thing class named `thing`; ValueError naming the thing classes otherwise."""
    things = ", ".join(label_set[i].name for i in label_set.thing_ids)
    try:
        label = label_set[thing]
    except KeyError:
        raise ValueError(
            f"label set {label_set.name!r} has no class {thing!r}; thing classes: {things}"
        ) from None
    if not label.is_thing:
        raise ValueError(f"{thing!r} is not a thing class of {label_set.name!r}: {things}")
    return label.id
