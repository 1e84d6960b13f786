"""Painting as landscape artists paint, in a real browser: strokes and shapes that begin or end off the canvas, the
filled shape tools and the object eraser, each compared pixel for pixel with the same rule written in numpy.

The map is the tiny model's 32² (about 12 screen pixels per label pixel); coordinates are label-map pixels, with
points kept ≥ 0.08 px away from any pixel centre's boundary so rounding in the browser cannot flip a pixel.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from playwright.sync_api import Page
from scipy import ndimage

from tests.frontend.studio import Studio, capsule

pytestmark = pytest.mark.browser

SHAPE = (32, 32)


@pytest.fixture
def studio(page: Page, live_server) -> Iterator[Studio]:
    studio = Studio(page, live_server.url)
    studio.open()
    studio.page.locator("#clear").click()  # all sky: every id a tool paints stands out
    yield studio
    assert studio.console_errors == []


def centres() -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]] + 0.5
    return xs, ys


def rect_mask(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    xs, ys = centres()
    return (xs >= min(x0, x1)) & (xs <= max(x0, x1)) & (ys >= min(y0, y1)) & (ys <= max(y0, y1))


def ellipse_mask(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    xs, ys = centres()
    rx, ry = max(abs(x1 - x0) / 2, 0.5), max(abs(y1 - y0) / 2, 0.5)
    return ((xs - (x0 + x1) / 2) / rx) ** 2 + ((ys - (y0 + y1) / 2) / ry) ** 2 <= 1


def polygon_mask(points: list[tuple[float, float]]) -> np.ndarray:
    """Even-odd rule on pixel centres (a horizontal ray to the right of each centre)."""
    xs, ys = centres()
    inside = np.zeros(SHAPE, bool)
    for (xi, yi), (xj, yj) in zip(points, points[1:] + points[:1], strict=True):
        crosses = (yi > ys) != (yj > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = xi + (ys - yi) * (xj - xi) / (yj - yi)
        inside ^= crosses & (xs < x_at)
    return inside


def on_page_margin(studio: Studio, x: float, y: float) -> None:
    """The point (x, y) of the map lies off the canvas, on the page around it (not on a control)."""
    cx, cy = studio.to_client(x, y)
    where = studio.page.evaluate(
        """([x, y]) => {
            const el = document.elementFromPoint(x, y);
            return el ? [el.tagName, el.closest('.surface, button, .toolbar, .sidebar') !== null] : null;
        }""",
        [cx, cy],
    )
    assert where is not None and not where[1], where


def test_a_stroke_from_below_the_canvas_paints_its_part_inside(studio: Studio) -> None:
    water = studio.pick_label("water")
    studio.set_brush(3)
    start, end = (6.5, 34.5), (20.5, 12.5)  # starts 2.5 px below the map, on the caption under it
    on_page_margin(studio, *start)
    studio.stroke(start, end, steps=12)
    expected = np.where(capsule(SHAPE, start, end, 1.5), water, 0)
    np.testing.assert_array_equal(studio.ids(), expected)
    assert int((expected == water).sum()) > 60


def test_a_horizon_drawn_edge_to_edge_holds_the_fill_above_it(studio: Studio) -> None:
    """The line tool from the page left of the canvas to the page right of it, then a fill of the sky above:
    the horizon is whole, so the fill stays above it."""
    grass = studio.pick_label("grass")
    studio.set_brush(2)
    studio.page.keyboard.press("l")
    start, end = (-1.7, 16.3), (33.1, 19.3)  # the gap between the two panes is about 20 screen px
    on_page_margin(studio, *start)
    on_page_margin(studio, *end)
    studio.stroke(start, end, steps=8)
    horizon = capsule(SHAPE, start, end, 1.0)
    np.testing.assert_array_equal(studio.ids(), np.where(horizon, grass, 0))
    assert horizon[:, 0].any() and horizon[:, -1].any()  # it reaches both edges

    water = studio.pick_label("water")
    studio.page.keyboard.press("f")
    studio.click_at(10.5, 3.5)
    regions, count = ndimage.label(~horizon)
    assert count == 2  # above and below the horizon
    above = regions == regions[3, 10]
    np.testing.assert_array_equal(studio.ids(), np.where(horizon, grass, np.where(above, water, 0)))
    assert int((studio.ids() == 0).sum()) > 300  # the sky below the horizon is untouched

    # A fill clicked on the page outside the canvas does nothing.
    before = studio.ids()
    studio.click_at(-1.5, 10.5)
    np.testing.assert_array_equal(studio.ids(), before)


def test_rectangle_and_ellipse_fill_the_dragged_box_clipped_to_the_canvas(studio: Studio) -> None:
    house = studio.pick_label("house")
    studio.page.keyboard.press("u")
    a, b = (-1.6, -1.6), (9.3, 7.3)  # from the page above-left of the canvas
    on_page_margin(studio, *a)
    studio.stroke(a, b, steps=5)
    ids = np.where(rect_mask(*a, *b), house, 0)
    np.testing.assert_array_equal(studio.ids(), ids)
    assert int((ids == house).sum()) == 9 * 7  # centres 0.5 … 8.5 and 0.5 … 6.5

    tree = studio.pick_label("tree")
    studio.page.keyboard.press("c")
    a, b = (12.2, 8.3), (27.8, 30.2)
    studio.stroke(a, b, steps=5)
    ids = np.where(ellipse_mask(*a, *b), tree, ids)
    np.testing.assert_array_equal(studio.ids(), ids)

    # Shift makes the rectangle a square: a drag 6 wide and 3 high paints 6×6 from the start corner.
    rock = studio.pick_label("rock")
    studio.page.keyboard.press("u")
    studio.page.keyboard.down("Shift")
    studio.stroke((0.2, 24.2), (6.2, 27.2), steps=4)
    studio.page.keyboard.up("Shift")
    ids = np.where(rect_mask(0.2, 24.2, 6.2, 30.2), rock, ids)
    np.testing.assert_array_equal(studio.ids(), ids)
    # Each shape is one undo step.
    studio.page.keyboard.press("Control+z")
    assert int((studio.ids() == rock).sum()) == 0


def test_a_polygon_clicked_together_fills_on_enter_and_escape_cancels_one(studio: Studio) -> None:
    mountain = studio.pick_label("mountain")
    studio.page.keyboard.press("p")
    # A triangle mountain whose left foot is on the page left of the canvas.
    points = [(-2.3, 28.2), (14.2, 4.3), (30.2, 28.2)]
    on_page_margin(studio, *points[0])
    for p in points:
        studio.click_at(*p)
    assert int((studio.ids() == mountain).sum()) == 0  # nothing painted until it is closed
    studio.page.keyboard.press("Enter")
    expected = np.where(polygon_mask(points), mountain, 0)
    np.testing.assert_array_equal(studio.ids(), expected)
    assert int((expected == mountain).sum()) > 250

    # A click on the first corner closes it too; Escape drops one in progress.
    snow = studio.pick_label("snow")
    studio.page.keyboard.press("p")
    cap = [(14.2, 4.3), (18.3, 10.2), (10.2, 10.2)]
    for p in [*cap, cap[0]]:
        studio.click_at(*p)
    expected = np.where(polygon_mask(cap), snow, expected)
    np.testing.assert_array_equal(studio.ids(), expected)
    for p in [(2.2, 2.2), (8.3, 2.2), (5.2, 8.3)]:
        studio.click_at(*p)
    studio.page.keyboard.press("Escape")
    studio.page.keyboard.press("Enter")
    np.testing.assert_array_equal(studio.ids(), expected)


def test_the_object_eraser_fills_a_tree_from_its_surroundings_and_leaves_no_hole(studio: Studio) -> None:
    grass = studio.pick_label("grass")
    studio.page.keyboard.press("u")
    studio.stroke((-1.5, 12.2), (33.5, 33.5), steps=4)  # grass over the lower part
    tree = studio.pick_label("tree")
    studio.page.keyboard.press("c")
    studio.stroke((6.2, 10.2), (14.8, 24.8), steps=4)  # a tree standing in the grass, its top in the sky
    water = studio.pick_label("water")
    studio.page.keyboard.press("u")
    studio.stroke((20.2, 20.2), (27.8, 27.8), steps=4)  # a pond that must stay
    before = studio.ids()
    tree_pixels = before == tree
    assert int(tree_pixels.sum()) > 40

    studio.page.keyboard.press("x")
    studio.click_at(10.5, 20.5)
    after = studio.ids()
    # Around the tree: grass on most sides, a little sky above; grass wins, and nothing else moves.
    np.testing.assert_array_equal(after, np.where(tree_pixels, grass, before))
    assert int((after == tree).sum()) == 0 and int((after == water).sum()) == int((before == water).sum())
    studio.page.keyboard.press("Control+z")
    np.testing.assert_array_equal(studio.ids(), before)


def test_a_polygon_closes_with_a_double_click_off_the_canvas(studio: Studio) -> None:
    mountain = studio.pick_label("mountain")
    studio.page.keyboard.press("p")
    points = [(4.2, 26.2), (14.2, 4.3), (33.1, 26.2)]  # the last corner on the page right of the canvas
    on_page_margin(studio, *points[-1])
    for p in points[:-1]:
        studio.click_at(*p)
    studio.page.mouse.dblclick(*studio.to_client(*points[-1]))
    np.testing.assert_array_equal(studio.ids(), np.where(polygon_mask(points), mountain, 0))
    assert int((studio.ids() == mountain).sum()) > 150


def test_a_polygon_corner_on_the_picture_beside_the_labels_lands_off_the_right_edge(studio: Studio) -> None:
    """A mountain range running off the right edge: in the side-by-side view the corner beyond the edge is a click
    on the picture, which adds the corner there (and a click on the picture with no polygon going paints nothing)."""
    before = studio.ids()
    studio.page.keyboard.press("p")
    studio.click_at(40.2, 10.2)
    assert studio.page.evaluate("collage.polygonCorners()") == 0  # no polygon going: the picture starts none
    np.testing.assert_array_equal(studio.ids(), before)

    mountain = studio.pick_label("mountain")
    studio.page.keyboard.press("p")
    points = [(4.2, 28.2), (20.2, 6.3), (40.2, 28.2)]  # the last corner on the picture pane
    cx, cy = studio.to_client(*points[-1])
    on_picture = studio.page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.closest('#output-surface') !== null", [cx, cy]
    )
    assert on_picture
    for p in points:
        studio.click_at(*p)
    studio.page.keyboard.press("Enter")
    np.testing.assert_array_equal(studio.ids(), np.where(polygon_mask(points), mountain, 0))
    assert polygon_mask(points)[:, -1].any()  # it reaches the right edge
