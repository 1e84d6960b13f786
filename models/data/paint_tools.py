"""The studio's painting tools as pure functions on a label map, for the painted layout sampler
(`models.data.painted_layouts`): line and brush strokes, fill under a line, ellipses, rectangles, polygons and
blobs (a few round brush dabs).

Every tool returns the boolean mask of the pixels it covers (pixel centres at integer coordinates, y down,
lengths in pixels); `Canvas.paint` then puts one class on it, optionally only over some classes. Masks rather
than in-place edits, so a painter can clip a shape before it lands (clouds only on sky, a path only on grass),
as a person steers the brush by eye. The shapes are computed on the whole canvas: a map is a few dozen
strokes, and one vectorised pass per stroke costs less than cropping to boxes would save.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np

Point = tuple[float, float]  # (y, x) in pixels
K = TypeVar("K")


def choose(rng: np.random.Generator, weights: Mapping[K, float]) -> K:
    """One key of `weights`, drawn with probability proportional to its weight."""
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def class_table(classes: Sequence[int]) -> np.ndarray:
    """A 256-entry lookup that is True at `classes`, so `class_table(c)[labels]` is a mask."""
    lut = np.zeros(256, dtype=bool)
    lut[list(classes)] = True
    return lut


class Canvas:
    """A label map being painted: the ids and the pixel-centre grids the tools measure against."""

    def __init__(self, h: int, w: int, fill: int) -> None:
        self.h, self.w = h, w
        self.labels = np.full((h, w), fill, dtype=np.uint8)
        self.yy = np.arange(h, dtype=np.float32)[:, None]
        self.xx = np.arange(w, dtype=np.float32)[None, :]

    def paint(self, mask: np.ndarray, cls: int, over: Sequence[int] | None = None) -> np.ndarray:
        """Put `cls` on `mask` (only where the map holds one of `over`, if given); returns what was painted."""
        if over is not None:
            mask = mask & class_table(over)[self.labels]
        self.labels[mask] = cls
        return mask

    def has(self, classes: Sequence[int]) -> np.ndarray:
        return class_table(classes)[self.labels]

    # -- tools ------------------------------------------------------------------------------------------------

    def ellipse(self, cy: float, cx: float, ry: float, rx: float, angle: float = 0.0) -> np.ndarray:
        """An ellipse with radii (ry, rx), turned by `angle` radians."""
        dy, dx = self.yy - cy, self.xx - cx
        if angle:
            cos, sin = np.cos(angle), np.sin(angle)
            dy, dx = cos * dy - sin * dx, sin * dy + cos * dx
        return (dy / max(ry, 0.5)) ** 2 + (dx / max(rx, 0.5)) ** 2 <= 1.0

    def rect(self, y0: float, y1: float, x0: float, x1: float) -> np.ndarray:
        """Pixels with y0 ≤ y < y1 and x0 ≤ x < x1."""
        return (self.yy >= y0) & (self.yy < y1) & (self.xx >= x0) & (self.xx < x1)

    def polygon(self, points: Sequence[Point]) -> np.ndarray:
        """The inside of a closed polygon (even-odd rule: a ray to the right crosses an odd number of edges)."""
        inside = np.zeros((self.h, self.w), dtype=bool)
        for (y0, x0), (y1, x1) in zip(points, [*points[1:], points[0]], strict=True):
            if y0 == y1:
                continue  # a horizontal edge is never crossed by a horizontal ray
            # Half-open in y, so a vertex shared by two edges is crossed once.
            spans = (self.yy >= min(y0, y1)) & (self.yy < max(y0, y1))
            cross_x = x0 + (self.yy - y0) * (x1 - x0) / (y1 - y0)
            inside ^= spans & (self.xx < cross_x)
        return inside

    def stroke(self, points: Sequence[Point], radius: float) -> np.ndarray:
        """A round brush dragged along a polyline: pixels within `radius` of any segment (capsules)."""
        r2 = max(radius, 0.5) ** 2
        mask = np.zeros((self.h, self.w), dtype=bool)
        if len(points) == 1:
            points = [points[0], points[0]]
        for (ay, ax), (by, bx) in zip(points[:-1], points[1:], strict=True):
            vy, vx = by - ay, bx - ax
            length2 = vy * vy + vx * vx
            py, px = self.yy - ay, self.xx - ax
            t = np.clip((py * vy + px * vx) / length2, 0.0, 1.0) if length2 > 0 else np.zeros((1, 1))
            mask |= (py - t * vy) ** 2 + (px - t * vx) ** 2 <= r2
        return mask

    def blob(self, rng: np.random.Generator, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
        """A lumpy patch within about (ry, rx) of its centre: 3–6 overlapping dabs of a round brush."""
        mask = self.ellipse(cy, cx, 0.6 * ry, 0.6 * rx)
        for _ in range(int(rng.integers(3, 7))):
            a = rng.uniform(0, 2 * np.pi)
            dy, dx = 0.45 * ry * np.sin(a), 0.45 * rx * np.cos(a)
            s = rng.uniform(0.4, 0.6)
            mask |= self.ellipse(cy + dy, cx + dx, s * ry, s * rx)
        return mask

    def below(self, line: np.ndarray) -> np.ndarray:
        """What the fill tool covers when clicked under a line that spans the canvas: every pixel below the
        line's first pixel in its column (the line itself excluded)."""
        return np.maximum.accumulate(line, axis=0) & ~line

    def across(
        self, rng: np.random.Generator, y: float, wavy: float = 0.0, tilt: float = 0.0, points: int = 9
    ) -> list[Point]:
        """A polyline from beyond the left edge to beyond the right one around row `y`: straight (the line
        tool), tilted by `tilt` rows per column, or waving by up to `wavy` rows (two slow sine waves)."""
        xs = np.linspace(-0.05 * self.w, 1.05 * self.w, points if wavy else 2)
        ys = y + tilt * (xs - self.w / 2)
        if wavy:
            for cycles, share in ((rng.uniform(0.3, 1.2), 0.7), (rng.uniform(1.2, 3.0), 0.3)):
                ys = ys + share * wavy * np.sin(2 * np.pi * cycles * xs / self.w + rng.uniform(0, 2 * np.pi))
        return [(float(a), float(b)) for a, b in zip(ys, xs, strict=True)]
