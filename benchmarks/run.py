"""The whole benchmark suite in one process run: machine peak, engine grid, paint path, REST, ratios.

    python -m benchmarks.run            # `make bench`: < 15 min on 2 cores; rewrites docs/benchmarks.md
    python -m benchmarks.run --quick    # `make bench-quick`: < 2 min smoke test, tiny grid

1. Machine peak: FP32 GFLOP/s of a large MatMul and Conv through onnxruntime, 1 thread and all cores.
2. Runtimes side by side (`benchmarks.runtimes`): onnxruntime f32, OpenVINO f32 and bf16 on the same files,
   256²/512², batch 1/8, and the encoder; each precision's own peak; then paint → frame with 1 client against
   the engine's own time at 256² and 512² (`benchmarks.paint_latency`); then the default model's CollageGAN
   composition stage for 1, 5 and 20 instances against its base generator (`benchmarks.collage`).
3. Engine: every served model (`weights/*/model.json`) and the `spade-fast` / `spade-paper` reference widths
   (random init, exported on the fly by the project's exporter into a temp dir): p50/p95 at 256²/512², batch
   1/4/8, 1 and all threads; GMACs per frame; achieved FLOP/s vs the peak; peak memory per loaded model (one
   subprocess each); onnxruntime's time per op type for the default model (and spade-paper).
4. Paint path: real uvicorn, 1/4/16 open-loop websocket clients at 10 maps/s: latency, frames/s, drops, staleness.
5. REST: batch-job images/s and single-render latency vs the same model's engine-only numbers.
6. Procedural data pairs/s; seconds per `spade-fast` training step at 256², batch 4, fp32 vs `--precision=bf16`.
7. Ratios that do not depend on the machine's speed, printed at the end.

Results: JSON (`--out`, default benchmarks/results/latest.json) and Markdown (docs/benchmarks.md for a full run
with the default output; next to the JSON otherwise, so quick runs never overwrite the committed page).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import paint_latency, report
from benchmarks.collage import measure_collage, ratio_line
from benchmarks.engine import engine_grid, gmacs_per_image, memory_probe, model_info, op_profile
from benchmarks.paint_latency import REPO, export_untrained, free_port, start_server
from benchmarks.paint_load import paint_load
from benchmarks.peak import measure_peak
from benchmarks.rest import batch_throughput, render_latency
from benchmarks.runtimes import measure_runtimes
from models.version import cpu_model

RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "benchmarks.md"
PAPER = "spade-paper"


def plan(quick: bool) -> dict[str, Any]:
    """The resolved configuration of a run (saved in the JSON, so every number says how it was taken)."""
    cores = os.cpu_count() or 1
    common = {
        "quick": quick,
        "cores": cores,
        "threads": sorted({1, cores}),
        "server_threads": cores,
        "paint_size": 256,
        "paint_clients": [1, 4, 16],
        "paint_rate": 10.0,
    }
    if quick:
        return common | {
            "references": ["spade-fast", "spade-tiny"],
            "latency_sizes": [256],
            "latency_frames": 10,
            "collage_runs": 5,
            "collage_warmup": 1,
            "sizes": [256],
            "batches": [1],
            "budget_s": 0.3,  # timed seconds per engine config
            "max_runs": 5,
            "max_config_s": 10.0,
            "profile_runs": 2,
            "paint_seconds": 1.5,
            "render_requests": 5,
            "batch_items": 8,
            "data_size": 128,
            "data_pairs": 4,
            "train_preset": "spade-tiny",
            "train_size": 32,
            "train_batch": 2,
            "train_steps": 2,
            # One thread: a 32² step is ~1000 tiny ops, each ending in an OpenMP barrier; with another process
            # busy on the cores, 2 threads took 6.9 s per step here instead of 0.04 s.
            "train_threads": 1,
        }
    return common | {
        "references": ["spade-fast", PAPER],
        "latency_sizes": [256, 512],
        "latency_frames": 40,
        "collage_runs": 30,
        "collage_warmup": 3,
        "sizes": [256, 512],
        "batches": [1, 4, 8],
        "budget_s": 2.0,
        "max_runs": 30,
        "max_config_s": 60.0,  # spade-paper: ~3 s per 256² frame on 1 thread here, so some configs go
        "profile_runs": 5,
        "paint_seconds": 8.0,
        "render_requests": 30,
        "batch_items": 64,
        "data_size": 256,
        "data_pairs": 30,
        "train_preset": "spade-fast",
        "train_size": 256,
        "train_batch": 4,
        "train_steps": 10,  # per precision, after two warm-up steps each: ~35 s on 2 idle cores
        "train_threads": cores,
    }


def git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
    return out.stdout.strip() if out.returncode == 0 else ""


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """The dynamo exporter warns about torchvision ops and axis names on every export; none of it matters here."""
    # The module's own logger: torch resets the levels of its registered parents when an export sets up logging.
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def served_default(folders: list[Path]) -> Path | None:
    """The model the server would pick: COLLAGE_DEFAULT_MODEL when it is among them, else the first by name."""
    names = {model_info(f)["name"]: f for f in folders}
    wanted = os.environ.get("COLLAGE_DEFAULT_MODEL")
    if wanted in names:
        return names[wanted]
    return names[sorted(names)[0]] if names else None


@contextlib.contextmanager
def section(title: str, timings: dict[str, float]) -> Iterator[None]:
    """Print a header with the load average (the CPU is shared) and record the section's wall time."""
    print(f"\n== {title} (load average {load_average()})", flush=True)
    start = time.perf_counter()
    yield
    timings[title] = round(time.perf_counter() - start, 1)
    print(f"   {title}: {timings[title]:.0f} s", flush=True)


def bench_models(
    folders: list[tuple[Path, str, str | None]], cfg: dict[str, Any], peak: dict[str, float]
) -> list[dict[str, Any]]:
    """Engine grid + memory probe per model folder; a served model that fails to load is reported, not fatal."""
    from server.registry import ModelLoadError

    models = []
    for folder, source, preset in folders:
        info = model_info(folder)
        entry: dict[str, Any] = {**info, "source": source, "preset": preset, "folder": folder.name}
        entry["gmacs_256"] = round(g, 4) if (g := gmacs_per_image(info, 256)) is not None else None
        try:
            entry["engine"] = engine_grid(
                folder,
                cfg["sizes"],
                cfg["batches"],
                cfg["threads"],
                peak,
                cfg["budget_s"],
                cfg["max_runs"],
                cfg["max_config_s"],
            )
            entry["memory"] = memory_probe(folder, cfg["server_threads"], 256)
        except (ModelLoadError, RuntimeError) as exc:
            entry["error"] = str(exc)
            print(f"   {info['name']}: {exc}", flush=True)
        models.append(entry)
        row = report.engine_row(entry, 256, 1, cfg["server_threads"])
        if row:
            print(
                f"   {info['name']}: {row['p50_ms']:.1f} ms p50 at 256² b1 {cfg['server_threads']}t, "
                f"{row.get('achieved_gflops', 0):.1f} GFLOP/s, peak RSS "
                f"{entry.get('memory', {}).get('peak_rss_mb')} MB",
                flush=True,
            )
    return models


def collage_stage(default_dir: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/collage.py on the default model at the paint size; a model without class generators, or one
    whose stage cannot run, is reported in the section rather than ending the run."""
    from server.registry import ModelLoadError

    try:
        result = measure_collage(
            default_dir,
            cfg["paint_size"],
            runs=cfg["collage_runs"],
            warmup=cfg["collage_warmup"],
            threads=cfg["server_threads"],
        )
    except (ModelLoadError, RuntimeError, ValueError) as exc:
        result = {"model": model_info(default_dir)["name"], "size": cfg["paint_size"], "skipped": str(exc)}
    print(f"   {ratio_line(result) or result['skipped']}", flush=True)
    return result


def run_script(module: str, *args: str) -> dict[str, Any]:
    """`python -m benchmarks.<module> args` in its own process; its result is the last line it prints (JSON)."""
    out = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{module} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def data_speed(cfg: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/render_speed.py (it pins itself to one core, so it needs a process of its own)."""
    return run_script("render_speed", "--size", str(cfg["data_size"]), "--n", str(cfg["data_pairs"]))


def train_speed(cfg: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/train_step.py in a fresh process, so torch's thread pool and allocator start clean."""
    options = {
        "preset": cfg["train_preset"],
        "size": cfg["train_size"],
        "batch": cfg["train_batch"],
        "steps": cfg["train_steps"],
        "threads": cfg["train_threads"],
    }
    return run_script("train_step", *(f"--{key}={value}" for key, value in options.items()))


def serve_and_measure(
    default_dir: Path, cfg: dict[str, Any], engine: dict[str, Any], tmp: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start uvicorn on the default model alone; paint load at each client count, then the REST numbers."""
    weights = tmp / "serve"
    weights.mkdir()
    (weights / default_dir.name).symlink_to(default_dir.resolve(), target_is_directory=True)
    info = model_info(default_dir)
    num_labels = len(json.loads((default_dir / "model.json").read_text())["labels"])
    size = cfg["paint_size"]
    port = free_port()
    proc = start_server(weights, tmp / "data", port, cfg["server_threads"], tmp / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        runs = []
        for clients in cfg["paint_clients"]:
            r = paint_load(
                base, info["name"], num_labels, clients, cfg["paint_rate"], cfg["paint_seconds"], size
            )
            runs.append(r)
            print(
                f"   paint, {clients:2d} client(s): p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
                f"{r['frames_per_s']} frames/s, {r['server_dropped']} dropped, "
                f"{r['stale_seqs_mean']} seqs behind on average",
                flush=True,
            )
        paint = {
            "model": info["name"],
            "size": size,
            "rate": cfg["paint_rate"],
            "seconds": cfg["paint_seconds"],
            "runs": runs,
        }
        render = render_latency(base, info["name"], num_labels, size, cfg["render_requests"])
        batch = batch_throughput(base, info["name"], num_labels, size, cfg["batch_items"])
    finally:
        proc.terminate()
        proc.wait(10)
    rest = {"model": info["name"], "render": render, "batch": batch, **engine}
    print(
        f"   REST render p50 {render['p50_ms']} ms (engine {engine['engine_p50_ms']} ms); batch job "
        f"{batch['images_per_s']} images/s (engine {engine['engine_images_per_s']} at batch "
        f"{engine['engine_batch']})",
        flush=True,
    )
    return paint, rest


def engine_reference(model: dict[str, Any], size: int, threads: int) -> dict[str, Any]:
    """The default model's engine-only numbers the REST results are compared with (largest batch measured)."""
    one = report.engine_row(model, size, 1, threads)
    batched = [
        r for r in model.get("engine", []) if r["size"] == size and r["threads"] == threads and "p50_ms" in r
    ]
    best = max(batched, key=lambda r: r["batch"]) if batched else None
    return {
        "engine_p50_ms": one["p50_ms"] if one else None,
        "engine_batch": best["batch"] if best else None,
        "engine_images_per_s": best["images_per_s"] if best else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 256² b1, few runs, no spade-paper")
    parser.add_argument(
        "--out", type=Path, help="results JSON file, or a folder for <folder>/{latest|quick}.json + .md"
    )
    parser.add_argument(
        "--markdown", type=Path, help="Markdown page to write (see the module doc for default)"
    )
    parser.add_argument("--weights", type=Path, default=REPO / "weights", help="folder of served models")
    args = parser.parse_args(argv)

    cfg = plan(args.quick)
    stem = "quick" if args.quick else "latest"
    if args.out is None:
        out_json = RESULTS / f"{stem}.json"
    elif args.out.suffix == ".json":
        out_json = args.out
    else:
        out_json = args.out / f"{stem}.json"
    out_md = args.markdown or (DOC if args.out is None and not args.quick else out_json.with_suffix(".md"))
    print(json.dumps(cfg))

    started = time.perf_counter()
    import onnxruntime
    import openvino

    timings: dict[str, float] = {}
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "make bench" if not args.quick else "make bench-quick",
            "git_commit": git("rev-parse", "--short=12", "HEAD") or "unknown",
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "cpu_model": cpu_model(),
            "cores": cfg["cores"],
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "openvino": openvino.__version__,
            "load_start": load_average(),
            "timings_s": timings,
        },
        "config": cfg,
    }

    with section("machine peak", timings):
        results["peak"] = measure_peak(args.quick)
        print(f"   {results['peak']['cpu_model']}: peak {results['peak']['peak_gflops']} GFLOP/s by threads")
    peak = results["peak"]["peak_gflops"]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name:
        tmp = Path(tmp_name)
        served = sorted(p.parent for p in args.weights.glob("*/model.json")) if args.weights.is_dir() else []
        with section("export reference models", timings), quiet_exporter():
            references = [
                (tmp / "weights" / export_untrained(preset, tmp / "weights"), "reference", preset)
                for preset in cfg["references"]
            ]
        folders = [(f, "served", None) for f in served] + references
        with section("engine", timings):
            results["models"] = bench_models(folders, cfg, peak)
        loadable = {
            m["folder"]: f
            for (f, _, _), m in zip(folders, results["models"], strict=True)
            if not m.get("error")
        }
        default_dir = served_default([f for f in served if f.name in loadable]) or references[0][0]
        results["default_model"] = model_info(default_dir)["name"]
        paper = next((f for f, _, preset in references if preset == PAPER), None)
        results["paper_model"] = model_info(paper)["name"] if paper else None

        with section("runtimes side by side", timings):
            results["runtimes"] = measure_runtimes(
                [f for f in served if f.name in loadable] or [default_dir], args.quick
            )
        with section("CollageGAN stage", timings):
            results["collage"] = collage_stage(default_dir, cfg)
        with section("paint → frame, 1 client", timings):
            results["paint_latency"] = [
                paint_latency.main(
                    ["--weights", str(default_dir.parent), "--model", default_dir.name, "--size", str(size)]
                    + ["--clients", "1", "--frames", str(cfg["latency_frames"])]
                )
                for size in cfg["latency_sizes"]
            ]
        with section("op profile", timings):
            profiled = [default_dir] + ([paper] if paper else [])
            results["profile"] = [
                op_profile(d, cfg["paint_size"], cfg["server_threads"], cfg["profile_runs"]) for d in profiled
            ]
        with section("procedural data", timings):
            results["data"] = data_speed(cfg)
        with section("training step", timings):
            results["train_step"] = train_speed(cfg)
            step = results["train_step"]
            print(
                f"   {step['preset']} {step['size']}² b{step['batch']}: fp32 {step['fp32']['s_per_step']} s, "
                f"bf16 {step['bf16']['s_per_step']} s per step (fp32 / bf16 = {step['fp32_vs_bf16']})",
                flush=True,
            )
        with section("paint path and REST", timings):
            default = report.find_model(results, results["default_model"])
            assert default is not None
            engine = engine_reference(default, cfg["paint_size"], cfg["server_threads"])
            results["paint"], results["rest"] = serve_and_measure(default_dir, cfg, engine, tmp)

    results["ratios"] = report.ratios(results)
    results["meta"]["load_end"] = load_average()
    results["meta"]["wall_s"] = round(time.perf_counter() - started, 1)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2) + "\n")
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(report.markdown(results))

    print("\n== ratios (independent of machine speed)")
    for line in report.ratio_lines(results["ratios"]):
        print(f"   {line}")
    for line in report.gap_note(results):
        print(f"   {line}")
    print(f"\nwrote {out_json} and {out_md} in {results['meta']['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
