"""Label maps painted the way people paint them in the studio, to train and evaluate on beside the procedural
layouts (`models.data.layout`), which never show a model any of this.

A person paints with the line tool, the fill tool, a round brush and shapes: a horizon line across the canvas,
level, askew or gently wavy and a few pixels thick, with the ground filled in under it; one to four triangle or
polygon mountains standing on it, some with a snow cap (a smaller polygon at the peak, or the top filled in
above a zigzag line); hills, lakes and clouds as ellipses, the sea as a band under the horizon, rivers and
paths as brush strokes, flower patches and bushes as blobs; trees as ellipses, blobs, rectangles, lollipops or
pines, rocks as ellipses or polygons, houses as walls under a triangle roof or a plain rectangle. And people
paint what nature does not: no sky (the ground fills the canvas), no ground (sea or mountain down to the
bottom edge), snow meadows around open water, water above the sky, grass above it, a whole landscape upside
down, a canvas of two classes or of one (a cleared canvas is all sky).

The mixture is the tables below, each a weight per choice: SCENES first, then how many of each feature a
scene gets and in which shape. Lengths are fractions of the map's height or width, so any size works.

Instances. The studio sends no instance map: the server derives one from the labels
(`common.instances.instances_from_labels`: each 4-connected region of a thing class is an instance). These
maps get theirs the same way, so training sees what serving feeds the generator: things of one class that
touch (two overlapping trees, a house built against another) merge into one instance, as they do when a
person paints them, and a thing cut in two by a later stroke is two.

Everything is drawn from the generator passed in, so a map is a function of its seed.
"""

from __future__ import annotations

import numpy as np

from common.instances import instances_from_labels
from models.data.layout import THING_IDS
from models.data.paint_tools import Canvas, Point, choose
from models.labels import LANDSCAPE

ID = {label.name: label.id for label in LANDSCAPE.labels}
SKY, CLOUD, MOUNTAIN, SNOW, HILL, GRASS, FLOWERS, SAND, DIRT, WATER = (
    ID[n] for n in ("sky", "cloud", "mountain", "snow", "hill", "grass", "flowers", "sand", "dirt", "water")
)
GROUND_IDS = (GRASS, FLOWERS, HILL, SNOW, SAND, DIRT)  # what things stand on and paths cross

# -- the mixture ------------------------------------------------------------------------------------------------
SCENES = {
    "landscape": 0.70,  # sky over a horizon, ground under it; mountains, water, paths, patches and things
    "no_sky": 0.06,  # the ground fills the canvas (seen from above): water, paths, patches and things on it
    "odd_order": 0.10,  # bands in an order nature does not use (ODD_ORDER), or a landscape upside down
    "two_class": 0.08,  # one split line, or a few shapes of one class on a canvas of another
    "one_class": 0.06,  # one class everywhere
}
# Landscapes
HORIZON_ROWS = (0.3, 0.7)  # the horizon's row, fraction of the height
HORIZON = {"level": 0.45, "askew": 0.2, "wavy": 0.35}  # line tool level or askew; a gently wavy brush line
HORIZON_WIDTH = (0.01, 0.03)  # thickness of the horizon line, fraction of the height (at least 2 px)
EDGE_LINE = 0.15  # the horizon line is drawn in another class than the ground filled in under it
WINTER = 0.15  # the meadow and most hills are snow, the water stays open (winter water); caps more often
GROUND = {  # the class filled in under the horizon (grass becomes snow in winter); water, mountain: no ground
    "grass": 0.64, "sand": 0.07, "dirt": 0.05, "flowers": 0.05, "hill": 0.05, "water": 0.09, "mountain": 0.05,
}  # fmt: skip
MOUNTAINS = {0: 0.25, 1: 0.30, 2: 0.22, 3: 0.14, 4: 0.09}  # how many
TRIANGLE = 0.6  # a mountain is a triangle; otherwise a polygon with 1–3 corners on each flank
SNOW_CAP = 0.45  # a mountain gets a snow cap (SNOW_CAP_WINTER in winter) …
SNOW_CAP_WINTER = 0.9
CAP = {"polygon": 0.6, "fill": 0.4}  # … as a smaller polygon at the peak, or the top filled above a zigzag
CAP_SPILL = 0.3  # a polygon cap is painted over the sky beside the peak too, not only over the mountain
HILLS = {0: 0.55, 1: 0.25, 2: 0.15, 3: 0.05}  # ellipses straddling the horizon
HUMP_ONLY = 0.5  # a hill is only the ellipse's upper half (the rest would cover the meadow)
SNOWY_HILL = 0.7  # in winter, a hill is snow
# The water a landscape gets: a lake (ellipse), the sea (a band under the horizon) or a river (brush stroke).
WATER_BODIES = {"none": 0.4, "lake": 0.27, "sea": 0.15, "river": 0.18}
LAKE_RIM = 0.3  # a lake sits on a slightly larger sand ellipse
WAVY_SHORE = 0.5  # the sea's shore line is wavy; otherwise level
BEACH = 0.5  # the shore line is a sand band
RIVER_WIDENS = 0.5  # a second, wider stroke over the river's near end
PATHS = {0: 0.6, 1: 0.3, 2: 0.1}  # brush strokes towards the horizon …
PATH_CLASS = {"dirt": 0.7, "sand": 0.3}
FORD = 0.2  # … which cross water too; otherwise they are painted over ground only
FLOWER_PATCHES = {0: 0.5, 1: 0.2, 2: 0.15, 3: 0.1, 4: 0.05}  # blobs on the ground
BUSHES = {0: 0.45, 1: 0.2, 2: 0.15, 3: 0.1, 4: 0.1}  # standing on the ground …
BUSH_BLOB = 0.6  # … as a blob; otherwise an ellipse
CLOUDS = {0: 0.35, 1: 0.2, 2: 0.2, 3: 0.15, 4: 0.1}  # 1–3 overlapping ellipses each …
CLOUD_OVER_SKY = 0.7  # … painted over sky only; otherwise over mountains too
TREES = {0: 0.25, 1: 0.15, 2: 0.12, 3: 0.12, 4: 0.1, 6: 0.1, 9: 0.08, 14: 0.08}
TREE_SHAPES = {"ellipse": 0.22, "blob": 0.2, "rectangle": 0.13, "lollipop": 0.27, "pine": 0.18}
ROCKS = {0: 0.5, 1: 0.2, 2: 0.15, 3: 0.1, 5: 0.05}
ROCK_SHAPES = {"ellipse": 0.5, "polygon": 0.5}
HOUSES = {0: 0.55, 1: 0.27, 2: 0.12, 3: 0.06}
ROOF = 0.7  # a house is walls under a triangle roof; otherwise a plain rectangle
PERSPECTIVE = 0.6  # things are painted smaller towards the horizon; otherwise all at about one scale
ANYWHERE = 0.1  # a thing stands anywhere under the horizon, not only on ground (in a lake, on a mountain)
FROM_ABOVE = {"grass": 0.8, "sand": 0.1, "dirt": 0.1}  # what fills a canvas without sky (snow in winter)
# Odd orders
ODD_ORDER = {"bands": 0.6, "upside_down": 0.4}
BANDS = {2: 0.45, 3: 0.4, 4: 0.15}  # how many bands, top to bottom; the sky is one of them, never the top one
BAND_LINES = {"level": 0.6, "askew": 0.2, "wavy": 0.2}  # the lines between bands
BAND_CLASSES = {
    "water": 0.3, "grass": 0.25, "sand": 0.08, "snow": 0.08, "mountain": 0.08, "cloud": 0.07, "dirt": 0.05,
    "flowers": 0.05, "hill": 0.04,
}  # fmt: skip
BAND_THINGS = {0: 0.5, 1: 0.2, 2: 0.2, 3: 0.1}  # trees, rocks or houses anywhere on a band map
# Two and one class
TWO_CLASS = {"split": 0.5, "shapes": 0.5}  # the second class is any other, all alike
SPLIT = {"level": 0.5, "askew": 0.2, "wavy": 0.2, "upright": 0.1}  # the line between the two classes
SHAPES = {"ellipse": 0.25, "rectangle": 0.2, "polygon": 0.2, "blob": 0.2, "stroke": 0.15}  # 1–3 of one class
CANVAS = {"sky": 0.5, "grass": 0.2, "water": 0.1, "snow": 0.1, "sand": 0.1}  # what the shapes are painted on
ONE_CLASS = {
    "sky": 0.4, "water": 0.12, "grass": 0.12, "snow": 0.07, "sand": 0.06, "mountain": 0.05, "hill": 0.05,
    "cloud": 0.05, "dirt": 0.04, "flowers": 0.04,
}  # fmt: skip
THING_KINDS = {"tree": 0.6, "rock": 0.2, "house": 0.2}  # kinds of the things on band maps


def sample_painted_layout(
    rng: np.random.Generator, size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A map as a person paints one: (labels H×W uint8 landscape ids, instances H×W int32, 0 on stuff)."""
    h, w = (size, size) if isinstance(size, int | np.integer) else size
    if int(h) < 16 or int(w) < 16:
        raise ValueError(f"layout size must be at least 16×16, got {h}×{w}")
    h, w = int(h), int(w)
    scene = choose(rng, SCENES)
    if scene == "landscape":
        labels = _landscape(rng, h, w)
    elif scene == "no_sky":
        labels = _from_above(rng, h, w)
    elif scene == "odd_order":
        labels = _bands(rng, h, w) if choose(rng, ODD_ORDER) == "bands" else _landscape(rng, h, w)[::-1]
    elif scene == "two_class":
        labels = _two_classes(rng, h, w)
    else:
        labels = np.full((h, w), ID[choose(rng, ONE_CLASS)], dtype=np.uint8)
    labels = np.ascontiguousarray(labels)
    return labels, instances_from_labels(labels, THING_IDS)


# -- scenes -----------------------------------------------------------------------------------------------------


def _landscape(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    c = Canvas(h, w, SKY)
    winter = rng.random() < WINTER
    ground = ID[choose(rng, GROUND)]
    ground = SNOW if winter and ground == GRASS else ground
    top = _horizon(c, rng, ground)
    _mountains(c, rng, top, winter)
    _hills(c, rng, top, winter)
    _water(c, rng, top, ground)
    _ground_details(c, rng, top)
    _clouds(c, rng, top)
    _things(c, rng, top, rng.random() < PERSPECTIVE)
    return c.labels


def _from_above(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """No sky: the canvas filled with ground, then water, paths, patches and things, all at one scale."""
    winter = rng.random() < WINTER
    c = Canvas(h, w, SNOW if winter else ID[choose(rng, FROM_ABOVE)])
    top = np.zeros(w, dtype=np.int64)  # the "horizon" lies above the top edge
    _water(c, rng, top, int(c.labels[0, 0]))
    _ground_details(c, rng, top)
    _things(c, rng, top, perspective=False)
    return c.labels


def _bands(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Two to four bands top to bottom with the sky below another (water above the sky, grass above it)."""
    k = choose(rng, BANDS)
    names = list(BAND_CLASSES)
    p = np.array([BAND_CLASSES[n] for n in names])
    order = [ID[names[int(i)]] for i in rng.choice(len(names), size=k - 1, replace=False, p=p / p.sum())]
    order.insert(int(rng.integers(1, k)), SKY)  # anywhere but on top
    c = Canvas(h, w, order[0])
    for row, cls in zip(np.sort(rng.uniform(0.15, 0.85, k - 1)), order[1:], strict=True):
        line = _split_line(c, rng, row * h, choose(rng, BAND_LINES))
        c.paint(c.below(line) | line, cls)
    for _ in range(choose(rng, BAND_THINGS)):
        y, x = rng.uniform(0.2 * h, h), rng.uniform(0, w)
        _thing(c, rng, choose(rng, THING_KINDS), y, x, rng.uniform(0.5, 1.0))
    return c.labels


def _two_classes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    canvas = ID[choose(rng, CANVAS)]
    other = int(rng.choice([i for i in range(len(LANDSCAPE)) if i != canvas]))
    c = Canvas(h, w, canvas)
    if choose(rng, TWO_CLASS) == "split":
        kind = choose(rng, SPLIT)
        if kind == "upright":
            edge = rng.uniform(0.2, 0.8) * w + rng.uniform(-0.2, 0.2) * (c.yy - h / 2)
            c.paint(c.xx >= edge, other)
        else:
            line = _split_line(c, rng, rng.uniform(0.2, 0.8) * h, kind)
            c.paint(c.below(line) | line, other)
        return c.labels
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = h * rng.uniform(0.08, 0.3), w * rng.uniform(0.08, 0.3)
        shape = choose(rng, SHAPES)
        if shape == "ellipse":
            mask = c.ellipse(cy, cx, ry, rx, rng.uniform(-0.5, 0.5))
        elif shape == "rectangle":
            mask = c.rect(cy - ry, cy + ry, cx - rx, cx + rx)
        elif shape == "polygon":
            mask = c.polygon(_ring(rng, cy, cx, ry, rx, int(rng.integers(3, 8))))
        elif shape == "blob":
            mask = c.blob(rng, cy, cx, ry, rx)
        else:
            points = [(rng.uniform(0, h), rng.uniform(0, w)) for _ in range(int(rng.integers(2, 5)))]
            mask = c.stroke(points, max(1.0, h * rng.uniform(0.02, 0.06)))
        c.paint(mask, other)
    return c.labels


# -- landscape features -----------------------------------------------------------------------------------------


def _split_line(c: Canvas, rng: np.random.Generator, row: float, kind: str) -> np.ndarray:
    """A line across the canvas at `row` (the line tool level or askew, or a wavy brush stroke), 2 px or more."""
    wavy = c.h * rng.uniform(0.01, 0.05) if kind == "wavy" else 0.0
    tilt = rng.uniform(-0.15, 0.15) * c.h / c.w if kind == "askew" else 0.0
    radius = max(1.0, c.h * rng.uniform(*HORIZON_WIDTH) / 2)
    return c.stroke(c.across(rng, row, wavy, tilt), radius)


def _horizon(c: Canvas, rng: np.random.Generator, ground: int) -> np.ndarray:
    """Draw the horizon line and fill the ground in under it; returns each column's first horizon row."""
    line = _split_line(c, rng, c.h * rng.uniform(*HORIZON_ROWS), choose(rng, HORIZON))
    edge = ground
    if rng.random() < EDGE_LINE:
        edge = int(rng.choice([cls for cls in (HILL, DIRT, SAND, GRASS, MOUNTAIN) if cls != ground]))
    c.paint(c.below(line), ground)
    c.paint(line, edge)
    return np.where(line.any(axis=0), line.argmax(axis=0), c.h).astype(np.int64)


def _span(top: np.ndarray, x0: float, x1: float) -> np.ndarray:
    """The columns x0..x1 of `top`, clipped to the canvas (at least one column)."""
    w = len(top)
    a = int(np.clip(np.floor(x0), 0, w - 1))
    return top[a : max(a + 1, int(np.clip(np.ceil(x1), 0, w)))]


def _mountains(c: Canvas, rng: np.random.Generator, top: np.ndarray, winter: bool) -> None:
    """Triangles or polygons standing on the horizon (their base a little into the ground), some snow-capped."""
    for _ in range(choose(rng, MOUNTAINS)):
        px = rng.uniform(0.05, 0.95) * c.w
        x0, x1 = px - c.w * rng.uniform(0.1, 0.35), px + c.w * rng.uniform(0.1, 0.35)
        base = float(min(_span(top, x0, x1).max(), c.h)) + 1.0 + rng.uniform(0.0, 0.02) * c.h
        py = base - rng.uniform(0.1, 0.9) * max(base - 0.05 * c.h, 0.1 * c.h)
        points: list[Point] = [(base, x0)]
        if rng.random() < TRIANGLE:
            points.append((py, px))
        else:  # a ridge: corners up the left flank and down the right one, jittered off the straight lines
            for a, b, peak_last in ((x0, px, True), (px, x1, False)):
                for t in np.sort(rng.uniform(0.15, 0.85, int(rng.integers(1, 4)))):
                    rise = t if peak_last else 1.0 - t  # 0 at the base … 1 at the peak
                    y = base + (py - base) * rise + rng.uniform(-0.08, 0.08) * (base - py)
                    points.append((float(np.clip(y, py, base)), a + (b - a) * t))
                if peak_last:
                    points.append((py, px))
        points.append((base, x1))
        mask = c.paint(c.polygon(points), MOUNTAIN)
        if mask.any() and rng.random() < (SNOW_CAP_WINTER if winter else SNOW_CAP):
            _snow_cap(c, rng, mask, base)


def _snow_cap(c: Canvas, rng: np.random.Generator, mountain: np.ndarray, base: float) -> None:
    """The top of a mountain in snow, down to a zigzag line: a smaller polygon, or the fill tool above it."""
    rows = np.flatnonzero(mountain.any(axis=1))
    peak = int(rows[0])
    cut = int(peak + rng.uniform(0.2, 0.45) * (min(base, c.h) - peak))
    cols = np.flatnonzero(mountain[min(cut, c.h - 1)])
    if cut <= peak or cols.size == 0:
        return
    xl, xr = float(cols[0]), float(cols[-1])
    teeth = int(rng.integers(1, 4))
    xs = np.linspace(xl, xr, 2 * teeth + 1)
    depth = (cut - peak) * rng.uniform(0.1, 0.35)
    zigzag = [(cut + (depth if i % 2 else 0.0), float(x)) for i, x in enumerate(xs)]
    if choose(rng, CAP) == "polygon":
        peak_x = float(np.flatnonzero(mountain[peak]).mean())
        spill = 1.5 if rng.random() < CAP_SPILL else 0.0  # px the cap reaches past the mountain's outline
        over = (MOUNTAIN, SKY, CLOUD) if spill else (MOUNTAIN,)
        zigzag[0], zigzag[-1] = (cut, xl - spill), (cut, xr + spill)
        c.paint(c.polygon([(peak - spill, peak_x), *zigzag[::-1]]), SNOW, over)
    else:
        ends = [(zigzag[0][0], xl - c.w), *zigzag, (zigzag[-1][0], xr + c.w)]
        line = c.stroke(ends, 1.0)
        above = np.maximum.accumulate(line[::-1], axis=0)[::-1]
        c.paint(mountain & above, SNOW)


def _hills(c: Canvas, rng: np.random.Generator, top: np.ndarray, winter: bool) -> None:
    for _ in range(choose(rng, HILLS)):
        cx = rng.uniform(0, c.w)
        ry, rx = c.h * rng.uniform(0.04, 0.14), c.w * rng.uniform(0.15, 0.45)
        cy = float(_span(top, cx, cx + 1)[0]) + rng.uniform(0.0, 0.4) * ry
        mask = c.ellipse(cy, cx, ry, rx)
        if rng.random() < HUMP_ONLY:
            mask &= c.yy < cy
        c.paint(mask, SNOW if winter and rng.random() < SNOWY_HILL else HILL)


def _water(c: Canvas, rng: np.random.Generator, top: np.ndarray, ground: int) -> None:
    """A lake (ellipse), the sea (a band under the horizon down to a shore line) or a river (brush stroke)."""
    kind = choose(rng, WATER_BODIES)
    if kind == "none" or ground == WATER:
        return
    under = c.yy >= top[None, :]  # the far shore is cut flat by the horizon
    hz = float(np.median(top))
    kind = "lake" if kind == "sea" and hz <= 0 else kind  # seen from above, a sea is a big lake
    depth = max(c.h - hz, 1.0)
    if kind == "lake":
        cy, cx = hz + depth * rng.uniform(0.15, 0.75), rng.uniform(0.1, 0.9) * c.w
        ry, rx = depth * rng.uniform(0.08, 0.25), c.w * rng.uniform(0.12, 0.4)
        if rng.random() < LAKE_RIM:
            c.paint(c.ellipse(cy, cx, 1.25 * ry + 1, 1.12 * rx + 1) & under, SAND, GROUND_IDS)
        c.paint(c.ellipse(cy, cx, ry, rx) & under, WATER)
    elif kind == "sea":
        beach = rng.random() < BEACH
        wavy = c.h * rng.uniform(0.01, 0.04) if rng.random() < WAVY_SHORE else 0.0
        row = hz + depth * rng.uniform(0.2, 0.6)
        shore = c.stroke(c.across(rng, row, wavy), max(1.0, 0.05 * depth) if beach else 1.0)
        above = np.maximum.accumulate(shore[::-1], axis=0)[::-1] & ~shore
        c.paint(above & under, WATER)
        c.paint(shore & under, SAND if beach else WATER)
    else:  # a river from the horizon to the bottom edge; sometimes a second, wider stroke where it is near
        radius = max(1.0, c.h * rng.uniform(0.015, 0.05))
        x = rng.uniform(0.15, 0.85) * c.w
        points: list[Point] = [(float(_span(top, x, x + 1)[0]) + radius, x)]
        for t in np.linspace(0.0, 1.0, int(rng.integers(3, 6)))[1:]:
            x = float(np.clip(x + rng.normal(0, 0.15 * c.w * t + 1), 0, c.w))
            points.append((hz + t * (depth + radius), x))
        c.paint(c.stroke(points, radius), WATER)
        if rng.random() < RIVER_WIDENS:
            c.paint(c.stroke(points[-2:], 1.6 * radius), WATER)


def _ground_point(c: Canvas, rng: np.random.Generator, top: np.ndarray) -> tuple[float, float]:
    """Where a person puts a thing down: a ground pixel under the horizon, or (ANYWHERE, or no ground) any."""
    ok = c.has(GROUND_IDS) & (c.yy > top[None, :])
    idx = np.flatnonzero(ok)
    if idx.size == 0 or rng.random() < ANYWHERE:
        x = rng.uniform(0, c.w)
        return rng.uniform(min(float(_span(top, x, x + 1)[0]), c.h - 1), c.h), x
    y, x = divmod(int(idx[rng.integers(idx.size)]), c.w)
    return float(y), float(x)


def _nearness(c: Canvas, top: np.ndarray, y: float, x: float) -> float:
    """0 on the horizon … 1 at the bottom edge, for the perspective scale of a thing standing at (y, x)."""
    hz = float(_span(top, x, x + 1)[0])
    return float(np.clip((y - hz) / max(c.h - hz, 1.0), 0.0, 1.0))


def _ground_details(c: Canvas, rng: np.random.Generator, top: np.ndarray) -> None:
    """Brush-stroke paths, flower patches (blobs) and bushes (blobs or ellipses)."""
    hz = float(np.median(top))
    for _ in range(choose(rng, PATHS)):
        far = (hz + (c.h - hz) * rng.uniform(0.05, 0.3), rng.uniform(0.1, 0.9) * c.w)
        points: list[Point] = [(c.h + 2.0, rng.uniform(0.1, 0.9) * c.w)]
        for _ in range(int(rng.integers(0, 3))):
            t = rng.uniform(0.3, 0.7)
            points.append((points[-1][0] + t * (far[0] - points[-1][0]), rng.uniform(0.1, 0.9) * c.w))
        points.append(far)
        over = None if rng.random() < FORD else GROUND_IDS
        c.paint(c.stroke(points, max(1.0, c.h * rng.uniform(0.008, 0.03))), ID[choose(rng, PATH_CLASS)], over)
    for _ in range(choose(rng, FLOWER_PATCHES)):
        y, x = _ground_point(c, rng, top)
        ry = (c.h - hz) * rng.uniform(0.04, 0.15) + 1
        c.paint(c.blob(rng, y, x, ry, ry * rng.uniform(1.5, 3.0)), FLOWERS, (GRASS, HILL, SAND, DIRT, SNOW))
    for _ in range(choose(rng, BUSHES)):
        y, x = _ground_point(c, rng, top)
        r = c.h * (0.02 + 0.06 * _nearness(c, top, y, x)) * rng.uniform(0.7, 1.4) + 1
        rx = r * rng.uniform(1.0, 2.0)
        mask = (
            c.blob(rng, y - 0.6 * r, x, r, rx)
            if rng.random() < BUSH_BLOB
            else c.ellipse(y - 0.6 * r, x, r, rx)
        )
        c.paint(mask, ID["bush"])


def _clouds(c: Canvas, rng: np.random.Generator, top: np.ndarray) -> None:
    sky_bottom = float(top.min())
    if sky_bottom < 0.1 * c.h:
        return
    for _ in range(choose(rng, CLOUDS)):
        cy, cx = rng.uniform(0.03, 0.8) * sky_bottom, rng.uniform(0, c.w)
        rx = c.w * rng.uniform(0.05, 0.2)
        mask = np.zeros((c.h, c.w), dtype=bool)
        for _ in range(int(rng.integers(1, 4))):
            dx, s = rng.uniform(-0.8, 0.8) * rx, rng.uniform(0.6, 1.0)
            ry = s * rx * rng.uniform(0.25, 0.6)
            mask |= c.ellipse(cy + rng.uniform(-0.15, 0.05) * rx, cx + dx, ry, s * rx)
        over = (SKY, CLOUD) if rng.random() < CLOUD_OVER_SKY else (SKY, CLOUD, MOUNTAIN, SNOW)
        c.paint(mask, CLOUD, over)


# -- things -----------------------------------------------------------------------------------------------------


def _things(c: Canvas, rng: np.random.Generator, top: np.ndarray, perspective: bool) -> None:
    """Trees, rocks and houses in the order a person puts them down (not sorted far to near)."""
    kinds = ["tree"] * choose(rng, TREES) + ["rock"] * choose(rng, ROCKS) + ["house"] * choose(rng, HOUSES)
    scale = rng.uniform(0.7, 1.3)  # this person's idea of how big things are
    for i in rng.permutation(len(kinds)):
        y, x = _ground_point(c, rng, top)
        s = scale * ((0.25 + 0.75 * _nearness(c, top, y, x)) if perspective else rng.uniform(0.5, 0.9))
        _thing(c, rng, kinds[int(i)], y, x, s)


def _thing(c: Canvas, rng: np.random.Generator, kind: str, y: float, x: float, s: float) -> None:
    """A tree, rock or house standing at (y, x), `s` its scale (1: about a third of the height for a tree)."""
    if kind == "tree":
        height = c.h * 0.32 * s * rng.uniform(0.7, 1.3) + 2
        c.paint(_tree(c, rng, y, x, height, height * rng.uniform(0.45, 0.8)), ID["tree"])
    elif kind == "rock":
        r = c.h * 0.05 * s * rng.uniform(0.6, 1.4) + 1
        if choose(rng, ROCK_SHAPES) == "ellipse":
            mask = c.ellipse(y - 0.5 * r, x, r, r * rng.uniform(1.0, 1.8)) & (c.yy <= y)
        else:
            mask = c.polygon([(min(py, y), px) for py, px in _ring(rng, y - 0.6 * r, x, r, 1.4 * r, 6)])
        c.paint(mask, ID["rock"])
    else:
        width = c.w * 0.16 * s * rng.uniform(0.7, 1.3) + 2
        walls_h = width * rng.uniform(0.5, 0.9)
        mask = c.rect(y - walls_h, y + 1, x - width / 2, x + width / 2)
        if rng.random() < ROOF:
            roof_h, over = walls_h * rng.uniform(0.4, 0.9), width * rng.uniform(0.0, 0.12)
            eaves = y - walls_h + 0.5
            peak = (eaves - roof_h, x + rng.uniform(-0.1, 0.1) * width)
            mask |= c.polygon([peak, (eaves, x + width / 2 + over), (eaves, x - width / 2 - over)])
        c.paint(mask, ID["house"])


def _tree(c: Canvas, rng: np.random.Generator, y: float, x: float, height: float, width: float) -> np.ndarray:
    """An ellipse, a blob, a rectangle, a lollipop (round crown on a trunk) or a pine (triangle on a trunk)."""
    shape = choose(rng, TREE_SHAPES)
    if shape == "ellipse":
        return c.ellipse(y - height / 2, x, height / 2, width / 2)
    if shape == "blob":
        return c.blob(rng, y - height / 2, x, height / 2, width / 2)
    if shape == "rectangle":
        return c.rect(y - height, y + 1, x - width / 2, x + width / 2)
    trunk_h = height * (rng.uniform(0.25, 0.4) if shape == "lollipop" else rng.uniform(0.1, 0.2))
    half = max(0.75, width * rng.uniform(0.06, 0.12))
    trunk = c.rect(y - trunk_h - 0.2 * height, y + 1, x - half, x + half + 0.5)  # reaches into the crown
    crown_h = height - trunk_h
    if shape == "lollipop":
        return trunk | c.ellipse(y - trunk_h - crown_h / 2, x, crown_h / 2, width / 2)
    bottom = y - trunk_h
    return trunk | c.polygon([(bottom - crown_h, x), (bottom, x + width / 2), (bottom, x - width / 2)])


def _ring(rng: np.random.Generator, cy: float, cx: float, ry: float, rx: float, n: int) -> list[Point]:
    """`n` corners around a centre at jittered angles and radii: a convex-ish polygon (a rock, a shape)."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(0.7, 1.1, n)
    return [
        (float(cy + ry * r * np.sin(a)), float(cx + rx * r * np.cos(a)))
        for a, r in zip(angles, radii, strict=True)
    ]
