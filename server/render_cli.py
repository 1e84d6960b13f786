"""`collage render`: a folder or zip of label maps → pictures, with the server's engine, resumable.

    collage render maps/ --out renders/ --seed 7 --styles-per-map 3
    collage render maps.zip --out renders/ --preset all --format jpeg
    collage render maps/ --out renders/ --style-image sunset.jpg --model landscape-spade

Pictures go to `OUT/<map path without extension>__<k>.<ext>` (`__<preset>` for presets, `__style` for a photo);
`OUT/manifest.jsonl` gets one line per finished picture and `OUT/render.json` the resolved settings. Run it again
and it renders only what is missing; a map it cannot read or render is reported and the rest go on (exit code 1
at the end, 2 when nothing could start). Seeds and batching: see server/batch_render.py.

    collage render maps/ --out renders/ --ray-address 10.0.0.5:6379 [--ray-actors 8]

renders on a Ray cluster instead (also when $RAY_ADDRESS is set; the flag wins): the same pictures, manifest and
resume rules, rendered by a pool of actors (server/ray_render.py; needs the `scale` extra).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from common.runtime import PRECISION_CHOICES, RUNTIME_CHOICES, RuntimeChoice
from server.batch_render import (
    OutputFolder,
    Plan,
    Renderer,
    RenderSetupError,
    Sources,
    Task,
    by_source,
    read_sources,
    tasks,
)
from server.config import Settings
from server.errors import BadInput
from server.ray_render import RAY_ADDRESS_ENV, RenderPool, import_ray, ray_address, run_ray, start_pool
from server.registry import ModelLoadError


def parse_args(argv: list[str]) -> argparse.Namespace:
    settings = Settings()
    p = argparse.ArgumentParser(
        prog="collage render",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Defaults for the model, weights folder, runtime and precision come from COLLAGE_* variables.",
    )
    p.add_argument("input", type=Path, help="folder of label PNGs (any depth) or a zip of them")
    p.add_argument("--out", type=Path, required=True, help="output folder (finished pictures stay)")
    p.add_argument(
        "--model", default=settings.default_model, help="model name under --weights, or a model folder"
    )
    p.add_argument("--weights", type=Path, default=settings.weights_dir, help="folder of model folders")
    style = p.add_mutually_exclusive_group()
    style.add_argument("--seed", type=int, help="base seed; each picture's seed derives from it (default 0)")
    style.add_argument("--preset", help="a preset style of the model, or `all` for one picture per preset")
    style.add_argument("--style-image", type=Path, help="a photo whose style every map takes")
    p.add_argument("--styles-per-map", type=int, default=1, help="pictures per map, a seed each")
    p.add_argument("--format", default="png", choices=["png", "jpeg", "webp"], help="picture format")
    p.add_argument("--quality", type=int, default=90, help="JPEG/WebP quality 1..100")
    p.add_argument("--collage", action="store_true", help="run the CollageGAN stage")
    p.add_argument("--runtime", default=settings.runtime, choices=RUNTIME_CHOICES)
    p.add_argument("--precision", default=settings.precision, choices=PRECISION_CHOICES)
    p.add_argument(
        "--threads",
        type=int,
        default=settings.threads,
        help="runtime threads per picture; 0 = every usable core (on Ray: every core of the smallest node)",
    )
    p.add_argument(
        "--ray-address",
        help=f"render on the Ray cluster at this address (default: ${RAY_ADDRESS_ENV}; neither: locally)",
    )
    p.add_argument(
        "--ray-actors",
        type=int,
        help="actors rendering on Ray, a Renderer each (default: the cluster's CPUs / --threads)",
    )
    args = p.parse_args(argv)
    if args.ray_actors is not None and args.ray_actors < 1:
        p.error("--ray-actors must be at least 1")
    if args.styles_per_map < 1:
        p.error("--styles-per-map must be at least 1")
    if args.styles_per_map > 1 and (args.preset or args.style_image):
        p.error("--styles-per-map takes seeds; a preset or a photo gives one picture per map and style")
    if args.seed is None and args.preset is None and args.style_image is None:
        args.seed = 0
    return args


def model_folder(model: str, weights: Path) -> Path:
    """`--model` as a folder holding model.json, else a name under `--weights`."""
    as_path = Path(model)
    return as_path if (as_path / "model.json").is_file() else weights / model


def run_local(
    renderer: Renderer, plan: Plan, sources: Sources, out: OutputFolder, todo: list[Task], bar: tqdm[Any]
) -> dict[str, str]:
    """Render `todo` map by map, one picture at a time; → {map: why it failed}."""
    failed: dict[str, str] = {}
    for source, group in by_source(todo):
        left = len(group)
        try:
            labels = renderer.decode(sources.read(source))
            for task in group:
                data, ms = renderer.render(plan, task, labels)
                out.write(plan, task, data, ms)
                left -= 1
                bar.update(1)
        except Exception as exc:  # one bad map must not sink the batch
            failed[source] = exc.message if isinstance(exc, BadInput) else f"{type(exc).__name__}: {exc}"
            tqdm.write(f"collage render: {source}: {failed[source]}", file=sys.stderr)
            bar.update(left)
    return failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = Settings()
    if not args.input.exists():
        print(f"collage render: no such input {args.input}", file=sys.stderr)
        return 2
    address = ray_address(args.ray_address)
    # Never the runtime's own default: the count moves OpenVINO's pixels, so render.json records it.
    choice = replace(
        settings.runtime_choice(), runtime=args.runtime, precision=args.precision, threads=args.threads
    )
    folder = model_folder(args.model, args.weights)
    pool = None
    if address is not None:
        encoding = (args.format, args.quality, args.collage)
        try:  # before this process opens the model: the actors open theirs meanwhile
            pool = start_pool(address, folder, choice, settings.max_pixels, encoding, args.ray_actors)
        except RenderSetupError as exc:  # the extra missing, no node with the threads asked for
            print(f"collage render: {exc}", file=sys.stderr)
            return 2
        choice = replace(choice, threads=pool.threads)  # the actors' count (0: the smallest node's cores)
        print(
            f"collage render: on Ray at {address}, {len(pool.actors)} actors × {pool.threads} threads",
            file=sys.stderr,
        )
    elif not choice.threads:
        choice = replace(choice, threads=len(os.sched_getaffinity(0)))
    try:
        return _open_and_render(args, folder, choice, settings, pool)
    finally:
        if pool is not None:
            pool.close()
            import_ray().shutdown()


def _open_and_render(
    args: argparse.Namespace, folder: Path, choice: RuntimeChoice, settings: Settings, pool: RenderPool | None
) -> int:
    try:
        renderer = Renderer(folder, choice, settings.max_pixels)
    except ModelLoadError as exc:
        print(f"collage render: cannot load model {args.model!r}: {exc}", file=sys.stderr)
        return 2
    try:
        return _render(args, renderer, settings, pool)
    except RenderSetupError as exc:
        print(f"collage render: {exc}", file=sys.stderr)
        return 2
    finally:
        renderer.close()


def _render(args: argparse.Namespace, renderer: Renderer, settings: Settings, pool: RenderPool | None) -> int:
    plan = renderer.plan(
        args.format, args.quality, args.collage, args.seed, args.styles_per_map, args.preset, args.style_image
    )
    sources = read_sources(args.input, exclude=args.out, max_bytes=settings.max_upload_bytes)
    out = OutputFolder(args.out)
    everything = tasks(plan, sources.names)
    out.open(plan, everything)
    todo = [t for t in everything if not out.done(t)]
    info = renderer.model.runtime
    print(
        f"collage render: {len(sources.names)} maps, {len(everything)} pictures ({len(everything) - len(todo)} "
        f"done already) with {plan.model} on {info.runtime} {info.precision} → {args.out}"
        + (f"; {sources.ignored} files that are not .png ignored" if sources.ignored else ""),
        file=sys.stderr,
    )
    with tqdm(total=len(everything), initial=len(everything) - len(todo), unit="pic") as bar:
        if pool is None:
            ran = run_local(renderer, plan, sources, out, todo, bar)
        else:
            ran = run_ray(renderer, plan, sources, out, todo, bar, pool)
        failed = dict(sources.bad) | ran
    done = sum(out.done(t) for t in everything)
    print(
        f"collage render: {done}/{len(everything)} pictures in {args.out}; "
        f"{len(failed)} map{'s' if len(failed) != 1 else ''} failed"
        + "".join(f"\n  {source}: {why}" for source, why in sorted(failed.items())),
        file=sys.stderr,
    )
    return 1 if failed else 0
