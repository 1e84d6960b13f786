"""Instance ids for a label map that comes without them: a hand-painted map in the studio, a dataset pair
without an instance file, the procedural renderer's input. Shared so that the server feeds a generator the same
instance map its training data derived from the same labels."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage


def instances_from_labels(labels: np.ndarray, thing_ids: Iterable[int]) -> np.ndarray:
    """H×W label ids → H×W int32 instance ids: each 4-connected component of a thing class gets its own id,
    numbered 1..K class by class in `thing_ids` order (components in raster order within a class); 0 on stuff."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"label map must be H×W, got shape {labels.shape}")
    out = np.zeros(labels.shape, dtype=np.int32)
    next_id = 0
    for cid in thing_ids:
        mask = labels == cid
        if not mask.any():  # skips the labelling pass, the costly part, for classes not painted
            continue
        components, count = ndimage.label(mask)
        out[mask] = components[mask] + next_id
        next_id += count
    return out
