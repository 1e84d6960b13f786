"""Crop geometry shared by class-generator training and composition: square, 2× context, padding, removal."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from common.crops import (
    Box,
    context_box,
    crop_padded,
    remove_instance,
    resize_square,
    square_box,
    tight_box,
)


def test_tight_square_and_context_boxes() -> None:
    mask = np.zeros((40, 50), bool)
    mask[10:16, 20:30] = True  # 6 high, 10 wide
    tight = tight_box(mask)
    assert tight == Box(10, 20, 16, 30)
    square = square_box(tight)
    assert (square.height, square.width) == (10, 10) and square == Box(8, 20, 18, 30)  # centre kept
    ctx = context_box(square)
    assert (ctx.height, ctx.width) == (20, 20) and ctx == Box(3, 15, 23, 35)
    # the square box is exactly the central half of the context box, also for odd sides
    for side in (7, 10, 13):
        sq = Box(5, 5, 5 + side, 5 + side)
        c = context_box(sq)
        assert (sq.y0 - c.y0, sq.x0 - c.x0) == (side // 2, side // 2) and c.height == 2 * side
    with pytest.raises(ValueError, match="empty"):
        tight_box(np.zeros((4, 4), bool))


def test_crops_outside_the_picture_are_padded_not_clipped() -> None:
    image = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    crop = crop_padded(image, Box(-2, 3, 4, 9), fill=7)
    assert crop.shape == (6, 6, 3)
    np.testing.assert_array_equal(crop[2:6, 0:3], image[0:4, 3:6])
    assert (crop[:2] == 7).all() and (crop[:, 3:] == 7).all()
    assert (crop_padded(image, Box(10, 10, 12, 12), fill=0) == 0).all()  # wholly outside: all padding


@pytest.mark.parametrize("removal", ["zeros", "blur"])
def test_removal_changes_only_the_instance(removal: str) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[20:40, 16:30] = True
    out = remove_instance(rgb, mask, removal)  # type: ignore[arg-type]
    np.testing.assert_array_equal(out[~mask], rgb[~mask])
    if removal == "zeros":
        assert (out[mask] == 0).all()
    else:  # only low frequencies remain: far less variation than the noise it replaced
        assert out[mask].astype(float).std() < 0.3 * rgb[mask].astype(float).std()


def test_resize_square_nearest_keeps_ids_and_masks_and_pictures_antialias() -> None:
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 14, (8, 8)).astype(np.uint8).repeat(8, 0).repeat(8, 1)  # 64² map of 8² cells
    small = resize_square(ids, 16, nearest=True)
    assert small.shape == (16, 16) and small.dtype == np.uint8
    np.testing.assert_array_equal(small, ids[::4, ::4])  # nearest: only ids the map has, cell-aligned here
    mask = ids == ids[0, 0]
    big = resize_square(mask, 128, nearest=True)
    assert big.dtype == bool
    np.testing.assert_array_equal(big, mask.repeat(2, 0).repeat(2, 1))
    assert resize_square(ids, 64, nearest=True) is ids  # already that side: untouched

    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: an antialiased resize averages them, nearest would alias
    down = resize_square(stripes, 16, nearest=False)
    assert down.shape == (16, 16, 3) and down.dtype == np.uint8
    assert np.abs(down[:, 2:-2].astype(int) - 128).max() <= 1  # Lanczos rings by ~10 at the two edge columns
    # Exactly PIL's Lanczos: the resize the class generators were trained with.
    picture = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    expected = Image.fromarray(picture).resize((24, 24), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(resize_square(picture, 24, nearest=False), np.asarray(expected))


def test_a_round_trip_through_a_small_box_keeps_more_detail_than_bilinear() -> None:
    """A box drawn at T² and pasted back at its own size: the resize must not blur what a perfect generator
    would draw (the judge's crop FD-seg of such houses was 9.66 with bilinear, 5.94 with Lanczos)."""
    y, x = np.mgrid[0:48, 0:48]
    detail = (127 + 60 * np.sin(x / 1.6) * np.cos(y / 2.1)).astype(np.uint8)  # texture near 32²'s limit
    picture = np.repeat(detail[..., None], 3, axis=2)

    def bilinear(a: np.ndarray, side: int) -> np.ndarray:
        return np.asarray(
            Image.fromarray(a).resize((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
        )

    ours = np.abs(resize_square(resize_square(picture, 32, False), 48, False).astype(int) - picture).mean()
    theirs = np.abs(bilinear(bilinear(picture, 32), 48).astype(int) - picture).mean()
    assert ours < 0.8 * theirs, (ours, theirs)
