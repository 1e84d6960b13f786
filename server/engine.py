"""The render pipeline shared by the paint socket, REST renders and batch jobs.

validate → queue → base generator (micro-batched: up to `max_batch` requests of the same model and size and at most
`max_batch_pixels` pixels in all, waiting at most `max_wait_ms` for company) → post stages (the CollageGAN stage
plugs in here) → encode.

The generator runs on one dedicated thread, so the event loop never blocks and onnxruntime's own intra-op threads
have the cores to themselves; encoding runs on the loop's default executor so it overlaps the next batch.
Interactive requests (paint, REST) go before bulk ones (batch jobs); the interactive queue is bounded and a full
queue raises `Overloaded` (→ 503 with Retry-After) instead of growing memory.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from common.instances import instances_from_labels
from server.codec import FORMATS, check_label_ids, encode_image, to_uint8_rgb
from server.errors import BadInput
from server.metrics import Metrics
from server.registry import LoadedModel, Registry
from server.styles import seeded_noise

log = logging.getLogger(__name__)

Priority = Literal["interactive", "bulk"]
BULK_MAX_AGE_S = 1.0  # a bulk request older than this goes first, so batch jobs progress under paint load


@dataclass
class RenderRequest:
    """One picture to render. `labels` and `z` are validated against the model by `Engine.render`."""

    model: str
    labels: np.ndarray  # H×W uint8 label ids
    z: np.ndarray  # [z_dim] float32 style latent
    fmt: str = "jpeg"  # jpeg | webp | png
    quality: int = 90  # JPEG/WebP quality 1..100
    collage: bool = False  # for the CollageGAN post stage (not built yet); the API clamps it to has_collage
    instances: np.ndarray | None = (
        None  # H×W int32 instance ids; None = connected components of thing classes
    )
    source: str = "rest"  # metrics label: paint | rest | job
    seed: int = 0  # draws a noise input's noise: the style's seed, 0 for a preset or uploaded style


@dataclass(frozen=True)
class RenderResult:
    data: bytes  # encoded image
    media_type: str
    queue_ms: float  # waiting for a batch slot
    infer_ms: float  # the batch's generator (+ post stage) run
    encode_ms: float
    batch_size: int


# A post stage gets one item's generator output [3,H,W] float32 in [-1,1] and returns the same shape and range.
PostStage = Callable[[LoadedModel, RenderRequest, np.ndarray], np.ndarray]


class Overloaded(Exception):
    """The interactive queue is full; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the render queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Encoded:
    """A picture already encoded on the inference thread, and the milliseconds that took."""

    data: bytes
    ms: float


@dataclass(frozen=True)
class _Done:
    picture: np.ndarray | _Encoded  # H×W×3 uint8 to encode, or already encoded
    queue_ms: float
    infer_ms: float  # the batch's generator (+ post stages) run, without any encoding
    batch_size: int


@dataclass
class _Pending:
    request: RenderRequest
    key: tuple[str, int, int]  # (model, H, W): only equal keys share a generator call
    future: asyncio.Future[_Done]
    priority: Priority
    enqueued: float = field(default_factory=time.perf_counter)


class Engine:
    """Micro-batching render queue over the registry's onnxruntime sessions."""

    def __init__(
        self,
        registry: Registry,  # models to render with
        metrics: Metrics,  # where queue depth, batch sizes and stage times go
        max_batch: int = 8,  # most requests in one generator call
        max_wait_ms: float = 2.0,  # longest a request waits for others of its model and size
        queue_limit: int = 64,  # interactive requests waiting before `Overloaded`
        max_batch_pixels: int = 2_097_152,  # most map pixels per generator call (8 × 512²); one item always runs
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_batch_pixels = max_batch_pixels
        self.max_wait = max_wait_ms / 1000.0
        self.queue_limit = queue_limit
        self.post_stages: list[
            PostStage
        ] = []  # empty until the CollageGAN stage exists; tests observe with it
        self._queues: dict[Priority, deque[_Pending]] = {"interactive": deque(), "bulk": deque()}
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="collage-infer")
        self._task: asyncio.Task[None] | None = None
        self._batch_seconds = 0.05  # moving average of one generator call, for Retry-After
        self._last_batch: dict[tuple[str, int, int], int] = {}  # (model, H, W) -> size of its latest batch

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="collage-engine")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for queue in self._queues.values():
            for pending in queue:
                pending.future.cancel()
            queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def queue_depth(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def validate(self, request: RenderRequest) -> LoadedModel:
        """Refuse what the model cannot render: unknown model, size, label ids, z length, format."""
        model = self.registry.get(request.model)
        if request.labels.ndim != 2 or request.labels.dtype != np.uint8:
            raise BadInput("bad_size", "a label map is a 2-D array of uint8 ids")
        model.check_size(*request.labels.shape)
        check_label_ids(request.labels, model.num_labels)
        if request.z.shape != (model.z_dim,):
            raise BadInput(
                "bad_style", f"style latent has shape {request.z.shape}, model needs ({model.z_dim},)"
            )
        if request.fmt not in FORMATS:
            raise BadInput("bad_format", f"unknown image format {request.fmt!r} (jpeg, webp or png)")
        if not 1 <= request.quality <= 100:
            raise BadInput("bad_quality", f"quality {request.quality} is not in 1..100")
        if request.instances is not None and request.instances.shape != request.labels.shape:
            raise BadInput("bad_size", "instance map and label map differ in size")
        return model

    async def render(self, request: RenderRequest, priority: Priority = "interactive") -> RenderResult:
        """Render one request; raises BadInput for invalid requests and Overloaded when the queue is full."""
        model = self.validate(request)
        queue = self._queues[priority]
        if priority == "interactive" and len(queue) >= self.queue_limit:
            # counted as rejected where it is answered (503 or a socket error), once
            raise Overloaded(self._retry_after(len(queue)))
        h, w = request.labels.shape
        pending = _Pending(request, (model.name, h, w), asyncio.get_running_loop().create_future(), priority)
        queue.append(pending)
        self.metrics.queue_depth.labels(priority).set(len(queue))
        self._arrived.set()
        try:
            done = await pending.future
        except asyncio.CancelledError:
            pending.future.cancel()  # the batcher skips it if it has not started yet
            raise
        if isinstance(done.picture, _Encoded):
            data, encode_ms = done.picture.data, done.picture.ms
        else:
            t0 = time.perf_counter()
            data = await asyncio.to_thread(encode_image, done.picture, request.fmt, request.quality)
            encode_ms = (time.perf_counter() - t0) * 1000.0
        queue_ms, infer_ms, batch_size = done.queue_ms, done.infer_ms, done.batch_size
        self.metrics.stage_seconds.labels("encode").observe(encode_ms / 1000.0)
        self.metrics.renders.labels(request.source).inc()
        return RenderResult(data, FORMATS[request.fmt][1], queue_ms, infer_ms, encode_ms, batch_size)

    async def encode_style(self, model: LoadedModel, image: np.ndarray) -> np.ndarray:
        """Reference image [1,3,H,W] in [-1,1] → style latent [z_dim], on the inference thread."""
        loop = asyncio.get_running_loop()
        mu = await loop.run_in_executor(self._executor, model.run_encoder, image)
        return np.asarray(mu[0], dtype=np.float32)

    # ------------------------------------------------------------------ batching

    def _retry_after(self, waiting: int) -> int:
        return max(1, min(30, math.ceil(waiting / self.max_batch * self._batch_seconds)))

    def _head(self) -> _Pending | None:
        """The request to serve next: interactive first, unless a bulk one has waited too long."""
        for queue in self._queues.values():
            while queue and queue[0].future.done():  # cancelled by a caller that went away
                queue.popleft()
        inter, bulk = self._queues["interactive"], self._queues["bulk"]
        if bulk and (not inter or time.perf_counter() - bulk[0].enqueued > BULK_MAX_AGE_S):
            return bulk[0]
        return inter[0] if inter else None

    def _batch_limit(self, model: LoadedModel, key: tuple[str, int, int]) -> int:
        """Most requests of this key in one call: activations grow with B·H·W, so large maps batch less."""
        if not model.batchable:
            return 1
        _, h, w = key
        return max(1, min(self.max_batch, self.max_batch_pixels // (h * w)))

    def _count(self, key: tuple[str, int, int]) -> int:
        return sum(1 for q in self._queues.values() for p in q if p.key == key and not p.future.done())

    def _take(self, key: tuple[str, int, int], limit: int) -> list[_Pending]:
        """Remove and return up to `limit` live requests with this key, interactive ones first."""
        batch: list[_Pending] = []
        for priority, queue in self._queues.items():
            keep: deque[_Pending] = deque()
            for p in queue:
                if p.future.done():
                    continue
                (batch if p.key == key and len(batch) < limit else keep).append(p)
            self._queues[priority] = keep
            self.metrics.queue_depth.labels(priority).set(len(keep))
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            head = self._head()
            if head is None:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            model = self.registry.models[head.key[0]]  # validated at enqueue; the registry never shrinks
            limit = self._batch_limit(model, head.key)
            # An interactive request waits for company only when the last batch of its kind had some: a lone
            # painter's frames come one at a time, and waiting max_wait for nobody added ~2 ms to each (15% of a
            # 256² frame on OpenVINO bf16). Bulk (batch-job) items always wait: their runner feeds the engine
            # one item as each finishes, so without the wait every batch stayed a batch of one (0.44× instead of
            # 0.67× the engine's batched images/s in one bench run).
            crowded = head.priority == "bulk" or self._last_batch.get(head.key, 0) > 1
            wait = self.max_wait if crowded else 0.0
            deadline = head.enqueued + wait
            while self._count(head.key) < limit and (remaining := deadline - time.perf_counter()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take(head.key, limit)
            if not batch:
                continue
            started = time.perf_counter()
            try:
                pictures = await loop.run_in_executor(self._executor, self._run_batch, model, batch)
            except Exception as exc:
                log.exception("render batch of %d on %s failed", len(batch), model.name)
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            elapsed = (
                time.perf_counter()
                - started
                - sum(p.ms / 1000.0 for p in pictures if isinstance(p, _Encoded))
            )
            self._last_batch[head.key] = len(batch)
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * elapsed
            self.metrics.batch_size.observe(len(batch))
            self.metrics.stage_seconds.labels("infer").observe(elapsed)
            for p, picture in zip(batch, pictures, strict=True):
                queue_s = started - p.enqueued
                self.metrics.stage_seconds.labels("queue").observe(queue_s)
                if not p.future.done():
                    p.future.set_result(_Done(picture, queue_s * 1000.0, elapsed * 1000.0, len(batch)))

    def _run_batch(self, model: LoadedModel, batch: list[_Pending]) -> list[np.ndarray | _Encoded]:
        """On the inference thread: stack, run the generator once, post stages, → H×W×3 uint8 per request.

        A batch of one (a lone painter, a single REST render) is also encoded here: handing the picture to
        another thread to encode cost ~0.4 ms at 256² — right after inference the runtime's worker threads
        still hold the cores — and nothing else is waiting for this thread. Larger batches are encoded on
        other threads, overlapping the next batch."""
        n = len(batch)
        h, w = batch[0].request.labels.shape
        label = np.empty((n, 1, h, w), dtype=np.int64)  # [B,1,H,W]
        instance = np.empty((n, 1, h, w), dtype=np.int64)  # [B,1,H,W]
        for i, p in enumerate(batch):
            req = p.request
            label[i, 0] = req.labels
            instance[i, 0] = (
                req.instances
                if req.instances is not None
                else instances_from_labels(req.labels, model.thing_ids)
            )
        z = np.stack([p.request.z for p in batch]).astype(np.float32, copy=False)  # [B,z_dim]
        noise = None
        if model.noise_channels:  # per request, from its seed: batching never changes a picture
            noise = np.stack([seeded_noise(p.request.seed, model.noise_channels, h, w) for p in batch])
        out = model.run_generator(label, instance, z, noise)  # [B,3,H,W] in [-1,1]
        images = []
        for i, p in enumerate(batch):
            image = out[i]
            for stage in self.post_stages:
                image = stage(model, p.request, image)
            images.append(to_uint8_rgb(image))
        if len(images) == 1:
            t0 = time.perf_counter()
            request = batch[0].request
            data = encode_image(images[0], request.fmt, request.quality)
            return [_Encoded(data, (time.perf_counter() - t0) * 1000.0)]
        return list(images)
