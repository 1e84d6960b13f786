"""Open-loop paint load over the real websocket: N clients each send a new label map at a fixed rate.

Unlike `paint_latency.py` (closed loop: send, wait for the frame, send the next), these clients paint like users
do — a map every 1/rate s whether or not the last picture has come back — so the server's latest-wins slot
drops maps under load. Per client count it reports paint→frame latency (send of seq s → frame answering s),
frames delivered per second, maps dropped (the server's counter and the client's unanswered seqs) and the
staleness of delivered frames: how many seqs behind the client's newest map a frame was when it arrived, and
for how many ms a newer map had already been sent by then.

    python -m benchmarks.paint_load --export-preset spade-fast --clients 1 4 16 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.paint_latency import REPO, export_untrained, free_port, map_frame, paint_maps, start_server

_SERIES = re.compile(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?)\s+(\S+)$")


def scrape(metrics_url: str) -> dict[str, float]:
    """The server's Prometheus text as {series (with labels): value}."""
    import httpx

    values = {}
    for line in httpx.get(metrics_url, timeout=10).text.splitlines():
        if match := _SERIES.match(line):
            values[match.group(1)] = float(match.group(2))
    return values


def metric_delta(before: dict[str, float], after: dict[str, float], series: str) -> float:
    return after.get(series, 0.0) - before.get(series, 0.0)


def server_breakdown(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """Mean ms per render stage (infer per generator call, queue and encode per request) and mean batch size."""
    out: dict[str, float | None] = {}
    for stage in ("queue", "infer", "encode"):
        total = metric_delta(before, after, f'collage_render_stage_seconds_sum{{stage="{stage}"}}')
        count = metric_delta(before, after, f'collage_render_stage_seconds_count{{stage="{stage}"}}')
        out[f"{stage}_ms"] = round(1000.0 * total / count, 2) if count else None
    batches = metric_delta(before, after, "collage_batch_size_count")
    out["mean_batch"] = (
        round(metric_delta(before, after, "collage_batch_size_sum") / batches, 2) if batches else None
    )
    return out


@dataclass
class ClientLog:
    """What one client saw. Times are perf_counter seconds."""

    sent: dict[int, float] = field(default_factory=dict)  # seq → send time
    frames: list[tuple[int, float, int]] = field(default_factory=list)  # (seq, arrival, newest seq sent)
    errors: dict[str, int] = field(default_factory=dict)  # error code → count


async def paint_client(
    url: str,
    model: str,
    messages: list[bytes],  # label-map messages for seq 2, 3, … (seq 1 is the warm-up map)
    warmup: bytes,  # the seq-1 map, rendered before the clock starts
    size: int,  # side of the maps in pixels
    rate: float,  # maps per second
    phase: float,  # seconds after `start` of this client's first map (clients do not paint in lockstep)
    start: float,  # perf_counter time the timed painting starts
    grace: float,  # seconds after the last map to wait for its frame
) -> ClientLog:
    from websockets.asyncio.client import connect

    log = ClientLog()
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(
            json.dumps({"type": "configure", "model": model, "size": [size, size], "format": "jpeg"})
        )
        reply = json.loads(await ws.recv())
        if reply.get("type") != "configured":
            raise RuntimeError(f"configure refused: {reply}")
        await ws.send(warmup)
        while not isinstance(await ws.recv(), bytes):  # the first frame allocates; not measured
            pass
        last_seq = len(messages) + 1
        newest = 1

        async def send_all() -> None:
            nonlocal newest
            for i, message in enumerate(messages):
                delay = start + phase + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                seq = i + 2
                log.sent[seq] = time.perf_counter()
                newest = seq
                await ws.send(message)

        sender = asyncio.create_task(send_all())
        deadline = start + phase + len(messages) / rate + grace
        try:
            while True:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    answer = await asyncio.wait_for(ws.recv(), remaining)
                except TimeoutError:
                    break
                if isinstance(answer, bytes):
                    seq = int.from_bytes(answer[1:5], "little")
                    log.frames.append((seq, time.perf_counter(), newest))
                else:
                    payload = json.loads(answer)
                    seq = payload.get("seq")
                    code = payload.get("code", "?")
                    log.errors[code] = log.errors.get(code, 0) + 1
                if seq == last_seq:  # latest-wins always renders the last map (or says why not)
                    break
        finally:
            await sender
    return log


def summarize(logs: list[ClientLog], rate: float) -> dict[str, Any]:
    """Latency percentiles over every frame; delivery rate and staleness over the frames that arrived while
    their client was still painting (the last map's frame comes after painting stops, with nothing newer to
    be stale against, which would flatter a bounded run); drops from the unanswered seqs."""
    latency, stale_seqs, stale_ms = [], [], []
    rates = []
    for log in logs:
        painting = (min(log.sent.values()), max(log.sent.values()))
        in_window = 0
        for seq, arrived, newest in log.frames:
            latency.append((arrived - log.sent[seq]) * 1000.0)
            if arrived > painting[1]:
                continue
            in_window += 1
            stale_seqs.append(newest - seq)
            newer = log.sent.get(seq + 1)
            stale_ms.append((arrived - newer) * 1000.0 if newer is not None and newer <= arrived else 0.0)
        rates.append(in_window / max(painting[1] - painting[0], 1e-9))
    sent = sum(len(log.sent) for log in logs)
    frames = len(latency)
    errors: dict[str, int] = {}
    for log in logs:
        for code, n in log.errors.items():
            errors[code] = errors.get(code, 0) + n

    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 2) if values else None

    return {
        "clients": len(logs),
        "rate_per_client": rate,
        "maps_sent": sent,
        "frames": frames,
        "errors": errors,
        "unanswered": sent - frames - sum(errors.values()),
        "p50_ms": pct(latency, 50),
        "p95_ms": pct(latency, 95),
        "p99_ms": pct(latency, 99),
        "frames_per_s": round(sum(rates), 2),
        "frames_per_s_per_client": round(sum(rates) / len(logs), 2),
        "stale_frames": round(sum(1 for s in stale_seqs if s > 0) / len(stale_seqs), 4)
        if stale_seqs
        else None,
        "stale_seqs_mean": round(float(np.mean(stale_seqs)), 3) if stale_seqs else None,
        "stale_seqs_max": int(max(stale_seqs)) if stale_seqs else None,
        "stale_ms_p50": pct(stale_ms, 50),
        "stale_ms_p95": pct(stale_ms, 95),
    }


def run_painters(
    ws_urls: list[str],  # paint websocket URLs; client i paints on ws_urls[i mod len]
    model: str,  # model name the clients configure
    num_labels: int,  # label ids in the maps stay below this
    clients: int,  # concurrent paint connections
    rate: float,  # maps per second per client
    seconds: float,  # painting time per client
    size: int,  # map side in pixels
    grace: float,  # wait this long after the last map for its frame
) -> list[ClientLog]:
    """`clients` open-loop painters, started a little apart so they do not paint in lockstep."""
    count = max(2, round(rate * seconds))
    maps = paint_maps(count + 1, size, num_labels)
    warmup = map_frame(1, maps[0])
    messages = [map_frame(i + 2, ids) for i, ids in enumerate(maps[1:])]  # zlib once, shared by the clients

    async def run() -> list[ClientLog]:
        start = time.perf_counter() + 1.0 + 0.05 * clients  # every client connects and warms up first
        return await asyncio.gather(
            *(
                paint_client(
                    ws_urls[i % len(ws_urls)],
                    model,
                    messages,
                    warmup,
                    size,
                    rate,
                    i / (rate * clients),
                    start,
                    grace,
                )
                for i in range(clients)
            )
        )

    return asyncio.run(run())


def paint_load(
    base_url: str,  # http://127.0.0.1:PORT of a running server
    model: str,  # model name the clients configure
    num_labels: int,  # label ids in the maps stay below this
    clients: int,  # concurrent paint connections
    rate: float = 10.0,  # maps per second per client
    seconds: float = 8.0,  # painting time per client
    size: int = 256,  # map side in pixels
    grace: float = 5.0,  # wait this long after the last map for its frame
) -> dict[str, Any]:
    """Run `clients` open-loop painters for `seconds`; returns `summarize` plus the server's own counters."""
    url = base_url.replace("http://", "ws://") + "/api/v1/paint"
    before = scrape(base_url + "/metrics")
    logs = run_painters([url], model, num_labels, clients, rate, seconds, size, grace)
    after = scrape(base_url + "/metrics")
    result = summarize(logs, rate)
    result["server_dropped"] = int(metric_delta(before, after, "collage_frames_dropped_total"))
    result["server"] = server_breakdown(before, after)
    return result


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=REPO / "weights", help="weights folder")
    parser.add_argument("--model", help="model name (default: the first in --weights)")
    parser.add_argument("--export-preset", help="export an untrained model of this SPADE preset and use it")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rate", type=float, default=10.0, help="maps per second per client")
    parser.add_argument("--seconds", type=float, default=8.0, help="painting time per client count")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="paint-load-") as tmp_name:
        tmp = Path(tmp_name)
        weights, model = args.weights, args.model
        if args.export_preset:
            weights = tmp / "weights"
            model = export_untrained(args.export_preset, weights)
        model = model or sorted(p.parent.name for p in weights.glob("*/model.json"))[0]
        num_labels = len(json.loads((weights / model / "model.json").read_text())["labels"])
        port = free_port()
        proc = start_server(weights, tmp / "data", port, os.cpu_count() or 1, tmp / "server.log")
        try:
            rows = [
                paint_load(
                    f"http://127.0.0.1:{port}", model, num_labels, n, args.rate, args.seconds, args.size
                )
                for n in args.clients
            ]
        finally:
            proc.terminate()
            proc.wait(10)
    print(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
