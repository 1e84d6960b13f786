"""The render pipeline shared by the paint socket, REST renders and batch jobs.

validate → queue → base generator (micro-batched: up to `max_batch` requests of the same model and size and at most
`max_batch_pixels` pixels in all, waiting at most `max_wait_ms` for company) → the CollageGAN stage per request
that asks for it (common/collage.py) → encode. A request may bring its own base picture (a paint re-roll): then
only the collage stage runs.

The generator runs on one dedicated thread, so the event loop never blocks and onnxruntime's own intra-op threads
have the cores to themselves; encoding runs on the loop's default executor so it overlaps the next batch.

Requests wait in three lanes: `paint` (the paint sockets' frames), `rest` (every other interactive request: REST
renders) and `bulk` (batch-job items). The two interactive lanes are served round-robin, one batch each in turn,
so a REST render waits for at most the batch under way and one paint batch however many painters are backlogged
(a paint socket has at most one frame in the engine: its newest map waits in the socket's latest-wins slot), and
painters keep every other batch however many REST renders come. A batch is the head's lane's requests of one
model and size, filled up with same-size requests of the other lanes. Bulk goes when both interactive lanes are
empty, or when its oldest item has waited more than BULK_MAX_AGE_S, so batch jobs progress under paint load. Each
interactive lane holds at most `queue_limit` requests and a full lane raises `Overloaded` (→ 503 with
Retry-After, or a paint `overloaded` error) instead of growing memory; a full paint lane never refuses a REST
render, nor the other way round. (The bulk lane is bounded by the job runner, which feeds it `max_batch` items.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from common.collage import Anchor, Placed, compose
from common.instances import instances_from_labels
from server.codec import FORMATS, check_label_ids, encode_image, to_uint8_rgb
from server.errors import BadInput
from server.metrics import Metrics
from server.registry import LoadedModel, Registry
from server.styles import seeded_noise

log = logging.getLogger(__name__)

Priority = Literal["interactive", "bulk"]
Lane = Literal["paint", "rest", "bulk"]
INTERACTIVE_LANES: tuple[Lane, ...] = ("paint", "rest")  # served round-robin, one batch each in turn
BULK_MAX_AGE_S = 1.0  # a bulk request older than this goes first, so batch jobs progress under paint load


@dataclass
class RenderRequest:
    """One picture to render. `labels` and `z` are validated against the model by `Engine.render`."""

    model: str
    labels: np.ndarray  # H×W uint8 label ids
    z: np.ndarray  # [z_dim] float32 style latent
    fmt: str = "jpeg"  # jpeg | webp | png
    quality: int = 90  # JPEG/WebP quality 1..100
    collage: bool = False  # run the CollageGAN stage; the APIs clamp it to has_collage
    instances: np.ndarray | None = (
        None  # H×W int32 instance ids; None = connected components of thing classes
    )
    source: str = "rest"  # paint | rest | job: the metrics label; "paint" also picks the paint lane
    seed: int = 0  # draws a noise input's noise: the style's seed, 0 for a preset or uploaded style
    anchors: tuple[Anchor, ...] = ()  # per-instance seeds of the collage stage, by pixel; a later one wins
    base: np.ndarray | None = None  # [3,H,W] float32 base picture: skip the base generator, only compose
    keep_base: bool = False  # return the base picture in RenderResult.base (a paint session caches it)


@dataclass(frozen=True)
class RenderResult:
    data: bytes  # encoded image
    media_type: str
    queue_ms: float  # waiting for a batch slot
    infer_ms: float  # the batch's run on the inference thread: base generator + every item's collage stage
    encode_ms: float
    batch_size: int
    collage_ms: float = 0.0  # this request's collage stage (0 when it did not run)
    placed: tuple[Placed, ...] = ()  # the instances the collage stage composited, in order
    base: np.ndarray | None = None  # [3,H,W] float32 base picture, when the request asked to keep it


class Overloaded(Exception):
    """The request's lane (paint or REST) is full; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the render queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Encoded:
    """A picture already encoded on the inference thread, and the milliseconds that took."""

    data: bytes
    ms: float


@dataclass(frozen=True)
class _Item:
    """One request's output of the inference thread."""

    picture: np.ndarray | _Encoded  # H×W×3 uint8 to encode, or already encoded
    base: np.ndarray | None  # [3,H,W] float32, when asked for
    placed: tuple[Placed, ...]
    collage_ms: float


@dataclass(frozen=True)
class _Done:
    item: _Item
    queue_ms: float
    infer_ms: float  # the batch's run, without any encoding
    batch_size: int


@dataclass
class _Pending:
    request: RenderRequest
    key: tuple[str, int, int]  # (model, H, W): only equal keys share a generator call
    future: asyncio.Future[_Done]
    lane: Lane
    enqueued: float = field(default_factory=time.perf_counter)


class Engine:
    """Micro-batching render queue over the registry's onnxruntime sessions."""

    def __init__(
        self,
        registry: Registry,  # models to render with
        metrics: Metrics,  # where queue depth, batch sizes and stage times go
        max_batch: int = 8,  # most requests in one generator call
        max_wait_ms: float = 2.0,  # longest a request waits for others of its model and size
        queue_limit: int = 64,  # requests waiting in each interactive lane (paint, rest) before `Overloaded`
        max_batch_pixels: int = 2_097_152,  # most map pixels per generator call (8 × 512²); one item always runs
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_batch_pixels = max_batch_pixels
        self.max_wait = max_wait_ms / 1000.0
        self.queue_limit = queue_limit
        self._queues: dict[Lane, deque[_Pending]] = {"paint": deque(), "rest": deque(), "bulk": deque()}
        self._served: Lane = INTERACTIVE_LANES[
            -1
        ]  # lane of the latest interactive batch; the other goes next
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
        h, w = request.labels.shape
        if request.base is not None and (request.base.shape != (3, h, w) or request.base.dtype != np.float32):
            raise BadInput(
                "bad_size",
                f"a base picture is float32 [3,{h},{w}], got {request.base.dtype} {request.base.shape}",
            )
        for a in request.anchors:
            if not (0 <= a.x < w and 0 <= a.y < h):
                raise BadInput("bad_instance_seeds", f"pixel ({a.x}, {a.y}) is outside the {w}×{h} map")
        return model

    @staticmethod
    def lane(request: RenderRequest, priority: Priority) -> Lane:
        """Bulk requests queue in the bulk lane, paint frames in the paint lane, every other one in the rest lane."""
        if priority == "bulk":
            return "bulk"
        return "paint" if request.source == "paint" else "rest"

    async def render(self, request: RenderRequest, priority: Priority = "interactive") -> RenderResult:
        """Render one request; raises BadInput for invalid requests and Overloaded when its lane is full."""
        model = self.validate(request)
        lane = self.lane(request, priority)
        queue = self._queues[lane]
        if lane != "bulk" and len(queue) >= self.queue_limit:
            # counted as rejected where it is answered (503 or a socket error), once
            raise Overloaded(self._retry_after(len(queue)))
        h, w = request.labels.shape
        pending = _Pending(request, (model.name, h, w), asyncio.get_running_loop().create_future(), lane)
        queue.append(pending)
        self.metrics.queue_depth.labels(lane).set(len(queue))
        self._arrived.set()
        try:
            done = await pending.future
        except asyncio.CancelledError:
            pending.future.cancel()  # the batcher skips it if it has not started yet
            raise
        item = done.item
        if isinstance(item.picture, _Encoded):
            data, encode_ms = item.picture.data, item.picture.ms
        else:
            t0 = time.perf_counter()
            data = await asyncio.to_thread(encode_image, item.picture, request.fmt, request.quality)
            encode_ms = (time.perf_counter() - t0) * 1000.0
        self.metrics.stage_seconds.labels("encode").observe(encode_ms / 1000.0)
        self.metrics.renders.labels(request.source).inc()
        return RenderResult(
            data,
            FORMATS[request.fmt][1],
            done.queue_ms,
            done.infer_ms,
            encode_ms,
            done.batch_size,
            item.collage_ms,
            item.placed,
            item.base,
        )

    async def encode_style(self, model: LoadedModel, image: np.ndarray) -> np.ndarray:
        """Reference image [1,3,H,W] in [-1,1] → style latent [z_dim], on the inference thread."""
        loop = asyncio.get_running_loop()
        mu = await loop.run_in_executor(self._executor, model.run_encoder, image)
        return np.asarray(mu[0], dtype=np.float32)

    # ------------------------------------------------------------------ batching

    def _retry_after(self, waiting: int) -> int:
        """Seconds until `waiting` requests of one lane are served: batches alternate between busy lanes."""
        busy = max(1, sum(1 for lane in INTERACTIVE_LANES if self._queues[lane]))
        return max(1, min(30, math.ceil(waiting * busy / self.max_batch * self._batch_seconds)))

    def _head(self) -> _Pending | None:
        """The request to serve next: the oldest of the interactive lane whose turn it is (round-robin), unless a
        bulk one has waited too long; bulk when no interactive request waits."""
        for queue in self._queues.values():
            while queue and queue[0].future.done():  # cancelled by a caller that went away
                queue.popleft()
        bulk = self._queues["bulk"]
        if bulk and time.perf_counter() - bulk[0].enqueued > BULK_MAX_AGE_S:
            return bulk[0]
        turn = INTERACTIVE_LANES.index(self._served)
        for step in range(1, len(INTERACTIVE_LANES) + 1):
            queue = self._queues[INTERACTIVE_LANES[(turn + step) % len(INTERACTIVE_LANES)]]
            if queue:
                return queue[0]
        return bulk[0] if bulk else None

    def _batch_limit(self, model: LoadedModel, key: tuple[str, int, int]) -> int:
        """Most requests of this key in one call: activations grow with B·H·W, so large maps batch less."""
        if not model.batchable:
            return 1
        _, h, w = key
        return max(1, min(self.max_batch, self.max_batch_pixels // (h * w)))

    def _count(self, key: tuple[str, int, int]) -> int:
        return sum(1 for q in self._queues.values() for p in q if p.key == key and not p.future.done())

    def _take(self, key: tuple[str, int, int], limit: int, first: Lane) -> list[_Pending]:
        """Remove and return up to `limit` live requests with this key: lane `first`'s, then the other
        interactive lane's, then bulk ones."""
        batch: list[_Pending] = []
        order = [first, *(lane for lane in (*INTERACTIVE_LANES, "bulk") if lane != first)]
        for lane in order:
            keep: deque[_Pending] = deque()
            for p in self._queues[lane]:
                if p.future.done():
                    continue
                (batch if p.key == key and len(batch) < limit else keep).append(p)
            self._queues[lane] = keep
            self.metrics.queue_depth.labels(lane).set(len(keep))
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
            crowded = head.lane == "bulk" or self._last_batch.get(head.key, 0) > 1
            wait = self.max_wait if crowded else 0.0
            deadline = head.enqueued + wait
            while self._count(head.key) < limit and (remaining := deadline - time.perf_counter()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take(head.key, limit, head.lane)
            if not batch:
                continue
            if head.lane != "bulk":
                self._served = head.lane
            started = time.perf_counter()
            try:
                items = await loop.run_in_executor(self._executor, self._run_batch, model, batch)
            except Exception as exc:
                log.exception("render batch of %d on %s failed", len(batch), model.name)
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            elapsed = (
                time.perf_counter()
                - started
                - sum(i.picture.ms / 1000.0 for i in items if isinstance(i.picture, _Encoded))
            )
            collage_s = sum(i.collage_ms for i in items) / 1000.0
            self._last_batch[head.key] = len(batch)
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * elapsed
            self.metrics.batch_size.observe(len(batch))
            self.metrics.stage_seconds.labels("infer").observe(elapsed - collage_s)
            for p, item in zip(batch, items, strict=True):
                queue_s = started - p.enqueued
                self.metrics.stage_seconds.labels("queue").observe(queue_s)
                if p.request.collage and model.has_collage:
                    self.metrics.stage_seconds.labels("collage").observe(item.collage_ms / 1000.0)
                if not p.future.done():
                    p.future.set_result(_Done(item, queue_s * 1000.0, elapsed * 1000.0, len(batch)))

    def _run_batch(self, model: LoadedModel, batch: list[_Pending]) -> list[_Item]:
        """On the inference thread: the base generator once for the items without a base picture, then the
        collage stage for each item that asks for it, → H×W×3 uint8 per request.

        A batch of one (a lone painter, a single REST render) is also encoded here: handing the picture to
        another thread to encode cost ~0.4 ms at 256² — right after inference the runtime's worker threads
        still hold the cores — and nothing else is waiting for this thread. Larger batches are encoded on
        other threads, overlapping the next batch."""
        requests = [p.request for p in batch]
        instances = [
            r.instances if r.instances is not None else instances_from_labels(r.labels, model.thing_ids)
            for r in requests
        ]
        bases = self._base_pictures(model, requests, instances)
        items = []
        for req, base, inst in zip(requests, bases, instances, strict=True):
            picture, collage_ms = base, 0.0
            placed: tuple[Placed, ...] = ()
            if req.collage and model.has_collage:
                t0 = time.perf_counter()
                composed = compose(base, req.labels, inst, model.class_generators, req.anchors)
                picture, placed = composed.picture, tuple(composed.placed)
                collage_ms = (time.perf_counter() - t0) * 1000.0
            items.append(_Item(to_uint8_rgb(picture), base if req.keep_base else None, placed, collage_ms))
        if len(items) == 1 and isinstance(items[0].picture, np.ndarray):
            t0 = time.perf_counter()
            data = encode_image(items[0].picture, requests[0].fmt, requests[0].quality)
            return [replace(items[0], picture=_Encoded(data, (time.perf_counter() - t0) * 1000.0))]
        return items

    @staticmethod
    def _base_pictures(
        model: LoadedModel, requests: list[RenderRequest], instances: list[np.ndarray]
    ) -> list[np.ndarray]:
        """Each request's base picture [3,H,W] float32: its own, else one generator call for all the others."""
        todo = [i for i, r in enumerate(requests) if r.base is None]
        out: np.ndarray | None = None
        if todo:
            h, w = requests[0].labels.shape
            label = np.stack([requests[i].labels for i in todo]).astype(np.int64)[:, None]  # [B,1,H,W]
            instance = np.stack([instances[i] for i in todo]).astype(np.int64)[:, None]  # [B,1,H,W]
            z = np.stack([requests[i].z for i in todo]).astype(np.float32, copy=False)  # [B,z_dim]
            noise = None
            if model.noise_channels:  # per request, from its seed: batching never changes a picture
                seeds = [requests[i].seed for i in todo]
                noise = np.stack([seeded_noise(s, model.noise_channels, h, w) for s in seeds])
            out = model.run_generator(label, instance, z, noise)  # [B,3,H,W] in [-1,1]
        generated = iter(out if out is not None else ())
        return [r.base if r.base is not None else next(generated) for r in requests]
