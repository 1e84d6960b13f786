"""`collage data`: look at the procedural landscapes, export them as a pairs folder, or fill the shard cache.

    collage data preview --n 16 --size 256 --seed 1 --out grid.png   label colours beside renders
    collage data preview --layouts painted --n 8 --cols 4            painted layouts (`both`: every other one)
    collage data preview --free-styles 1                             every sample in a free style
    collage data preview --large 1                                   every sample a crop of a 2× render
    collage data preview … --colors 256                              a 256-colour PNG (README figures)
    collage data preview --crops tree --removal blur --out crops.png  class-generator samples: context with the
                                                                 instance removed | labels | mask | target
    collage data export  --n 1000 --size 256 --seed 0 --out DIR      images/, labels/, instances/, meta.json
    collage data cache   --length 4096 --size 256 --seed 0 --dir D   render the training cache up front
                                                                 (train with --data_cache=D, same size and seed)

Sample i is always `render_sample(seed, i, size, mix)`, the same pair that `ProceduralLandscapes(size, n, seed,
mix=mix)[i]` yields, so what the preview shows is what training sees. `--painted SHARE` (export, cache) mixes
painted layouts in as the trainer's `--data_painted=SHARE` does, `--free-styles SHARE` (preview, export, cache)
free styles as its `--data_free_styles=SHARE` does, `--large SHARE` (preview, export, cache) crops of renders at
twice the size as its `--data_large=SHARE` does.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from common.crops import Removal
from models.data import FAMILIES
from models.data.crops import MIN_SIDE, instance_crops
from models.data.datasets import META_FILE, SHARD_SIZE, prepare_cache
from models.data.samples import NO_MIX, Mix, render_sample
from models.labels import LANDSCAPE


def grid_gap(size: int) -> int:
    """White margin between and around the pairs of a preview grid."""
    return max(2, size // 64)


LAYOUTS = ("procedural", "painted", "both")  # what `preview --layouts` shows


def preview_grid(pairs: Sequence[tuple[np.ndarray, np.ndarray]], cols: int | None = None) -> np.ndarray:
    """Lay out (label colours, render) pairs, each H×W×3 uint8, side by side, `cols` pairs a row (default: a
    near-square grid)."""
    h, w = pairs[0][0].shape[:2]
    gap = grid_gap(min(h, w))
    cols = cols or math.ceil(math.sqrt(len(pairs)))
    rows = math.ceil(len(pairs) / cols)
    grid = np.full((rows * h + (rows + 1) * gap, cols * 2 * w + (cols + 1) * gap, 3), 255, np.uint8)
    for i, (colors, image) in enumerate(pairs):
        y = gap + (i // cols) * (h + gap)
        x = gap + (i % cols) * (2 * w + gap)
        grid[y : y + h, x : x + w] = colors
        grid[y : y + h, x + w : x + 2 * w] = image
    return grid


def preview(
    n: int,
    size: int,
    seed: int,
    out: Path,
    layouts: str = "procedural",  # procedural | painted | both
    cols: int | None = None,  # pairs per row (default: a near-square grid)
    colors: int | None = None,  # save with a palette of this many colours (a third of the bytes at 256)
    mix: Mix = NO_MIX,  # shares of free styles and large crops (`layouts` decides the painted share)
) -> None:
    """A grid of samples 0..n-1: procedural layouts, painted ones (every sample painted, as an evaluation's
    painted set), or both (even samples procedural, odd ones painted); free styles and large crops as `mix`
    says."""
    pairs = []
    start = time.perf_counter()
    for i in tqdm(range(n), desc="rendering", unit="pair"):
        painted = {"procedural": 0.0, "painted": 1.0, "both": float(i % 2)}[layouts]
        label, _, image, _ = render_sample(seed, i, size, replace(mix, painted=painted))
        pairs.append((LANDSCAPE.ids_to_colors(label), image))
    elapsed = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    grid = preview_grid(pairs, cols)
    picture = Image.fromarray(grid)
    if colors:
        picture = picture.quantize(colors, method=Image.Quantize.MEDIANCUT)
    picture.save(out, optimize=bool(colors))  # the smallest file for a figure; quick otherwise
    tqdm.write(f"wrote {out} ({grid.shape[1]}×{grid.shape[0]}, {n} pairs, {n / elapsed:.1f} pairs/s)")


def preview_crops(
    thing: str, removal: Removal, n: int, size: int, seed: int, out: Path, mix: Mix = NO_MIX
) -> None:
    """A grid of `n` instance crops of one thing class, one row each: context with the instance removed,
    label colours of the context, the instance mask, and the target (the context's central half, real); the
    samples they are cut from mixed as `mix` says."""
    try:
        label_entry = LANDSCAPE[thing]
    except KeyError as err:
        raise SystemExit(f"collage data preview: {err.args[0]}") from None
    if not label_entry.is_thing:
        things = ", ".join(LANDSCAPE[i].name for i in LANDSCAPE.thing_ids)
        raise SystemExit(f"collage data preview: {thing!r} is not a thing class ({things})")
    class_id = label_entry.id
    side = 128
    rows = []
    with tqdm(total=n, desc=f"{thing} crops", unit="crop") as bar:
        for i in range(100 * n):  # a layout may hold no instance of the class; give up after 100 per crop
            label, instance, image, _ = render_sample(seed, i, size, mix)
            for crop in instance_crops(label, instance, image, class_id, removal, side, side):
                mask = np.repeat(crop.mask[..., None].astype(np.uint8) * 255, 3, axis=2)
                rows.append((crop.context, LANDSCAPE.ids_to_colors(crop.labels), mask, crop.target))
                bar.update()
                if len(rows) == n:
                    break
            if len(rows) == n:
                break
    if not rows:
        raise SystemExit(f"collage data preview: no {thing} of at least {MIN_SIDE} px in {100 * n} layouts")
    gap = grid_gap(side)
    grid = np.full((len(rows) * (side + gap) + gap, 4 * (side + gap) + gap, 3), 255, np.uint8)
    for r, parts in enumerate(rows):
        for c, part in enumerate(parts):
            y, x = gap + r * (side + gap), gap + c * (side + gap)
            grid[y : y + side, x : x + side] = part
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out)
    tqdm.write(f"wrote {out} ({len(rows)} {thing} crops, removal {removal})")


def export(n: int, size: int, seed: int, out: Path, force: bool, mix: Mix = NO_MIX) -> None:
    """Write a pairs folder that `folder:OUT` (models.data.datasets.folder_dataset) reads back. meta.json names
    each picture's style family; a free-style picture has none (null, read back as -1)."""
    parts = [out / "images", out / "labels", out / "instances", out / META_FILE]
    if any(p.exists() for p in parts):
        if not force:
            raise SystemExit(f"collage data export: {out} already holds an export; use --force to replace it")
        for p in parts:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
    for p in parts[:3]:
        p.mkdir(parents=True)
    styles: dict[str, str | None] = {}
    for i in tqdm(range(n), desc="exporting", unit="pair"):
        label, instance, image, style = render_sample(seed, i, size, mix)
        if instance.max(initial=0) > np.iinfo(np.uint16).max:
            raise ValueError(f"sample {i} has more than 65535 instances")
        stem = f"{i:05d}"
        Image.fromarray(image).save(out / "images" / f"{stem}.png")
        Image.fromarray(label.astype(np.uint8), mode="L").save(out / "labels" / f"{stem}.png")
        Image.fromarray(instance.astype(np.uint16)).save(out / "instances" / f"{stem}.png")  # 16-bit PNG
        styles[stem] = FAMILIES[style] if style >= 0 else None
    generator = {"seed": seed, "size": size} | ({"painted": mix.painted} if mix.painted else {})
    generator |= ({"free_styles": mix.free} if mix.free else {}) | ({"large": mix.large} if mix.large else {})
    meta = {"label_set": LANDSCAPE.name, "generator": generator, "styles": styles}
    (out / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    tqdm.write(f"wrote {n} pairs to {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collage data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("preview", help="grid of label colours beside renders")
    p.add_argument("--n", type=int, default=16, help="number of pairs")
    p.add_argument("--size", type=int, default=256, help="side of each square sample in pixels")
    p.add_argument("--seed", type=int, default=0, help="dataset seed")
    p.add_argument("--out", type=Path, default=Path("grid.png"), help="PNG to write")
    p.add_argument("--layouts", choices=LAYOUTS, default="procedural", help="which layouts (both: alternate)")
    p.add_argument("--cols", type=int, default=None, help="pairs per row (default: a near-square grid)")
    p.add_argument("--colors", type=int, default=None, help="save with a palette of 2..256 colours")
    p.add_argument("--free-styles", type=float, default=0.0, help="share of free styles, 0..1 (default 0)")
    p.add_argument("--large", type=float, default=0.0, help="share of crops of 2× renders, 0..1 (default 0)")
    p.add_argument("--crops", metavar="THING", help="show class-generator crops of this thing class instead")
    p.add_argument(
        "--removal", choices=["blur", "zeros"], default="blur", help="how --crops removes the instance"
    )
    e = commands.add_parser("export", help="write a pairs folder (images/, labels/, instances/)")
    e.add_argument("--n", type=int, required=True, help="number of pairs")
    e.add_argument("--size", type=int, default=256, help="side of each square sample in pixels")
    e.add_argument("--seed", type=int, default=0, help="dataset seed")
    e.add_argument("--out", type=Path, required=True, help="folder to write")
    e.add_argument("--force", action="store_true", help="replace an earlier export in --out")
    e.add_argument("--painted", type=float, default=0.0, help="share of painted layouts, 0..1 (default 0)")
    e.add_argument("--free-styles", type=float, default=0.0, help="share of free styles, 0..1 (default 0)")
    e.add_argument("--large", type=float, default=0.0, help="share of crops of 2× renders, 0..1 (default 0)")
    c = commands.add_parser("cache", help=f"render the training shard cache ({SHARD_SIZE} pairs per shard)")
    c.add_argument("--length", type=int, required=True, help="number of samples")
    c.add_argument("--size", type=int, default=256, help="side of each square sample (the run's --size)")
    c.add_argument("--seed", type=int, default=0, help="dataset seed")
    c.add_argument("--dir", type=Path, required=True, help="cache folder (the trainer's --data_cache)")
    c.add_argument("--workers", type=int, default=1, help="rendering processes")
    c.add_argument(
        "--painted", type=float, default=0.0, help="share of painted layouts (the run's --data_painted)"
    )
    c.add_argument(
        "--free-styles", type=float, default=0.0, help="share of free styles (the run's --data_free_styles)"
    )
    c.add_argument(
        "--large", type=float, default=0.0, help="share of crops of 2× renders (the run's --data_large)"
    )
    args = parser.parse_args(argv)
    count = args.length if args.command == "cache" else args.n
    if count < 1 or args.size < 1 or getattr(args, "cols", None) is not None and args.cols < 1:
        parser.error("counts, --size and --cols must be positive")
    if getattr(args, "colors", None) is not None and not 2 <= args.colors <= 256:
        parser.error("--colors must lie in 2..256")
    for share in ("painted", "free_styles", "large"):  # preview takes no --painted (its --layouts decides)
        if not 0.0 <= getattr(args, share, 0.0) <= 1.0:
            parser.error(f"--{share.replace('_', '-')} is a share of the samples: 0..1")
    mix = Mix(getattr(args, "painted", 0.0), args.free_styles, args.large)
    if args.command == "preview" and args.crops:
        preview_crops(args.crops, args.removal, args.n, args.size, args.seed, args.out, mix)
    elif args.command == "preview":
        preview(args.n, args.size, args.seed, args.out, args.layouts, args.cols, args.colors, mix)
    elif args.command == "export":
        export(args.n, args.size, args.seed, args.out, args.force, mix)
    else:
        folder = prepare_cache(args.dir, args.size, args.length, args.seed, args.workers, mix)
        tqdm.write(f"cache ready: {folder}")
    return 0
