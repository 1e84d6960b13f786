"""The colour → label id lookup that the dataset loaders and the server's label PNG decoder share."""

from __future__ import annotations

import numpy as np
import pytest

from common.colors import UnknownColorError, ids_from_colors

PALETTE = [(10, 20, 30), (200, 0, 0), (0, 200, 0), (10, 20, 31), (0, 0, 0)]


def test_round_trip_on_a_palette() -> None:
    ids = np.random.default_rng(0).integers(0, len(PALETTE), (7, 9)).astype(np.uint8)
    rgb = np.array(PALETTE, np.uint8)[ids]
    back = ids_from_colors(rgb, PALETTE)
    np.testing.assert_array_equal(back, ids)
    assert back.dtype == np.uint8
    alpha = np.dstack([rgb, np.full(ids.shape, 17, np.uint8)])  # RGBA: the alpha channel plays no part
    np.testing.assert_array_equal(ids_from_colors(alpha, PALETTE), ids)


def test_a_shared_colour_maps_to_its_first_id() -> None:
    # 20 entries: past the size where numpy's default quicksort is a (stable) insertion sort.
    palette = [(5, 5, 5), (9, 9, 9), (5, 5, 5), (1, 1, 1)] * 5
    rgb = np.array([[(5, 5, 5), (9, 9, 9), (1, 1, 1)]], np.uint8)
    np.testing.assert_array_equal(ids_from_colors(rgb, palette), [[0, 1, 3]])


def test_the_first_unknown_colour_is_reported_with_its_position() -> None:
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[2, 3] = (1, 2, 3)
    rgb[3, 0] = (9, 9, 9)  # later in row-major order: not the one reported
    with pytest.raises(UnknownColorError) as info:
        ids_from_colors(rgb, [(0, 0, 0), (200, 0, 0)])
    error = info.value
    assert (error.color, error.x, error.y) == ((1, 2, 3), 3, 2)
    assert str(error) == "unknown label colour (1, 2, 3) at (x=3, y=2)"
    assert isinstance(error, ValueError)


def test_only_colour_images_are_taken() -> None:
    with pytest.raises(ValueError, match="H×W×3"):
        ids_from_colors(np.zeros((4, 5), np.uint8), PALETTE)
