"""Fractal value noise built from separable cubic B-spline interpolation matrices.

One octave of 2-D value noise is `My @ G @ Mx.T`: a grid `G` of random values, smoothed along rows and columns by
interpolation matrices that hold four B-spline weights per output sample. Two small matrix products per octave are
far cheaper than per-pixel lattice lookups, and the matrices for evenly spaced samples are cached, so a 256² field
of five octaves costs about a millisecond. Sample positions may also be uneven (e.g. rows squeezed towards the
horizon for ground textures seen in perspective): every field is separable in its coordinates.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Each octave starts at its own fractional offset so that the lattices of different octaves never line up.
_OCTAVE_OFFSETS = (0.0, 0.371, 0.713, 0.157, 0.529, 0.887, 0.243, 0.641)


def interp_matrix(coords: np.ndarray) -> np.ndarray:
    """Interpolation matrix n×g for sample positions `coords` (lattice units, ≥ 0).

    Rows are cubic B-spline weights scaled so that each row has unit L2 norm: an octave built from unit normal
    lattice values then has unit variance at every sample, with no visible lattice contrast.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 1 or coords.size == 0:
        raise ValueError("coords must be a non-empty 1-D array")
    if coords.min() < 0:
        raise ValueError("coords must be ≥ 0")
    cell = np.floor(coords).astype(np.int64)
    f = coords - cell
    f2, f3 = f * f, f * f * f
    weights = (
        (1 - f) ** 3 / 6,
        (3 * f3 - 6 * f2 + 4) / 6,
        (-3 * f3 + 3 * f2 + 3 * f + 1) / 6,
        f3 / 6,
    )
    n = coords.size
    matrix = np.zeros((n, int(cell.max()) + 4), dtype=np.float64)
    rows = np.arange(n)
    for j, w in enumerate(weights):
        matrix[rows, cell + j] = w
    matrix /= np.sqrt((matrix * matrix).sum(axis=1, keepdims=True))
    return matrix.astype(np.float32)


@lru_cache(maxsize=192)
def _even_matrix(n: int, cell_px: float, offset: float) -> np.ndarray:
    """Cached matrix for n evenly spaced pixels with lattice cells `cell_px` pixels wide."""
    matrix = interp_matrix(offset + np.arange(n) / cell_px)
    matrix.setflags(write=False)
    return matrix


def _octave_matrix(coords: np.ndarray | None, n: int, cell_px: float, octave: int) -> np.ndarray:
    offset = _OCTAVE_OFFSETS[octave % len(_OCTAVE_OFFSETS)]
    if coords is None:
        # Cell sizes snap to 1/16-octave steps so that randomly sized fields still hit the cache.
        return _even_matrix(n, float(2.0 ** (np.round(np.log2(cell_px) * 16) / 16)), offset)
    return interp_matrix(offset + (coords - coords.min()) / cell_px)


def _octave_cells(cell: float, octaves: int, lacunarity: float, min_cell: float) -> list[float]:
    cells = [cell / lacunarity**o for o in range(octaves)]
    return [c for c in cells if c >= min_cell] or [max(cell, min_cell)]


def fbm(
    rng: np.random.Generator,
    shape: tuple[int, int],
    cell: float | tuple[float, float],
    octaves: int = 4,
    persistence: float = 0.5,
    lacunarity: float = 2.0,
    ys: np.ndarray | None = None,
    xs: np.ndarray | None = None,
) -> np.ndarray:
    """Fractal (fBm) value noise, H×W float32 with zero mean and unit variance at every pixel.

    cell: size of the coarsest lattice cell in pixels, or (cell_y, cell_x) for stretched (anisotropic) noise.
    ys, xs: optional sample positions in pixels along rows and columns (default 0..H-1 and 0..W-1); uneven ys
    give perspective-squeezed textures. Octaves finer than ~1.2 px are skipped: they would only alias.
    """
    h, w = shape
    cy, cx = cell if isinstance(cell, tuple) else (cell, cell)
    if ys is not None and len(ys) != h or xs is not None and len(xs) != w:
        raise ValueError("ys/xs must have H and W entries")
    cells_y = _octave_cells(float(cy), octaves, lacunarity, 1.2)
    cells_x = _octave_cells(float(cx), octaves, lacunarity, 1.2)
    n = min(len(cells_y), len(cells_x))
    out = np.zeros((h, w), dtype=np.float32)
    total = 0.0
    for o in range(n):
        my = _octave_matrix(ys, h, cells_y[o], o)
        mx = _octave_matrix(xs, w, cells_x[o], o)
        grid = rng.standard_normal((my.shape[1], mx.shape[1]), dtype=np.float32)
        amp = persistence**o
        out += amp * ((my @ grid) @ mx.T)
        total += amp * amp
    out *= np.float32(1.0 / np.sqrt(total))
    return out


def fbm1d(
    rng: np.random.Generator,
    n: int,
    cell: float,
    octaves: int = 4,
    persistence: float = 0.5,
    lacunarity: float = 2.0,
) -> np.ndarray:
    """1-D fractal value noise of n samples (float32, unit variance): ridge lines, shorelines, paths."""
    out = np.zeros(n, dtype=np.float32)
    total = 0.0
    for o, c in enumerate(_octave_cells(cell, octaves, lacunarity, 1.2)):
        m = _octave_matrix(None, n, c, o)
        amp = persistence**o
        out += amp * (m @ rng.standard_normal(m.shape[1], dtype=np.float32))
        total += amp * amp
    return out * np.float32(1.0 / np.sqrt(total))


def ridged(noise: np.ndarray, sharpness: float = 2.0) -> np.ndarray:
    """Ridged transform of unit-variance noise into [0, 1]: sharp crests where the noise crosses zero."""
    return np.clip(1.0 - np.abs(noise) / 2.0, 0.0, 1.0) ** sharpness
