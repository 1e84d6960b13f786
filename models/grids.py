"""`collage grids`: the README's two figures for an exported model folder, run as the server runs it.

    collage grids weights/NAME [--out docs] [--n 6] [--size S] [--seed 0]
    collage grids weights/NAME --collage [--n 3] [--painted 2] …   # OUT/collage.png (models/collage_figure.py)

writes OUT/NAME-heldout.png and OUT/NAME-styles.png. Both draw on the evaluation layouts of `collage eval`
(dataset seed `eval_seeds(SEED)["eval"]`, disjoint from training), so the figures show what the numbers score:
- heldout: one row per layout 0..n-1: label colours | generated | reference render. The generated image takes
  z = encoder μ of the reference render, the path a user takes when uploading a reference.
- styles: one row per style family, on the layouts after the held-out rows. Families cycle with the sample index,
  so F consecutive layouts starting at a multiple of F (F = len(FAMILIES)) give one reference render per family
  and the next layout is the one fixed target every row paints: reference | generated on the target with z = μ
  of that reference | the manifest's preset style of that family (the column exists when the manifest has
  presets tagged with a family; a family without one leaves its cell blank).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from common.manifest import Manifest
from models.data import FAMILIES
from models.data.cli import grid_gap
from models.eval.data import check_disjoint, eval_seeds, load_renders
from models.eval.onnx_model import ExportedModel
from models.labels import LANDSCAPE

TARGET = len(FAMILIES)  # the styles figure's target: the layout after its F references


def first_style_reference(n: int) -> int:
    """Eval layout of the styles figure's first reference: after the n held-out rows, in family 0."""
    return -(-n // len(FAMILIES)) * len(FAMILIES)


def font_px(size: int) -> int:
    """Text height for tiles of side `size`: readable at 64 px, proportionate at 256."""
    return max(10, size // 16)


def text_band(size: int) -> int:
    """Height of the column-header band, and width of the rotated row-label strip."""
    return font_px(size) + 2 * grid_gap(size)


def compose(
    rows: Sequence[Sequence[np.ndarray | None]],
    headers: Sequence[str],
    size: int,
    row_labels: Sequence[str] | None = None,
) -> Image.Image:
    """Tiles uint8 [size,size,3] (None = blank cell) in a white grid with column headers above and, when given,
    row labels rotated in a strip on the left, so the figure's size depends only on the grid's shape and `size`.
    """
    gap, band = grid_gap(size), text_band(size)
    font = ImageFont.load_default(size=font_px(size))
    left = band if row_labels else 0
    cols = len(headers)
    canvas = Image.new(
        "RGB",
        (left + cols * size + (cols + 1) * gap, band + len(rows) * size + (len(rows) + 1) * gap),
        "white",
    )
    draw = ImageDraw.Draw(canvas)
    for c, header in enumerate(headers):
        x = left + gap + c * (size + gap) + size / 2
        draw.text((x, band / 2), header, fill="black", font=font, anchor="mm")
    for r, row in enumerate(rows):
        y = band + gap + r * (size + gap)
        for c, tile in enumerate(row):
            if tile is not None:
                canvas.paste(Image.fromarray(tile), (left + gap + c * (size + gap), y))
        if row_labels:
            strip = Image.new("RGB", (size, band), "white")
            ImageDraw.Draw(strip).text(
                (size / 2, band / 2), row_labels[r], fill="black", font=font, anchor="mm"
            )
            canvas.paste(strip.rotate(90, expand=True), (0, y))
    return canvas


def heldout_figure(
    model: ExportedModel, labels: np.ndarray, instances: np.ndarray, renders: np.ndarray
) -> Image.Image:
    """labels/instances [n,S,S], renders [n,S,S,3] → label colours | generated (z = μ of the render) | render."""
    rows = []
    for i in tqdm(range(len(labels)), desc=f"{model.name}: held-out layouts", unit="layout"):
        z = model.encode(renders[i : i + 1])  # [1,z_dim]
        generated = model.generate(labels[i : i + 1], instances[i : i + 1], z)[0]
        rows.append([LANDSCAPE.ids_to_colors(labels[i]), generated, renders[i]])
    return compose(rows, ["label map", "generated", "reference render"], labels.shape[-1])


def family_presets(manifest: Manifest) -> dict[str, np.ndarray]:
    """The manifest's preset latents by family (the first preset of each family), [z_dim] float32 each."""
    out: dict[str, np.ndarray] = {}
    for style in manifest.styles:
        if style.family and style.family not in out:
            out[style.family] = np.asarray(style.z, np.float32)
    return out


def styles_figure(
    model: ExportedModel, labels: np.ndarray, instances: np.ndarray, renders: np.ndarray
) -> Image.Image:
    """Layouts 0..F-1 are the references (layout f is in family f), layout TARGET is painted in each style."""
    presets = family_presets(model.manifest)
    target_label, target_instance = labels[TARGET : TARGET + 1], instances[TARGET : TARGET + 1]  # [1,S,S]
    rows = []
    for f, family in enumerate(tqdm(FAMILIES, desc=f"{model.name}: style families", unit="family")):
        z = model.encode(renders[f : f + 1])  # [1,z_dim]
        row: list[np.ndarray | None] = [renders[f], model.generate(target_label, target_instance, z)[0]]
        if presets:
            preset = presets.get(family)
            row.append(
                None if preset is None else model.generate(target_label, target_instance, preset[None])[0]
            )
        rows.append(row)
    headers = ["reference", "from reference", *(["preset style"] if presets else [])]
    return compose(rows, headers, labels.shape[-1], row_labels=FAMILIES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collage grids", description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="exported model folder with an encoder, e.g. weights/NAME")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the PNGs (default docs)")
    parser.add_argument(
        "--n", type=int, default=None, help="held-out layouts, one per row (default 6; with --collage 3)"
    )
    parser.add_argument(
        "--collage",
        action="store_true",
        help="draw the CollageGAN figure (OUT/collage.png: labels | base | base + collage, zoomed crops) instead",
    )
    parser.add_argument(
        "--painted", type=int, default=2, help="with --collage: rows of person-painted maps (default 2)"
    )
    parser.add_argument(
        "--size", type=int, default=None, help="side of each tile in pixels (default: the model's image_size)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="shifts the eval dataset seed by 16·SEED (default 0)"
    )
    args = parser.parse_args(argv)
    try:
        paths = _run(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"collage grids: {e}", file=sys.stderr)  # noqa: T201
        return 2
    for path in paths:
        print(path)  # noqa: T201
    return 0


def _run(args: argparse.Namespace) -> list[Path]:
    if args.n is None:
        args.n = 3 if args.collage else 6
    if args.n < 1:
        raise ValueError(f"--n must be ≥ 1, got {args.n}")
    model = ExportedModel(args.model)
    if model.encoder is None:
        raise ValueError(f"{args.model} has no encoder: the figures take z from reference renders")
    if model.labels.name != LANDSCAPE.name:
        raise ValueError(f"{model.name} paints label set {model.labels.name!r}; the figures use landscapes")
    size = model.image_size[0] if args.size is None else args.size
    model.check_size(size)
    seed = eval_seeds(args.seed)["eval"]
    check_disjoint(model, {"eval": seed})
    if args.collage:
        from models.collage_figure import run

        return [run(model, args.out, args.seed, args.n, args.painted, size)]
    first = first_style_reference(args.n)
    with tempfile.TemporaryDirectory(prefix="collage-grids-") as cache:
        labels, instances, renders, _ = load_renders(seed, first + TARGET + 1, size, Path(cache), 1)
    args.out.mkdir(parents=True, exist_ok=True)
    heldout, styles = args.out / f"{model.name}-heldout.png", args.out / f"{model.name}-styles.png"
    rows, refs = slice(0, args.n), slice(first, None)
    heldout_figure(model, labels[rows], instances[rows], renders[rows]).save(heldout)
    styles_figure(model, labels[refs], instances[refs], renders[refs]).save(styles)
    return [heldout, styles]


if __name__ == "__main__":
    sys.exit(main())
