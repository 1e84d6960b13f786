"""Resident memory of one server replica's model under batched renders, per runtime and map size.

Each (runtime, size) runs in a fresh interpreter: the model folder is opened by the server's own registry (same
session options, same warm-up), then the generator runs the engine's batch pattern at size²: a batch of
`--max-batch` first (the first batched render), then every batch size 1..max_batch (what a varying load makes of
the micro-batcher), then the largest again. Figures are the whole process's, in MiB, as a replica's RSS would be
reported: after loading, after the first large batch, after the sweep, and the peak (VmHWM).

    python -m benchmarks.memory                       # both runtimes, 256² and 512², batch 8, table on stdout
    python -m benchmarks.memory --one openvino 256    # one measurement, JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _mib(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024)
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(weights: Path, model_name: str, runtime: str, size: int, max_batch: int) -> dict[str, Any]:
    """In this (fresh) process: load as the server does, then the batches; RSS after each phase."""
    from common.runtime import RuntimeChoice
    from server.registry import Registry

    registry = Registry.load(weights, RuntimeChoice(runtime))
    model = registry.get(model_name)
    out: dict[str, Any] = {
        "runtime": model.runtime.runtime,
        "precision": model.runtime.precision,
        "size": size,
    }
    out["loaded_mib"] = _mib("VmRSS")

    def run(batch: int) -> float:
        rng = np.random.default_rng(batch)
        label = rng.integers(0, model.num_labels, (batch, 1, size, size)).astype(np.int64)
        z = rng.standard_normal((batch, model.z_dim)).astype(np.float32)
        noise = (
            rng.standard_normal((batch, model.noise_channels, size, size)).astype(np.float32)
            if model.noise_channels
            else None
        )
        start = time.perf_counter()
        model.run_generator(label, np.zeros_like(label), z, noise)
        return round((time.perf_counter() - start) * 1000.0, 1)

    out["first_batch_ms"] = run(max_batch)
    out["after_first_batch_mib"] = _mib("VmRSS")
    out["sweep_ms"] = [run(b) for b in range(1, max_batch + 1)]
    out["after_sweep_mib"] = _mib("VmRSS")
    out["last_batch_ms"] = run(max_batch)
    out["end_mib"] = _mib("VmRSS")
    out["peak_mib"] = _mib("VmHWM")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=REPO / "weights")
    parser.add_argument("--model", default="landscape-spade")
    parser.add_argument("--runtimes", nargs="+", default=["openvino", "onnxruntime"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--max-batch", type=int, default=8, help="the server's max_batch (COLLAGE_MAX_BATCH)")
    parser.add_argument("--one", nargs=2, metavar=("RUNTIME", "SIZE"), help="one measurement in this process")
    args = parser.parse_args(argv)
    if args.one:
        runtime, size = args.one[0], int(args.one[1])
        print(json.dumps(measure(args.weights, args.model, runtime, size, args.max_batch)))
        return
    from models.version import cpu_model

    print(f"{args.model}, batch {args.max_batch}, {cpu_model()}")
    print("| runtime | size | loaded | after 1st batch | after batches 1..N | peak | 1st batch ms |")
    print("|---|---|---|---|---|---|---|")
    for runtime in args.runtimes:
        for size in args.sizes:
            cmd = [sys.executable, "-m", "benchmarks.memory", "--one", runtime, str(size)]
            cmd += ["--weights", str(args.weights), "--model", args.model, "--max-batch", str(args.max_batch)]
            done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"| {r['runtime']} {r['precision']} | {size}² | {r['loaded_mib']} | {r['after_first_batch_mib']} "
                f"| {r['after_sweep_mib']} | {r['peak_mib']} | {r['first_batch_ms']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
