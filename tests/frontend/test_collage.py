"""CollageGAN in the studio, in a real browser against a real server: the switch composes the painted objects and
the re-roll tool redraws the one clicked, and nothing else.

The server serves `tiny-collage` (the tiny SPADE with untrained class generators for tree, rock and house,
min_side 12 px). The map is opened as a PNG of ids at 256², with one tree and one house far enough apart that
neither's context box reaches the other's box, so re-rolling the house can change nothing outside its own box.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

MODEL = "tiny-collage"
SIDE = 256  # a canvas size the studio offers; the tiny model takes any multiple of 8
HOUSE = (30, 140, 90, 200)  # x0, y0, x1, y1 (end exclusive): a 60² square, so its square box is itself
TREE = (170, 40, 226, 110)  # 56×70, in the sky; its square box is 70² around the same centre
# JPEG codes 8×8 blocks, chroma in 16×16 ones, and the decoder smooths chroma across block edges: pixels this
# far from every changed box are bit-identical, nearer ones may not be.
MARGIN = 24


def scene(labels: list[dict[str, object]]) -> np.ndarray:
    """Sky above grass, the tree in the sky and the house on the grass, as SIDE² label ids."""
    ids = {str(label["name"]): int(str(label["id"])) for label in labels}
    out = np.full((SIDE, SIDE), ids["sky"], np.uint8)
    out[120:] = ids["grass"]
    for name, (x0, y0, x1, y1) in (("house", HOUSE), ("tree", TREE)):
        out[y0:y1, x0:x1] = ids[name]
    return out


def square(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The box grown along its short side to a square with the same centre (the collage stage's square box)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    left, top = (x0 + x1 - side) // 2, (y0 + y1 - side) // 2
    return left, top, left + side, top + side


def far_from(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    """SIDE² mask of the pixels more than MARGIN away from every box."""
    far = np.ones((SIDE, SIDE), bool)
    for x0, y0, x1, y1 in boxes:
        far[max(0, y0 - MARGIN) : y1 + MARGIN, max(0, x0 - MARGIN) : x1 + MARGIN] = False
    return far


def inside(box: tuple[int, int, int, int]) -> tuple[slice, slice]:
    x0, y0, x1, y1 = box
    return slice(y0, y1), slice(x0, x1)


def picture(page: Page) -> np.ndarray:
    """The picture on screen, SIDE×SIDE×3 int16 (read as a PNG: exact, and much faster than pixel lists)."""
    url = page.evaluate("collage.outputDataUrl()")
    png = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def wait_fresh_frame(page: Page, after: int) -> int:
    """Wait for a frame newer than `after` that answers the current label map; returns its seq."""
    page.wait_for_function(
        """after => collage.connectionState() === 'open' && !collage.sendPending()
            && collage.lastFrameSeq() > after && collage.lastFrameSeq() === collage.lastSentSeq()""",
        arg=after,
        timeout=30_000,
    )
    return int(page.evaluate("collage.lastFrameSeq()"))


def client_point(page: Page, selector: str, x: float, y: float) -> tuple[float, float]:
    """Map pixel (x, y) → page coordinates on the element `selector`, which shows the whole map, rounded to whole
    CSS pixels: a click's coordinates are whole pixels, and a map pixel is > 1 CSS pixel, so a pixel centre stays in
    its pixel."""
    found = page.locator(selector).bounding_box()
    assert found is not None, selector
    return round(found["x"] + x * found["width"] / SIDE), round(found["y"] + y * found["height"] / SIDE)


def test_collage_composes_the_objects_and_a_reroll_redraws_only_the_one_clicked(
    page: Page, collage_server, tmp_path: Path
) -> None:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    sent: list[dict[str, object]] = []  # the JSON messages the page sends on the paint socket
    page.on(
        "websocket",
        lambda ws: ws.on("framesent", lambda p: sent.append(json.loads(p)) if isinstance(p, str) else None),
    )
    manifest = collage_server.get_json(f"/api/v1/models/{MODEL}")
    assert manifest["capabilities"]["collage"] is True
    things = manifest["capabilities"]["collage_classes"]  # by class id
    assert things == ["rock", "tree", "house"]

    page.goto(f"{collage_server.url}/?model={MODEL}")
    page.wait_for_function("window.collage && collage.framesShown() > 0", timeout=30_000)
    assert page.evaluate("collage.getModel()") == MODEL
    toggle, tool, status = (
        page.locator("#collage-toggle"),
        page.locator("#reroll-tool"),
        page.locator("#status-message"),
    )
    expect(toggle).to_be_enabled()  # the model has class generators
    expect(toggle).not_to_be_checked()
    expect(tool).to_be_disabled()  # re-roll needs collage on
    expect(tool).to_have_attribute("title", re.compile(r"^Re-roll one object \(O\).*needs CollageGAN on"))
    page.keyboard.press("o")  # a greyed-out tool's shortcut does nothing
    assert page.evaluate("collage.tool()") == "brush"

    page.locator("#canvas-size").select_option(f"{SIDE}x{SIDE}")
    page.wait_for_function("side => collage.getSize().width === side", arg=SIDE)
    ids = scene(manifest["labels"])
    Image.fromarray(ids).save(tmp_path / "scene.png")
    page.locator("#labels-file").set_input_files(tmp_path / "scene.png")
    page.wait_for_function(
        "ids => collage.getLabelIds().every((v, i) => v === ids[i])", arg=ids.ravel().tolist()
    )
    seq = wait_fresh_frame(page, 0)
    base = picture(page)

    # Collage on: both objects are redrawn, and nothing far from their boxes changes.
    toggle.check()
    assert [m["collage"] for m in sent if m["type"] == "configure" and "collage" in m][-1] is True
    seq = wait_fresh_frame(page, seq)
    composed = picture(page)
    for box in (HOUSE, TREE):
        change = float(np.abs(composed[inside(box)] - base[inside(box)]).mean())
        assert change > 10.0, (box, change)
    far = far_from(square(HOUSE), square(TREE))
    np.testing.assert_array_equal(composed[far], base[far])

    # The re-roll tool: offered now, and a click on the sky re-rolls (and paints) nothing.
    expect(tool).to_be_enabled()
    expect(tool).to_have_attribute(
        "title", "Re-roll one object (O): click a rock, tree or house for a new one"
    )
    page.keyboard.press("o")
    assert page.evaluate("collage.tool()") == "reroll"
    expect(tool).to_have_attribute("aria-pressed", "true")
    sent_seq, shown = page.evaluate("[collage.lastSentSeq(), collage.framesShown()]")
    page.mouse.click(*client_point(page, "#label-canvas", 128.5, 20.5))
    expect(status).to_have_text("No rock, tree or house to re-roll there (small ones are not redrawn)")

    # A click on the house in the picture: the server re-rolls it and sends the picture again under the same seq.
    page.mouse.click(*client_point(page, "#output-canvas", 60.5, 170.5))
    page.wait_for_function(
        "shown => collage.lastReroll() !== null && collage.framesShown() > shown", arg=shown
    )
    reroll = page.evaluate("collage.lastReroll()")
    assert [m for m in sent if m["type"] == "reroll"] == [
        {"type": "reroll", "x": 128, "y": 20},
        {"type": "reroll", "x": 60, "y": 170},
    ]
    assert (reroll["x"], reroll["y"], reroll["thing"]) == (60, 170, "house")
    assert tuple(reroll["box"]) == square(HOUSE)
    expect(status).to_have_text(f"Re-rolled house (seed {reroll['seed']})")
    assert page.evaluate("[collage.lastFrameSeq(), collage.lastSentSeq()]") == [
        seq,
        sent_seq,
    ]  # nothing painted
    np.testing.assert_array_equal(
        np.array(page.evaluate("collage.getLabelIds()"), np.uint8).reshape(ids.shape), ids
    )
    rerolled = picture(page)
    change = float(np.abs(rerolled[inside(HOUSE)] - composed[inside(HOUSE)]).mean())
    assert change > 10.0, change
    # The house is composited last (the smaller object): everything away from its box stays, the tree included.
    far = far_from(square(HOUSE))
    assert far[inside(square(TREE))].all()
    np.testing.assert_array_equal(rerolled[far], composed[far])

    # Collage off greys the tool out again and hands back to the brush.
    toggle.uncheck()
    expect(tool).to_be_disabled()
    assert page.evaluate("collage.tool()") == "brush"
    assert errors == []
