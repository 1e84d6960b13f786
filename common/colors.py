"""Colour-coded label images → label ids: one algorithm for the dataset loaders (`models.labels`) and the
server's label PNG decoder (`server.codec`), so that a picture the studio accepts maps to the ids training saw.

Each side words the failure its own way (a dataset error naming the label set, an API error with a stable code);
`UnknownColorError` therefore carries the colour and its position rather than a final message.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


class UnknownColorError(ValueError):
    """A pixel's colour is none of the palette's: the first such pixel in row-major order, at (x, y)."""

    def __init__(self, color: tuple[int, int, int], x: int, y: int) -> None:
        super().__init__(f"unknown label colour {color} at (x={x}, y={y})")
        self.color = color
        self.x = x
        self.y = y


def ids_from_colors(rgb: npt.ArrayLike, colors: Sequence[Sequence[int]]) -> npt.NDArray[np.uint8]:
    """H×W×3 (or ×4: alpha is ignored) uint8 colour image → H×W uint8 ids, id i being the colour `colors[i]`.

    Where ids share a colour (Cityscapes' void classes), the colour maps to the first of them: the stable sort
    keeps equal colours in id order and `searchsorted` finds the leftmost. One sorted lookup rather than a loop
    over the palette, since the server decodes label PNGs of up to its pixel limit per request.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an H×W×3 colour image, got shape {rgb.shape}")
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    keys = np.array([(c[0] << 16) | (c[1] << 8) | c[2] for c in colors], dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], np.arange(len(colors), dtype=np.uint8)[order]
    pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    known = keys[pos] == packed
    if not known.all():
        y, x = (int(v) for v in np.argwhere(~known)[0])
        r, g, b = (int(c) for c in rgb[y, x, :3])
        raise UnknownColorError((r, g, b), x, y)
    return values[pos]
