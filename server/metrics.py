"""Prometheus metrics, one `CollectorRegistry` per app so that several apps (tests) never collide."""

from __future__ import annotations

import resource
import sys

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (getrusage's ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class Metrics:
    """Every metric the server exports; names are prefixed `collage_`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "collage_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "collage_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.renders = Counter("collage_renders", "images rendered, by caller", ["source"], registry=r)
        self.stage_seconds = Histogram(
            "collage_render_stage_seconds",
            "time per render stage: queue (waiting for a batch), infer (the batch's base generator run), "
            "collage (one request's CollageGAN composition), encode",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "collage_batch_size",
            "requests per generator call",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
            registry=r,
        )
        self.queue_depth = Gauge(
            "collage_queue_depth",
            "requests waiting in the engine, by lane: paint (paint sockets), rest (REST renders), bulk (batch jobs)",
            ["lane"],
            registry=r,
        )
        self.frames_dropped = Counter(
            "collage_frames_dropped",
            "paint frames replaced by a newer one before rendering (latest-wins)",
            registry=r,
        )
        self.paint_connections = Gauge("collage_paint_connections", "open paint websockets", registry=r)
        self.rejected = Counter(
            "collage_rejected",
            "requests answered with an error (REST error body or paint error message), once each, by code",
            ["code"],
            registry=r,
        )
        self.model_runtime = Gauge(
            "collage_model_runtime",
            "1 per served model, labelled with the runtime, device and precision really running it",
            ["model", "runtime", "device", "precision"],
            registry=r,
        )
        self.job_items = Counter(
            "collage_job_items", "batch-job items finished, by outcome", ["outcome"], registry=r
        )
        self.peak_rss = Gauge(
            "collage_process_peak_rss_bytes",
            "the replica's peak resident memory since it started (getrusage ru_maxrss), read at each scrape",
            registry=r,
        )
        self.peak_rss.set_function(peak_rss_bytes)
        ProcessCollector(registry=r)  # process_resident_memory_bytes (now), CPU seconds, open files, …

    def render(self) -> bytes:
        return generate_latest(self.registry)
