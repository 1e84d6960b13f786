"""Engine-only numbers of one model folder: latency grid, achieved FLOP/s, peak resident memory, time per op type.

Every session is opened by the server's own loader (`server.registry.load_model`: same session options, same
warm-up), so these are the numbers the server's generator call can reach, without queueing, encoding or I/O.

- `engine_grid`: p50/p95 per (threads, size, batch), cheapest first. The number of timed runs fits a per-config
  budget; a config whose predicted cost (warm-up + one run, extrapolated from the per-image time already
  measured at the same thread count) exceeds `max_config_s` is skipped with the reason recorded — that is how the
  paper-width SPADE fits in the suite's time budget at 512² and batch 8.
- `memory_probe`: peak RSS of a fresh process that opens the model and runs it once, minus the same process
  before (imports only), so each model is measured alone (VmHWM; see `_measure_memory` for why not maxrss).
- `op_profile`: onnxruntime's profiler, node kernel time summed per op type (warm-up run excluded).

    python -m benchmarks.engine weights/landscape-spade --sizes 256 512 --batches 1 4 8
    python -m benchmarks.engine --memory weights/landscape-spade --size 256   # one probe, JSON on stdout
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from common.runtime import RuntimeChoice

REPO = Path(__file__).resolve().parent.parent


def model_info(directory: Path) -> dict[str, Any]:
    """Name, architecture, GMACs at the export size, parameters and ONNX size, from the manifest alone."""
    manifest = json.loads((directory / "model.json").read_text())
    export = manifest.get("export", {})
    files = [manifest["files"]["generator"]] + (
        [manifest["files"]["encoder"]] if manifest["files"].get("encoder") else []
    )
    return {
        "name": manifest["name"],
        "architecture": manifest["architecture"],
        "image_size": manifest["image_size"],
        "dynamic_size": manifest["inputs"]["dynamic_size"],
        "gmacs": export.get("gmacs", {}).get("generator"),
        "gmacs_at": export.get("gmacs_at", manifest["image_size"]),
        "params_m": round(export.get("params", {}).get("generator", 0) / 1e6, 3),
        "generator_mb": round(manifest["files"]["generator"]["bytes"] / 2**20, 2),
        "onnx_mb": round(sum(f["bytes"] for f in files) / 2**20, 2),
    }


def gmacs_per_image(info: dict[str, Any], size: int) -> float | None:
    """GMACs of one size² frame. The generators are fully convolutional (z enters through a layer sized by the
    output), so MACs scale exactly with the pixel count; checked on the SPADE presets at 256² and 512²."""
    if info["gmacs"] is None:
        return None
    height, width = info["gmacs_at"]
    return float(info["gmacs"]) * size * size / (height * width)


def feeds(model: Any, size: int, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """A painted-looking map (with trees, so instances exist), repeated `batch` times, seeded latents, and
    per-pixel noise for a generator that takes it: `run_generator`'s arguments."""
    from benchmarks.paint_latency import paint_maps
    from common.instances import instances_from_labels

    ids = paint_maps(2, size, model.num_labels)[1]  # H×W uint8
    label = np.broadcast_to(ids.astype(np.int64), (batch, 1, size, size)).copy()  # [B,1,H,W]
    instance = np.broadcast_to(
        instances_from_labels(ids, model.thing_ids).astype(np.int64), (batch, 1, size, size)
    ).copy()  # [B,1,H,W]
    rng = np.random.default_rng(0)
    z = rng.standard_normal((batch, model.z_dim), dtype=np.float32)  # [B,z_dim]
    noise = None
    if model.noise_channels:
        noise = rng.standard_normal((batch, model.noise_channels, size, size), dtype=np.float32)  # [B,C,H,W]
    return label, instance, z, noise


def time_config(model: Any, size: int, batch: int, budget_s: float, max_runs: int) -> dict[str, Any]:
    """One warm-up run (a new shape allocates), then as many timed runs as fit in `budget_s` (1..max_runs)."""
    inputs = feeds(model, size, batch)
    start = time.perf_counter()
    model.run_generator(*inputs)
    warmup_s = time.perf_counter() - start
    runs = max(1, min(max_runs, int(budget_s / max(warmup_s, 1e-4))))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.run_generator(*inputs)
        times.append((time.perf_counter() - start) * 1000.0)
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
        "min_ms": round(min(times), 2),
        "runs": runs,
        "warmup_ms": round(warmup_s * 1000.0, 1),
    }


def engine_grid(
    directory: Path,
    sizes: list[int],  # square sides in pixels, e.g. [256, 512]
    batches: list[int],  # batch sizes, e.g. [1, 4, 8]
    threads: list[int],  # inference thread counts, e.g. [1, 2]
    peak_gflops: dict[str, float],  # measured peak per thread count (benchmarks.peak)
    budget_s: float,  # timed seconds per config
    max_runs: int,  # most timed runs per config
    max_config_s: float,  # skip a config predicted to need longer than this (warm-up + one run)
) -> list[dict[str, Any]]:
    """p50/p95 latency, images/s and achieved FLOP/s (as a fraction of the peak) for every config."""
    from tqdm import tqdm

    from server.registry import load_model

    info = model_info(directory)
    rows: list[dict[str, Any]] = []
    configs = [(t, s, b) for t in threads for s in sorted(sizes) for b in sorted(batches)]
    bar = tqdm(configs, desc=f"engine {info['name']}", leave=False)
    model, model_threads = None, None
    per_pixel_ms: dict[int, float] = {}  # threads → ms per pixel of the cheapest config measured
    for t, size, batch in bar:
        row: dict[str, Any] = {"threads": t, "size": size, "batch": batch}
        rows.append(row)
        if not info["dynamic_size"] and [size, size] != list(info["image_size"]):
            row["skipped"] = f"the graph has a fixed size {info['image_size']}"
            continue
        if t in per_pixel_ms:
            predicted_s = per_pixel_ms[t] * size * size * batch / 1000.0
            if 2 * predicted_s > max_config_s:
                row["skipped"] = f"predicted {2 * predicted_s:.1f} s > {max_config_s:g} s budget"
                continue
        if model_threads != t:
            model = None
            gc.collect()
            model, model_threads = load_model(directory, RuntimeChoice(threads=t)), t
        assert model is not None
        if batch > 1 and not model.batchable:
            row["skipped"] = "the graph has a fixed batch of 1"
            continue
        row.update(time_config(model, size, batch, budget_s, max_runs))
        per_pixel_ms.setdefault(t, row["p50_ms"] / (size * size * batch))
        row["ms_per_image"] = round(row["p50_ms"] / batch, 2)
        row["images_per_s"] = round(1000.0 * batch / row["p50_ms"], 2)
        gmacs = gmacs_per_image(info, size)
        if gmacs is not None:
            row["gmacs_per_image"] = round(gmacs, 3)
            row["achieved_gflops"] = round(2.0 * gmacs * batch / (row["p50_ms"] / 1000.0), 2)
            peak = peak_gflops.get(str(t))
            if peak:
                row["peak_fraction"] = round(row["achieved_gflops"] / peak, 4)
        bar.set_postfix_str(f"{t}t {size}² b{batch}: {row['p50_ms']:.0f} ms")
    return rows


def memory_probe(directory: Path, threads: int, size: int) -> dict[str, Any]:
    """Run `--memory` in a fresh interpreter so earlier models' arenas do not hide this one's footprint."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.engine", "--memory", str(directory)]
        + ["--threads", str(threads), "--size", str(size)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory probe of {directory.name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"/proc/self/status has no {field}")


def _measure_memory(directory: Path, threads: int, size: int) -> dict[str, Any]:
    """In this (fresh) process: resident memory after the imports, then peak and resident after session
    creation + one size² run. VmHWM, not getrusage's ru_maxrss: Linux carries the parent's maxrss over fork,
    so a child of a big benchmark process would start with the parent's peak. Writing 5 to clear_refs resets
    the peak to the current RSS, so imports' transient peaks do not count either."""
    from server.registry import load_model

    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        peak_reset = True
    except OSError:
        peak_reset = False  # then the peak includes the imports' own transient peak
    base = _status_mb("VmRSS")
    model = load_model(directory, RuntimeChoice(threads=threads))  # opens the graphs, runs one blank frame
    model.run_generator(*feeds(model, size, 1))
    return {
        "threads": threads,
        "size": size,
        "baseline_rss_mb": round(base, 1),
        "peak_rss_mb": round(_status_mb("VmHWM") - base, 1),  # peak during load + run, above the baseline
        "resident_mb": round(_status_mb("VmRSS") - base, 1),  # what stays resident while the model is loaded
        "peak_reset": peak_reset,
    }


def op_profile(directory: Path, size: int, threads: int, runs: int) -> dict[str, Any]:
    """Share of generator kernel time per ONNX op type (b1, size²), from onnxruntime's profiler.

    The session mirrors the server's options (threads, no spinning) plus profiling; the first run is excluded
    because it allocates. `compute_gflops` divides the model's MACs by the time in Conv/MatMul/Gemm only, which
    hold all of its MACs: the gap between that and the whole-graph rate is time spent in ops that move memory.
    """
    import onnxruntime as ort

    from server.registry import load_model

    info = model_info(directory)
    model = load_model(directory, RuntimeChoice("onnxruntime", threads=threads))
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        path = model.directory / model.manifest.files.generator.path
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        model.generator = session  # same run(outputs, feeds) as a Graph
        inputs = feeds(model, size, 1)
        for _ in range(runs + 1):
            model.run_generator(*inputs)
        events = json.loads(Path(session.end_profiling()).read_text())
    model_runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    cutoff = model_runs[0]["ts"] + model_runs[0]["dur"]  # end of the warm-up run
    per_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= cutoff:
            op = e.get("args", {}).get("op_name", "?")
            per_op[op] = per_op.get(op, 0.0) + e["dur"] / 1000.0  # µs → ms
    total = sum(per_op.values())
    wall = sum(e["dur"] for e in model_runs[1:]) / 1000.0 / runs
    compute = sum(v for k, v in per_op.items() if k in ("Conv", "MatMul", "Gemm", "ConvTranspose")) / runs
    gmacs = gmacs_per_image(info, size)
    shares = sorted(per_op.items(), key=lambda kv: -kv[1])
    return {
        "model": info["name"],
        "size": size,
        "threads": threads,
        "runs": runs,
        "run_ms": round(wall, 2),
        "kernel_ms": round(total / runs, 2),
        "compute_ms": round(compute, 2),
        "compute_gflops": round(2.0 * gmacs / (compute / 1000.0), 2) if gmacs and compute else None,
        "graph_gflops": round(2.0 * gmacs / (wall / 1000.0), 2) if gmacs and wall else None,
        "share": {op: round(ms / total, 4) for op, ms in shares},
        "ms": {op: round(ms / runs, 2) for op, ms in shares},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_dir", nargs="?", type=Path, help="a model folder with model.json")
    parser.add_argument("--memory", type=Path, help="only measure this model folder's memory (prints JSON)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for --memory")
    parser.add_argument("--size", type=int, default=256, help="frame side for --memory")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--thread-counts", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    parser.add_argument("--budget-s", type=float, default=3.0, help="timed seconds per config")
    parser.add_argument("--max-config-s", type=float, default=60.0, help="skip configs predicted longer")
    args = parser.parse_args(argv)
    if args.memory:
        print(json.dumps(_measure_memory(args.memory, args.threads, args.size)))
        return
    if args.model_dir is None:
        parser.error("give a model folder (or --memory DIR)")
    from benchmarks.peak import measure_peak

    peak = measure_peak(quick=True)["peak_gflops"]
    rows = engine_grid(
        args.model_dir,
        args.sizes,
        args.batches,
        args.thread_counts,
        peak,
        args.budget_s,
        50,
        args.max_config_s,
    )
    print(json.dumps({"model": model_info(args.model_dir), "peak_gflops": peak, "engine": rows}, indent=2))


if __name__ == "__main__":
    main()
