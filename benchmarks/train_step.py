"""Seconds per SPADE training step in fp32 and under bfloat16 autocast, measured side by side in one process.

    python -m benchmarks.train_step --preset spade-fast --size 256 --batch 4 --steps 10 --threads 2

`collage train --precision=bf16` runs `recipe.step` under `torch.autocast(dtype=torch.bfloat16)`; this times that
call (G+E and D forward, backward and Adam steps; no data loading, no EMA update) in both precisions. The two
recipes are built from the same seed and take the same procedural batch. After the warm-up, timed steps alternate
between them (fp32 then bf16, then bf16 then fp32, ...), so load from other processes hits both alike and the
ratio of their medians holds where the absolute seconds do not. The speed-up depends on the CPU having native bf16
instructions (AVX512-BF16, AMX), so the flags and torch's version are recorded. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import torch
from torch.utils.data import default_collate
from tqdm import tqdm

from models.archs import Batch, Recipe
from models.data.datasets import make_dataset
from models.labels import LANDSCAPE
from models.training.config import resolve_config
from models.training.loop import step_precision
from models.training.setup import build_recipe, seed_all
from models.version import cpu_flags, cpu_model

PRECISIONS = ("fp32", "bf16")


def make_recipe(config: dict[str, Any], seed: int) -> Recipe:
    seed_all(seed)  # the trainer seeds the same way right before building: equal initial weights
    return build_recipe(config, LANDSCAPE, torch.device("cpu"))


def timed_step(recipe: Recipe, batch: Batch, precision: str) -> float:
    """Wall seconds of one step, wrapped exactly as the trainer wraps it (`.item()` on the losses syncs)."""
    start = time.perf_counter()
    with step_precision(torch.device("cpu"), precision):
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
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights (both precisions)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be ≥ 1 and --warmup ≥ 0")
    torch.set_num_threads(args.threads)

    overrides: list[tuple[str, str | None]] = [("size", str(args.size)), ("batch", str(args.batch))]
    config = resolve_config("spade", args.preset, overrides)
    config["label_set"] = LANDSCAPE.name
    dataset, _ = make_dataset("procedural", args.size, length=args.batch)
    # label, instance [B,H,W] int64; image [B,3,H,W] in [-1,1]
    batch = default_collate([dataset[i] for i in range(args.batch)])
    recipes = {precision: make_recipe(config, args.seed) for precision in PRECISIONS}

    times: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
    rounds = args.warmup + args.steps
    with tqdm(total=2 * rounds, desc="training steps", unit="step", leave=False, delay=3) as bar:
        for round_ in range(rounds):
            for precision in PRECISIONS if round_ % 2 == 0 else PRECISIONS[::-1]:
                seconds = timed_step(recipes[precision], batch, precision)
                if round_ >= args.warmup:
                    times[precision].append(seconds)
                bar.update()

    median = {precision: statistics.median(times[precision]) for precision in PRECISIONS}
    rows = {
        precision: {
            "s_per_step": round(median[precision], 4),
            "s_per_step_min": round(min(times[precision]), 4),
            "images_per_s": round(args.batch / median[precision], 2),
        }
        for precision in PRECISIONS
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
        "fp32_vs_bf16": round(median["fp32"] / median["bf16"], 3),
        "torch": torch.__version__,
        "cpu_model": cpu_model(),
        "avx512_bf16": "avx512_bf16" in flags if flags else None,
        "amx_tile": "amx_tile" in flags if flags else None,
    }
    print(f"{'precision':>9} {'s/step (median)':>16} {'s/step (min)':>13} {'images/s':>9}")
    for precision, row in rows.items():
        print(f"{precision:>9} {row['s_per_step']:>16} {row['s_per_step_min']:>13} {row['images_per_s']:>9}")
    print(
        f"fp32 / bf16 time per step: {result['fp32_vs_bf16']} ({args.preset}, {args.size}², batch {args.batch}, "
        f"{result['threads']} thread(s); torch {result['torch']}; avx512_bf16 {result['avx512_bf16']})"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
