"""Seeing and learning the studio, in a real browser: zoom and pan move both canvases together with crisp pixels,
the tools are named, `?` lists every shortcut, a first visit gets one hint, preset chips show the server's
previews, and a phone shows the picture beside the label canvas with nothing under the status bar.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.frontend.studio import Studio, assert_caption_fits, box

pytestmark = pytest.mark.browser

TOOL_KEYS = {  # frontend/help.js
    "brush": "B",
    "line": "L",
    "rect": "U",
    "ellipse": "C",
    "polygon": "P",
    "fill": "F",
    "eyedropper": "I",
    "eraser": "E",
    "object": "X",
    "reroll": "O",
}


@pytest.fixture
def studio(page: Page, live_server) -> Iterator[Studio]:
    studio = Studio(page, live_server.url)
    studio.open()
    yield studio
    assert studio.console_errors == []


def placement(page: Page, canvas: str, surface: str) -> tuple[float, float, float, float]:
    """Where `canvas` sits inside `surface`: x, y, width, height in CSS pixels."""
    c, s = box(page, canvas), box(page, surface)
    return c["x"] - s["x"], c["y"] - s["y"], c["width"], c["height"]


def assert_aligned(page: Page) -> None:
    """A label pixel covers the same place in its pane as the picture pixel under it does in the other pane."""
    labels = placement(page, "#label-canvas", "#label-surface")
    picture = placement(page, "#output-canvas", "#output-surface")
    np.testing.assert_allclose(labels, picture, atol=0.5)


def test_zoom_and_pan_move_both_canvases_together_and_painting_follows(studio: Studio) -> None:
    page = studio.page
    page.locator("#clear").click()
    surface = box(page, "#label-surface")
    page.mouse.move(surface["x"] + surface["width"] * 0.25, surface["y"] + surface["height"] * 0.25)
    page.mouse.wheel(0, -400)
    page.wait_for_function("collage.getZoom().zoom > 1.5")
    zoom = page.evaluate("collage.getZoom()")
    canvas = box(page, "#label-canvas")
    assert canvas["width"] == pytest.approx(surface["width"] * zoom["zoom"], rel=1e-3)
    assert_aligned(page)
    for canvas_id in ("#label-canvas", "#output-canvas"):  # crisp, not smoothed
        assert page.locator(canvas_id).evaluate("el => getComputedStyle(el).imageRendering") == "pixelated"
    expect(page.locator("#zoom-value")).to_have_text(f"{round(zoom['zoom'] * 100)}%")

    # A dab lands on the label pixel under the pointer at this zoom.
    water = studio.pick_label("water")
    studio.set_brush(1)
    studio.click_at(9.5, 11.5)
    ids = studio.ids()
    assert ids[11, 9] == water and int((ids == water).sum()) == 1

    # Space+drag pans both canvases and paints nothing.
    page.keyboard.down("Space")
    page.mouse.move(surface["x"] + 200, surface["y"] + 200)
    page.mouse.down()
    page.mouse.move(surface["x"] + 260, surface["y"] + 230, steps=5)
    page.mouse.up()
    page.keyboard.up("Space")
    panned = page.evaluate("collage.getZoom()")
    assert panned["zoom"] == zoom["zoom"] and panned["x"] > zoom["x"] and panned["y"] > zoom["y"]
    np.testing.assert_array_equal(studio.ids(), ids)
    assert_aligned(page)
    # The pixel under the middle of the surface, wherever the pan put it.
    canvas = box(page, "#label-canvas")
    x = int((surface["x"] + surface["width"] / 2 - canvas["x"]) / canvas["width"] * 32)
    y = int((surface["y"] + surface["height"] / 2 - canvas["y"]) / canvas["height"] * 32)
    grass = studio.pick_label("grass")
    studio.click_at(x + 0.5, y + 0.5)
    assert studio.ids()[y, x] == grass and int((studio.ids() == grass).sum()) == 1

    # Fit goes back to the whole canvas, under the pointer surface again.
    page.locator("#zoom-fit").click()
    assert page.evaluate("collage.getZoom()") == {"zoom": 1, "x": 0, "y": 0}
    np.testing.assert_allclose(
        placement(page, "#label-canvas", "#label-surface"),
        placement(page, "#overlay-canvas", "#label-surface"),
    )
    expect(page.locator("#zoom-fit")).to_be_disabled()


def test_tools_are_named_and_question_mark_lists_every_shortcut(studio: Studio) -> None:
    page = studio.page
    names = []
    for tool, key in TOOL_KEYS.items():
        button = page.locator(f"button[data-tool={tool}]")
        name = button.locator(".tool-name")
        expect(name).to_be_visible()
        names.append(name.inner_text())
        assert name.get_attribute("data-key") == key
    assert len(set(names)) == len(names) and all(names), names
    icon = "button[data-tool={}] use"
    assert page.locator(icon.format("brush")).get_attribute("href") != page.locator(
        icon.format("eyedropper")
    ).get_attribute("href")

    page.keyboard.press("?")
    dialog = page.locator("#help-dialog")
    expect(dialog).to_be_visible()
    keys = set(page.locator("#help-list kbd").all_inner_texts())
    assert set(TOOL_KEYS.values()) <= keys, keys
    for more in ("[", "]", "Ctrl+Z", "Esc", "Home", "N", "R", "V", "?"):
        assert more in keys, more
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # The dialog does not take shortcuts away: B still picks the brush.
    page.keyboard.press("l")
    page.keyboard.press("b")
    assert page.evaluate("collage.tool()") == "brush"


def test_a_first_visit_gets_one_hint(studio: Studio) -> None:
    hint = studio.page.locator("#first-hint")
    expect(hint).to_be_visible()
    hint.get_by_role("button", name="Got it").click()
    expect(hint).to_be_hidden()
    studio.reload()
    expect(hint).to_be_hidden()


def test_preset_chips_show_previews_rendered_by_the_server(studio: Studio) -> None:
    page = studio.page
    page.wait_for_function(
        "[...document.querySelectorAll('.preset-thumb')].every((img) => img.complete && img.naturalWidth > 0)"
    )
    means = page.evaluate(
        """() => [...document.querySelectorAll('.preset-thumb')].map((img) => {
            const c = document.createElement('canvas');
            c.width = img.naturalWidth;
            c.height = img.naturalHeight;
            const ctx = c.getContext('2d');
            ctx.drawImage(img, 0, 0);
            const d = ctx.getImageData(0, 0, c.width, c.height).data;
            let sum = 0;
            for (let i = 0; i < d.length; i += 4) sum += d[i] + 2 * d[i + 1] + 3 * d[i + 2];
            return sum / (d.length / 4);
        })"""
    )
    assert len(means) == 2 and abs(means[0] - means[1]) > 1, means  # winter and dusk look different


def test_a_phone_shows_the_picture_beside_the_labels_and_the_status_bar_covers_nothing(
    page: Page, live_server, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    studio = Studio(page, live_server.url)
    studio.open("?model=tiny-spade-wide")
    page.screenshot(path=tmp_path / "phone.png")
    labels, picture = box(page, "#label-surface"), box(page, "#output-surface")
    for found in (labels, picture):  # both in sight on load, without scrolling
        assert found["y"] >= 0 and found["y"] + found["height"] <= 844, found
        assert found["width"] >= 150, found
    assert labels["y"] == pytest.approx(picture["y"], abs=1) and labels["x"] < picture["x"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    # The status bar is part of the page: at no scroll position does it lie over a label or a tool.
    for y in (0, 400, 10_000):
        page.evaluate(f"window.scrollTo(0, {y})")
        status = box(page, ".statusbar")
        for target in page.locator(".swatch, button[data-tool]").all():
            found = target.bounding_box()
            assert found is not None
            apart = (
                found["y"] >= status["y"] + status["height"] or found["y"] + found["height"] <= status["y"]
            )
            assert apart, (target.inner_text(), found, status)
    page.evaluate("window.scrollTo(0, 0)")
    # In overlay and split the one canvas stays centred under its caption.
    for view in ("overlay", "split"):
        page.locator(f"button[data-view={view}]").click()
        surface = box(page, "#label-surface")
        assert surface["x"] == pytest.approx(390 - surface["x"] - surface["width"], abs=1), surface
        assert_caption_fits(page, ".pane-labels")
    page.locator("button[data-view=side]").click()
    before = studio.ids()
    studio.pick_label("water")
    page.evaluate("window.scrollTo(0, 0)")
    studio.stroke((4, 16), (28, 16))
    assert int((studio.ids() != before).sum()) > 0
    expect(page.locator("#output-surface")).to_be_in_viewport()
    assert re.match(r"^\d+%$", page.locator("#zoom-value").inner_text())
    assert studio.console_errors == []


def test_split_view_clips_at_the_divider_when_zoomed_and_keys_still_press_buttons(studio: Studio) -> None:
    page = studio.page
    page.locator("button[data-view=split]").click()
    surface = box(page, "#label-surface")
    page.mouse.move(surface["x"] + surface["width"] / 2, surface["y"] + surface["height"] / 2)
    page.mouse.wheel(0, -500)
    page.wait_for_function("collage.getZoom().zoom > 1.5")
    # The clip sits on the unzoomed frame of the label canvas, so it ends where the divider stands.
    clip = box(page, ".label-clip")
    np.testing.assert_allclose(
        [clip[k] for k in ("x", "y", "width", "height")], [surface[k] for k in ("x", "y", "width", "height")]
    )
    assert page.locator(".label-clip").evaluate("el => getComputedStyle(el).clipPath").startswith("inset(")
    divider = box(page, "#split-divider")
    assert divider["x"] + divider["width"] / 2 == pytest.approx(surface["x"] + surface["width"] / 2, abs=1)
    shot = np.asarray(
        Image.open(io.BytesIO(page.screenshot(clip=surface))).convert("RGB"), np.float32
    )  # labels left of the divider, picture right of it
    left, right = shot[:, : shot.shape[1] // 2 - 12], shot[:, shot.shape[1] // 2 + 12 :]
    assert (
        np.abs(np.diff(left, axis=1)).mean() < np.abs(np.diff(right, axis=1)).mean()
    )  # flat labels vs texture

    # Enter and Space press a focused button as anywhere else (no polygon is open, nothing to pan).
    page.locator("#layer-add").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Space")
    assert len(page.evaluate("collage.getLayers()")) == 3


def test_a_two_finger_pinch_zooms_both_canvases_and_a_one_finger_stroke_still_paints(
    browser: Browser, live_server
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 760}, has_touch=True)
    studio = Studio(context.new_page(), live_server.url)
    studio.open()
    page = studio.page
    page.locator("#clear").click()
    cdp = context.new_cdp_session(page)
    surface = box(page, "#label-surface")
    cx, cy = surface["x"] + surface["width"] / 2, surface["y"] + surface["height"] / 2

    def touch(kind: str, points: list[tuple[float, float]]) -> None:
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": kind, "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]},
        )

    before = studio.ids()
    touch("touchStart", [(cx - 40, cy)])
    touch("touchStart", [(cx - 40, cy), (cx + 40, cy)])
    for spread in range(50, 121, 10):
        touch("touchMove", [(cx - spread, cy), (cx + spread, cy)])
    touch("touchEnd", [])
    page.wait_for_function("collage.getZoom().zoom > 2")
    assert_aligned(page)
    np.testing.assert_array_equal(studio.ids(), before)  # the first finger's stroke was undone by the pinch

    water = studio.pick_label("water")
    studio.set_brush(1)
    x, y = studio.to_client(16.5, 16.5)
    touch("touchStart", [(x, y)])
    touch("touchMove", [(x + 1, y)])
    touch("touchEnd", [])
    assert studio.ids()[16, 16] == water
    assert studio.console_errors == []
    context.close()
