"""The painting app in a real browser (Debian chromium) against a real server with tiny exported models.

Label ids are read back through the page's read-only test hook `window.collage`; pictures are read from the
output canvas. Pointer input goes through Playwright's mouse, which fires real pointer events.
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, Route, WebSocket, WebSocketRoute, expect
from scipy import ndimage

from tests.frontend.studio import MODEL, Studio, assert_caption_fits, box, capsule, mean_abs_diff, nearest

pytestmark = pytest.mark.browser

# Chromium itself logs a refused websocket connection as a console error; only the restart test expects those.
SOCKET_REFUSED = re.compile(r"WebSocket connection to .* failed")
KEY_HINT = "The server needs an API key: open the page with ?api_key=…"


class PaintWire:
    """What crosses the paint socket, read off the wire: the size in each label map's header and the decoded size
    of each picture, by seq. Watch the page before it opens the socket."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.sent: dict[int, tuple[int, int]] = {}
        self.received: dict[int, tuple[int, int]] = {}
        page.on("websocket", self._watch)

    def _watch(self, ws: WebSocket) -> None:
        ws.on("framesent", self._sent)
        ws.on("framereceived", self._received)

    def _sent(self, payload: bytes | str) -> None:
        if isinstance(payload, bytes) and payload[0] == 0x01:
            _, seq, width, height = struct.unpack_from("<BIHH", payload)
            self.sent[seq] = (width, height)

    def _received(self, payload: bytes | str) -> None:
        if isinstance(payload, bytes) and payload[0] == 0x02:
            seq = struct.unpack_from("<I", payload, 1)[0]
            self.received[seq] = Image.open(io.BytesIO(payload[10:])).size

    def picture_size(self, seq: int) -> tuple[int, int]:
        """The natural (width, height) of the picture answering `seq`, once Playwright has passed it on."""
        for _ in range(100):
            if seq in self.received:
                return self.received[seq]
            self.page.wait_for_timeout(20)
        raise AssertionError(f"no picture for seq {seq} on the wire; got {sorted(self.received)}")


def solid_photo(path: Path, rgb: tuple[int, int, int]) -> Path:
    Image.fromarray(np.full((48, 64, 3), rgb, np.uint8)).save(path)
    return path


class HeldUploads:
    """Style uploads kept waiting until the test lets each go, so they can finish in any order."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.routes: list[Route] = []
        page.route("**/api/v1/styles", self._hold)

    def _hold(self, route: Route) -> None:
        self.routes.append(route)

    def wait(self, count: int) -> None:
        """Wait until `count` uploads have been sent in all."""
        while len(self.routes) < count:
            self.page.wait_for_timeout(20)

    def release(self, index: int) -> None:
        """Let upload `index` through and give the page time to take, or ignore, its answer."""
        with self.page.expect_response("**/api/v1/styles"):
            self.routes[index].continue_()
        self.page.wait_for_timeout(300)


@pytest.fixture
def studio(page: Page, live_server) -> Iterator[Studio]:
    studio = Studio(page, live_server.url)
    studio.open()
    yield studio
    assert studio.console_errors == []


def test_palette_has_one_swatch_per_server_label(studio: Studio, live_server) -> None:
    labels = live_server.get_json(f"/api/v1/models/{MODEL}")["labels"]
    swatches = studio.page.locator(".swatch")
    expect(swatches).to_have_count(len(labels))
    for i, label in enumerate(labels):
        swatch = swatches.nth(i)
        assert swatch.get_attribute("data-label-id") == str(label["id"])
        expect(swatch.locator(".name")).to_have_text(label["name"])
        r, g, b = label["color"]
        expect(swatch.locator(".chip")).to_have_css("background-color", f"rgb({r}, {g}, {b})")
    # Number keys pick labels: 3 is the third label, Shift+3 the thirteenth.
    studio.page.keyboard.press("Digit3")
    assert studio.page.evaluate("collage.currentLabel()") == labels[2]["id"]
    studio.page.keyboard.press("Shift+Digit3")
    assert studio.page.evaluate("collage.currentLabel()") == labels[12]["id"]
    # The starter scene is on the canvas and its picture is shown without any painting.
    ids = studio.ids()
    assert ids.shape == (32, 32)
    assert len(np.unique(ids)) >= 6
    assert studio.seq() >= 1


def test_stroke_changes_exactly_the_expected_ids(studio: Studio) -> None:
    before = studio.ids()
    water = studio.pick_label("water")
    studio.set_brush(3)
    # An L-shaped stroke along pixel centres; radius 1.5 keeps every pixel centre ≥ 0.08 px from the edge.
    a, b, c = (4.5, 22.5), (20.5, 22.5), (20.5, 6.5)
    studio.stroke(a, b, c)
    after = studio.ids()
    covered = capsule(before.shape, a, b, 1.5) | capsule(before.shape, b, c, 1.5)
    expected = np.where(covered, water, before)
    np.testing.assert_array_equal(after, expected)
    assert int((after != before).sum()) == int((covered & (before != water)).sum()) > 40

    # The eraser paints the model's background label (sky) with the same rule.
    studio.page.keyboard.press("e")
    studio.stroke((4.5, 22.5), (10.5, 22.5))
    erased = capsule(before.shape, (4.5, 22.5), (10.5, 22.5), 1.5)
    np.testing.assert_array_equal(studio.ids(), np.where(erased, 0, expected))


def test_output_follows_the_drawing(studio: Studio) -> None:
    seq = studio.wait_fresh_frame(0)
    scene = studio.picture()
    studio.set_brush(12)
    studio.pick_label("water")
    studio.stroke((6, 6), (26, 6), (26, 26), (6, 26))
    seq = studio.wait_fresh_frame(seq)
    water = studio.picture()
    studio.page.keyboard.press("Control+z")
    seq = studio.wait_fresh_frame(seq)
    undone = studio.picture()
    studio.pick_label("house")
    studio.stroke((6, 6), (26, 6), (26, 26), (6, 26))
    seq = studio.wait_fresh_frame(seq)
    house = studio.picture()
    assert mean_abs_diff(scene, water) > 3.0, mean_abs_diff(scene, water)
    assert mean_abs_diff(water, house) > 3.0, mean_abs_diff(water, house)
    # Same map and seed → the same picture again (the server is deterministic; JPEG noise stays tiny).
    assert mean_abs_diff(scene, undone) < 0.5, mean_abs_diff(scene, undone)
    expect(studio.page.locator("#conn")).to_have_attribute("data-state", "open")
    expect(studio.page.locator("#latency")).to_have_text(re.compile(r"latency \d+ ms"))


def test_undo_redo_restore_the_ids(studio: Studio) -> None:
    original = studio.ids()
    studio.pick_label("snow")
    studio.set_brush(4)
    studio.stroke((3, 3), (28, 28))
    first = studio.ids()
    studio.page.keyboard.press("l")  # straight line tool
    studio.stroke((3, 28), (28, 3))
    second = studio.ids()
    assert (first != original).sum() > 0 and (second != first).sum() > 0
    studio.page.keyboard.press("Control+z")
    np.testing.assert_array_equal(studio.ids(), first)
    studio.page.locator("#undo").click()
    np.testing.assert_array_equal(studio.ids(), original)
    expect(studio.page.locator("#undo")).to_be_disabled()
    studio.page.keyboard.press("Control+Shift+z")
    np.testing.assert_array_equal(studio.ids(), first)
    studio.page.locator("#redo").click()
    np.testing.assert_array_equal(studio.ids(), second)
    expect(studio.page.locator("#redo")).to_be_disabled()


def test_fill_fills_one_connected_region(studio: Studio) -> None:
    studio.page.locator("#clear").click()
    assert (studio.ids() == 0).all()
    studio.pick_label("water")
    studio.set_brush(1)
    studio.stroke((12.5, 0.5), (12.5, 31.5))  # a one-pixel wall from top to bottom
    walled = studio.ids()
    assert (walled[:, 12] == 12).all() and int((walled == 12).sum()) == 32
    grass = studio.pick_label("grass")
    studio.page.keyboard.press("f")
    studio.click_at(5.5, 10.5)
    regions, _ = ndimage.label(walled == 0)  # 4-connected components
    expected = np.where(regions == regions[10, 5], grass, walled)
    np.testing.assert_array_equal(studio.ids(), expected)
    assert int((studio.ids() == grass).sum()) == 12 * 32


def test_an_eyedropper_drag_released_outside_the_canvas_returns_to_the_brush(studio: Studio) -> None:
    ids = studio.ids()
    studio.page.keyboard.press("i")
    assert studio.page.evaluate("collage.tool()") == "eyedropper"
    box = studio.page.locator("#overlay-canvas").bounding_box()
    assert box is not None
    mouse = studio.page.mouse
    mouse.move(*studio.to_client(5.5, 5.5))
    mouse.down()
    mouse.move(box["x"] - 12, box["y"] + box["height"] / 2)  # one move: nothing else is picked on the way
    mouse.up()
    assert studio.page.evaluate("collage.tool()") == "brush"
    assert studio.page.evaluate("collage.currentLabel()") == ids[5, 5]


def test_uploading_a_style_image_changes_the_output(studio: Studio, tmp_path: Path) -> None:
    seq = studio.wait_fresh_frame(0)
    before = studio.picture()
    # A warm sunset gradient, very unlike the default random style.
    y = np.linspace(0, 1, 64)[:, None, None]
    sunset = (np.array([255, 140, 40]) * (1 - y) + np.array([60, 20, 80]) * y) * np.ones((64, 64, 3))
    path = tmp_path / "sunset.png"
    Image.fromarray(sunset.astype(np.uint8)).save(path)
    studio.page.locator("#style-file").set_input_files(path)
    studio.page.wait_for_function("'style_id' in collage.getStyle()")
    expect(studio.page.locator("#style-thumb")).to_be_visible()
    studio.wait_fresh_frame(seq)
    styled = studio.picture()
    assert mean_abs_diff(before, styled) > 3.0, mean_abs_diff(before, styled)
    expect(studio.page.locator("#style-message")).to_have_text(re.compile("sunset.png"))


def test_a_camera_photo_over_the_pixel_limit_is_shrunk_before_upload(studio: Studio, tmp_path: Path) -> None:
    # 4000×3000 is 12 megapixels, over the server's 1,048,576-pixel limit; its encoder only needs 128².
    sky = np.linspace([90, 160, 230], [40, 120, 40], 30).astype(np.uint8)  # top to bottom, 30×3
    path = tmp_path / "camera.jpg"
    Image.fromarray(np.repeat(sky[:, None], 40, axis=1)).resize((4000, 3000)).save(path, quality=90)
    # Chromium does not show file bodies to Playwright, so the page's fetch notes what it sends.
    studio.page.evaluate(
        """() => {
            const send = window.fetch;
            window.sentPhotos = [];
            window.fetch = async (url, options) => {
                const photo = options?.body instanceof FormData ? options.body.get("image") : null;
                if (photo) {
                    const bitmap = await createImageBitmap(photo);
                    window.sentPhotos.push([bitmap.width, bitmap.height, photo.type]);
                }
                return send(url, options);
            };
        }"""
    )
    studio.page.locator("#style-file").set_input_files(path)
    studio.page.wait_for_function("'style_id' in collage.getStyle()")
    expect(studio.page.locator("#style-message")).to_have_text("Style from camera.jpg")
    assert studio.page.evaluate("window.sentPhotos") == [[1024, 768, "image/jpeg"]]


def test_a_failed_upload_or_another_model_leaves_a_usable_style(studio: Studio, tmp_path: Path) -> None:
    page = studio.page
    photo = tmp_path / "sunset.png"
    Image.fromarray(np.full((48, 64, 3), (250, 120, 40), np.uint8)).save(photo)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "broken-again.jpg").write_bytes(b"still not a jpeg")
    file_input = page.locator("#style-file")
    message = page.locator("#style-message")
    thumb = page.locator("#style-thumb")
    file_input.set_input_files(photo)
    page.wait_for_function("'style_id' in collage.getStyle()")
    style = page.evaluate("collage.getStyle()")
    src = page.locator("#style-thumb-img").get_attribute("src")

    # Neither the browser nor the server can read it: the error shows and the photo stays in use, as it was.
    file_input.set_input_files(tmp_path / "broken.jpg")
    expect(message).to_have_text(re.compile(r"^Could not use broken\.jpg: image is not a readable"))
    assert page.evaluate("collage.getStyle()") == style
    expect(thumb).to_be_visible()
    expect(thumb).to_have_class(re.compile(r"\bcurrent\b"))
    expect(page.locator("#style-thumb-img")).to_have_attribute("src", src or "")
    expect(page.locator("[data-section=seed]")).to_have_class(re.compile(r"\binactive\b"))

    # A preset in use stays in use too.
    page.locator("[data-preset=winter]").click()
    file_input.set_input_files(tmp_path / "broken-again.jpg")
    expect(message).to_have_text(re.compile(r"^Could not use broken-again\.jpg"))
    assert page.evaluate("collage.getStyle()") == {"preset": "winter"}
    expect(page.locator("[data-preset=winter]")).to_have_class(re.compile(r"\bcurrent\b"))

    # A photo's latent means nothing to another model: switching falls back to the seed, which renders.
    file_input.set_input_files(photo)
    page.wait_for_function("'style_id' in collage.getStyle()")
    seq = studio.seq()
    page.locator("#model-select").select_option("tiny-spade-wide")
    page.wait_for_function("collage.getModel() === 'tiny-spade-wide'")
    assert page.evaluate("collage.getStyle()") == {"seed": page.evaluate("collage.getSeed()")}
    expect(thumb).to_be_hidden()
    expect(page.locator("[data-section=seed]")).not_to_have_class(re.compile(r"\binactive\b"))
    studio.wait_fresh_frame(seq)
    expect(page.locator("#status-message")).to_have_text("")
    # Chromium logs the two refused uploads; nothing else may go wrong.
    refused = [e for e in studio.console_errors if "status of 400 (Bad Request)" in e]
    assert len(refused) == 2, studio.console_errors
    studio.console_errors[:] = [e for e in studio.console_errors if e not in refused]


def test_the_latest_style_choice_wins_over_a_slower_upload(studio: Studio, tmp_path: Path) -> None:
    page = studio.page
    uploads = HeldUploads(page)
    file_input = page.locator("#style-file")
    drop = page.locator("#style-drop")
    message = page.locator("#style-message")
    busy = re.compile(r"\bbusy\b")
    slow = solid_photo(tmp_path / "slow.png", (250, 120, 40))
    quick = solid_photo(tmp_path / "quick.png", (40, 90, 230))

    # The photo picked last is used, although the one picked first answers after it.
    file_input.set_input_files(slow)
    file_input.set_input_files(quick)
    uploads.wait(2)
    expect(drop).to_have_class(busy)
    uploads.release(1)
    page.wait_for_function("'style_id' in collage.getStyle()")
    quick_style = page.evaluate("collage.getStyle()")
    expect(drop).not_to_have_class(busy)
    uploads.release(0)
    assert page.evaluate("collage.getStyle()") == quick_style
    expect(message).to_have_text("Style from quick.png")

    # The busy look stays while the photo picked last is still on its way, whatever finishes before it.
    file_input.set_input_files(slow)
    file_input.set_input_files(quick)
    uploads.wait(4)
    uploads.release(2)
    expect(drop).to_have_class(busy)
    assert page.evaluate("collage.getStyle()") == quick_style
    # A preset picked meanwhile supersedes the upload at once; its late answer changes nothing.
    page.locator("[data-preset=winter]").click()
    expect(drop).not_to_have_class(busy)
    expect(message).to_have_text("")
    uploads.release(3)
    assert page.evaluate("collage.getStyle()") == {"preset": "winter"}
    expect(page.locator("[data-preset=winter]")).to_have_class(re.compile(r"\bcurrent\b"))


def test_an_upload_for_the_previous_model_is_ignored(studio: Studio, tmp_path: Path) -> None:
    page = studio.page
    uploads = HeldUploads(page)
    page.locator("#style-file").set_input_files(solid_photo(tmp_path / "sunset.png", (250, 120, 40)))
    uploads.wait(1)
    seq = studio.seq()
    page.locator("#model-select").select_option("tiny-spade-wide")
    page.wait_for_function("collage.getModel() === 'tiny-spade-wide'")
    uploads.release(0)
    # The photo was encoded for tiny-spade: the new model keeps the seed, with no error about a lost style.
    assert page.evaluate("collage.getStyle()") == {"seed": page.evaluate("collage.getSeed()")}
    expect(page.locator("#style-thumb")).to_be_hidden()
    expect(page.locator("#style-drop")).not_to_have_class(re.compile(r"\bbusy\b"))
    expect(page.locator("#style-message")).to_have_text("")
    studio.wait_fresh_frame(seq)
    expect(page.locator("#status-message")).to_have_text("")


def test_a_stroke_just_before_a_model_switch_is_saved_for_its_model(studio: Studio) -> None:
    page = studio.page
    studio.pick_label("water")
    studio.set_brush(4)
    studio.stroke((4, 16), (28, 16))
    painted = studio.ids()
    # Switch at once, well within the autosave delay.
    page.locator("#model-select").select_option("tiny-spade-wide")
    page.wait_for_function("collage.getModel() === 'tiny-spade-wide'")
    page.wait_for_timeout(600)  # long past the autosave delay
    page.locator("#model-select").select_option(MODEL)
    page.wait_for_function(f"collage.getModel() === '{MODEL}'")
    np.testing.assert_array_equal(studio.ids(), painted)


def test_dice_changes_the_picture_and_a_locked_seed_keeps_it(studio: Studio) -> None:
    seq = studio.wait_fresh_frame(0)
    first_seed = studio.page.evaluate("collage.getSeed()")
    before = studio.picture()
    studio.page.locator("#dice").click()
    rolled = studio.page.evaluate("collage.getSeed()")
    assert rolled != first_seed
    expect(studio.page.locator("#seed-input")).to_have_value(str(rolled))
    seq = studio.wait_fresh_frame(seq)
    after_dice = studio.picture()
    assert mean_abs_diff(before, after_dice) > 3.0, mean_abs_diff(before, after_dice)

    studio.page.locator("#seed-lock").click()
    expect(studio.page.locator("#dice")).to_be_disabled()
    studio.page.keyboard.press("r")  # the dice shortcut is ignored while locked
    assert studio.page.evaluate("collage.getSeed()") == rolled
    # Paint, undo: the same map with the locked seed gives the same picture back.
    studio.pick_label("house")
    studio.stroke((5, 5), (25, 25))
    seq = studio.wait_fresh_frame(seq)
    studio.page.keyboard.press("Control+z")
    seq = studio.wait_fresh_frame(seq)
    assert mean_abs_diff(after_dice, studio.picture()) < 0.5
    # The lock survives a reload, and so does the drawing.
    ids = studio.ids()
    studio.open()
    assert studio.page.evaluate("collage.getSeed()") == rolled
    np.testing.assert_array_equal(studio.ids(), ids)
    studio.wait_fresh_frame(0)
    assert mean_abs_diff(after_dice, studio.picture()) < 0.5
    # Typing a seed sets it (after unlocking).
    studio.page.locator("#seed-lock").click()
    studio.page.locator("#seed-input").fill("1234")
    studio.page.locator("#seed-input").press("Enter")
    assert studio.page.evaluate("collage.getSeed()") == 1234


def test_the_seed_error_goes_once_a_good_seed_or_a_preset_is_picked(studio: Studio) -> None:
    seed = studio.page.locator("#seed-input")
    message = studio.page.locator("#style-message")
    seed.fill("12.5")
    seed.press("Enter")
    expect(message).to_have_text(re.compile(r"^A seed is a whole number"))
    seed.fill("42")
    seed.press("Enter")
    assert studio.page.evaluate("collage.getSeed()") == 42
    expect(message).to_have_text("")
    seed.fill("-1")
    seed.press("Enter")
    expect(message).to_have_text(re.compile(r"^A seed is a whole number"))
    studio.page.locator("[data-preset=winter]").click()
    expect(message).to_have_text("")


def test_each_tab_reloads_its_own_drawing_and_a_new_tab_opens_the_latest(page: Page, live_server) -> None:
    first = Studio(page, live_server.url)
    second = Studio(page.context.new_page(), live_server.url)
    first.open()
    second.open()
    first.pick_label("water")
    first.set_brush(4)
    first.stroke((4, 16), (28, 16))
    first.wait_autosaved()
    second.pick_label("house")
    second.set_brush(4)
    second.stroke((16, 4), (16, 28))
    second.wait_autosaved()  # the second tab saved last, over the first tab's drawing
    mine, theirs = first.ids(), second.ids()
    assert int((mine != theirs).sum()) > 20

    first.reload()
    np.testing.assert_array_equal(first.ids(), mine)
    second.reload()
    np.testing.assert_array_equal(second.ids(), theirs)
    fresh = Studio(page.context.new_page(), live_server.url)
    fresh.open()
    np.testing.assert_array_equal(fresh.ids(), theirs)
    assert first.console_errors == second.console_errors == fresh.console_errors == []


def test_a_reload_keeps_the_preset_or_seed_in_use(studio: Studio) -> None:
    page = studio.page
    winter = page.locator("[data-preset=winter]")
    seq = studio.wait_fresh_frame(0)
    winter.click()
    studio.wait_fresh_frame(seq)
    before = studio.picture()
    studio.reload()
    assert page.evaluate("collage.getStyle()") == {"preset": "winter"}
    expect(winter).to_have_class(re.compile(r"\bcurrent\b"))
    studio.wait_fresh_frame(0)
    assert mean_abs_diff(before, studio.picture()) < 0.5

    seq = studio.seq()
    page.locator("#seed-input").fill("4321")
    page.locator("#seed-input").press("Enter")
    studio.wait_fresh_frame(seq)
    before = studio.picture()
    studio.reload()
    assert page.evaluate("collage.getStyle()") == {"seed": 4321}
    expect(page.locator("#seed-input")).to_have_value("4321")
    expect(page.locator("#seed-lock")).to_have_attribute("aria-pressed", "false")  # kept, but not locked
    studio.wait_fresh_frame(0)
    assert mean_abs_diff(before, studio.picture()) < 0.5


def test_a_reload_keeps_a_photo_style_while_the_server_has_it(studio: Studio, tmp_path: Path) -> None:
    page = studio.page
    path = tmp_path / "sunset.png"
    Image.fromarray(np.full((48, 64, 3), (250, 120, 40), np.uint8)).save(path)
    seq = studio.wait_fresh_frame(0)
    page.locator("#style-file").set_input_files(path)
    page.wait_for_function("'style_id' in collage.getStyle()")
    style = page.evaluate("collage.getStyle()")
    studio.wait_fresh_frame(seq)
    before = studio.picture()
    studio.reload()
    assert page.evaluate("collage.getStyle()") == style
    expect(page.locator("#style-thumb")).to_be_visible()
    expect(page.locator("#style-thumb-img")).to_have_attribute("src", re.compile(r"^data:image/jpeg"))
    studio.wait_fresh_frame(0)
    assert mean_abs_diff(before, studio.picture()) < 0.5

    # A server started on another data folder no longer knows the id: the seed takes over, and says so.
    page.evaluate(
        """() => {
            const key = "collage-studio.map.tiny-spade";  // the style is saved with the drawing
            const saved = JSON.parse(sessionStorage.getItem(key));
            const style = { ...saved.style, styleId: "0".repeat(20) };
            sessionStorage.setItem(key, JSON.stringify({ ...saved, style }));
        }"""
    )
    studio.reload()
    assert page.evaluate("collage.getStyle()") == {"seed": page.evaluate("collage.getSeed()")}
    expect(page.locator("#style-thumb")).to_be_hidden()
    expect(page.locator("#style-message")).to_have_text(re.compile(r"unavailable; using the seed"))
    missing = [e for e in studio.console_errors if "status of 404 (Not Found)" in e]
    assert len(missing) == 1, studio.console_errors
    studio.console_errors.remove(missing[0])


def test_label_map_saves_and_loads_as_png_of_ids(studio: Studio, tmp_path: Path) -> None:
    studio.pick_label("house")
    studio.set_brush(5)
    studio.stroke((4, 4), (27, 12))
    painted = studio.ids()
    with studio.page.expect_download() as info:
        studio.page.locator("#save-labels").click()
    path = tmp_path / "labels.png"
    info.value.save_as(path)
    image = Image.open(path)
    assert image.mode == "L" and image.size == (32, 32)
    np.testing.assert_array_equal(np.asarray(image), painted)

    studio.page.locator("#clear").click()
    assert (studio.ids() == 0).all()
    studio.page.locator("#labels-file").set_input_files(path)
    studio.page.wait_for_function("collage.getLabelIds().some((v) => v !== 0)")
    np.testing.assert_array_equal(studio.ids(), painted)
    # Loading is an edit like any other: undo returns to the cleared canvas.
    studio.page.keyboard.press("Control+z")
    assert (studio.ids() == 0).all()

    # The picture downloads as a PNG the size of the output.
    with studio.page.expect_download() as info:
        studio.page.locator("#download-picture").click()
    picture = Image.open(io.BytesIO(Path(info.value.path()).read_bytes()))
    assert picture.format == "PNG" and picture.size == (32, 32)


def test_a_512_canvas_sends_512_maps_and_shows_512_pictures_at_the_same_size(page: Page, live_server) -> None:
    wire = PaintWire(page)
    studio = Studio(page, live_server.url)
    studio.open()
    sizes = page.locator("#canvas-size")
    expect(sizes).to_be_enabled()
    # The tiny model's own size, then the studio's two.
    expect(sizes.locator("option")).to_have_text(["32×32", "256×256", "512×512"])
    expect(sizes).to_have_value("32x32")
    seq = studio.wait_fresh_frame(0)
    labels, picture = box(page, "#label-surface"), box(page, "#output-canvas")
    brush = page.evaluate("collage.brushSize()")

    studio.choose_canvas(512)
    assert page.evaluate("collage.brushSize()") == brush * 16  # the brush covers the same part of the drawing
    expect(page.locator("#brush-size")).to_have_attribute("max", "192")
    water = studio.pick_label("water")
    studio.stroke((40, 256), (470, 256))
    assert int((studio.ids() == water).sum()) > 0
    seq = studio.wait_fresh_frame(seq)
    assert wire.sent[seq] == (512, 512)
    assert wire.picture_size(seq) == (512, 512)
    assert page.evaluate("document.getElementById('output-canvas').width") == 512
    expect(page.locator("#output-meta")).to_have_text("512×512 jpeg")
    expect(page.locator("#label-meta")).to_have_text(re.compile(r"^tiny-spade · 512×512"))
    # Four times the pixels on the same screen space: nothing on the page moved or grew.
    assert box(page, "#label-surface") == pytest.approx(labels, abs=0.5)
    assert box(page, "#output-canvas") == pytest.approx(picture, abs=0.5)

    # The resize is a step of the undo history, below the stroke; undoing it sends 32² maps again.
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    assert studio.ids().shape == (32, 32)
    expect(sizes).to_have_value("32x32")
    assert page.evaluate("collage.brushSize()") == brush
    seq = studio.wait_fresh_frame(seq)
    assert wire.sent[seq] == (32, 32) and wire.picture_size(seq) == (32, 32)
    expect(page.locator("#status-message")).to_have_text("")  # the server expected every size it got
    assert studio.console_errors == []


def test_a_drawing_keeps_its_pixels_across_sizes_and_a_reload(studio: Studio) -> None:
    page = studio.page
    scene = studio.ids()
    studio.choose_canvas(256)
    np.testing.assert_array_equal(studio.ids(), nearest(scene, 256, 256))
    studio.pick_label("water")
    studio.set_brush(9)
    studio.stroke((20, 128), (236, 150))
    painted = studio.ids()

    studio.choose_canvas(512)
    np.testing.assert_array_equal(studio.ids(), nearest(painted, 512, 512))
    # A diagonal one pixel wide is finer than 256² can hold: a downscale loses some of it...
    studio.pick_label("house")
    studio.set_brush(1)
    studio.stroke((100, 300), (400, 450))
    detailed = studio.ids()
    assert not np.array_equal(nearest(nearest(detailed, 256, 256), 512, 512), detailed)
    studio.choose_canvas(256)
    np.testing.assert_array_equal(studio.ids(), nearest(detailed, 256, 256))
    # ...and undo brings every pixel back, at 512² again.
    page.keyboard.press("Control+z")
    np.testing.assert_array_equal(studio.ids(), detailed)
    expect(page.locator("#canvas-size")).to_have_value("512x512")
    expect(page.locator("#undo")).to_have_attribute("title", "Undo brush (Ctrl+Z)")

    # The drawing is saved with its size: a reload comes back at 512² and renders there.
    studio.wait_autosaved()
    studio.reload()
    expect(page.locator("#canvas-size")).to_have_value("512x512")
    np.testing.assert_array_equal(studio.ids(), detailed)
    studio.wait_fresh_frame(0)
    assert page.evaluate("document.getElementById('output-canvas').width") == 512


def test_views_and_model_selector(studio: Studio) -> None:
    stage = studio.page.locator("#stage")
    for view in ("overlay", "split", "side"):
        studio.page.locator(f"button[data-view={view}]").click()
        expect(stage).to_have_attribute("data-view", view)
    # Painting still works in the split view, where the labels are clipped to the left of the divider.
    studio.page.locator("button[data-view=split]").click()
    before = studio.ids()
    studio.pick_label("rock")
    studio.stroke((24, 8), (24, 20))
    assert int((studio.ids() != before).sum()) > 0

    select = studio.page.locator("#model-select")
    expect(select).to_be_visible()
    seq = studio.seq()
    select.select_option("tiny-spade-wide")
    studio.page.wait_for_function("collage.getModel() === 'tiny-spade-wide'")
    assert studio.page.evaluate("collage.getSize()") == {"width": 48, "height": 32}
    studio.wait_fresh_frame(seq)
    assert studio.picture().shape == (32, 48, 3)
    # A wide model keeps its own size: the choice shows it, and cannot be changed.
    expect(studio.page.locator("#canvas-size")).to_be_disabled()
    expect(studio.page.locator("#canvas-size")).to_have_value("48x32")
    # CollageGAN is unavailable for these models, so its switch is not offered; the seed and the photo are.
    expect(studio.page.locator("#collage-toggle")).to_be_hidden()
    expect(studio.page.locator("#seed-input")).to_be_visible()
    expect(studio.page.locator("#style-drop")).to_be_visible()


@pytest.mark.parametrize("width, height", [(1280, 800), (1024, 768), (768, 1024), (701, 800)])
def test_the_top_bar_fits_a_laptop_or_tablet_with_two_models(
    page: Page, live_server, tmp_path: Path, width: int, height: int
) -> None:
    page.set_viewport_size({"width": width, "height": height})
    studio = Studio(page, live_server.url)
    studio.open()
    expect(page.locator("#model-picker")).to_be_visible()
    heights = []
    for view in ("side", "split", "overlay"):  # split and overlay show the slider in the top bar
        page.locator(f"button[data-view={view}]").click()
        page.screenshot(path=tmp_path / f"{width}-{view}.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
        download = box(page, "#download-picture")
        assert download["x"] + download["width"] <= width, download
        assert box(page, "button[data-view=side]")["height"] < 30  # "Side by side" on one line
        topbar = box(page, ".topbar")
        assert box(page, "#stage")["y"] >= topbar["y"] + topbar["height"] - 0.5
        heights.append(topbar["height"])
    assert max(heights) - min(heights) < 0.5, heights  # switching views never moves the canvases
    assert studio.console_errors == []


def test_a_phone_held_sideways_shows_both_panes_aligned_below_the_top_bar(
    page: Page, live_server, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 844, "height": 390})
    studio = Studio(page, live_server.url)
    studio.open("?model=tiny-spade-wide")
    page.screenshot(path=tmp_path / "phone-sideways.png")
    topbar, labels, picture = box(page, ".topbar"), box(page, "#label-surface"), box(page, "#output-surface")
    assert labels["y"] >= topbar["y"] + topbar["height"], (labels, topbar)
    assert labels["y"] == pytest.approx(picture["y"], abs=1)  # side by side, level
    assert labels["height"] == pytest.approx(picture["height"], abs=1)
    for pane in (".pane-labels", ".pane-output"):
        assert_caption_fits(page, pane)
    assert studio.console_errors == []


def test_a_phone_shows_a_long_status_message_whole(page: Page, live_server, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.route("**/api/v1/models", lambda route: route.fulfill(status=401, json={"error": {"message": "no"}}))
    page.goto(f"{live_server.url}/")
    message = page.locator("#status-message")
    expect(message).to_have_text(KEY_HINT)
    page.screenshot(path=tmp_path / "phone-key-hint.png")
    assert message.evaluate("el => el.scrollWidth <= el.clientWidth")  # wrapped, not cut off
    found = box(page, "#status-message")
    assert found["x"] + found["width"] <= 390 and found["y"] + found["height"] <= 844, found


def test_reconnects_after_a_server_restart(page: Page, own_server) -> None:
    studio = Studio(page, own_server.url)
    studio.open()
    seq = studio.wait_fresh_frame(0)
    ids = studio.ids()
    own_server.stop()
    page.wait_for_function("collage.connectionState() !== 'open'", timeout=10_000)
    expect(page.locator("#conn")).not_to_have_attribute("data-state", "open")
    expect(page.locator("#output-surface")).to_have_attribute("data-state", "stale")
    # The offline status counts down to the next attempt (backoff reaches ≥ 1 s within a few attempts).
    seconds = (
        "parseFloat(document.querySelector('#conn-text').textContent.match(/retrying in ([0-9.]+) s/)?.[1])"
    )
    page.wait_for_function(f"{seconds} >= 0.8", timeout=15_000)
    before = page.evaluate(seconds)
    page.wait_for_timeout(400)
    assert page.evaluate(seconds) < before - 0.2
    own_server.start()
    page.wait_for_function(
        f"collage.connectionState() === 'open' && collage.lastFrameSeq() > {seq}", timeout=30_000
    )
    expect(page.locator("#conn-text")).to_have_text("live")
    expect(page.locator("#output-surface")).to_have_attribute("data-state", "live")
    np.testing.assert_array_equal(studio.ids(), ids)  # nothing lost
    unexpected = [e for e in studio.console_errors if not SOCKET_REFUSED.search(e)]
    assert unexpected == []


def test_a_refused_api_key_stops_the_retries_and_says_how_to_give_one(page: Page, keyed_server) -> None:
    asked = []
    page.on("request", lambda r: asked.append(r.url) if r.url.endswith("/api/v1/models") else None)
    page.goto(f"{keyed_server.url}/")
    expect(page.locator("#status-message")).to_have_text(KEY_HINT)
    # Nothing will connect, as with a refused paint socket: neither the status bar nor the badge says otherwise.
    expect(page.locator("#conn-text")).to_have_text("disconnected")
    expect(page.locator("#output-badge")).to_have_text("Offline · not reconnecting")
    page.wait_for_timeout(2_000)  # a client that retried would have asked twice more by now
    assert len(asked) == 1
    # With the key in the address, the REST calls and the paint socket get in.
    studio = Studio(page, keyed_server.url)
    studio.open(f"?api_key={keyed_server.env['COLLAGE_API_KEY']}")
    assert studio.console_errors == []


def test_a_refused_paint_socket_says_the_client_stopped(page: Page, live_server) -> None:
    def refuse(ws: WebSocketRoute) -> None:
        # What the server does with a wrong key: an error message, then close code 4401.
        error = {"type": "error", "code": "unauthorized", "message": "wrong API key", "seq": None}
        ws.send(json.dumps(error))
        ws.close(code=4401, reason="unauthorized")

    page.route_web_socket(re.compile(r"/api/v1/paint"), refuse)
    page.goto(f"{live_server.url}/")
    page.wait_for_function("collage.connectionState() === 'stopped'")
    expect(page.locator("#output-badge")).to_have_text("Offline · not reconnecting")
    expect(page.locator("#conn-text")).to_have_text("disconnected")
    expect(page.locator("#status-message")).to_have_text(KEY_HINT)


def test_a_page_whose_first_model_failed_connects_once_another_is_picked(page: Page, live_server) -> None:
    failed: list[str] = []

    def fail_once(route: Route) -> None:
        if failed:
            route.continue_()
        else:
            failed.append(route.request.url)
            route.fulfill(status=503, json={"error": {"code": "overloaded", "message": "try again"}})

    page.route(re.compile(r".*/api/v1/models/[^/?]+$"), fail_once)
    page.goto(f"{live_server.url}/")
    expect(page.locator("#status-message")).to_contain_text("Cannot load model")
    expect(page.locator("#conn-text")).to_have_text("disconnected")
    options = page.locator("#model-select option").evaluate_all("os => os.map(o => o.value)")
    other = next(name for name in options if not failed[0].endswith(f"/{name}"))
    page.select_option("#model-select", other)
    page.wait_for_function(
        "collage.connectionState() === 'open' && collage.framesShown() > 0", timeout=20_000
    )
    expect(page.locator("#conn-text")).to_have_text("live")
