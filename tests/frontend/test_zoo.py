"""The model zoo in the studio, in a real browser: each architecture picked in the model picker paints a picture
through the websocket, and the style panel offers only what that model can use (its manifest's capabilities).

Models (untrained, exported by `collage export` like a user's run): `tiny-spade` (photo encoder, z, presets),
`tiny-oasis` (3D noise from the seed: z and per-pixel noise, no encoder) and `tiny-lggan` (deterministic: no
encoder, no z, no noise).
"""

from __future__ import annotations

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


def test_each_architecture_paints_from_the_picker_and_shows_only_its_controls(page: Page, zoo_server) -> None:
    studio = Studio(page, zoo_server.url)
    studio.open("?model=tiny-spade")
    names = page.locator("#model-select option").all_inner_texts()
    assert names == ["tiny-lggan (lggan)", "tiny-oasis (oasis)", "tiny-spade (spade)"], names
    pictures = {}
    for model, offers in OFFERS.items():
        seq = studio.seq()
        page.locator("#model-select").select_option(model)
        page.wait_for_function(f"collage.getModel() === '{model}'")
        studio.wait_fresh_frame(seq)
        pictures[model] = studio.picture()
        assert pictures[model].std() > 1, model  # a picture, not a blank canvas
        for selector, shown in offers.items():
            (
                expect(page.locator(selector)).to_be_visible
                if shown
                else expect(page.locator(selector)).to_be_hidden
            )()
        expect(page.locator("#collage-toggle")).to_be_hidden()
    assert not np.array_equal(pictures["tiny-oasis"], pictures["tiny-lggan"])
    assert studio.console_errors == []
