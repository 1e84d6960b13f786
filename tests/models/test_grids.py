"""`collage grids` on the shared tiny exported model (tests/conftest.py `tiny_weights`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.data import FAMILIES
from models.data.cli import grid_gap
from models.data.datasets import render_sample
from models.eval.data import eval_seeds
from models.grids import first_style_reference, main, text_band
from models.labels import LANDSCAPE

SIZE, N = 64, 2
GAP, BAND = grid_gap(SIZE), text_band(SIZE)


def _tile(image: np.ndarray, row: int, col: int, left: int = 0) -> np.ndarray:
    y, x = BAND + GAP + row * (SIZE + GAP), left + GAP + col * (SIZE + GAP)
    return image[y : y + SIZE, x : x + SIZE]


@pytest.fixture
def model(tiny_weights: Path, tmp_path: Path) -> Path:
    """The tiny model with its `winter` preset tagged as the winter family (model.json is not checksummed)."""
    folder = shutil.copytree(tiny_weights / "tiny-spade", tmp_path / "tiny-spade")
    manifest = json.loads((folder / "model.json").read_text())
    for style in manifest["styles"]:
        style["family"] = "winter" if style["name"] == "winter" else None
    (folder / "model.json").write_text(json.dumps(manifest))
    return folder


def test_grids_draw_heldout_layouts_and_style_families(model: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "docs"
    assert main([str(model), "--out", str(out), "--n", str(N), "--size", str(SIZE)]) == 0
    heldout_path, styles_path = out / "tiny-spade-heldout.png", out / "tiny-spade-styles.png"
    assert capsys.readouterr().out.split() == [str(heldout_path), str(styles_path)]

    heldout = np.asarray(Image.open(heldout_path).convert("RGB"))
    assert heldout.shape == (BAND + N * SIZE + (N + 1) * GAP, 3 * SIZE + 4 * GAP, 3)
    eval_seed = eval_seeds(0)["eval"]
    for i in range(N):
        label, _, render, _ = render_sample(eval_seed, i, SIZE)
        assert np.array_equal(_tile(heldout, i, 0), LANDSCAPE.ids_to_colors(label))
        assert np.array_equal(_tile(heldout, i, 2), render)
        generated = _tile(heldout, i, 1).astype(int)
        assert np.abs(generated - render).mean() > 5  # not a copy of the reference

    # Three columns (reference, from reference, preset) and one row per family, labels strip on the left.
    styles = np.asarray(Image.open(styles_path).convert("RGB"))
    families = len(FAMILIES)
    assert styles.shape == (BAND + families * SIZE + (families + 1) * GAP, BAND + 3 * SIZE + 4 * GAP, 3)
    first = first_style_reference(N)
    assert first == families  # the references follow the held-out rows, starting in family 0
    outputs = []
    for f, family in enumerate(FAMILIES):
        _, _, render, style = render_sample(eval_seed, first + f, SIZE)
        assert style == f
        assert np.array_equal(_tile(styles, f, 0, BAND), render)
        outputs.append(_tile(styles, f, 1, BAND).astype(int))
        assert np.abs(outputs[-1] - render).mean() > 5
        preset = _tile(styles, f, 2, BAND)
        assert (preset == 255).all() != (family == "winter")  # blank cell unless the family has a preset
    # Every row paints the same target layout in its reference's style: the outputs differ between families.
    assert min(np.abs(a - b).mean() for a, b in zip(outputs, outputs[1:], strict=False)) > 0


def test_style_references_start_after_the_heldout_rows_in_family_0() -> None:
    families = len(FAMILIES)
    assert [first_style_reference(n) for n in (1, families, families + 1)] == [
        families,
        families,
        2 * families,
    ]


def test_grids_without_family_presets_have_two_columns_at_the_model_size(
    tiny_weights: Path, tmp_path: Path
) -> None:
    assert main([str(tiny_weights / "tiny-spade"), "--out", str(tmp_path), "--n", "1"]) == 0
    native = 32  # no --size: the manifest's image_size
    with Image.open(tmp_path / "tiny-spade-styles.png") as styles:
        assert styles.width == text_band(native) + 2 * native + 3 * grid_gap(native)


def test_grids_refuse_folders_without_manifest_or_encoder(model: Path, tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    assert "no model.json" in capsys.readouterr().err
    manifest = json.loads((model / "model.json").read_text())
    manifest["files"]["encoder"] = None
    (model / "model.json").write_text(json.dumps(manifest))
    assert main([str(model), "--out", str(tmp_path / "figs"), "--size", str(SIZE)]) == 2
    assert "has no encoder" in capsys.readouterr().err
    assert not (tmp_path / "figs").exists()
