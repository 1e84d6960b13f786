"""Instance boxes and context crops for CollageGAN's class generators (models.md §1.3, §1.5), in numpy.

One geometry for both sides, so what a class generator trains on is exactly what the server's composition stage
gives it: an instance's tight box, made square around its centre (so resizing keeps its aspect), and the
context box twice that side around the same centre. Parts of a box outside the picture are padded, never
clipped, so the square box is always the central half of the context box and the generator's feature crop is a
fixed slice of its feature map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

Removal = Literal["blur", "zeros"]
BLUR_FACTOR = 16  # the blur fill keeps 1/16 of the context's resolution: its colours, not its shapes


@dataclass(frozen=True)
class Box:
    """A half-open pixel box [y0, y1) × [x0, x1); may reach outside the picture."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0


def tight_box(mask: np.ndarray) -> Box:
    """The smallest box holding every True pixel of an H×W mask (which must have one)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("the mask is empty")
    return Box(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


def square_box(box: Box) -> Box:
    """The box grown along its short side to a square with the same centre (the extra pixel, for an odd
    difference, goes after the box)."""
    side = max(box.height, box.width)
    y0 = box.y0 - (side - box.height) // 2
    x0 = box.x0 - (side - box.width) // 2
    return Box(y0, x0, y0 + side, x0 + side)


def context_box(square: Box) -> Box:
    """The square box enlarged 2× around its centre: the square is its central half."""
    side = square.height
    return Box(
        square.y0 - side // 2,
        square.x0 - side // 2,
        square.y1 + side - side // 2,
        square.x1 + side - side // 2,
    )


def crop_padded(array: np.ndarray, box: Box, fill: float | int = 0) -> np.ndarray:
    """array[H,W,…] cut to `box`, the parts outside the array filled with `fill`."""
    h, w = array.shape[:2]
    out = np.full((box.height, box.width, *array.shape[2:]), fill, dtype=array.dtype)
    ys, xs = max(box.y0, 0), max(box.x0, 0)
    ye, xe = min(box.y1, h), min(box.x1, w)
    if ys < ye and xs < xe:
        out[ys - box.y0 : ye - box.y0, xs - box.x0 : xe - box.x0] = array[ys:ye, xs:xe]
    return out


def remove_instance(rgb: np.ndarray, mask: np.ndarray, removal: Removal) -> np.ndarray:
    """H×W×3 uint8 context with the instance's pixels replaced: zeros, or a blur that keeps only the
    colour theme (down to 1/16 of the size and back), so the generator must invent the object itself."""
    out = rgb.copy()
    if removal == "zeros":
        out[mask] = 0
        return out
    h, w = mask.shape
    small = Image.fromarray(rgb).resize(
        (max(1, w // BLUR_FACTOR), max(1, h // BLUR_FACTOR)), Image.Resampling.BOX
    )
    blurred = np.asarray(small.resize((w, h), Image.Resampling.BILINEAR))
    out[mask] = blurred[mask]
    return out


def resize_square(array: np.ndarray, side: int, nearest: bool) -> np.ndarray:
    """Square H×W(×3) array → side×side; nearest for ids and masks (bool stays bool), Lanczos (PIL) for uint8
    pictures. The one resize of context crops and boxes, so the composition stage feeds a class generator
    exactly what it trained on; returns `array` itself when it has that side.

    Lanczos, not bilinear, because every composited object passes through it twice (its box down to the
    generator's T² when training, T² back up to the box when pasting). Measured with the judge of `collage
    eval` on 100 held-out layouts, pasting each tree, rock and house's own render box after the round trip
    through 32² (a perfect generator): house crop FD-seg 9.66 with antialiased bilinear, 5.94 with Lanczos
    (4.32 untouched; the base generator's houses 12.6); trees 1.63 → 0.81, rocks 2.28 → 1.41.
    """
    if array.shape[0] == side:
        return array
    if nearest:
        mode = Image.Resampling.NEAREST
        if array.dtype == bool:
            return np.asarray(Image.fromarray(array.astype(np.uint8) * 255).resize((side, side), mode)) > 127
        return np.asarray(Image.fromarray(array).resize((side, side), mode))
    return np.asarray(Image.fromarray(array).resize((side, side), Image.Resampling.LANCZOS))
