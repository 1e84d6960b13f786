"""Random landscape label maps: sky, clouds, mountain ranges, hills, water, meadows, paths and things.

The scene is painted back to front into an id map (painter's algorithm): sky, clouds in perspective, mountain
ranges with snow caps, rolling hills, then the ground (sea with beach, lake, river or dry land), meadow details
(flowers, bushes, paths, snowfields) and finally trees, rocks and houses sorted far to near, each with its own
instance id. All lengths are fractions of the image height so any size or aspect ratio works.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from models.data.noise import fbm, fbm1d, ridged
from models.labels import LANDSCAPE

SKY, CLOUD, MOUNTAIN, SNOW, ROCK, HILL, GRASS, FLOWERS, TREE, BUSH, SAND, DIRT, WATER, HOUSE = (
    LANDSCAPE[name].id
    for name in (
        "sky",
        "cloud",
        "mountain",
        "snow",
        "rock",
        "hill",
        "grass",
        "flowers",
        "tree",
        "bush",
        "sand",
        "dirt",
        "water",
        "house",
    )
)
THING_IDS: tuple[int, ...] = tuple(LANDSCAPE.thing_ids)
# Ground a tree, house or bush may stand on (never water).
_STANDABLE = np.zeros(len(LANDSCAPE), dtype=bool)
_STANDABLE[[GRASS, FLOWERS, HILL, DIRT, SNOW]] = True


def _is(label: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """label ∈ classes, by table lookup (several times faster than np.isin on a whole map)."""
    lut = np.zeros(256, dtype=bool)
    lut[list(classes)] = True
    return lut[label]


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int | np.integer) else size
    if int(h) < 16 or int(w) < 16:
        raise ValueError(f"layout size must be at least 16×16, got {h}×{w}")
    return int(h), int(w)


def _threshold(coverage: float) -> float:
    """Level above which a unit-normal field covers `coverage` of the pixels."""
    return float(ndtri(1.0 - np.clip(coverage, 1e-4, 1 - 1e-4)))


class _Canvas:
    """Label and instance maps being painted, plus the pixel grids and the horizon."""

    def __init__(self, rng: np.random.Generator, h: int, w: int) -> None:
        self.rng, self.h, self.w = rng, h, w
        self.label = np.full((h, w), SKY, dtype=np.uint8)
        self.instance = np.zeros((h, w), dtype=np.int32)
        self.yy = np.arange(h, dtype=np.float32)[:, None]
        self.xx = np.arange(w, dtype=np.float32)[None, :]
        self.horizon = h * rng.uniform(0.36, 0.6)
        self.next_instance = 1

    def nearness(self, y: np.ndarray | float) -> np.ndarray:
        """0 at the horizon → 1 at the bottom edge: the perspective scale of things standing at row y."""
        return np.clip((np.asarray(y, dtype=np.float32) - self.horizon) / (self.h - self.horizon), 0.0, 1.0)

    def profile(self, cell: float, octaves: int = 5, persistence: float = 0.5) -> np.ndarray:
        """A 1-D fractal curve across the width (ridgelines, shores); `cell` in pixels."""
        return fbm1d(self.rng, self.w, cell, octaves, persistence)

    def fill_below(self, top: np.ndarray, cls: int, where: np.ndarray | None = None) -> np.ndarray:
        """Paint `cls` on every pixel at or below the per-column row `top` (optionally only `where`)."""
        mask = self.yy >= top[None, :]
        if where is not None:
            mask &= where
        self.label[mask] = cls
        return mask


def _clouds(c: _Canvas) -> None:
    coverage = 0.0 if c.rng.random() < 0.2 else c.rng.uniform(0.06, 0.45)
    if coverage == 0.0:
        return
    rows = np.arange(c.h, dtype=np.float32)
    # Rows on a cloud plane seen in perspective: distance grows as 1/height above the horizon.
    above = np.maximum(c.horizon - rows, 0.0) + 0.08 * c.h
    ys = c.h * 0.25 * c.h / above
    flat = c.rng.uniform(1.5, 3.5)  # stratus-like clouds are flatter
    field = fbm(c.rng, (c.h, c.w), (0.22 * c.h, 0.22 * c.h * flat), 5, 0.5, ys=ys)
    # Thinner cover in the lower half of the sky, so the horizon mostly stays clear.
    field -= np.linspace(0.0, 1.2, c.h, dtype=np.float32)[:, None] * (rows[:, None] > c.horizon * 0.5)
    c.label[(field > _threshold(coverage)) & (c.yy < c.horizon - 0.02 * c.h)] = CLOUD


def _mountains(c: _Canvas, winter: bool) -> None:
    n = int(c.rng.choice([0, 1, 2, 3], p=[0.12, 0.38, 0.35, 0.15]))
    # Snow line as a fraction of each range's height above its foot: caps on the high peaks, low in winter.
    snow_frac = c.rng.uniform(0.15, 0.35) if winter else c.rng.uniform(0.4, 0.7)
    snowy = winter or c.rng.random() < 0.8
    if n and snowy:
        # Snow reaches further down in gullies (vertical streaks) and thins out on a ragged line.
        streaks = fbm(c.rng, (c.h, c.w), (0.06 * c.h, 0.012 * c.h), 3)
        ragged = fbm(c.rng, (c.h, c.w), 0.03 * c.h, 3)
        wobble = 0.04 * c.h * streaks + 0.015 * c.h * ragged
    for k in range(n):
        base = c.horizon + 0.01 * c.h * k
        amp = c.h * c.rng.uniform(0.14, 0.36) * (1.0 - 0.22 * k)
        peaks = ridged(c.profile(c.rng.uniform(0.12, 0.35) * c.h, 3, 0.45), 1.4)
        massif = np.clip(0.55 + 0.35 * c.profile(0.7 * c.h, 2), 0.15, 1.0)
        detail = c.profile(0.04 * c.h, 3, 0.5)
        top = base - amp * ((0.2 + 0.8 * peaks) * massif + 0.04 * detail)
        top = np.minimum(top, base - 1.0)
        mask = c.fill_below(top, MOUNTAIN, c.yy <= base + 0.02 * c.h)
        if snowy:
            c.label[mask & (c.yy < base - snow_frac * amp + wobble)] = SNOW


def _hills(c: _Canvas) -> np.ndarray:
    """Rolling hills straddling the horizon; returns the row where the near meadow starts."""
    n = int(c.rng.choice([0, 1, 2], p=[0.25, 0.45, 0.3]))
    for k in range(n):
        amp = c.h * c.rng.uniform(0.03, 0.11) * (1.0 + 0.3 * k)
        base = c.horizon + 0.015 * c.h * k
        top = base - amp * (0.6 + 0.5 * c.profile(c.rng.uniform(0.2, 0.5) * c.h, 4, 0.4))
        c.fill_below(np.minimum(top, base), HILL)
    if n == 0:
        return np.full(c.w, c.horizon, dtype=np.float32)
    depth = c.rng.uniform(0.05, 0.3) * (c.h - c.horizon)
    return c.horizon + depth + 0.03 * c.h * c.profile(0.4 * c.h, 3)


def _sea(c: _Canvas) -> None:
    """Sea from the horizon down to a wavy coastline, a sand beach below it."""
    c.fill_below(np.full(c.w, c.horizon, dtype=np.float32), WATER, c.yy >= c.horizon)
    slope = c.rng.uniform(-0.35, 0.35) * (c.h - c.horizon)
    shore = (
        c.horizon
        + c.rng.uniform(0.2, 0.55) * (c.h - c.horizon)
        + slope * (np.arange(c.w) / c.w - 0.5)
        + 0.03 * c.h * c.profile(0.3 * c.h, 4)
    )
    beach = shore + c.rng.uniform(0.03, 0.2) * (c.h - c.horizon) * (1.0 + 0.4 * c.profile(0.25 * c.h, 3))
    c.fill_below(np.maximum(shore, c.horizon + 1), SAND)
    if c.rng.random() < 0.75:
        c.fill_below(np.maximum(beach, shore + 1), GRASS)


def _lake(c: _Canvas) -> None:
    """A lake whose far shore is cut flat near the horizon, often with a sand rim."""
    far = c.horizon + c.rng.uniform(0.0, 0.06) * c.h + 0.008 * c.h * c.profile(0.2 * c.h, 3)
    rx = c.w * c.rng.uniform(0.25, 0.7)
    ry = (c.h - c.horizon) * c.rng.uniform(0.25, 0.6)
    cx = c.w * c.rng.uniform(0.2, 0.8)
    cy = far.mean() + ry * c.rng.uniform(0.0, 0.4)
    wobble = fbm(c.rng, (c.h, c.w), 0.12 * c.h, 3)
    shape = ((c.xx - cx) / rx) ** 2 + ((c.yy - cy) / ry) ** 2 + 0.25 * wobble
    below_far = c.yy >= far[None, :]
    land = _is(c.label, (GRASS, HILL))
    if c.rng.random() < 0.6:
        rim = (shape < 1.0 + c.rng.uniform(0.1, 0.35)) & below_far & land & (wobble > -0.3)
        c.label[rim] = SAND
    c.label[(shape < 1.0) & below_far] = WATER


def _river(c: _Canvas) -> None:
    """A river winding from the horizon to the bottom edge, widening with nearness."""
    rows = np.arange(c.h, dtype=np.float32)
    near = c.nearness(rows)
    centre = c.w * c.rng.uniform(0.25, 0.75) + 0.25 * c.w * near * fbm1d(c.rng, c.h, 0.5 * c.h, 3)
    width = c.w * (0.01 + c.rng.uniform(0.15, 0.4) * near**1.2)
    mask = (np.abs(c.xx - centre[:, None]) < width[:, None] / 2) & (c.yy > c.horizon + 1)
    mask &= _is(c.label, (GRASS, HILL, SAND))
    bank = (np.abs(c.xx - centre[:, None]) < width[:, None] * 0.62) & (c.yy > c.horizon + 1)
    bank &= c.label == GRASS
    if c.rng.random() < 0.5:
        c.label[bank] = SAND
    c.label[mask] = WATER


def _meadow(c: _Canvas, winter: bool) -> None:
    """Flower patches, a dirt path, bush clumps and (in winter) snowfields on the grass."""
    rows = np.arange(c.h, dtype=np.float32)
    # Ground-plane rows: distance ~ 1/(row − horizon), so patches squeeze towards the horizon.
    ys = 0.3 * c.h * c.h / (np.maximum(rows - c.horizon, 0.0) + 0.05 * c.h)
    patches = fbm(c.rng, (c.h, c.w), 0.2 * c.h, 4, ys=ys)
    grass = c.label == GRASS
    if winter:
        cover = c.rng.uniform(0.4, 0.95)
        c.label[grass & (patches > _threshold(cover))] = SNOW
        c.label[(c.label == HILL) & (patches > _threshold(cover * 0.8))] = SNOW
    elif c.rng.random() < 0.7:
        flowers = grass & (patches > _threshold(c.rng.uniform(0.05, 0.3)))
        c.label[flowers] = FLOWERS
    if c.rng.random() < 0.5:
        near = c.nearness(rows)
        start = c.w * c.rng.uniform(0.15, 0.85)
        end = c.w * c.rng.uniform(0.2, 0.8)
        centre = end + (start - end) * near + 0.12 * c.w * near * fbm1d(c.rng, c.h, 0.4 * c.h, 3)
        width = c.w * (0.004 + c.rng.uniform(0.06, 0.16) * near)
        path = np.abs(c.xx - centre[:, None]) < width[:, None] / 2
        c.label[path & _is(c.label, (GRASS, FLOWERS, SNOW)) & (c.yy > c.horizon)] = DIRT
    for _ in range(int(c.rng.integers(0, 6))):
        _bush_clump(c)


def _bush_clump(c: _Canvas) -> None:
    y, x = _standing_point(c, (GRASS, FLOWERS, HILL))
    if y < 0:
        return
    s = c.h * (0.015 + 0.08 * float(c.nearness(y))) * c.rng.uniform(0.6, 1.4)
    for _ in range(int(c.rng.integers(2, 6))):
        cx, r = x + c.rng.normal(0, 1.2 * s), s * c.rng.uniform(0.5, 1.0)
        y0, y1, x0, x1 = _clip_box(c, y - 1.6 * r, y + 0.2 * r, cx - 1.2 * r, cx + 1.2 * r)
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = c.yy[y0:y1], c.xx[:, x0:x1]
        blob = ((xx - cx) / r) ** 2 + ((yy - (y - 0.6 * r)) / (0.8 * r)) ** 2 < 1.0
        blob &= yy <= y
        sub = c.label[y0:y1, x0:x1]
        sub[blob & (sub != WATER) & (sub != SKY) & (sub != CLOUD)] = BUSH


def _standing_point(c: _Canvas, classes: tuple[int, ...], min_near: float = 0.0) -> tuple[int, int]:
    """A random pixel of one of `classes` at least `min_near` towards the viewer, or (-1, -1)."""
    ok = _is(c.label, classes)
    if min_near > 0:
        ok &= c.yy >= c.horizon + min_near * (c.h - c.horizon)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return -1, -1
    y, x = divmod(int(idx[c.rng.integers(idx.size)]), c.w)
    return y, x


def _clip_box(c: _Canvas, y0: float, y1: float, x0: float, x1: float) -> tuple[int, int, int, int]:
    return (
        max(int(np.floor(y0)), 0),
        min(int(np.ceil(y1)) + 1, c.h),
        max(int(np.floor(x0)), 0),
        min(int(np.ceil(x1)) + 1, c.w),
    )


def _paint_thing(c: _Canvas, cls: int, box: tuple[int, int, int, int], mask: np.ndarray) -> None:
    y0, y1, x0, x1 = box
    if not mask.any():
        return
    c.label[y0:y1, x0:x1][mask] = cls
    c.instance[y0:y1, x0:x1][mask] = c.next_instance
    c.next_instance += 1


def _tree(c: _Canvas, y: float, x: float, height: float, jag: np.ndarray) -> None:
    """A conifer (serrated tiers) or a broadleaf tree (lumpy crown on a visible trunk) standing at (x, y)."""
    conifer = c.rng.random() < 0.5
    height = max(height, 4.0)
    width = height * (c.rng.uniform(0.32, 0.5) if conifer else c.rng.uniform(0.55, 0.9))
    y0, y1, x0, x1 = _clip_box(c, y - height, y, x - width, x + width)
    if y1 <= y0 or x1 <= x0:
        return
    yy, xx = c.yy[y0:y1], c.xx[:, x0:x1]
    dx = np.abs(xx - x)
    noise = jag[y0:y1, x0:x1]
    trunk_h = height * (c.rng.uniform(0.08, 0.14) if conifer else c.rng.uniform(0.22, 0.32))
    trunk_w = max(1.0, width * (0.07 if conifer else 0.1))
    trunk = (dx <= trunk_w / 2) & (yy >= y - trunk_h - 0.1 * height) & (yy <= y)
    crown_bottom = y - trunk_h
    if conifer:
        t = np.clip((yy - (y - height)) / (crown_bottom - (y - height)), 0.0, 1.0)
        tiers = c.rng.integers(3, 7)
        halfw = width / 2 * t * (0.7 + 0.3 * ((t * tiers) % 1.0)) + 0.4
        crown = (dx < halfw * (1.0 + 0.12 * noise)) & (yy >= y - height) & (yy <= crown_bottom)
    else:
        crown = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        cy = y - trunk_h - (height - trunk_h) / 2
        for _ in range(int(c.rng.integers(3, 6))):
            bx = x + c.rng.uniform(-0.25, 0.25) * width
            by = cy + c.rng.uniform(-0.2, 0.2) * (height - trunk_h)
            r = (height - trunk_h) * c.rng.uniform(0.3, 0.42)
            crown |= ((xx - bx) / (r * width / height * 1.6)) ** 2 + ((yy - by) / r) ** 2 < 1.0 + 0.35 * noise
        crown &= yy >= y - height
    _paint_thing(c, TREE, (y0, y1, x0, x1), crown | trunk)


def _rock(c: _Canvas, y: float, x: float, size: float, jag: np.ndarray) -> None:
    rx, ry = max(size, 1.5), max(size * c.rng.uniform(0.45, 0.85), 1.2)
    y0, y1, x0, x1 = _clip_box(c, y - ry, y + 0.3 * ry, x - rx * 1.2, x + rx * 1.2)
    if y1 <= y0 or x1 <= x0:
        return
    yy, xx = c.yy[y0:y1], c.xx[:, x0:x1]
    cx = x + c.rng.uniform(-0.2, 0.2) * rx
    blob = ((xx - cx) / rx) ** 2 + ((yy - y) / ry) ** 2 < 1.0 + 0.3 * jag[y0:y1, x0:x1]
    blob &= yy <= y + 0.3 * ry
    _paint_thing(c, ROCK, (y0, y1, x0, x1), blob)


def _house(c: _Canvas, y: float, x: float, width: float) -> None:
    """Walls with a pitched roof on top (roof about 40 % of the height), sometimes a chimney."""
    width = max(width, 5.0)
    wall_h = width * c.rng.uniform(0.45, 0.75)
    roof_h = wall_h * c.rng.uniform(0.55, 0.85)
    over = width * c.rng.uniform(0.03, 0.1)
    y0, y1, x0, x1 = _clip_box(c, y - wall_h - roof_h, y, x - width / 2 - over, x + width / 2 + over)
    if y1 <= y0 or x1 <= x0:
        return
    yy, xx = c.yy[y0:y1], c.xx[:, x0:x1]
    walls = (np.abs(xx - x) <= width / 2) & (yy > y - wall_h) & (yy <= y)
    t = (yy - (y - wall_h - roof_h)) / roof_h
    roof = (np.abs(xx - x) <= (width / 2 + over) * t) & (t >= 0) & (yy <= y - wall_h)
    shape = walls | roof
    if c.rng.random() < 0.5 and width > 10:
        chim_x = x + c.rng.choice([-1, 1]) * width * 0.25
        chimney = (np.abs(xx - chim_x) <= max(1.0, width * 0.05)) & (yy >= y - wall_h - roof_h * 0.95)
        shape |= chimney & (yy <= y - wall_h)
    _paint_thing(c, HOUSE, (y0, y1, x0, x1), shape)


def _things(c: _Canvas) -> None:
    """Trees (scattered, groves, forest bands), rocks and houses, painted far to near."""
    h = c.h
    items: list[tuple[float, str, float]] = []  # (row, kind, x)
    ground = (GRASS, FLOWERS, HILL, SNOW, DIRT)
    mode = c.rng.choice(["sparse", "groves", "forest"], p=[0.35, 0.4, 0.25])
    sparse, forest = int(c.rng.integers(2, 10)), int(c.rng.integers(4, 10))  # both drawn, whatever the mode
    n_trees = {"sparse": sparse, "groves": 0, "forest": forest}[str(mode)]
    for _ in range(n_trees):
        y, x = _standing_point(c, ground)
        if y >= 0:
            items.append((y, "tree", x))
    if mode == "groves":
        for _ in range(int(c.rng.integers(1, 4))):
            y, x = _standing_point(c, ground)
            if y < 0:
                continue
            spread = h * (0.03 + 0.15 * float(c.nearness(y)))
            for _ in range(int(c.rng.integers(3, 12))):
                ty = float(np.clip(y + c.rng.normal(0, 0.3 * spread), c.horizon, h - 1))
                tx = float(np.clip(x + c.rng.normal(0, spread), 0, c.w - 1))
                if _STANDABLE[c.label[int(ty), int(tx)]]:
                    items.append((ty, "tree", tx))
    if mode == "forest":
        # A band of small trees along a hill or the far meadow.
        hill = _is(c.label, (HILL, GRASS, SNOW)) & (c.yy < c.horizon + 0.25 * (h - c.horizon))
        idx = np.flatnonzero(hill)
        if idx.size:
            for i in c.rng.choice(idx, size=min(idx.size, int(c.rng.integers(20, 60)))):
                y, x = divmod(int(i), c.w)
                items.append((float(y), "tree", float(x)))
    for _ in range(int(c.rng.integers(0, 9))):
        y, x = _standing_point(c, (GRASS, FLOWERS, SAND, SNOW, DIRT, HILL))
        if y >= 0:
            items.append((y, "rock", x))
    for _ in range(int(c.rng.choice([0, 1, 2, 3], p=[0.35, 0.35, 0.2, 0.1]))):
        y, x = _standing_point(c, (GRASS, FLOWERS, HILL, SNOW), min_near=0.04)
        if y >= 0:
            items.append((y, "house", x))
    jag = fbm(c.rng, (c.h, c.w), 2.5, 1)
    items.sort(key=lambda item: item[0])
    for row, kind, col in items:
        near = float(c.nearness(row))
        scale = h * (0.015 + near * 0.985)
        if kind == "tree":
            _tree(c, row, col, scale * c.rng.uniform(0.18, 0.5), jag)
        elif kind == "rock":
            _rock(c, row, col, scale * c.rng.uniform(0.025, 0.09), jag)
        else:
            _house(c, row, col, scale * c.rng.uniform(0.12, 0.28))


def _compact_instances(instance: np.ndarray, n_painted: int) -> np.ndarray:
    """Renumber the surviving instances 1..K in painting order (nearer things may hide farther ones)."""
    present = np.bincount(instance.ravel(), minlength=n_painted) > 0
    present[0] = True
    lut = (np.cumsum(present) - 1).astype(np.int32)
    return lut[instance]


def sample_layout(rng: np.random.Generator, size: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A random landscape: (label_map H×W uint8 landscape ids, instance_map H×W int32, 0 on stuff)."""
    h, w = _size(size)
    c = _Canvas(rng, h, w)
    winter = rng.random() < 0.12
    _clouds(c)
    _mountains(c, winter)
    meadow_top = _hills(c)
    c.fill_below(np.maximum(meadow_top, c.horizon), GRASS)
    water = rng.choice(["sea", "lake", "river", "none"], p=[0.25, 0.35, 0.12, 0.28])
    if water == "sea":
        _sea(c)
    elif water == "lake":
        _lake(c)
    elif water == "river":
        _river(c)
    _meadow(c, winter)
    _things(c)
    return c.label, _compact_instances(c.instance, c.next_instance)
