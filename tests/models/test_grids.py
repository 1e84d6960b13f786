"""`collage grids` on the shared tiny exported models (tests/conftest.py `tiny_weights`, `tiny_collage_weights`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from models.collage_figure import (
    MAX_BYTES,
    PAINTED_KINDS,
    PAINTED_SCALE,
    PAINTED_SEED,
    ZOOM,
    crop_side,
    figure_shape,
    save,
)
from models.data import FAMILIES
from models.data.cli import grid_gap
from models.data.painted import painted_map
from models.data.samples import render_sample
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


def _has_block(tile: np.ndarray, picture: np.ndarray) -> bool:
    """tile (a ×3 nearest-neighbour zoom) is made of 3×3 blocks and its source is a window of picture."""
    small = tile[::ZOOM, ::ZOOM]
    if not np.array_equal(small.repeat(ZOOM, 0).repeat(ZOOM, 1), tile):
        return False
    windows = np.lib.stride_tricks.sliding_window_view(picture, small.shape)
    return bool((windows == small).all(axis=(-3, -2, -1)).any())


def test_collage_figure_rows_tiles_and_crops(tiny_collage_weights: Path, tmp_path: Path, capsys) -> None:
    size, n, painted = 128, 1, 1
    folder = tiny_collage_weights / "tiny-collage"
    argv = [
        "--collage",
        "--out",
        str(tmp_path),
        "--size",
        str(size),
        "--n",
        str(n),
        "--painted",
        str(painted),
    ]
    assert main([str(folder), *argv]) == 0
    path = tmp_path / "collage.png"
    assert capsys.readouterr().out.split() == [str(path)]
    assert path.stat().st_size < MAX_BYTES
    figure = np.asarray(Image.open(path).convert("RGB"))
    assert figure.shape == (*figure_shape(n + painted, size), 3)

    gap, band, tile = grid_gap(size), text_band(size), ZOOM * crop_side(size)
    assert 2 * tile + gap <= size  # the two crops of a class stack within one row

    def main_tile(row: int, col: int) -> np.ndarray:
        y, x = band + gap + row * (size + gap), band + gap + col * (size + gap)
        return figure[y : y + size, x : x + size]

    # The painted row: its label map, and a base and a composed picture that differ where things are.
    labels = painted_map(size, PAINTED_KINDS, PAINTED_SEED, scale=PAINTED_SCALE, min_side=12)
    assert np.array_equal(main_tile(n, 0), LANDSCAPE.ids_to_colors(labels))
    base, composed = main_tile(n, 1), main_tile(n, 2)
    changed = (base != composed).any(axis=-1)
    things = np.isin(labels, LANDSCAPE.thing_ids)
    assert changed.any() and not changed[~ndimage.binary_dilation(things, iterations=size // 4)].any()
    # Its tree crops: ×3 zooms of one window, cut from the base picture above and the composed one below.
    x0 = band + gap + 3 * (size + gap) + band
    y0 = band + gap + n * (size + gap)
    top = figure[y0 : y0 + tile, x0 : x0 + tile]
    bottom = figure[y0 + tile + gap : y0 + 2 * tile + gap, x0 : x0 + tile]
    assert _has_block(top, base) and _has_block(bottom, composed)


def test_collage_figure_needs_class_generators(tiny_weights: Path, tmp_path: Path, capsys) -> None:
    assert main([str(tiny_weights / "tiny-spade"), "--collage", "--out", str(tmp_path), "--size", "64"]) == 2
    assert "has no class generators" in capsys.readouterr().err
    assert not (tmp_path / "collage.png").exists()


def test_a_figure_over_its_byte_budget_is_saved_with_a_palette(tmp_path: Path) -> None:
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    save(Image.fromarray(noisy), tmp_path / "rgb.png", max_bytes=10**6)
    save(Image.fromarray(noisy), tmp_path / "small.png", max_bytes=1000)
    with Image.open(tmp_path / "rgb.png") as rgb, Image.open(tmp_path / "small.png") as small:
        assert (rgb.mode, small.mode) == ("RGB", "P") and small.size == (64, 64)
