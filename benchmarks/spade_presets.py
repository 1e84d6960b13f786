"""GMACs, parameters and onnxruntime latency of the SPADE presets, side by side.

Each preset's generator (random init is enough for timing) is exported exactly as `collage export` does (spectral
norm folded, dynamic H/W, opset 18), then timed on onnxruntime with 2 threads, batch 1, 256², median of N runs.
Prints JSON, then a Markdown table.

The 2 cores are shared with everyone's tests and training, and a 2-thread session stalls whenever either thread
is preempted, so wall-clock numbers depend on the load (recorded). The CPU time of a 1-thread session per frame
is much less sensitive to it and is reported too: on an idle machine 2 threads take a bit over half of it.

    .venv/bin/python benchmarks/spade_presets.py [--presets spade-fast spade-paper] [--runs 20] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from common.runtime import RuntimeChoice, open_graph
from models.archs.spade import build_generator, generator_role, get_preset
from models.export import export_graph
from models.flops import count_gmacs, count_params
from models.labels import LANDSCAPE


def bench_preset(
    name: str, size: int, runs: int, budget_s: float, label_nc: int, workdir: Path
) -> dict[str, Any]:
    """Export one preset's generator to `workdir` and time it; `runs` is capped to fit `budget_s` seconds."""
    torch.manual_seed(0)
    network = build_generator(get_preset(name), label_nc)
    role = generator_role(network)
    path = workdir / f"{name}.onnx"
    generator = export_graph("generator", role, path, (size, size)).module  # the exported copy
    # onnxruntime's CPU provider, as this benchmark has always timed (benchmarks/runtimes.py compares runtimes).
    session = open_graph(path, RuntimeChoice("onnxruntime", threads=2, providers=("cpu",)))
    rng = np.random.default_rng(0)
    feed: dict[str, np.ndarray] = {
        "label": rng.integers(0, label_nc, (1, 1, size, size), dtype=np.int64),
        "instance": np.zeros((1, 1, size, size), dtype=np.int64),
        "z": rng.standard_normal((1, network.z_dim), dtype=np.float32),
    }
    feed = {k: v for k, v in feed.items() if k in session.inputs}
    start = time.perf_counter()
    session.run(["image"], feed)  # warm-up: the first run allocates and picks kernels
    first = time.perf_counter() - start
    if first < 1.0:
        session.run(["image"], feed)  # a second warm-up where it is cheap
    runs = max(3, min(runs, int(budget_s / first)))  # spade-paper takes seconds per frame
    times = []
    for _ in tqdm(range(runs), desc=f"{name} latency", file=sys.stderr):
        start = time.perf_counter()
        session.run(["image"], feed)
        times.append((time.perf_counter() - start) * 1000)
    single = open_graph(path, RuntimeChoice("onnxruntime", threads=1, providers=("cpu",)))
    single.run(["image"], feed)
    cpu_times = []
    for _ in tqdm(range(max(3, runs // 2)), desc=f"{name} 1-thread CPU time", file=sys.stderr):
        start = time.process_time()
        single.run(["image"], feed)
        cpu_times.append((time.process_time() - start) * 1000)
    return {
        "preset": name,
        "label_nc": label_nc,
        "size": size,
        "gmacs": round(count_gmacs(generator, *role.example(1, (size, size), 0).values()), 3),
        "params_m": round(count_params(generator) / 1e6, 3),
        "onnx_mb": round(path.stat().st_size / 2**20, 1),
        "latency_ms_median": round(statistics.median(times), 1),
        "latency_ms_min": round(min(times), 1),
        "cpu_ms_1thread_median": round(statistics.median(cpu_times), 1),
        "runs": runs,
        "threads": 2,
        "providers": [session.info.device],
        "load_average_1m": round(os.getloadavg()[0], 2),  # other processes on this shared 2-core machine
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["spade-fast", "spade-paper"])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per preset (median reported)")
    parser.add_argument("--budget-s", type=float, default=30.0, help="cap on timed seconds per preset")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--label-nc", type=int, default=len(LANDSCAPE), help="label classes (landscape: 14)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            bench_preset(name, args.size, args.runs, args.budget_s, args.label_nc, Path(tmp))
            for name in args.presets
        ]
    print(json.dumps(rows, indent=2))
    print(
        "\n| preset | GMACs / frame | params (M) | ONNX (MB) | ORT 2 threads, median (ms) | 1-thread CPU (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['preset']} | {r['gmacs']} | {r['params_m']} | {r['onnx_mb']} | {r['latency_ms_median']} "
            f"| {r['cpu_ms_1thread_median']} |"
        )
    load = ", ".join(str(r["load_average_1m"]) for r in rows)
    print(
        f"\n{args.size}², batch 1, onnxruntime 2 threads, {rows[0]['providers'][0]}, random init; load {load}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
