"""The look and the drawing come back, in a real browser: a drawing keeps its style across a browser restart
whether the seed is locked or not, and autosave never stores a stroke that is unfinished or was cancelled.
"""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.frontend.studio import MODEL, Studio, capsule, mean_abs_diff

pytestmark = pytest.mark.browser


def test_the_style_comes_back_after_a_browser_restart_without_the_lock(browser: Browser, live_server) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    studio = Studio(context.new_page(), live_server.url)
    studio.open()
    page = studio.page
    page.locator("#seed-input").fill("777")
    page.locator("#seed-input").press("Enter")
    expect(page.locator("#seed-lock")).to_have_attribute("aria-pressed", "false")
    studio.pick_label("water")
    studio.stroke((4.5, 20.5), (26.5, 20.5))
    studio.wait_autosaved()
    seq = studio.wait_fresh_frame(0)
    picture, drawing = studio.picture(), studio.ids()
    assert seq > 0
    # A browser restart: sessionStorage is gone, localStorage (kept on disk) is all that is left.
    state = context.storage_state()
    context.close()

    context = browser.new_context(viewport={"width": 1280, "height": 760}, storage_state=state)
    again = Studio(context.new_page(), live_server.url)
    again.open()
    assert again.page.evaluate("collage.getStyle()") == {"seed": 777}
    np.testing.assert_array_equal(again.ids(), drawing)
    again.wait_fresh_frame(0)
    assert mean_abs_diff(again.picture(), picture) < 0.5
    assert studio.console_errors == [] and again.console_errors == []
    context.close()


def test_autosave_never_stores_a_stroke_in_progress_or_cancelled(page: Page, live_server) -> None:
    studio = Studio(page, live_server.url)
    studio.open()
    water = studio.pick_label("water")
    studio.set_brush(3)
    studio.stroke((4.5, 6.5), (26.5, 6.5))  # a finished stroke: its save is due 400 ms later
    finished = studio.ids()
    assert int((finished == water).sum()) > 40

    # A second stroke starts at once and is held for longer than the save delay, so the save falls inside it.
    house = studio.pick_label("house")
    mouse = page.mouse
    mouse.move(*studio.to_client(4.5, 20.5))
    mouse.down()
    mouse.move(*studio.to_client(26.5, 20.5), steps=6)
    page.wait_for_timeout(900)
    assert int((studio.ids() == house).sum()) > 40  # on screen, and sent to the server live
    for store in ("localStorage", "sessionStorage"):
        np.testing.assert_array_equal(studio.saved_ids(store), finished)

    # Escape cancels it: it is gone from the canvas and never reaches the stores.
    page.keyboard.press("Escape")
    mouse.up()
    np.testing.assert_array_equal(studio.ids(), finished)
    page.wait_for_timeout(600)
    for store in ("localStorage", "sessionStorage"):
        np.testing.assert_array_equal(studio.saved_ids(store), finished)
    # A browser killed now comes back to the finished drawing.
    studio.reload()
    np.testing.assert_array_equal(studio.ids(), finished)
    assert not (capsule(finished.shape, (4.5, 20.5), (26.5, 20.5), 1.5) & (studio.ids() == house)).any()
    assert studio.console_errors == []
    assert MODEL == studio.page.evaluate("collage.getModel()")


def test_switching_models_and_back_brings_back_each_drawing_with_its_own_style(
    page: Page, live_server
) -> None:
    studio = Studio(page, live_server.url)
    studio.open()
    page.locator("#seed-input").fill("777")
    page.locator("#seed-input").press("Enter")
    studio.wait_autosaved()
    page.locator("#model-select").select_option("tiny-spade-wide")
    page.wait_for_function("collage.getModel() === 'tiny-spade-wide'")
    page.locator("#seed-input").fill("5")
    page.locator("#seed-input").press("Enter")
    page.locator("#model-select").select_option(MODEL)
    page.wait_for_function(f"collage.getModel() === '{MODEL}'")
    page.wait_for_function("collage.getStyle().seed === 777")
    assert studio.console_errors == []
