"""The runtimes side by side on the same files, in one process run: onnxruntime f32, OpenVINO f32, OpenVINO bf16.

For every served model folder (or the ones named): the generator at 256² and 512², batch 1 and the engine's
micro-batch, and the style encoder, each the median of `runs` frames with the runtimes taking turns frame by frame
(so none pays for going first or for a noisier minute); the achieved GFLOP/s as a share of each precision's own
peak (a large MatMul and 3×3 Conv on the same runtime and precision: bf16's peak is several times f32's on AMX);
and, with `--compare-files A B`, the same timings for two files of one graph (fp32 vs 16-bit weights at rest).

    python -m benchmarks.runtimes [--quick] [--models landscape-spade] [--out benchmarks/results/runtimes.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmarks.peak import conv_model, matmul_model
from common.runtime import Graph, RuntimeChoice, cpu_has_native_bf16, installed_runtimes, open_graph
from models.version import cpu_flags, cpu_model

REPO = Path(__file__).resolve().parents[1]
THREADS = 2  # the serving budget: 2 cores
MICRO_BATCH = 8  # the engine's default max_batch


def runtime_configs() -> dict[str, RuntimeChoice]:
    """The configurations this machine can run: onnxruntime f32, OpenVINO f32 and (where native) bf16."""
    configs = {"onnxruntime f32": RuntimeChoice("onnxruntime", "f32", THREADS)}
    if "openvino" in installed_runtimes():
        configs["openvino f32"] = RuntimeChoice("openvino", "f32", THREADS)
        if cpu_has_native_bf16():
            configs["openvino bf16"] = RuntimeChoice("openvino", "bf16", THREADS)
    return configs


def taking_turns(calls: Mapping[str, Callable[[], object]], runs: int, warmup: int = 3) -> dict[str, float]:
    """Median ms of each call, the calls interleaved frame by frame after `warmup` frames each."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(warmup + runs):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            if i >= warmup:
                times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: round(statistics.median(t), 2) for name, t in times.items()}


def generator_feeds(manifest: dict[str, Any], size: int, batch: int) -> dict[str, np.ndarray]:
    """A blocky random label map (painted-looking regions), no instances, random styles (and per-pixel noise for
    a generator that takes it)."""
    rng = np.random.default_rng(0)
    inputs = manifest["inputs"]
    cells = rng.integers(0, len(manifest["labels"]), (batch, 1, size // 16, size // 16))
    label = cells.repeat(16, axis=2).repeat(16, axis=3).astype(np.int64)  # [B,1,H,W]
    feeds = {inputs["label"]: label}
    if inputs.get("instance"):
        feeds[inputs["instance"]] = np.zeros_like(label)
    if inputs.get("z"):
        feeds[inputs["z"]] = rng.standard_normal((batch, inputs["z_dim"])).astype(np.float32)
    if inputs.get("noise"):
        shape = (batch, inputs["noise_channels"], size, size)
        feeds[inputs["noise"]] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def peaks(configs: dict[str, RuntimeChoice], runs: int, quick: bool) -> dict[str, dict[str, float]]:
    """Best GFLOP/s of a large MatMul and 3×3 Conv per configuration (the larger one is that config's peak)."""
    graphs = {
        "matmul": matmul_model(1024 if quick else 2048),
        "conv3x3": conv_model(128 if quick else 256, 64, 1 if quick else 4),
    }
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="peak-") as tmp:
        for name, choice in tqdm(configs.items(), desc="peaks", leave=False):
            out[name] = {}
            for kind, (model, feed, flops) in graphs.items():
                path = Path(tmp) / f"{kind}.onnx"
                path.write_bytes(model)
                graph = open_graph(path, choice)
                graph.run(graph.outputs, feed)
                best = min(_timed(graph, feed) for _ in range(runs))
                out[name][kind] = round(flops / best / 1e9, 1)
            out[name]["peak"] = max(out[name].values())
    return out


def _timed(graph: Graph, feeds: dict[str, np.ndarray]) -> float:
    start = time.perf_counter()
    graph.run(graph.outputs, feeds)
    return time.perf_counter() - start


def bench_model(
    folder: Path, configs: dict[str, RuntimeChoice], sizes: list[int], batches: list[int], runs: int
) -> dict[str, Any]:
    """Generator rows (size × batch) and an encoder row, each timing every configuration in turns."""
    manifest = json.loads((folder / "model.json").read_text())
    files = manifest["files"]
    generators = {name: open_graph(folder / files["generator"]["path"], c) for name, c in configs.items()}
    gmacs_256 = manifest.get("export", {}).get("gmacs", {}).get("generator")
    rows: list[dict[str, Any]] = []
    for size in sizes:
        for batch in batches:
            feeds = generator_feeds(manifest, size, batch)
            ms = taking_turns({n: partial(g.run, g.outputs[:1], feeds) for n, g in generators.items()}, runs)
            rows.append({"graph": "generator", "size": size, "batch": batch, "ms": ms})
            if gmacs_256:
                gmacs = gmacs_256 * size * size / (256 * 256) * batch
                rows[-1]["gflops"] = {n: round(2 * gmacs / (t / 1000.0), 1) for n, t in ms.items()}
    if files.get("encoder"):
        enc = manifest["encoder_inputs"]
        image = np.random.default_rng(1).uniform(-1, 1, (1, 3, *enc["size"])).astype(np.float32)
        encoders = {name: open_graph(folder / files["encoder"]["path"], c) for name, c in configs.items()}
        ms = taking_turns(
            {n: partial(g.run, [enc["mu"]], {enc["image"]: image}) for n, g in encoders.items()}, runs
        )
        rows.append({"graph": "encoder", "size": enc["size"][0], "batch": 1, "ms": ms})
    for row in rows:
        base = row["ms"]["onnxruntime f32"]
        row["vs_onnxruntime"] = {n: round(t / base, 3) for n, t in row["ms"].items()}
    return {"model": manifest["name"], "storage": files["generator"].get("storage", "fp32"), "rows": rows}


def compare_files(
    a: Path, b: Path, configs: dict[str, RuntimeChoice], size: int, runs: int
) -> dict[str, Any]:
    """Two files of one generator graph (e.g. fp32 and 16-bit weights) timed in turns on every configuration."""
    manifest = json.loads((a.parent / "model.json").read_text())
    feeds = generator_feeds(manifest, size, 1)
    calls: dict[str, Callable[[], object]] = {}
    for name, choice in configs.items():
        for label, path in (("A", a), ("B", b)):
            graph = open_graph(path, choice)
            calls[f"{name} · {label}"] = partial(graph.run, graph.outputs[:1], feeds)
    sizes = {"A": a.stat().st_size, "B": b.stat().st_size}
    return {
        "size": size,
        "files": {"A": str(a), "B": str(b)},
        "bytes": sizes,
        "ms": taking_turns(calls, runs),
    }


def measure_runtimes(folders: list[Path], quick: bool, runs: int | None = None) -> dict[str, Any]:
    """Every configuration on every model folder, with each configuration's peak."""
    runs = runs or (5 if quick else 20)
    configs = runtime_configs()
    peak = peaks(configs, 3 if quick else 8, quick)
    sizes, batches = ([256], [1]) if quick else ([256, 512], [1, MICRO_BATCH])
    models = [bench_model(f, configs, sizes, batches, runs) for f in tqdm(folders, desc="runtimes")]
    for model in models:
        for row in model["rows"]:
            if "gflops" in row:
                row["peak_fraction"] = {n: round(g / peak[n]["peak"], 3) for n, g in row["gflops"].items()}
    return {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "native_bf16": "openvino bf16" in configs,
        "threads": THREADS,
        "runs": runs,
        "peaks_gflops": peak,
        "models": models,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "weights", help="folder of model folders")
    parser.add_argument("--models", nargs="*", help="model folder names (default: every served model)")
    parser.add_argument("--quick", action="store_true", help="256² only, batch 1, few runs")
    parser.add_argument("--runs", type=int, help="timed frames per configuration (default 20; quick 5)")
    parser.add_argument(
        "--compare-files", nargs=2, type=Path, metavar=("A", "B"), help="two files of one graph"
    )
    parser.add_argument("--out", type=Path, help="write the JSON here")
    args = parser.parse_args(argv)
    if args.compare_files:
        a, b = args.compare_files
        result = {
            "cpu_model": cpu_model(),
            "cpu_flags": cpu_flags(),
            "compare_files": compare_files(a, b, runtime_configs(), 256, args.runs or 20),
        }
    else:
        names = args.models or sorted(p.parent.name for p in args.weights.glob("*/model.json"))
        result = measure_runtimes([args.weights / n for n in names], args.quick, args.runs)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()


def markdown_lines(result: dict[str, Any], latency: list[dict[str, Any]]) -> list[str]:
    """The "Runtimes" section of docs/benchmarks.md: the side-by-side table, peaks, and paint → frame."""
    names = list(result["peaks_gflops"])
    out = [
        "## Runtimes side by side",
        "",
        f"{result['cpu_model']}; flags: {' '.join(result['cpu_flags'])}; native bf16 (OpenVINO's "
        f"OPTIMIZATION_CAPABILITIES): {'yes' if result['native_bf16'] else 'no'}. {result['threads']} threads, "
        f"median of {result['runs']} frames per cell, the runtimes taking turns frame by frame on the same file. "
        "Ratio = time / onnxruntime f32 time; % of peak = the graph's achieved GFLOP/s over that runtime and "
        "precision's own best large MatMul or 3×3 Conv (above 100% the probe fell short of the peak, "
        "as the small probes of `--quick` can).",
        "",
        "| runtime, precision | peak GFLOP/s | MatMul | Conv 3×3 |",
        "|---|---:|---:|---:|",
    ]
    for name, p in result["peaks_gflops"].items():
        out.append(f"| {name} | **{p['peak']}** | {p['matmul']} | {p['conv3x3']} |")
    out += [
        "",
        "| model (storage) | graph | size | batch | "
        + " | ".join(f"{n} ms (ratio, % peak)" for n in names)
        + " |",
        "|---|---|---:|---:|" + "---:|" * len(names),
    ]
    for model in result["models"]:
        for row in model["rows"]:
            cells = []
            for n in names:
                share = row.get("peak_fraction", {}).get(n)
                extra = f", {100 * share:.0f}%" if share is not None else ""
                cells.append(f"{row['ms'][n]:.1f} ({row['vs_onnxruntime'][n]:.2f}×{extra})")
            out.append(
                f"| {model['model']} ({model['storage']}) | {row['graph']} | {row['size']}² | {row['batch']} | "
                + " | ".join(cells)
                + " |"
            )
    if latency:
        out += [
            "",
            "### Paint → frame, 1 client, against the engine's own time",
            "",
            "Real uvicorn (`python -m server`, the default runtime), one closed-loop websocket client; engine = the "
            "generator alone on the same map size through the server's loader, before and after the clients.",
            "",
            "| size | engine p50 ms | paint → frame p50 ms | p95 ms | ratio |",
            "|---:|---:|---:|---:|---:|",
        ]
        for run in latency:
            one = run["paint_to_frame"]["1"]
            out.append(
                f"| {run['size']}² | {run['engine_only']['p50_ms']:.1f} | {one['p50_ms']:.1f} | "
                f"{one['p95_ms']:.1f} | {run['ratio_1_client_p50']:.2f}× |"
            )
    return out + [""]
