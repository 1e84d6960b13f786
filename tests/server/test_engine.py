"""Micro-batching, bounded queues, a request's own base picture, on the tiny exported model.

Tests hold or observe the inference thread by wrapping the model's `run_generator` (monkeypatch)."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.collage import Anchor
from server.config import Settings
from server.engine import Engine, Overloaded, RenderRequest
from server.errors import BadInput
from server.metrics import Metrics
from server.registry import LoadedModel, Registry


@pytest.fixture(scope="module")
def registry(tiny_weights: Path) -> Registry:
    return Registry.load(tiny_weights, replace(Settings().runtime_choice(), threads=1))


def request(ids: np.ndarray, seed: int = 0, fmt: str = "png") -> RenderRequest:
    z = np.random.default_rng(seed).standard_normal(8, dtype=np.float32)
    return RenderRequest("tiny-spade", ids, z, fmt)


async def with_engine(registry: Registry, body, **kwargs):  # noqa: ANN001, ANN201
    engine = Engine(registry, Metrics(), **kwargs)
    await engine.start()
    try:
        return await body(engine)
    finally:
        await engine.stop()


def test_concurrent_requests_are_batched_by_size(registry: Registry) -> None:
    ids32 = np.full((32, 32), 6, np.uint8)
    ids16 = np.full((16, 48), 2, np.uint8)

    async def body(engine: Engine):  # noqa: ANN202
        return await asyncio.gather(
            *[engine.render(request(ids32, i)) for i in range(5)],
            *[engine.render(request(ids16, i)) for i in range(3)],
        )

    results = asyncio.run(with_engine(registry, body, max_batch=4, max_wait_ms=50))
    sizes = [Image.open(io.BytesIO(r.data)).size for r in results]
    assert sizes == [(32, 32)] * 5 + [(48, 16)] * 3
    # 5 same-size requests with max_batch 4: one batch of 4 and one of 1; the 3 others share one batch.
    assert sorted(r.batch_size for r in results[:5]) == [1, 4, 4, 4, 4]
    assert [r.batch_size for r in results[5:]] == [3, 3, 3]
    assert all(r.media_type == "image/png" and r.infer_ms > 0 for r in results)


def test_a_lone_request_waits_for_company_only_after_a_batch_had_some(registry: Registry) -> None:
    """max_wait is paid only when batches are forming: a lone painter's frame goes at once, a request right
    after a batch of two waits the whole max_wait for company that may come, and so does every batch-job item."""
    ids = np.full((32, 32), 6, np.uint8)

    async def body(engine: Engine):  # noqa: ANN202
        lone = await engine.render(request(ids, 0))
        again = await engine.render(request(ids, 1))
        pair = await asyncio.gather(engine.render(request(ids, 2)), engine.render(request(ids, 3)))
        after_pair = await engine.render(request(ids, 4))
        lone_again = await engine.render(request(ids, 5))
        bulk = await engine.render(request(ids, 6), "bulk")
        return lone, again, pair, after_pair, lone_again, bulk

    lone, again, pair, after_pair, lone_again, bulk = asyncio.run(
        with_engine(registry, body, max_wait_ms=400)
    )
    assert lone.batch_size == again.batch_size == 1 and [r.batch_size for r in pair] == [2, 2]
    assert lone.queue_ms < 200 and again.queue_ms < 200  # far below max_wait: nobody was waited for
    assert after_pair.batch_size == 1 and after_pair.queue_ms >= 390  # waited for company that never came
    assert lone_again.queue_ms < 200  # after a batch of one, lone again
    assert bulk.batch_size == 1 and bulk.queue_ms >= 390  # a batch-job item always waits for company


def test_batches_are_bounded_by_pixels(registry: Registry) -> None:
    """Memory grows with batch × pixels: a 2048-pixel budget takes two 32² maps, eight 16² ones, one 48² alone."""
    sizes = [(32, 32)] * 6 + [(16, 16)] * 8 + [(48, 48)] * 2

    async def body(engine: Engine):  # noqa: ANN202
        maps = [np.full(size, 6, np.uint8) for size in sizes]
        return await asyncio.gather(*[engine.render(request(ids, i)) for i, ids in enumerate(maps)])

    results = asyncio.run(with_engine(registry, body, max_batch=8, max_batch_pixels=2048, max_wait_ms=50))
    assert [r.batch_size for r in results] == [2] * 6 + [8] * 8 + [1] * 2


def test_batched_and_single_renders_agree(registry: Registry, landscape) -> None:  # noqa: ANN001
    ids = landscape(32, 32)

    async def body(engine: Engine):  # noqa: ANN202
        single = await engine.render(request(ids, 3))
        batched = await asyncio.gather(*[engine.render(request(ids, s)) for s in (1, 2, 3, 4)])
        return single, batched

    single, batched = asyncio.run(with_engine(registry, body, max_batch=8, max_wait_ms=50))
    assert batched[2].batch_size == 4
    a = np.asarray(Image.open(io.BytesIO(single.data)), np.int16)
    b = np.asarray(Image.open(io.BytesIO(batched[2].data)), np.int16)
    assert np.abs(a - b).max() <= 1  # float noise across batch sizes stays below one grey level
    c = np.asarray(Image.open(io.BytesIO(batched[0].data)), np.int16)
    assert np.abs(a - c).mean() > 1.0  # another seed is another picture


def wrap_generator(monkeypatch: pytest.MonkeyPatch, model: LoadedModel, before) -> None:  # noqa: ANN001
    """Call `before(label, instance, z)` on the inference thread ahead of each generator run of `model`."""
    run = model.run_generator

    def wrapped(label: np.ndarray, instance: np.ndarray, z: np.ndarray, noise=None) -> np.ndarray:  # noqa: ANN001
        before(label, instance, z)
        return run(label, instance, z, noise)

    monkeypatch.setattr(model, "run_generator", wrapped)


def test_full_queue_raises_overloaded_and_recovers(
    registry: Registry, landscape, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    ids = landscape(32, 32)
    gate = asyncio.Event
    stalling = [True]

    async def body(engine: Engine):  # noqa: ANN202
        release = gate()
        loop = asyncio.get_running_loop()

        def stall(*_: np.ndarray) -> None:
            if stalling[0]:  # hold the inference thread
                asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)

        wrap_generator(monkeypatch, registry.get("tiny-spade"), stall)
        first = asyncio.create_task(engine.render(request(ids)))  # taken by the batcher, then stalls
        await asyncio.sleep(0.2)
        queued = [
            asyncio.create_task(engine.render(request(ids, i))) for i in range(2)
        ]  # fills the queue of 2
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded) as info:
            await engine.render(request(ids, 9))
        assert info.value.retry_after >= 1
        release.set()
        done = await asyncio.gather(first, *queued)
        stalling[0] = False
        again = await engine.render(request(ids))
        return done, again

    done, again = asyncio.run(with_engine(registry, body, max_batch=1, max_wait_ms=0, queue_limit=2))
    assert len(done) == 3 and again.data == done[0].data


def test_a_request_with_its_own_base_picture_skips_the_generator(
    registry: Registry, landscape, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """keep_base returns the generator's picture; a request bringing it back renders the same bytes without
    running the generator (how a paint re-roll re-composes a frame)."""
    ids = landscape(32, 32)
    runs: list[int] = []

    async def body(engine: Engine):  # noqa: ANN202
        first = await engine.render(replace(request(ids, 2), keep_base=True))
        wrap_generator(monkeypatch, registry.get("tiny-spade"), lambda label, *_: runs.append(len(label)))
        assert first.base is not None
        again = await engine.render(replace(request(ids, 9), base=first.base))  # z is not used
        plain = await engine.render(request(ids, 2))
        mixed = await asyncio.gather(
            engine.render(replace(request(ids, 9), base=first.base)), engine.render(request(ids, 2))
        )
        return first, again, plain, mixed

    first, again, plain, mixed = asyncio.run(with_engine(registry, body, max_wait_ms=50))
    assert first.base.shape == (3, 32, 32) and first.base.dtype == np.float32  # type: ignore[union-attr]
    assert again.data == first.data and plain.base is None and plain.placed == () and plain.collage_ms == 0.0
    assert runs == [1, 1]  # only the requests without a base ran the generator, one of them in a batch of 2
    assert mixed[0].batch_size == 2 and mixed[0].data == mixed[1].data == first.data


def test_interactive_requests_overtake_bulk(
    registry: Registry, landscape, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    ids = landscape(32, 32)
    tags: dict[bytes, str] = {}  # z bytes → tag: each request has its own z
    inferred: list[str] = []  # the order the inference thread took the requests in

    async def body(engine: Engine):  # noqa: ANN202
        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        def record(label: np.ndarray, instance: np.ndarray, z: np.ndarray) -> None:
            inferred.append(tags[z[0].tobytes()])
            if len(inferred) == 1:  # hold the inference thread on the first item until paint is queued
                asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)

        async def submit(tag: str, priority: str, seed: int) -> None:
            req = request(ids, seed)
            tags[req.z.tobytes()] = tag
            await engine.render(req, priority)  # type: ignore[arg-type]

        wrap_generator(monkeypatch, registry.get("tiny-spade"), record)
        bulk = [asyncio.create_task(submit(f"bulk{i}", "bulk", i)) for i in range(4)]
        async with asyncio.timeout(10):  # a broken engine fails here instead of hanging the suite
            while not inferred:  # one bulk item is running (held), the other three wait in the queue
                await asyncio.sleep(0.01)
        inter = asyncio.create_task(submit("paint", "interactive", 9))
        await asyncio.sleep(0.05)  # paint is queued behind them
        release.set()
        await asyncio.gather(*bulk, inter)

    asyncio.run(with_engine(registry, body, max_batch=1, max_wait_ms=0))
    # Completion order would not do: encoding runs outside the inference thread, so a tiny 32² frame can
    # finish in any order; the inference order is the scheduling decision under test.
    assert inferred[0].startswith("bulk") and inferred[1] == "paint"
    assert sorted(inferred) == ["bulk0", "bulk1", "bulk2", "bulk3", "paint"]


def test_invalid_requests_are_refused(registry: Registry) -> None:
    async def body(engine: Engine) -> list[str]:
        codes = []
        bad = [
            RenderRequest("nope", np.zeros((32, 32), np.uint8), np.zeros(8, np.float32)),
            RenderRequest("tiny-spade", np.zeros((30, 32), np.uint8), np.zeros(8, np.float32)),
            RenderRequest("tiny-spade", np.full((32, 32), 14, np.uint8), np.zeros(8, np.float32)),
            RenderRequest("tiny-spade", np.zeros((32, 32), np.uint8), np.zeros(3, np.float32)),
            RenderRequest("tiny-spade", np.zeros((32, 32), np.uint8), np.zeros(8, np.float32), quality=0),
            RenderRequest(
                "tiny-spade",
                np.zeros((32, 32), np.uint8),
                np.zeros(8, np.float32),
                base=np.zeros((3, 32, 16)),
            ),
            RenderRequest(
                "tiny-spade",
                np.zeros((32, 32), np.uint8),
                np.zeros(8, np.float32),
                anchors=(Anchor(32, 0, 1),),
            ),
        ]
        for req in bad:
            with pytest.raises(BadInput) as info:
                await engine.render(req)
            codes.append(info.value.code)
        return codes

    codes = asyncio.run(with_engine(registry, body))
    assert codes == [
        "unknown_model", "bad_size", "bad_label_id", "bad_style", "bad_quality", "bad_size", "bad_instance_seeds",
    ]  # fmt: skip


def hold_and_record(monkeypatch: pytest.MonkeyPatch, model: LoadedModel, tags: dict[bytes, str]):  # noqa: ANN201
    """Record each generator call's requests (by their z) as one batch and hold the inference thread on the first
    call until the returned event is set; returns (batches, started, release)."""
    batches: list[list[str]] = []
    loop = asyncio.get_running_loop()
    release = asyncio.Event()

    def record(label: np.ndarray, instance: np.ndarray, z: np.ndarray) -> None:
        batches.append([tags[row.tobytes()] for row in z])
        if len(batches) == 1:
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)

    wrap_generator(monkeypatch, model, record)
    return batches, release


def test_a_rest_render_goes_ahead_of_a_paint_backlog_and_a_full_paint_lane_never_refuses_it(
    registry: Registry, landscape, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """40 paint frames wait (one per socket, as latest-wins leaves them) behind one the inference thread holds,
    the paint lane full at 40; a 41st frame is refused, a REST render is not, and it runs in the next batch, before
    every waiting frame but the 3 of its size that fill its batch of 4. Every frame is still rendered."""
    ids = landscape(32, 32)
    tags: dict[bytes, str] = {}

    async def body(engine: Engine):  # noqa: ANN202
        batches, release = hold_and_record(monkeypatch, registry.get("tiny-spade"), tags)

        def submit(tag: str, seed: int, source: str) -> asyncio.Task:
            req = replace(request(ids, seed), source=source)
            tags[req.z.tobytes()] = tag
            return asyncio.create_task(engine.render(req))

        first = submit("paint0", 0, "paint")
        async with asyncio.timeout(10):
            while not batches:  # the first frame holds the inference thread
                await asyncio.sleep(0.01)
        paint = [submit(f"paint{i}", i, "paint") for i in range(1, 41)]
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):  # the paint lane is full ...
            await engine.render(replace(request(ids, 99), source="paint"))
        rest = submit("rest", 100, "rest")  # ... and the REST lane is not
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(first, rest, *paint)
        return batches

    batches = asyncio.run(with_engine(registry, body, max_batch=4, max_wait_ms=0, queue_limit=40))
    assert batches[0] == ["paint0"]
    assert batches[1] == ["rest", "paint1", "paint2", "paint3"]  # its lane's turn, filled up with frames
    served = [tag for batch in batches for tag in batch]
    assert sorted(served) == sorted(["rest"] + [f"paint{i}" for i in range(41)])  # each exactly once


def test_painters_keep_every_other_batch_under_a_stream_of_rest_renders(
    registry: Registry, landscape, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """30 REST renders queued before 30 paint frames: the lanes alternate batch by batch, so the painters are
    served throughout rather than after every REST render, and all 60 requests are served once."""
    ids = landscape(32, 32)
    tags: dict[bytes, str] = {}

    async def body(engine: Engine):  # noqa: ANN202
        batches, release = hold_and_record(monkeypatch, registry.get("tiny-spade"), tags)

        def submit(tag: str, seed: int, source: str) -> asyncio.Task:
            req = replace(request(ids, seed), source=source)
            tags[req.z.tobytes()] = tag
            return asyncio.create_task(engine.render(req))

        first = submit("held", 0, "rest")
        async with asyncio.timeout(10):
            while not batches:
                await asyncio.sleep(0.01)
        rest = [submit(f"rest{i}", 100 + i, "rest") for i in range(30)]
        paint = [submit(f"paint{i}", 200 + i, "paint") for i in range(30)]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(first, *rest, *paint)
        return batches

    batches = asyncio.run(with_engine(registry, body, max_batch=1, max_wait_ms=0))
    served = [tag for batch in batches[1:] for tag in batch]
    assert sorted(served) == sorted([f"rest{i}" for i in range(30)] + [f"paint{i}" for i in range(30)])
    assert [tag[:4] for tag in served] == ["pain", "rest"] * 30  # round-robin, painters' turn first
    assert [t for t in served if t.startswith("paint")] == [f"paint{i}" for i in range(30)]  # arrival order
