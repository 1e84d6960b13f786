"""Instance crops for CollageGAN's class generators: what one training sample of a class generator is.

Per instance of a thing class (models.md §1.3): the context box (the instance's square box enlarged 2×, padded
where it leaves the picture) cut from the real picture with the instance removed, the same box of the label
map and of the instance's mask, and the target — the real picture inside the square box. The geometry is
`common.crops`, the one the server's composition stage cuts with.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from common.crops import Box, Removal, context_box, crop_padded, remove_instance, square_box, tight_box

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


def _resize(array: np.ndarray, side: int, nearest: bool) -> np.ndarray:
    """Square H×W(×3) array → side×side; nearest for ids and masks, antialiased bilinear for pictures."""
    if array.shape[0] == side:
        return array
    mode = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    if array.dtype == bool:
        return np.asarray(Image.fromarray(array.astype(np.uint8) * 255).resize((side, side), mode)) > 127
    return np.asarray(
        Image.fromarray(array).resize((side, side), mode, reducing_gap=None if nearest else 2.0)
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
    """Every instance of `class_id` in one picture, largest first (the order composition pastes them in)."""
    ids = [int(i) for i in np.unique(instance[label == class_id]) if i != 0]
    masks = [(i, (instance == i) & (label == class_id)) for i in ids]
    masks.sort(key=lambda item: -int(item[1].sum()))
    for instance_id, mask in masks:
        tight = tight_box(mask)
        if max(tight.height, tight.width) < min_side or mask.sum() < min_fill * tight.height * tight.width:
            continue
        square = square_box(tight)
        ctx = context_box(square)
        in_picture = crop_padded(np.ones(label.shape, bool), ctx, False)
        crop_mask = crop_padded(mask, ctx, False)
        context = remove_instance(crop_padded(image, ctx), crop_mask, removal)
        yield InstanceCrop(
            context=_resize(context, context_size, nearest=False),
            labels=_resize(crop_padded(label, ctx), context_size, nearest=True),
            mask=_resize(crop_mask, context_size, nearest=True),
            valid=_resize(in_picture, context_size, nearest=True),
            target=_resize(crop_padded(image, square), target_size, nearest=False),
            box=square,
            instance_id=instance_id,
        )
