"""Which sample i of a procedural dataset is: its layout (procedural or painted), its style (a family's or a free
one), its scale (rendered at its size or cut out of a render at LARGE_SCALE times it), and the sample itself.

Everything derives from (seed, index) alone, so any worker, the shard cache and `collage data` produce the same
pair. Each share of a `Mix` decides per sample by a uniform draw of its own random stream, so the shares are
independent of each other and a share of 0 leaves every sample as it was before the share existed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from models.data import (
    FAMILIES,
    render,
    sample_free_style,
    sample_layout,
    sample_painted_layout,
    sample_style,
)

PAINTED_STREAM = 1  # third word of the seed that decides whether a sample is painted (its own random stream)
FREE_STREAM = 2  # … and of the one that decides whether its style is free (`sample_free_style`)
LARGE_STREAM = 3  # … and of the one that decides whether it is large ([…, LARGE_STREAM, 1] places its crop)
LARGE_SCALE = 2  # a large sample is a crop of a render at this many times its size


@dataclass(frozen=True)
class Mix:
    """The shares of a procedural dataset's samples that depart from a plain one (each 0..1, independent):
    painted layouts (`is_painted`), free styles (`is_free`) and crops of larger renders (`is_large`)."""

    painted: float = 0.0  # share of painted layouts (`models.data.painted_layouts`)
    free: float = 0.0  # share of free styles (`sample_free_style`)
    large: float = 0.0  # share of crops out of a render at LARGE_SCALE × the size

    def __post_init__(self) -> None:
        names = {"painted": "painted", "free": "free-style", "large": "large"}
        for field in fields(self):
            share = getattr(self, field.name)
            if not 0.0 <= share <= 1.0:  # NaN fails too
                raise ValueError(f"the {names[field.name]} share must lie in [0, 1], got {share}")

    @property
    def suffix(self) -> str:
        """The part of a cache folder's name the mix gives, e.g. "-painted0.5-free0.25-large0.3": exact (repr
        round-trips a float), each share left out at 0 so the names of caches from before it keep their form."""
        return "".join(
            f"-{field.name}{float(getattr(self, field.name))!r}"
            for field in fields(self)
            if getattr(self, field.name)
        )


NO_MIX = Mix()  # every sample plain: a procedural layout in its family's style at its own size


def _in_share(seed: int, index: int, share: float, stream: int) -> bool:
    """Whether sample `index` of dataset `seed` falls in a share `share` of the samples: a uniform draw of its
    own per (seed, index, stream) below the share."""
    return share > 0.0 and float(np.random.default_rng([seed, index, stream]).random()) < share


def is_painted(seed: int, index: int, mix: Mix) -> bool:
    """Whether sample `index` of dataset `seed` is a painted layout, for a share `mix.painted` of them.

    A uniform draw of its own per (seed, index) below the share: raising the share only turns procedural
    samples into painted ones, a procedural sample stays what it was, and the painted ones fall on every style
    family alike (an evenly spaced pattern would keep hitting the same families, which cycle with the index)."""
    return _in_share(seed, index, mix.painted, PAINTED_STREAM)


def is_free(seed: int, index: int, mix: Mix) -> bool:
    """Whether sample `index` of dataset `seed` has a free style (`sample_free_style`), for a share `mix.free`.

    As `is_painted`, from a stream of its own: raising the share only turns family styles into free ones, and
    which samples are free does not depend on which are painted."""
    return _in_share(seed, index, mix.free, FREE_STREAM)


def is_large(seed: int, index: int, mix: Mix) -> bool:
    """Whether sample `index` of dataset `seed` is a crop of a render at LARGE_SCALE × its size, for a share
    `mix.large`.

    Such a crop shows a generator trained at 256² what a picture painted at 512² looks like at the pixel level
    (bigger trees and houses, finer texture per object), so that it holds at 512². As `is_painted`, from a
    stream of its own."""
    return _in_share(seed, index, mix.large, LARGE_STREAM)


def render_sample(
    seed: int, index: int, size: int | tuple[int, int], mix: Mix = NO_MIX
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Sample `index` of the procedural dataset `seed`: (label uint8, instance int32, image uint8, family index).

    Families cycle with the index so every batch of len(FAMILIES) consecutive samples covers all of them. A
    painted sample (`is_painted`) has a painted layout (`models.data.painted_layouts`) instead of a procedural
    one, drawn from the same generator. A free one (`is_free`) has a free style (`sample_free_style`) that
    starts from the index's family; its family index is -1, since its colours are no longer that family's. A
    large one (`is_large`) is the sample the same index gives at LARGE_SCALE × the size, cropped to the size at
    a window drawn from a stream of its own, so its layout and style draws are what they are at that scale; its
    instance ids are the large render's (those cut away leave gaps).
    """
    if is_large(seed, index, mix):
        h, w = (size, size) if isinstance(size, int | np.integer) else size
        label, instance, image, family_index = render_sample(
            seed, index, (LARGE_SCALE * h, LARGE_SCALE * w), replace(mix, large=0.0)
        )
        window = np.random.default_rng([seed, index, LARGE_STREAM, 1])
        top, left = (int(window.integers((LARGE_SCALE - 1) * n + 1)) for n in (h, w))
        crop = np.s_[top : top + h, left : left + w]
        return label[crop].copy(), instance[crop].copy(), image[crop].copy(), family_index
    rng = np.random.default_rng([seed, index])
    sampler = sample_painted_layout if is_painted(seed, index, mix) else sample_layout
    label, instance = sampler(rng, size)
    family = FAMILIES[index % len(FAMILIES)]
    style = (sample_free_style if is_free(seed, index, mix) else sample_style)(rng, family)
    image = render(label, instance, style, int(rng.integers(2**31)))
    return label, instance, image, -1 if style.free else FAMILIES.index(family)
