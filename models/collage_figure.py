"""`collage grids --collage`: the CollageGAN figure (docs/collage.png) of a model folder with class generators.

    collage grids weights/NAME --collage [--out docs] [--n 3] [--painted 2] [--size S] [--seed 0]

writes OUT/collage.png. One row per map: label colours | base | base + collage, then zoomed crops (×3, nearest
neighbour, so no resampling hides or invents detail) of a tree, a rock and a house, the base's above the
composed one's. Two kinds of maps, because the stage must help on both:
- held-out procedural layouts (`collage eval`'s eval seed, disjoint from training): the first n in index order
  on which every class with a generator has an instance the stage composes (a layout without a composed rock
  could show no rock crop), judged on labels alone, never on the pictures; z = encoder μ of the layout's
  reference render, eval's primary path;
- maps painted as a person paints them in the studio (`models.data.painted`: triangle mountains, blob trees,
  rectangle houses, round rocks, drawn larger than the procedural things), each with a seeded random style
  (`seeded_z`, the contract's seeded style), as a user without a reference gets.

The stage is the server's (`common.collage.compose` through `ExportedModel.compose`), default latents (z = μ of
each instance's context), on the base generator's own float picture.

The crop of a class shows its largest composed instance whose square box fits the crop (else the smallest,
cut around its centre), so the same pixels are compared in both crops.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from common.collage import Planned, plan
from common.instances import instances_from_labels
from models.data.cli import grid_gap
from models.data.painted import painted_map
from models.data.samples import render_sample
from models.eval.data import eval_seeds
from models.eval.onnx_model import ExportedModel, seeded_z, to_uint8
from models.grids import font_px, text_band
from models.labels import LANDSCAPE

CROP_CLASSES = ("tree", "rock", "house")  # crop columns, left to right
ZOOM = 3  # crop magnification (nearest neighbour)
SCAN = 40  # eval layouts scanned per row wanted, before settling for layouts missing a class
PAINTED_KINDS = ("tree", "house", "rock", "tree", "tree", "house", "rock")  # one painted map's things
PAINTED_SCALE = 1.4  # a person paints things larger than the procedural layouts' (models.data.painted)
PAINTED_SEED = 2100  # painted map k: seed PAINTED_SEED + 16·SEED + k; its style: seeded_z(the same seed)
MAX_BYTES = 1_500_000  # the PNG's budget in the repository; above it the figure is saved with 256 colours
FILENAME = "collage.png"


@dataclass
class Row:
    """One map of the figure: its name (row label) and its tiles, uint8 H×W×3 each."""

    name: str
    labels: np.ndarray
    base: np.ndarray
    composed: np.ndarray
    # class → its (base, composed) crops, zoomed; None when the stage composes no instance of it
    crops: dict[str, tuple[np.ndarray, np.ndarray] | None]


def crop_side(size: int) -> int:
    """Side (picture px) of a crop: two zoomed crops and a gap stack to at most one tile's height."""
    return max(1, (size - grid_gap(size)) // (2 * ZOOM))


def crop_box(planned: Sequence[Planned], thing: str, side: int, size: int) -> tuple[int, int] | None:
    """(y0, x0) of the side×side crop showing an instance of `thing` (see the module docstring), inside the
    size×size picture; None when the stage composes no such instance."""
    candidates = [p for p in planned if p.thing == thing]  # largest first
    if not candidates:
        return None
    fits = [p for p in candidates if p.square.height <= side]
    pick = fits[0] if fits else min(candidates, key=lambda p: p.square.height)
    cy, cx = (pick.square.y0 + pick.square.y1) // 2, (pick.square.x0 + pick.square.x1) // 2
    clamp = max(0, size - side)
    return min(max(cy - side // 2, 0), clamp), min(max(cx - side // 2, 0), clamp)


def _zoom(image: np.ndarray, y0: int, x0: int, side: int) -> np.ndarray:
    return image[y0 : y0 + side, x0 : x0 + side].repeat(ZOOM, 0).repeat(ZOOM, 1)


def make_row(
    model: ExportedModel, name: str, labels: np.ndarray, instances: np.ndarray, z: np.ndarray
) -> Row:
    """Base and base + collage of one map (z [1,z_dim]), and the crops of each class."""
    base = model.run_base(labels[None], instances[None], z)  # [1,3,S,S] float
    composed = to_uint8(model.compose(base, labels[None], instances[None]))[0]
    base_u8 = to_uint8(base)[0]
    size, side = labels.shape[0], crop_side(labels.shape[0])
    specs = {cid: g.spec for cid, g in model.class_generators.items()}
    planned = plan(labels, instances, specs)
    crops: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for thing in CROP_CLASSES:
        at = crop_box(planned, thing, side, size)
        crops[thing] = None if at is None else (_zoom(base_u8, *at, side), _zoom(composed, *at, side))
    return Row(name, LANDSCAPE.ids_to_colors(labels), base_u8, composed, crops)


def heldout_maps(
    model: ExportedModel, seed: int, n: int, size: int
) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(eval index, labels, instances, render) of n eval layouts: the first on which every class with a
    generator has a composed instance; when fewer than n turn up in SCAN·n, those covering the most classes."""
    specs = {cid: g.spec for cid, g in model.class_generators.items()}
    wanted = {s.thing for s in specs.values()}
    scanned: list[tuple[int, int, tuple[np.ndarray, np.ndarray, np.ndarray]]] = []  # (covered, index, sample)
    found = 0
    for index in tqdm(range(SCAN * n), desc="scanning held-out layouts", unit="layout", leave=False):
        labels, instances, render, _ = render_sample(seed, index, size)
        covered = len(wanted & {p.thing for p in plan(labels, instances, specs)})
        scanned.append((covered, index, (labels, instances, render)))
        found += covered == len(wanted)
        if found == n:
            break
    best = sorted(scanned, key=lambda item: (-item[0], item[1]))[:n]
    return [(index, *sample) for _, index, sample in sorted(best, key=lambda item: item[1])]


def collage_figure(model: ExportedModel, seed: int, n: int, painted: int, size: int) -> Image.Image:
    """The figure's n held-out rows (eval dataset `eval_seeds(seed)["eval"]`), then its `painted` rows."""
    rows = []
    layouts = heldout_maps(model, eval_seeds(seed)["eval"], n, size)
    for index, labels, instances, render in tqdm(layouts, desc=f"{model.name}: held-out rows", unit="row"):
        z = model.encode(render[None])  # [1,z_dim]
        rows.append(make_row(model, f"held-out {index}", labels, instances, z))
    min_side = max(g.spec.min_side for g in model.class_generators.values())
    for k in tqdm(range(painted), desc=f"{model.name}: painted rows", unit="row"):
        map_seed = PAINTED_SEED + 16 * seed + k
        labels = painted_map(size, PAINTED_KINDS, map_seed, scale=PAINTED_SCALE, min_side=min_side)
        instances = instances_from_labels(labels, LANDSCAPE.thing_ids)
        rows.append(make_row(model, f"painted {k}", labels, instances, seeded_z([map_seed], model.z_dim)))
    return draw(rows, size, {g.spec.thing for g in model.class_generators.values()})


def figure_shape(rows: int, size: int) -> tuple[int, int]:
    """(height, width) of the figure with `rows` rows of size×size tiles."""
    gap, band, tile = grid_gap(size), text_band(size), ZOOM * crop_side(size)
    width = band + gap + 3 * (size + gap) + band + len(CROP_CLASSES) * (tile + gap)
    return band + rows * (size + gap) + gap, width


def draw(rows: Sequence[Row], size: int, drawn: Collection[str]) -> Image.Image:
    """Row labels rotated on the left; three size×size tiles; a strip naming the crop rows (base above,
    + collage below); the crops, one column per class (`drawn`: the classes the model has generators for; an
    empty cell says whether the row had no such object or the model no generator). Column headers above."""
    gap, band, tile = grid_gap(size), text_band(size), ZOOM * crop_side(size)
    font = ImageFont.load_default(size=font_px(size))
    height, width = figure_shape(len(rows), size)
    canvas = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(canvas)
    main_x = [band + gap + c * (size + gap) for c in range(3)]
    strip_x = main_x[-1] + size + gap
    crop_x = [strip_x + band + c * (tile + gap) for c in range(len(CROP_CLASSES))]
    headers = [("labels", size), ("base", size), ("base + collage", size)]
    for x, (text, w) in zip(
        main_x + crop_x, headers + [(f"{t} (x{ZOOM})", tile) for t in CROP_CLASSES], strict=True
    ):
        pen.text((x + w / 2, band / 2), text, fill="black", font=font, anchor="mm")
    for r, row in enumerate(rows):
        y = band + gap + r * (size + gap)
        for x, image in zip(main_x, (row.labels, row.base, row.composed), strict=True):
            canvas.paste(Image.fromarray(image), (x, y))
        canvas.paste(_rotated(row.name, size, band, font), (0, y))
        for k, text in enumerate(("base", "+ collage")):
            canvas.paste(_rotated(text, tile, band, font), (strip_x, y + k * (tile + gap)))
        for x, thing in zip(crop_x, CROP_CLASSES, strict=True):
            pair = row.crops[thing]
            if pair is None:
                text = f"no {thing}" if thing in drawn else "no generator"
                pen.text((x + tile / 2, y + tile / 2), text, fill="gray", font=font, anchor="mm")
                continue
            for k, image in enumerate(pair):
                canvas.paste(Image.fromarray(image), (x, y + k * (tile + gap)))
    return canvas


def _rotated(
    text: str, length: int, band: int, font: ImageFont.FreeTypeFont | ImageFont.ImageFont
) -> Image.Image:
    """`text` centred on a white length×band strip, turned to read bottom-up (band wide, length high)."""
    strip = Image.new("RGB", (length, band), "white")
    ImageDraw.Draw(strip).text((length / 2, band / 2), text, fill="black", font=font, anchor="mm")
    return strip.rotate(90, expand=True)


def save(image: Image.Image, path: Path, max_bytes: int = MAX_BYTES) -> None:
    """PNG as it is when it fits `max_bytes`; else with an adaptive 256-colour palette, not dithered (the
    generated pictures' noise makes lossless PNGs large, and dithering would add texture of its own)."""
    image.save(path, optimize=True)
    if path.stat().st_size > max_bytes:
        image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, optimize=True
        )


def run(model: ExportedModel, out: Path, seed: int, n: int, painted: int, size: int) -> Path:
    """Draw and write OUT/collage.png. `collage grids` has checked the rest: an encoder, landscape labels, the
    size, eval layouts disjoint from the model's training data."""
    if not model.has_collage:
        raise ValueError(f"{model.name} has no class generators (model.json lists none): nothing to compose")
    if painted < 0:
        raise ValueError(f"--painted must be ≥ 0, got {painted}")
    image = collage_figure(model, seed, n, painted, size)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILENAME
    save(image, path)
    return path
