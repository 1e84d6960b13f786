"""Label maps painted the way a person paints them in the studio: a few big triangle mountains on the horizon,
a grass meadow (sometimes a lake), and blob trees, rectangle houses with a triangle roof and round rocks.

The procedural layouts (`models.data.layout`) are what the models train on; these are what users give them, so
the CollageGAN figure shows both, and the composition benchmark needs maps with an exact number of instances
(a procedural layout's count depends on its seed, and its many far trees are too small for a class generator).

Every map derives from its seed alone. Things never touch each other (a gap of `GAP` px around every box), so
each is exactly one instance (`common.instances.instances_from_labels`: 4-connected components), and each one's
tight box is at least `min_side` px on its longer side, so `common.collage.plan` keeps all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from common.instances import instances_from_labels
from models.labels import LANDSCAPE

SKY, MOUNTAIN, SNOW, GRASS, WATER = (LANDSCAPE[n].id for n in ("sky", "mountain", "snow", "grass", "water"))
THINGS = {name: LANDSCAPE[name].id for name in ("tree", "house", "rock")}
REFERENCE_SIDE = 256  # the sizes below are pixels of a 256² map; they scale with the map's side
# Longer side of each thing's box at 256² (models/archs/collage_class.py: a house's box is ~37 px, a tree's
# ~26), before the nearness factor, and the box's height / width.
SIDES = {"tree": (22.0, 46.0), "house": (26.0, 46.0), "rock": (13.0, 22.0)}
ASPECTS = {"tree": (1.3, 1.8), "house": (0.75, 1.0), "rock": (0.55, 0.8)}
MIX = {"tree": 0.5, "house": 0.25, "rock": 0.25}  # share of each kind after one of each
GAP = 3  # px kept free around every thing's box
TRIES = 300  # positions tried per thing before the whole map is drawn again with smaller things
SHRINK = 0.9  # factor applied to every thing's size after a failed placement
ATTEMPTS = 12  # placements (each smaller) before giving up


def thing_mix(count: int, kinds: Sequence[str], seed: int) -> list[str]:
    """`count` thing kinds: one of each of `kinds` first (as far as `count` goes), then drawn by MIX."""
    if not kinds:
        raise ValueError("no thing kinds to paint")
    unknown = [k for k in kinds if k not in THINGS]
    if unknown:
        raise ValueError(f"cannot paint {unknown}; painted maps have {sorted(THINGS)}")
    head = list(kinds[:count])
    weights = np.array([MIX[k] for k in kinds])
    rng = np.random.default_rng([seed, 1])
    tail = rng.choice(len(kinds), size=max(0, count - len(head)), p=weights / weights.sum())
    return head + [kinds[int(i)] for i in tail]


def painted_map(
    size: int,  # side of the square map, px
    kinds: Sequence[str],  # one thing per entry: tree | house | rock
    seed: int,
    scale: float = 1.0,  # things' size relative to the 256² sizes of SIDES (a person paints them big)
    min_side: int = 1,  # every thing's tight box is at least this long on its longer side (picture px)
) -> np.ndarray:
    """size×size uint8 landscape ids with exactly one instance per entry of `kinds`.

    Raises ValueError when the things cannot all be placed apart and large enough (too many for the size)."""
    ids, horizon = _background(np.random.default_rng([seed, 0]), size)
    factor = scale * size / REFERENCE_SIDE
    for _ in range(ATTEMPTS):
        boxes = _place(np.random.default_rng([seed, 2]), ids, horizon, kinds, factor, min_side)
        if boxes is not None:
            break
        factor *= SHRINK
    else:
        raise ValueError(f"cannot place {len(kinds)} things of at least {min_side} px apart on a {size}² map")
    shape_rng = np.random.default_rng([seed, 3])
    out = ids.copy()
    for kind, box in sorted(zip(kinds, boxes, strict=True), key=lambda kb: kb[1][2]):  # far (high) first
        y0, x0, y1, x1 = box
        out[y0:y1, x0:x1][_shape(kind, y1 - y0, x1 - x0, shape_rng)] = THINGS[kind]
    _check(out, kinds, min_side)
    return out


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, int]:
    """(ids, horizon row): sky, 1–3 triangle mountains (some snow-capped) standing on the horizon, grass
    below, maybe a lake."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    ids = np.full((size, size), SKY, np.uint8)
    horizon = int(size * rng.uniform(0.4, 0.5))
    for _ in range(int(rng.integers(1, 4))):
        peak_x, peak_y = size * rng.uniform(0.1, 0.9), size * rng.uniform(0.1, 0.28)
        half = size * rng.uniform(0.22, 0.45)  # half the base's width
        depth = (yy - peak_y) / (horizon - peak_y)  # 0 at the peak, 1 on the horizon
        inside = (yy >= peak_y) & (yy < horizon) & (np.abs(xx - peak_x) <= depth * half)
        ids[inside] = MOUNTAIN
        if rng.random() < 0.5:
            ids[inside & (depth < rng.uniform(0.2, 0.35))] = SNOW
    ids[horizon:] = GRASS
    if rng.random() < 0.5:  # a lake: a flat ellipse in the meadow
        cy, cx = size * rng.uniform(0.62, 0.85), size * rng.uniform(0.2, 0.8)
        ry, rx = size * rng.uniform(0.04, 0.08), size * rng.uniform(0.12, 0.28)
        ids[(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1) & (yy > horizon + 2)] = WATER
    return ids, horizon


def _place(
    rng: np.random.Generator,
    ids: np.ndarray,
    horizon: int,
    kinds: Sequence[str],
    factor: float,
    min_side: int,
) -> list[tuple[int, int, int, int]] | None:
    """A box (y0, x0, y1, x1) per thing on the meadow, off the water, GAP px apart; None when one fits nowhere.

    Things lower in the picture are nearer and drawn up to 1.25× larger, farther ones down to 0.75×."""
    size = ids.shape[0]
    taken = np.zeros_like(ids, bool)  # boxes grown by GAP
    boxes = []
    for kind in kinds:
        lo, hi = SIDES[kind]
        a_lo, a_hi = ASPECTS[kind]
        for _ in range(TRIES):
            bottom = int(rng.integers(horizon + 4, size - 1))
            near = (bottom - horizon) / max(1, size - horizon)
            side = max(float(min_side), rng.uniform(lo, hi) * factor * (0.75 + 0.5 * near))
            aspect = rng.uniform(a_lo, a_hi)  # height / width
            h, w = (side, side / aspect) if aspect >= 1 else (side * aspect, side)
            h, w = max(1, round(h)), max(1, round(w))  # the longer one rounds to ≥ min_side
            y0, x0 = bottom - h, int(rng.integers(0, max(1, size - w)))
            y1, x1 = bottom, x0 + w
            if y0 < horizon - h // 3 or x1 > size:  # a third of a far thing may rise above the horizon
                continue
            grown = (slice(max(0, y0 - GAP), y1 + GAP), slice(max(0, x0 - GAP), x1 + GAP))
            if taken[grown].any() or (ids[y0:y1, x0:x1] == WATER).any():
                continue
            taken[grown] = True
            boxes.append((y0, x0, y1, x1))
            break
        else:
            return None
    return boxes


def _shape(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """h×w bool: the painted thing, touching all four sides of its box (so its tight box is the box)."""
    shape = _outline(kind, h, w, rng)
    # A roof's or a pine's tip may fall between two pixels: the middle column reaches the top and bottom rows.
    shape[0, (w - 1) // 2] = shape[h - 1, (w - 1) // 2] = True
    return shape


def _outline(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, rx = (w - 1) / 2, max(w / 2, 0.5)
    if kind == "house":  # rectangle walls, a triangle roof over the top 30–45 %
        roof = int(h * rng.uniform(0.3, 0.45))
        slope = (yy - roof) / max(roof, 1)  # -1 at the top row, 0 at the eaves
        return (yy >= roof) | (np.abs(xx - cx) <= (1 + slope) * rx)
    if kind == "rock":  # a dome: the upper half of an ellipse standing on the box's bottom
        return ((xx - cx) / rx) ** 2 + ((yy - (h - 1)) / max(h - 0.5, 0.5)) ** 2 <= 1
    trunk_h = int(h * rng.uniform(0.2, 0.3))  # a tree: a round crown on a short trunk, or a pine
    crown_h = h - trunk_h
    trunk = (yy >= crown_h) & (np.abs(xx - cx) <= max(0.5, w * 0.12))
    if rng.random() < 0.4:
        crown = (yy < crown_h) & (np.abs(xx - cx) <= (yy + 1) / crown_h * rx)
    else:
        cy, ry = (crown_h - 1) / 2, max(crown_h / 2, 0.5)
        crown = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    return crown | trunk


def _check(ids: np.ndarray, kinds: Sequence[str], min_side: int) -> None:
    """Exactly one instance per painted thing, each at least min_side px on its longer side."""
    from scipy import ndimage

    instances = instances_from_labels(ids, THINGS.values())
    found = [s for s in ndimage.find_objects(instances) if s is not None]
    small = [s for s in found if max(s[0].stop - s[0].start, s[1].stop - s[1].start) < min_side]
    if len(found) != len(kinds) or small:
        raise RuntimeError(f"painted {len(kinds)} things, found {len(found)} instances ({len(small)} small)")
