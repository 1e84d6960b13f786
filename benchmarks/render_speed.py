"""Procedural landscape throughput: sample_layout + sample_style + render pairs per second on ONE core.

    python benchmarks/render_speed.py --size 256 --n 60

Pins itself to one CPU and one BLAS/OpenMP thread (the target is ≥ 10 pairs/s at 256² per core, so data loading
scales with the number of loader workers). Prints a table and a JSON line. Wall-clock pairs/s suffer when other
processes share the core; CPU-time pairs/s shows what the code costs regardless.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from models.data import render, sample_layout, sample_style  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="square image side in pixels")
    parser.add_argument("--n", type=int, default=60, help="timed pairs (after 3 warm-up pairs)")
    parser.add_argument("--seed", type=int, default=0, help="first seed; pair i uses seed + i")
    parser.add_argument("--all-cores", action="store_true", help="do not pin the process to one CPU")
    args = parser.parse_args()
    if not args.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    def pair(seed: int) -> tuple[float, float]:
        rng = np.random.default_rng(seed)
        t0 = time.perf_counter()
        label, instance = sample_layout(rng, args.size)
        t1 = time.perf_counter()
        render(label, instance, sample_style(rng), seed)
        return t1 - t0, time.perf_counter() - t1

    for i in range(3):
        pair(args.seed + args.n + i)  # warm caches (interpolation matrices) outside the timed loop
    wall0, cpu0 = time.perf_counter(), time.process_time()
    times = np.array([pair(args.seed + i) for i in tqdm(range(args.n), desc="pairs", leave=False)])
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    result = {
        "size": args.size,
        "pairs": args.n,
        "pairs_per_s_wall": round(args.n / wall, 2),
        "pairs_per_s_cpu": round(args.n / cpu, 2),
        "layout_ms": round(1000 * float(np.median(times[:, 0])), 1),
        "render_ms": round(1000 * float(np.median(times[:, 1])), 1),
        "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    print(f"{'size':>6} {'pairs/s (wall)':>15} {'pairs/s (cpu)':>14} {'layout ms':>10} {'render ms':>10}")
    print(
        f"{args.size:>6} {result['pairs_per_s_wall']:>15} {result['pairs_per_s_cpu']:>14} "
        f"{result['layout_ms']:>10} {result['render_ms']:>10}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
