"""What the renderer reads off a label map before painting: validated maps, class tables, the horizon, and the
array helpers (blurs, shifts, vertical runs) its painting passes share. Split from `render.py` to keep it short.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from common.instances import instances_from_labels
from models.data.layout import CLOUD, DIRT, FLOWERS, GRASS, HILL, MOUNTAIN, SAND, SKY, SNOW, THING_IDS, WATER
from models.labels import LANDSCAPE

N_LABELS = len(LANDSCAPE)
LUMA = np.array([0.3, 0.59, 0.11], dtype=np.float32)


def class_table(*classes: int) -> np.ndarray:
    """A 256-entry lookup: True at the given class ids, so `class_table(...)[labels]` is a mask."""
    lut = np.zeros(256, dtype=bool)
    lut[list(classes)] = True
    return lut


IS_THING = class_table(*THING_IDS)
IS_FAR = class_table(SKY, CLOUD, MOUNTAIN, SNOW)
IS_FLAT = class_table(GRASS, FLOWERS, SAND, DIRT, WATER)
# How far into the haze a class may fade at most (the rest is capped by its distance): sky and water get their own.
HAZE_CAP = np.ones(256, dtype=np.float32)
HAZE_CAP[[SKY, CLOUD, WATER]] = 0.0
HAZE_CAP[HILL] = 0.6


def checked_maps(label_map: np.ndarray, instance_map: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Validated (uint8 labels, int32 instances); thing pixels without an instance get connected components."""
    label_map = np.asarray(label_map)
    if label_map.ndim != 2 or min(label_map.shape) < 8:
        raise ValueError(f"label map must be H×W with H, W ≥ 8, got shape {label_map.shape}")
    if not np.issubdtype(label_map.dtype, np.integer):
        raise ValueError(f"label map must hold integer ids, got dtype {label_map.dtype}")
    lo, hi = int(label_map.min()), int(label_map.max())
    if lo < 0 or hi >= N_LABELS:
        bad = hi if hi >= N_LABELS else lo
        raise ValueError(f"label id {bad} is not a landscape id (valid: 0..{N_LABELS - 1})")
    labels = label_map.astype(np.uint8)
    if instance_map is None:
        return labels, instances_from_labels(labels, THING_IDS)
    instances = np.asarray(instance_map)
    if instances.shape != labels.shape or not np.issubdtype(instances.dtype, np.integer):
        raise ValueError(
            f"instance map must be integer ids shaped like the label map {labels.shape}, "
            f"got {instances.dtype} {instances.shape}"
        )
    thing = IS_THING[labels]
    instances = np.where(thing, instances, 0).astype(np.int64)
    missing = thing & (instances <= 0)
    if missing.any():
        derived = instances_from_labels(np.where(missing, labels, 0), THING_IDS)
        instances = np.where(missing, derived + instances.max(), instances)
    # Renumber 1..K by (instance, class), so that an id spanning two classes becomes two instances and huge ids
    # cost nothing; an already compact single-class map keeps its order.
    key = np.where(thing, instances * N_LABELS + labels, 0)
    if int(key.max()) < 1 << 24:
        present = np.bincount(key.ravel()) > 0
        present[0] = True
        return labels, (np.cumsum(present) - 1).astype(np.int32)[key]
    compact = np.zeros(labels.shape, dtype=np.int32)
    compact[thing] = np.unique(key[thing], return_inverse=True)[1].ravel() + 1
    return labels, compact


def blur(a: np.ndarray, size: float) -> np.ndarray:
    """Box blur applied twice along both image axes: a cheap Gaussian of σ ≈ 0.58·size."""
    n = max(int(round(size)), 1)
    for axis in (0, 1):
        a = ndimage.uniform_filter1d(ndimage.uniform_filter1d(a, n, axis=axis), n, axis=axis)
    return a


def shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`a` moved by (dy, dx) pixels, edges repeated (np.roll would wrap the opposite edge in)."""
    h, w = a.shape
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return a[rows][:, cols]


def run_start(mask: np.ndarray) -> np.ndarray:
    """For every pixel, the first row of the vertical run of `mask` it belongs to (its column's local top)."""
    rows = np.arange(mask.shape[0], dtype=np.int32)[:, None]
    return np.maximum.accumulate(np.where(mask, -1, rows), axis=0) + 1


def run_end(mask: np.ndarray) -> np.ndarray:
    """For every pixel, one past the last row of its vertical run of `mask` (its column's local bottom)."""
    h = mask.shape[0]
    rows = np.arange(h, dtype=np.int32)[:, None]
    return np.minimum.accumulate(np.where(mask, h, rows)[::-1], axis=0)[::-1]


def horizon(labels: np.ndarray) -> float:
    """Row of the horizon: median, over columns whose top pixel is sky-side, of where that run ends."""
    far = IS_FAR[labels]
    valid = far[0]
    if not valid.any():
        return -0.15 * labels.shape[0]  # no sky at the top edge: looking down at the ground
    ends = np.argmin(far, axis=0).astype(np.float32)
    ends[far.all(axis=0)] = labels.shape[0]
    return float(np.median(ends[valid]))


def unit(a: np.ndarray) -> np.ndarray:
    return ((a - a.mean()) / (a.std() + 1e-6)).astype(np.float32)
