"""Paint → frame latency over the real websocket, against the engine-only time of the same model.

Starts `python -m server` (uvicorn, per-message deflate off) on 127.0.0.1 and a free port, opens 1 and 8 paint
clients that each send a changing label map, wait for its frame and send the next (closed loop), and reports
p50/p95 of send → frame. The engine-only time is the generator's run (the server's default runtime) on one map of the same size,
measured in this process (same session options as the server) before the server starts and after it stops
(the load on a shared machine drifts). Also prints the server's own per-stage means (queue, infer, encode)
from /metrics, and a JSON report.

    python -m benchmarks.paint_latency --weights weights --model landscape-spade
    python -m benchmarks.paint_latency --export-preset spade-tiny     # untrained model, needs torch
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def export_untrained(preset: str, out: Path) -> str:
    """An untrained model of the given SPADE preset via the project's exporter (speed is what we measure)."""
    import torch

    from models.archs.spade import build_encoder, build_generator, export_spec, get_preset
    from models.export import export_modules
    from models.labels import LANDSCAPE

    torch.manual_seed(0)
    config = get_preset(preset)
    name = f"bench-{preset}"
    size = (config["size"], config["size"]) if isinstance(config["size"], int) else tuple(config["size"])
    export_modules(
        export_spec(build_generator(config, len(LANDSCAPE)).eval(), build_encoder(config).eval(), LANDSCAPE),
        out_dir=out / name,
        name=name,
        image_size=size,
        training={"note": "untrained, for the latency benchmark"},
        config=config,
        max_file_bytes=2**31 - 1,  # never served from git: spade-paper's ~375 MB are fine here
    )
    return name


def paint_maps(count: int, size: int, num_labels: int) -> list[np.ndarray]:
    """A landscape with a brush stroke that grows frame by frame, like a user painting."""
    base = np.zeros((size, size), np.uint8)
    base[size // 3 :] = 2 % num_labels
    base[size // 2 :] = 6 % num_labels
    maps = []
    for i in range(count):
        ids = base.copy()
        x = int((i / max(1, count - 1)) * (size - 16))
        ids[size // 2 - 8 : size // 2 + 8, : x + 16] = 8 % num_labels  # a row of trees painted left to right
        maps.append(ids)
    return maps


def engine_time(weights: Path, model: str, size: int, runs: int, threads: int) -> dict[str, float]:
    """Generator-only time on one map (batch 1) at `size`, through the server's own loader and default runtime."""
    from common.runtime import RuntimeChoice
    from server.registry import load_model

    loaded = load_model(weights / model, RuntimeChoice(threads=threads))
    ids = paint_maps(1, size, loaded.num_labels)[0]
    label = ids[None, None].astype(np.int64)  # [1,1,H,W]
    instance = np.zeros_like(label)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1, loaded.z_dim), dtype=np.float32)
    noise = (
        rng.standard_normal((1, loaded.noise_channels, size, size), dtype=np.float32)
        if loaded.noise_channels
        else None
    )
    for _ in range(3):
        loaded.run_generator(label, instance, z, noise)
    times = []
    for _ in tqdm(range(runs), desc="engine only", leave=False):
        t0 = time.perf_counter()
        loaded.run_generator(label, instance, z, noise)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95), "runs": runs}


def stage_totals(metrics_url: str) -> dict[str, tuple[float, float]]:
    """(sum seconds, count) per render stage (queue, infer, encode) from the server's Prometheus histograms."""
    import httpx

    text = httpx.get(metrics_url, timeout=10).text
    totals = {}
    for stage in ("queue", "infer", "encode"):
        total = count = 0.0
        for line in text.splitlines():
            if line.startswith(f'collage_render_stage_seconds_sum{{stage="{stage}"}}'):
                total = float(line.split()[-1])
            if line.startswith(f'collage_render_stage_seconds_count{{stage="{stage}"}}'):
                count = float(line.split()[-1])
        totals[stage] = (total, count)
    return totals


def stage_means(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Mean ms per stage between two snapshots (infer is per batch, the others per request)."""
    return {
        k: 1000.0 * (after[k][0] - before[k][0]) / max(1.0, after[k][1] - before[k][1])
        for k in ("queue", "infer", "encode")
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def map_frame(seq: int, ids: np.ndarray) -> bytes:
    """A binary label-map message (docs/protocol.md): header + zlib-compressed ids."""
    height, width = ids.shape
    header = (
        bytes([1]) + seq.to_bytes(4, "little") + width.to_bytes(2, "little") + height.to_bytes(2, "little")
    )
    return header + bytes([1]) + zlib.compress(ids.tobytes(), 1)


async def one_client(url: str, model: str, maps: list[np.ndarray], warmup: int, fmt: str) -> list[float]:
    from websockets.asyncio.client import connect

    size = maps[0].shape[0]
    latencies = []
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "configure", "model": model, "size": [size, size], "format": fmt}))
        reply = json.loads(await ws.recv())
        if reply.get("type") != "configured":
            raise RuntimeError(f"configure refused: {reply}")
        for seq, ids in enumerate(maps, start=1):
            message = map_frame(seq, ids)
            t0 = time.perf_counter()
            await ws.send(message)
            while True:
                answer = await ws.recv()
                if isinstance(answer, bytes) and int.from_bytes(answer[1:5], "little") == seq:
                    break
                if isinstance(answer, str):
                    raise RuntimeError(f"server error: {answer}")
            if seq > warmup:
                latencies.append((time.perf_counter() - t0) * 1000)
    return latencies


async def run_clients(
    url: str, model: str, clients: int, maps: list[np.ndarray], warmup: int, fmt: str
) -> list[float]:
    results = await asyncio.gather(*(one_client(url, model, maps, warmup, fmt) for _ in range(clients)))
    return [v for r in results for v in r]


def start_server(weights: Path, data: Path, port: int, threads: int, log: Path) -> subprocess.Popen[bytes]:
    import httpx

    env = {**os.environ, "COLLAGE_WEIGHTS_DIR": str(weights), "COLLAGE_DATA_DIR": str(data)}
    if threads:
        env["COLLAGE_THREADS"] = str(threads)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server not ready:\n{log.read_text()}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--weights", type=Path, default=REPO / "weights", help="weights folder (with --model)"
    )
    parser.add_argument("--model", help="model name in the weights folder (default: the first one)")
    parser.add_argument("--export-preset", help="export an untrained model of this SPADE preset and use it")
    parser.add_argument("--size", type=int, default=256, help="label map side in pixels")
    parser.add_argument("--frames", type=int, default=40, help="frames per client (after warm-up)")
    parser.add_argument("--warmup", type=int, default=5, help="frames per client not measured")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="client counts to run")
    parser.add_argument("--format", default="jpeg", choices=["jpeg", "webp", "png"])
    parser.add_argument(
        "--threads", type=int, default=0, help="inference threads (0 = the runtime's default)"
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="paint-bench-") as tmp_name:
        tmp = Path(tmp_name)
        weights = args.weights
        model = args.model
        if args.export_preset:
            weights = tmp / "weights"
            model = export_untrained(args.export_preset, weights)
        if model is None:
            found = sorted(p.parent.name for p in weights.glob("*/model.json"))
            if not found:
                sys.exit(f"no model in {weights}; pass --weights/--model or --export-preset spade-tiny")
            model = found[0]
        manifest = json.loads((weights / model / "model.json").read_text())
        runs_engine = max(20, args.frames)
        before = engine_time(weights, model, args.size, runs=runs_engine, threads=args.threads)

        port = free_port()
        proc = start_server(weights, tmp / "data", port, args.threads, tmp / "server.log")
        url = f"ws://127.0.0.1:{port}/api/v1/paint"
        maps = paint_maps(args.frames + args.warmup, args.size, len(manifest["labels"]))
        runs: dict[str, dict[str, Any]] = {}
        try:
            metrics_url = f"http://127.0.0.1:{port}/metrics"
            for clients in tqdm(args.clients, desc="client counts"):
                snapshot = stage_totals(metrics_url)
                lat = asyncio.run(run_clients(url, model, clients, maps, args.warmup, args.format))
                runs[str(clients)] = {
                    "p50_ms": percentile(lat, 50),
                    "p95_ms": percentile(lat, 95),
                    "frames": len(lat),
                    "server_stage_mean_ms": stage_means(snapshot, stage_totals(metrics_url)),
                }
        finally:
            proc.terminate()
            proc.wait(10)
        # Measured before and after the clients: on a shared machine the load drifts, so compare with both.
        after = engine_time(weights, model, args.size, runs=runs_engine, threads=args.threads)
        engine = {
            "p50_ms": (before["p50_ms"] + after["p50_ms"]) / 2,
            "p95_ms": (before["p95_ms"] + after["p95_ms"]) / 2,
            "before_p50_ms": before["p50_ms"],
            "after_p50_ms": after["p50_ms"],
        }

    report = {
        "model": model,
        "architecture": manifest["architecture"],
        "gmacs": manifest.get("export", {}).get("gmacs", {}).get("generator"),
        "size": args.size,
        "format": args.format,
        "cpu_count": os.cpu_count(),
        "engine_only": engine,
        "paint_to_frame": runs,
    }
    if "1" in runs:
        report["ratio_1_client_p50"] = runs["1"]["p50_ms"] / engine["p50_ms"]
        # The same ratio against the generator time the server itself measured during the run (same load).
        report["ratio_1_client_p50_vs_server_infer"] = (
            runs["1"]["p50_ms"] / runs["1"]["server_stage_mean_ms"]["infer"]
        )
    print(f"\npaint → frame, {model} at {args.size}², {args.format}, {os.cpu_count()} CPUs")
    print(f"{'':>12} {'p50 ms':>9} {'p95 ms':>9}")
    print(
        f"{'engine only':>12} {engine['p50_ms']:9.1f} {engine['p95_ms']:9.1f}   (p50 before/after the clients: "
        f"{engine['before_p50_ms']:.1f}/{engine['after_p50_ms']:.1f})"
    )
    for clients, r in runs.items():
        print(
            f"{clients + ' client' + ('s' if clients != '1' else ''):>12} {r['p50_ms']:9.1f} {r['p95_ms']:9.1f}"
        )
    for clients, r in runs.items():
        means = ", ".join(f"{k} {v:.1f}" for k, v in r["server_stage_mean_ms"].items())
        print(f"server stage means at {clients} client(s), ms: {means}")
    if "ratio_1_client_p50" in report:
        print(
            f"1-client p50 / engine p50 = {report['ratio_1_client_p50']:.2f} (target ≤ 1.25); "
            f"/ server's own infer mean = {report['ratio_1_client_p50_vs_server_infer']:.2f}"
        )
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
