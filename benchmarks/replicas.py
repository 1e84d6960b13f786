"""Painting capacity of 1 vs 2 server replicas on this machine: painters held at ≥ 5 frames/s each.

Each replica is a real `python -m server` with its share of the cores (`COLLAGE_THREADS` = cores / replicas);
painters connect round-robin across the replicas, as a least-connections balancer spreads long-lived websockets,
and paint open-loop (`paint_load.py`'s clients: a map every 1/rate s whatever came back). For a growing number
of painters the run records every painter's delivered frames/s; the capacity is the most painters for which the
slowest one still got `--min-fps`. Two replicas on one machine share its cores, so the comparison shows what the
second process costs or gains here; on two machines each replica would bring its own cores.

    python -m benchmarks.replicas --clients 2 4 6 8 10 12 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.paint_latency import REPO, free_port, start_server
from benchmarks.paint_load import ClientLog, run_painters
from models.version import cpu_flags, cpu_model

RESULTS = REPO / "benchmarks" / "results"


def client_fps(log: ClientLog) -> float:
    """Frames that arrived while the client was painting, per second of painting."""
    first, last = min(log.sent.values()), max(log.sent.values())
    return sum(1 for _, arrived, _ in log.frames if arrived <= last) / max(last - first, 1e-9)


def capacity(
    weights: Path,
    model: str,
    replicas: int,
    ladder: list[int],
    rate: float,
    seconds: float,
    size: int,
    min_fps: float,
) -> dict[str, Any]:
    """Start `replicas` servers, climb the ladder of painter counts until the slowest painter falls below min_fps."""
    num_labels = len(json.loads((weights / model / "model.json").read_text())["labels"])
    threads = max(1, (os.cpu_count() or 1) // replicas)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="replicas-") as tmp:
        procs, urls = [], []
        try:
            for r in range(replicas):
                port = free_port()
                procs.append(
                    start_server(weights, Path(tmp) / f"data{r}", port, threads, Path(tmp) / f"{r}.log")
                )
                urls.append(f"ws://127.0.0.1:{port}/api/v1/paint")
            for clients in ladder:
                fps = sorted(
                    client_fps(log)
                    for log in run_painters(urls, model, num_labels, clients, rate, seconds, size, 5.0)
                )
                rows.append(
                    {
                        "clients": clients,
                        "min_fps": round(fps[0], 2),
                        "median_fps": round(fps[len(fps) // 2], 2),
                        "total_fps": round(sum(fps), 2),
                    }
                )
                print(json.dumps({"replicas": replicas, **rows[-1]}), flush=True)
                if fps[0] < min_fps:
                    break
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(20)
    held = [row["clients"] for row in rows if row["min_fps"] >= min_fps]
    return {"replicas": replicas, "threads_each": threads, "capacity": max(held, default=0), "ladder": rows}


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        f"Painting capacity ({cfg['model']}, {cfg['size']}², painters sending {cfg['rate']} maps/s for "
        f"{cfg['seconds']} s; held = the slowest painter got ≥ {cfg['min_fps']} frames/s). "
        f"{result['cpu_model']}, {result['cores']} cores; flags: {' '.join(result['cpu_flags'])}.",
        "",
        "| replicas | threads each | painters held | slowest painter's frames/s at that load | total frames/s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        at = next((row for row in run["ladder"] if row["clients"] == run["capacity"]), None)
        lines.append(
            f"| {run['replicas']} | {run['threads_each']} | {run['capacity']} | "
            f"{at['min_fps'] if at else '–'} | {at['total_fps'] if at else '–'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "weights", help="weights folder")
    parser.add_argument("--model", default="landscape-spade", help="model name in the weights folder")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, nargs="+", default=[2, 3, 4, 5, 6, 8, 10, 12])
    parser.add_argument("--rate", type=float, default=10.0, help="maps per second per painter")
    parser.add_argument("--seconds", type=float, default=10.0, help="painting time per step of the ladder")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--min-fps", type=float, default=5.0, help="frames/s every painter must get")
    parser.add_argument("--out", type=Path, default=RESULTS / "replicas.json")
    args = parser.parse_args(argv)
    runs = [
        capacity(args.weights, args.model, n, args.clients, args.rate, args.seconds, args.size, args.min_fps)
        for n in args.replicas
    ]
    result: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k not in ("weights", "out")},
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
