"""The model zoo in the studio, in a real browser: each architecture picked in the model picker paints a picture
through the websocket, and the style panel offers only what that model can use (its manifest's capabilities).

First on untrained models exported by `collage export` like a user's run: `tiny-spade` (photo encoder, z,
presets), `tiny-oasis` (3D noise from the seed: z and per-pixel noise, no encoder) and `tiny-lggan`
(deterministic: no encoder, no z, no noise); then on every model shipped in weights/.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import export_untrained
from tests.frontend.conftest import ServerProcess, start_server
from tests.frontend.studio import Studio

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def zoo_server(
    tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[ServerProcess]:
    weights = tmp_path_factory.mktemp("zoo-weights")
    shutil.copytree(tiny_weights / "tiny-spade", weights / "tiny-spade")
    export_untrained(weights / "tiny-oasis", "oasis", "oasis-tiny")
    export_untrained(weights / "tiny-lggan", "lggan", "lggan-tiny")
    for run in weights.glob("run-*"):
        shutil.rmtree(run)
    server = start_server(weights, tmp_path_factory, free_port())
    yield server
    server.stop()


# What the style panel shows per model: photo drop zone, presets, seed; CollageGAN is none of theirs.
OFFERS = {
    "tiny-spade": {"#style-drop": True, "[data-section=presets]": True, "[data-section=seed]": True},
    "tiny-oasis": {"#style-drop": False, "[data-section=presets]": False, "[data-section=seed]": True},
    "tiny-lggan": {"#style-drop": False, "[data-section=presets]": False, "[data-section=seed]": False},
}


def paint_each(studio: Studio, offers: dict[str, dict[str, bool]]) -> dict[str, np.ndarray]:
    """Pick each model in the picker; its picture arrives over the websocket and only its controls show."""
    page = studio.page
    pictures = {}
    for model, shown in offers.items():
        seq = studio.seq()
        if page.evaluate("collage.getModel()") != model:  # the open one (the picker hides with one model)
            page.locator("#model-select").select_option(model)
            page.wait_for_function(f"collage.getModel() === '{model}'")
        else:
            seq = 0
        studio.wait_fresh_frame(seq)
        pictures[model] = studio.picture()
        assert pictures[model].std() > 1, model  # a picture, not a blank canvas
        for selector, visible in shown.items():
            target = expect(page.locator(selector))
            (target.to_be_visible if visible else target.to_be_hidden)()
    return pictures


def test_each_architecture_paints_from_the_picker_and_shows_only_its_controls(page: Page, zoo_server) -> None:
    studio = Studio(page, zoo_server.url)
    studio.open("?model=tiny-spade")
    names = page.locator("#model-select option").all_inner_texts()
    assert names == ["tiny-lggan (lggan)", "tiny-oasis (oasis)", "tiny-spade (spade)"], names
    offers = {model: {**shown, "#collage-toggle": False} for model, shown in OFFERS.items()}
    pictures = paint_each(studio, offers)
    assert not np.array_equal(pictures["tiny-oasis"], pictures["tiny-lggan"])
    assert studio.console_errors == []


# What each architecture offers, from its paper: a photo style and presets need an encoder (SPADE's VAE,
# CollageGAN's pyramid encoder); the seed needs a latent or 3D noise (OASIS, DP-GAN); SC-GAN and LGGAN are
# deterministic.
ARCH_OFFERS = {
    "spade": (True, True, True),
    "collage-base": (True, True, True),
    "oasis": (False, False, True),
    "dp-gan": (False, False, True),
    "sc-gan": (False, False, False),
    "lggan": (False, False, False),
}


@pytest.fixture(scope="module")
def shipped_server(
    tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[ServerProcess]:
    server = start_server(REPO / "weights", tmp_path_factory, free_port())
    yield server
    server.stop()


def test_every_shipped_model_paints_from_the_picker(page: Page, shipped_server) -> None:
    manifests = [json.loads(p.read_text()) for p in sorted((REPO / "weights").glob("*/model.json"))]
    offers = {}
    for m in manifests:
        photo, presets, seed = ARCH_OFFERS[m["architecture"]]
        offers[m["name"]] = {
            "#style-drop": photo,
            "[data-section=presets]": presets,
            "[data-section=seed]": seed,
        }
        offers[m["name"]]["#collage-toggle"] = bool(m.get("class_generators"))
    studio = Studio(page, shipped_server.url)
    studio.open()
    names = page.locator("#model-select option").all_inner_texts()
    assert names == [f"{m['name']} ({m['architecture']})" for m in manifests], names
    pictures = paint_each(studio, offers)
    for a, b in zip(list(pictures), list(pictures)[1:], strict=False):
        assert not np.array_equal(pictures[a], pictures[b]), (a, b)  # each model paints its own picture
    assert studio.console_errors == []
