"""REST numbers against a running server: single-render latency and batch-job throughput.

- `render_latency`: sequential `POST /api/v1/render` calls (raw ids + width/height, a seed, JPEG); client-side
  round trip plus the server's own X-Render-Ms / X-Queue-Ms / X-Encode-Ms headers.
- `batch_throughput`: one `POST /api/v1/batches` job of N label PNGs (JSON, base64), polled until done;
  images/s from the POST to the moment the job reports done.

Both are compared in `benchmarks.run` with the engine-only numbers of the same model.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import numpy as np

from benchmarks.paint_latency import paint_maps
from benchmarks.paint_load import scrape, server_breakdown


def render_latency(
    base_url: str, model: str, num_labels: int, size: int, requests: int, warmup: int = 2
) -> dict[str, Any]:
    """p50/p95 of sequential single renders (client round trip) and the server's per-stage headers."""
    import httpx

    maps = paint_maps(requests + warmup, size, num_labels)
    round_trip, render_ms, queue_ms, encode_ms = [], [], [], []
    before = scrape(base_url + "/metrics")
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for i, ids in enumerate(maps):
            form = {"model": model, "width": str(size), "height": str(size), "seed": str(i), "format": "jpeg"}
            start = time.perf_counter()
            answer = client.post("/api/v1/render", data=form, files={"labels": ("labels.raw", ids.tobytes())})
            elapsed = (time.perf_counter() - start) * 1000.0
            if answer.status_code != 200:
                raise RuntimeError(f"POST /api/v1/render answered {answer.status_code}: {answer.text[:500]}")
            if i < warmup:
                continue
            round_trip.append(elapsed)
            render_ms.append(float(answer.headers["X-Render-Ms"]))
            queue_ms.append(float(answer.headers["X-Queue-Ms"]))
            encode_ms.append(float(answer.headers["X-Encode-Ms"]))
    after = scrape(base_url + "/metrics")
    return {
        "requests": requests,
        "size": size,
        "format": "jpeg",
        "p50_ms": round(float(np.percentile(round_trip, 50)), 2),
        "p95_ms": round(float(np.percentile(round_trip, 95)), 2),
        "server_render_ms_p50": round(float(np.percentile(render_ms, 50)), 2),
        "server_queue_ms_p50": round(float(np.percentile(queue_ms, 50)), 2),
        "server_encode_ms_p50": round(float(np.percentile(encode_ms, 50)), 2),
        "server": server_breakdown(before, after),
    }


def batch_throughput(
    base_url: str, model: str, num_labels: int, size: int, items: int, timeout_s: float = 600.0
) -> dict[str, Any]:
    """Images/s of one batch job of `items` label maps (seeded styles, JPEG), POST to done."""
    import httpx

    from server.codec import encode_label_png

    body = {
        "model": model,
        "format": "jpeg",
        "seed": 0,
        "items": [
            {"labels_png_b64": base64.b64encode(encode_label_png(ids)).decode()}
            for ids in paint_maps(items, size, num_labels)
        ],
    }
    before = scrape(base_url + "/metrics")
    with httpx.Client(base_url=base_url, timeout=120) as client:
        start = time.perf_counter()
        answer = client.post("/api/v1/batches", json=body)
        if answer.status_code != 202:
            raise RuntimeError(f"POST /api/v1/batches answered {answer.status_code}: {answer.text[:500]}")
        job = answer.json()
        accepted = time.perf_counter()
        while job["status"] in ("queued", "running"):
            if time.perf_counter() - start > timeout_s:
                raise RuntimeError(f"batch job {job['job_id']} not done after {timeout_s:.0f} s: {job}")
            time.sleep(0.05)
            job = client.get(f"/api/v1/batches/{job['job_id']}").json()
        elapsed = time.perf_counter() - start
    if job["status"] != "done" or job["failed"]:
        raise RuntimeError(f"batch job ended {job['status']} with {job['failed']} failed items: {job}")
    after = scrape(base_url + "/metrics")
    return {
        "items": items,
        "size": size,
        "format": "jpeg",
        "seconds": round(elapsed, 3),
        "post_ms": round((accepted - start) * 1000.0, 1),  # upload + validation of every item
        "images_per_s": round(items / elapsed, 2),
        "server": server_breakdown(before, after),
    }
