"""Measured peak of this CPU: a large MatMul and a large 3×3 Conv on the server's default runtime, best of several.

The peak every model's achieved FLOP/s is compared with is what the runtime the server uses (OpenVINO, in bf16
where the CPU has it; else onnxruntime f32) reaches on dense, cache-friendly work on the same cores, not a
datasheet number: the two graphs are built with `onnx.helper` (one node each, the weights as initializers), so
nothing but the kernel counts. Measured for 1 thread and for all cores. `benchmarks.runtimes` measures the same
two graphs for every runtime and precision side by side.

    python -m benchmarks.peak [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.version import cpu_flags, cpu_model

IR_VERSION = 9  # onnx writes its newest IR version by default, which older onnxruntime builds refuse


def matmul_model(n: int) -> tuple[bytes, dict[str, np.ndarray], float]:
    """ONNX bytes of Y = A·B with A [n,n] fed and B [n,n] an initializer; returns (model, feed, FLOPs per run)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["Y"])],
        "peak_matmul",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)
    feed = {"A": rng.standard_normal((n, n), dtype=np.float32)}
    return model.SerializeToString(), feed, 2.0 * n**3


def conv_model(channels: int, side: int, batch: int) -> tuple[bytes, dict[str, np.ndarray], float]:
    """ONNX bytes of a 3×3 same-padded Conv, C→C channels at side² (the generators' main op); FLOPs per run."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(
        0.05 * rng.standard_normal((channels, channels, 3, 3), dtype=np.float32), "W"
    )
    shape = [batch, channels, side, side]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["X", "W"], ["Y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
        "peak_conv",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape)],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)
    feed = {"X": rng.standard_normal(shape, dtype=np.float32)}
    return model.SerializeToString(), feed, 2.0 * batch * side * side * channels * channels * 9


def best_gflops(
    model: bytes, feed: dict[str, np.ndarray], flops: float, threads: int, runs: int
) -> tuple[float, str]:
    """Best-of-`runs` GFLOP/s of one graph on the server's default runtime with `threads` threads (after one
    warm-up run), and what ran it ("openvino bf16", …)."""
    from common.runtime import RuntimeChoice, open_graph

    with tempfile.TemporaryDirectory(prefix="peak-") as tmp:
        path = Path(tmp) / "peak.onnx"
        path.write_bytes(model)
        graph = open_graph(path, RuntimeChoice(threads=threads))
        graph.run(graph.outputs, feed)
        best = float("inf")
        for _ in range(runs):
            start = time.perf_counter()
            graph.run(graph.outputs, feed)
            best = min(best, time.perf_counter() - start)
    return flops / best / 1e9, f"{graph.info.runtime} {graph.info.precision}"


def measure_peak(quick: bool = False) -> dict[str, Any]:
    """Best GFLOP/s of MatMul and Conv for 1 thread and all cores; `peak_gflops[threads]` is the larger one."""
    from tqdm import tqdm

    cores = os.cpu_count() or 1
    thread_counts = sorted({1, cores})
    graphs = {
        "matmul": matmul_model(1024 if quick else 2048),
        "conv3x3": conv_model(128 if quick else 256, 64, 1 if quick else 4),
    }
    runs = 3 if quick else 8
    result: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": cores,
        "runs": runs,
        "shapes": {
            "matmul": "1024×1024 · 1024×1024" if quick else "2048×2048 · 2048×2048",
            "conv3x3": "[1,128,64,64], 128→128" if quick else "[4,256,64,64], 256→256",
        },
        "gflops": {name: {} for name in graphs},
    }
    jobs = [(name, t) for t in thread_counts for name in graphs]
    for name, threads in tqdm(jobs, desc="machine peak", leave=False):
        model, feed, flops = graphs[name]
        gflops, result["runtime"] = best_gflops(model, feed, flops, threads, runs)
        result["gflops"][name][str(threads)] = round(gflops, 2)
    result["peak_gflops"] = {
        str(t): max(result["gflops"][name][str(t)] for name in graphs) for t in thread_counts
    }
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller graphs, fewer runs")
    args = parser.parse_args(argv)
    result = measure_peak(args.quick)
    print(f"{result['cpu_model']} ({result['cores']} cores; {' '.join(result['cpu_flags'])})")
    for name, by_threads in result["gflops"].items():
        print(f"{name:>8}: " + ", ".join(f"{v:.1f} GFLOP/s on {t} thread(s)" for t, v in by_threads.items()))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
