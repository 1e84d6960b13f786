"""Seconds per SPADE training step in fp32, under bfloat16 autocast, channels-last and torch.compile'd, measured
side by side in one process.

    python -m benchmarks.train_step --preset spade-fast --size 256 --batch 4 --steps 10 --threads 2
    python -m benchmarks.train_step --variants fp32 bf16 bf16-cl bf16-compile     # every variant

`collage train --precision=bf16` runs `recipe.step` under `torch.autocast(dtype=torch.bfloat16)`; this times that
call (G+E and D forward, backward and Adam steps; no data loading, no EMA update) per variant:

- fp32, bf16: the trainer's two precisions;
- bf16-cl: bf16 with the networks' weights and the real images in channels-last memory format (oneDNN's
  convolutions prefer NHWC on CPU);
- bf16-compile: bf16 with every network wrapped in `torch.compile` (Inductor; its compilation happens in the
  warm-up steps, which are not timed: raise --warmup if the first timed steps are still slow).

The recipes are built from the same seed and take the same procedural batch. After the warm-up, timed steps take
turns between the variants (forwards, then backwards the next round, ...), so load from other processes hits all
alike and the ratios of their medians hold where the absolute seconds do not. The speed-up of bf16 depends on the
CPU having native bf16 instructions (AVX512-BF16, AMX), so the flags and torch's version are recorded. Prints a
table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import default_collate
from tqdm import tqdm

from models.archs import Batch, Recipe
from models.data.datasets import make_dataset
from models.labels import LANDSCAPE
from models.training.config import resolve_config
from models.training.loop import images_channels_last, step_precision, to_channels_last
from models.training.setup import build_recipe, seed_all
from models.version import cpu_flags, cpu_model

VARIANTS = ("fp32", "bf16", "bf16-cl", "bf16-compile")  # (precision)[-cl: channels-last][-compile]
DEFAULT_VARIANTS = ("fp32", "bf16", "bf16-cl")  # compile's warm-up takes minutes at 256²: asked for by name


def make_recipe(config: dict[str, Any], seed: int, variant: str) -> Recipe:
    """The recipe as `variant` runs it: channels-last weights (-cl) or compiled networks (-compile)."""
    seed_all(seed)  # the trainer seeds the same way right before building: equal initial weights
    recipe = build_recipe(config, LANDSCAPE, torch.device("cpu"))
    if variant.endswith("-cl"):
        to_channels_last(recipe.nets.values())  # what `collage train --channels_last` does
    if variant.endswith("-compile"):
        recipe.nets = {name: cast(nn.Module, torch.compile(net)) for name, net in recipe.nets.items()}
    return recipe


def variant_batch(batch: Batch, variant: str) -> Batch:
    """The batch as `variant` feeds it: the real images channels-last for -cl (label maps stay ids)."""
    return images_channels_last(batch) if variant.endswith("-cl") else batch


def timed_step(recipe: Recipe, batch: Batch, variant: str) -> float:
    """Wall seconds of one step, wrapped exactly as the trainer wraps it (`.item()` on the losses syncs)."""
    start = time.perf_counter()
    with step_precision(torch.device("cpu"), variant.split("-")[0]):
        recipe.step(recipe.nets, batch)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="spade-fast", help="spade arch preset (networks and losses)")
    parser.add_argument("--size", type=int, default=256, help="square training size in pixels")
    parser.add_argument("--batch", type=int, default=4, help="images per step")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per precision (≥ 1)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per precision first")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights (every variant)")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(DEFAULT_VARIANTS),
        help="what to time (fp32 first)",
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be ≥ 1 and --warmup ≥ 0")
    if args.variants[0] != "fp32":
        parser.error("--variants must start with fp32: the others are reported as its speed-up")
    torch.set_num_threads(args.threads)

    overrides: list[tuple[str, str | None]] = [("size", str(args.size)), ("batch", str(args.batch))]
    config = resolve_config("spade", args.preset, overrides)
    config["label_set"] = LANDSCAPE.name
    dataset, _ = make_dataset("procedural", args.size, length=args.batch)
    # label, instance [B,H,W] int64; image [B,3,H,W] in [-1,1]
    batch = default_collate([dataset[i] for i in range(args.batch)])
    variants = list(dict.fromkeys(args.variants))
    recipes = {v: make_recipe(config, args.seed, v) for v in variants}
    batches = {v: variant_batch(batch, v) for v in variants}

    times: dict[str, list[float]] = {v: [] for v in variants}
    rounds = args.warmup + args.steps
    with tqdm(total=len(variants) * rounds, desc="training steps", unit="step", leave=False, delay=3) as bar:
        for round_ in range(rounds):
            for v in variants if round_ % 2 == 0 else variants[::-1]:
                seconds = timed_step(recipes[v], batches[v], v)
                if round_ >= args.warmup:
                    times[v].append(seconds)
                bar.update()

    median = {v: statistics.median(times[v]) for v in variants}
    rows = {
        v: {
            "s_per_step": round(median[v], 4),
            "s_per_step_min": round(min(times[v]), 4),
            "images_per_s": round(args.batch / median[v], 2),
            "speedup_vs_fp32": round(median["fp32"] / median[v], 3),
        }
        for v in variants
    }
    flags = cpu_flags()  # empty when /proc/cpuinfo lists none of the flags it looks for (not x86): unknown
    result = {
        "preset": args.preset,
        "size": args.size,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "warmup": args.warmup,
        "steps": args.steps,
        **rows,
        "torch": torch.__version__,
        "cpu_model": cpu_model(),
        "avx512_bf16": "avx512_bf16" in flags if flags else None,
        "amx_tile": "amx_tile" in flags if flags else None,
    }
    if "bf16" in rows:
        result["fp32_vs_bf16"] = round(median["fp32"] / median["bf16"], 3)
    print(f"{'variant':>13} {'s/step (median)':>16} {'s/step (min)':>13} {'images/s':>9} {'vs fp32':>8}")
    for v, row in rows.items():
        print(
            f"{v:>13} {row['s_per_step']:>16} {row['s_per_step_min']:>13} {row['images_per_s']:>9} "
            f"{row['speedup_vs_fp32']:>8}"
        )
    print(
        f"({args.preset}, {args.size}², batch {args.batch}, {result['threads']} thread(s); torch "
        f"{result['torch']}; avx512_bf16 {result['avx512_bf16']}, amx_tile {result['amx_tile']})"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
