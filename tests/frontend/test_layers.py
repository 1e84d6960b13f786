"""Layers in a real browser: the map the server gets is the flattened stack, the eraser on an upper layer reveals
the layer below, and undo, the project file and autosave carry the layers. Flattening is checked against numpy.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from tests.frontend.studio import Studio, capsule, decode_runs

pytestmark = pytest.mark.browser

SHAPE = (32, 32)
EMPTY = 255


@pytest.fixture
def studio(page: Page, live_server) -> Iterator[Studio]:
    studio = Studio(page, live_server.url)
    studio.open()
    studio.page.locator("#clear").click()
    yield studio
    assert studio.console_errors == []


def layers(studio: Studio) -> list[dict[str, object]]:
    """The stack bottom first, each layer's ids as a height×width array."""
    found = studio.page.evaluate("collage.getLayers()")
    size = studio.page.evaluate("collage.getSize()")
    shape = (size["height"], size["width"])
    return [{**layer, "ids": np.array(layer["ids"], np.uint8).reshape(shape)} for layer in found]


def flatten(stack: list[dict[str, object]]) -> np.ndarray:
    """The top visible layer painting a pixel gives its id; the bottom layer is full."""
    out = np.array(stack[0]["ids"])
    for layer in stack[1:]:
        if layer["visible"]:
            ids = np.asarray(layer["ids"])
            out = np.where(ids != EMPTY, ids, out)
    return out


def rect(studio: Studio, label: str, a: tuple[float, float], b: tuple[float, float]) -> int:
    label_id = studio.pick_label(label)
    studio.page.keyboard.press("u")
    studio.stroke(a, b, steps=3)
    return label_id


def test_an_upper_layer_paints_over_the_lower_and_its_eraser_reveals_it(studio: Studio) -> None:
    grass = rect(studio, "grass", (-1.5, 16.2), (33.0, 33.5))
    base = studio.ids()
    studio.page.locator("#layer-add").click()
    assert studio.page.evaluate("collage.activeLayer()") == 1
    tree = rect(studio, "tree", (4.2, 8.2), (20.8, 24.8))
    stack = layers(studio)
    assert [layer["name"] for layer in stack] == ["Background", "Layer 2"]
    np.testing.assert_array_equal(stack[0]["ids"], base)  # the bottom layer did not change
    assert set(np.unique(stack[1]["ids"])) == {tree, EMPTY}
    np.testing.assert_array_equal(studio.ids(), flatten(stack))
    assert int((studio.ids() == tree).sum()) == 17 * 17

    # The eraser on the upper layer empties it, so the bottom layer's sky and grass show through.
    studio.set_brush(3)
    studio.page.keyboard.press("e")
    a, b = (2.5, 16.5), (22.5, 16.5)
    studio.stroke(a, b)
    erased = capsule(SHAPE, a, b, 1.5)
    stack = layers(studio)
    np.testing.assert_array_equal(stack[1]["ids"][erased], EMPTY)
    np.testing.assert_array_equal(studio.ids(), flatten(stack))
    np.testing.assert_array_equal(studio.ids()[erased], base[erased])
    assert set(np.unique(base[erased])) == {0, grass}  # both lower labels came back

    # Hiding the layer shows the bottom one alone; showing it again and undo work on the stack as well.
    eye = studio.page.locator(".layer-row[data-layer-index='1'] .layer-eye")
    eye.click()
    np.testing.assert_array_equal(studio.ids(), base)
    studio.page.keyboard.press("Control+z")
    np.testing.assert_array_equal(studio.ids(), flatten(stack))
    studio.page.keyboard.press("Control+z")  # the erase
    assert int((studio.ids() == tree).sum()) == 17 * 17


def test_reorder_rename_and_remove_layers_and_undo_each(studio: Studio) -> None:
    page = studio.page
    page.locator("#layer-add").click()
    tree = rect(studio, "tree", (4.2, 4.2), (16.8, 16.8))
    page.locator("#layer-add").click()
    house = rect(studio, "house", (10.2, 10.2), (24.8, 24.8))
    overlap = (slice(10, 17), slice(10, 17))
    assert (studio.ids()[overlap] == house).all()  # the house layer is on top

    page.locator("#layer-down").click()  # the house below the tree now
    stack = layers(studio)
    assert [layer["name"] for layer in stack] == ["Background", "Layer 3", "Layer 2"]
    assert (studio.ids()[overlap] == tree).all()
    np.testing.assert_array_equal(studio.ids(), flatten(stack))
    # The bottom layer stays at the bottom: the house layer cannot go below it.
    expect(page.locator("#layer-down")).to_be_disabled()

    page.locator(".layer-row[data-layer-index='1'] .layer-name").dblclick()
    page.locator(".layer-rename").fill("Village")
    page.keyboard.press("Enter")
    assert layers(studio)[1]["name"] == "Village"
    expect(page.locator(".layer-row[data-layer-index='1'] .layer-name")).to_have_text("Village")

    page.locator(".layer-row[data-layer-index='2'] .layer-name").click()
    page.locator("#layer-remove").click()
    assert [layer["name"] for layer in layers(studio)] == ["Background", "Village"]
    assert int((studio.ids() == tree).sum()) == 0
    page.keyboard.press("Control+z")
    assert [layer["name"] for layer in layers(studio)] == ["Background", "Village", "Layer 2"]
    assert (studio.ids()[overlap] == tree).all()
    page.keyboard.press("Control+z")  # the rename
    page.keyboard.press("Control+z")  # the move
    assert (studio.ids()[overlap] == house).all()
    expect(page.locator("#layer-remove")).to_be_enabled()
    page.locator(".layer-row[data-layer-index='0'] .layer-name").click()
    expect(page.locator("#layer-remove")).to_be_disabled()  # the bottom layer cannot go


def test_the_project_file_and_autosave_carry_the_layers(studio: Studio, tmp_path: Path) -> None:
    page = studio.page
    rect(studio, "grass", (-1.5, 20.2), (33.0, 33.5))
    page.locator("#layer-add").click()
    rect(studio, "tree", (4.2, 4.2), (12.8, 22.8))
    page.locator("#layer-add").click()
    rect(studio, "house", (16.2, 14.2), (26.8, 24.8))
    page.locator(".layer-row[data-layer-index='1'] .layer-eye").click()  # the trees hidden
    page.locator("button[data-preset=winter]").click()
    stack, flat = layers(studio), studio.ids()

    with page.expect_download() as info:
        page.locator("#save-project").click()
    path = tmp_path / "project.json"
    info.value.save_as(path)
    project = json.loads(path.read_text())
    assert project["format"] == "collage-studio-project" and (project["width"], project["height"]) == (32, 32)
    assert [(layer["name"], layer["visible"]) for layer in project["layers"]] == [
        ("Background", True),
        ("Layer 2", False),
        ("Layer 3", True),
    ]
    for saved, shown in zip(project["layers"], stack, strict=True):
        np.testing.assert_array_equal(decode_runs(saved["runs"], 32 * 32).reshape(SHAPE), shown["ids"])
    assert project["style"]["mode"] == "preset" and project["style"]["preset"] == "winter"

    # Start over, pick another style, then open the project: layers, their names, visibility and style return.
    page.locator("#scene").click()
    page.locator("button[data-preset=dusk]").click()
    page.locator("#labels-file").set_input_files(path)
    page.wait_for_function("collage.getLayers().length === 3")
    reopened = layers(studio)
    for a, b in zip(reopened, stack, strict=True):
        assert (a["name"], a["visible"]) == (b["name"], b["visible"])
        np.testing.assert_array_equal(a["ids"], b["ids"])
    np.testing.assert_array_equal(studio.ids(), flat)
    page.wait_for_function("collage.getStyle().preset === 'winter'")
    # Opening is one undo step.
    page.keyboard.press("Control+z")
    assert len(layers(studio)) == 3 and not np.array_equal(studio.ids(), flat)
    page.keyboard.press("Control+y")
    np.testing.assert_array_equal(studio.ids(), flat)

    # A reload takes the layers up again from the autosave.
    studio.wait_autosaved()
    studio.reload()
    for a, b in zip(layers(studio), stack, strict=True):
        assert (a["name"], a["visible"]) == (b["name"], b["visible"])
        np.testing.assert_array_equal(a["ids"], b["ids"])
    assert page.evaluate("collage.getStyle()") == {"preset": "winter"}


def test_a_hidden_layer_refuses_paint_and_undo_of_a_new_layer_brings_back_the_current_one(
    studio: Studio,
) -> None:
    page = studio.page
    page.locator("#layer-add").click()
    rect(studio, "tree", (4.2, 4.2), (12.8, 12.8))
    page.locator("#layer-add").click()
    assert studio.page.evaluate("collage.activeLayer()") == 2
    page.keyboard.press("Control+z")  # the new layer goes, and the one current before it is current again
    assert studio.page.evaluate("collage.activeLayer()") == 1 and len(layers(studio)) == 2
    page.locator(".layer-row[data-layer-index='1'] .layer-eye").click()
    before, undo_title = studio.ids(), page.locator("#undo").get_attribute("title")
    rect(studio, "house", (16.2, 16.2), (26.8, 26.8))
    np.testing.assert_array_equal(studio.ids(), before)
    assert set(np.unique(layers(studio)[1]["ids"])) == {studio.pick_label("tree"), EMPTY}  # nothing written
    expect(page.locator("#status-message")).to_contain_text('"Layer 2" is hidden')
    assert page.locator("#undo").get_attribute("title") == undo_title  # no undo step either


def test_a_resize_scales_every_layer_and_the_object_eraser_works_on_the_layer_it_clicks(
    studio: Studio,
) -> None:
    page = studio.page
    grass = rect(studio, "grass", (-1.5, 16.2), (33.0, 33.5))
    page.locator("#layer-add").click()
    tree = rect(studio, "tree", (4.2, 10.2), (12.8, 24.8))
    small = layers(studio)
    studio.choose_canvas(256)
    big = layers(studio)
    for a, b in zip(small, big, strict=True):
        np.testing.assert_array_equal(np.asarray(b["ids"])[4::8, 4::8], a["ids"])  # nearest neighbour
    page.keyboard.press("Control+z")
    for a, b in zip(small, layers(studio), strict=True):
        np.testing.assert_array_equal(a["ids"], b["ids"])

    # The tree is on the upper layer, over sky and grass; the bottom layer is current. The object eraser empties
    # the tree's own layer, so the sky and grass below show again (not a hump of grass in the sky).
    page.locator(".layer-row[data-layer-index='0'] .layer-name").click()
    page.keyboard.press("x")
    studio.click_at(8.5, 20.5)
    after = layers(studio)
    np.testing.assert_array_equal(after[0]["ids"], small[0]["ids"])
    assert (after[1]["ids"] == EMPTY).all()
    np.testing.assert_array_equal(studio.ids(), small[0]["ids"])
    assert set(np.unique(small[0]["ids"][small[1]["ids"] == tree])) == {0, grass}  # both came back


def test_a_drawing_saved_before_layers_opens_as_one_layer(studio: Studio) -> None:
    page = studio.page
    ids = np.zeros(SHAPE, np.uint8)
    ids[20:] = studio.pick_label("grass")
    studio.wait_autosaved()  # the clear's save is done: nothing is left to overwrite the old-format one
    page.evaluate(
        """([model, b64]) => {
            sessionStorage.clear();
            localStorage.setItem(`collage-studio.map.${model}`, JSON.stringify({ width: 32, height: 32, ids: b64 }));
        }""",
        ["tiny-spade", base64.b64encode(ids.tobytes()).decode()],
    )
    studio.reload()
    assert [layer["name"] for layer in layers(studio)] == ["Background"]
    np.testing.assert_array_equal(studio.ids(), ids)
