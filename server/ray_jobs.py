"""A batch job's pending items rendered on Ray, by the same actor pool `collage render --ray-address` uses.

The job runner hands over what it would put in each item's `RenderRequest` (label map, z, noise seed) and gets
each item's outcome back as soon as its actor is done with it, in no particular order. Every actor renders
through a `Renderer`, which is the server's own engine at batch 1, so an item's bytes are those of the engine's
batch-1 call on the same runtime, precision and thread count. The same number of runtime threads matters: OpenVINO
splits a convolution's work by thread count and its pixels move with it (both bf16 and f32; onnxruntime's do not),
so pass the server's own `RuntimeChoice` with an explicit thread count when the bytes must match the server's.

The iterator blocks while it waits for results: run it in a thread (`asyncio.to_thread` over `next`, say).
Closing it, or dropping it, kills the pool's actors (how a cancelled job stops rendering); items that did not
come back are not reported, so they stay pending, and a failure of the pool itself (no cluster, no node with the
threads asked for, an actor that cannot open the model, the head lost) raises from the iterator.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable
from pathlib import Path

import numpy as np

from common.runtime import RuntimeChoice
from server.codec import encode_label_png
from server.ray_render import row, start_pool

log = logging.getLogger(__name__)

Done = tuple[int, bytes, float]  # (item index, encoded picture, render ms on the actor's inference thread)
Failed = tuple[int, str]  # (item index, the message the item keeps)


def render_job_items(
    items: Iterable[tuple[int, np.ndarray, np.ndarray, int]],
    model_dir: Path,
    fmt: str,
    quality: int,
    collage: bool,
    choice: RuntimeChoice,
    *,
    address: str,
    max_pixels: int,
    actors: int | None = None,
) -> Generator[Done | Failed]:
    """Render (index, H×W uint8 labels, z float32, noise seed) items on the Ray cluster at `address` (joined
    once per process); yield (index, bytes, ms) or (index, message) per item as it comes back.

    `model_dir` must be the same path on every node (server/ray_render.py); `max_pixels` guards decoding the
    label maps on the actors (the server's limit); `actors` defaults to the cluster's CPUs / threads. A map the
    model refuses fails its item with the engine's message, as the job runner's own loop does; anything else
    becomes "internal error while rendering" and is logged here."""
    rows = [row(idx, encode_label_png(labels), z, seed) for idx, labels, z, seed in items]
    if not rows:
        return
    pool = start_pool(address, model_dir, choice, max_pixels, (fmt, quality, collage), actors, len(rows))
    try:
        for result in pool.render(rows):
            if result.error is None:
                yield result.key, result.data, result.ms
            elif result.bad_input:
                yield result.key, result.error
            else:
                log.error("batch item %d failed on Ray: %s", result.key, result.error)
                yield result.key, "internal error while rendering"
    finally:
        pool.close()
