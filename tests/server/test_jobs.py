"""JobRunner failure paths: refused and crashing items, retired models and broken jobs never stall the queue.

A scripted engine stands in for the real one, so each item's outcome is chosen by its label value and no model,
render thread or torch export is needed.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from server.engine import RenderRequest, RenderResult
from server.errors import BadInput
from server.job_runner import JobRunner
from server.jobs import DEBRIS_AGE_S, UNFINISHED, JobItem, JobStore
from server.metrics import Metrics

MODEL = "tiny"
# An item's label value: rendered, refused as bad input, or crashing the renderer.
OK, REFUSED, CRASH = 0, 1, 2
REFUSAL = "label id 1 is not allowed here"
SECRET = "secret detail from deep inside the renderer"


class ScriptedEngine:
    """Has the two things JobRunner uses: `registry.models` and `render`."""

    def __init__(self) -> None:
        self.registry = SimpleNamespace(models={MODEL: object()})

    async def render(self, request: RenderRequest, priority: str = "interactive") -> RenderResult:
        value = int(request.labels[0, 0])
        if value == REFUSED:
            raise BadInput("bad_label_id", REFUSAL)
        if value == CRASH:
            raise RuntimeError(SECRET)
        return RenderResult(b"image", "image/png", queue_ms=0.0, infer_ms=2.5, encode_ms=0.0, batch_size=1)


@pytest.fixture
def store(tmp_path: Path, database: sa.Engine) -> Iterator[JobStore]:
    jobs = JobStore(tmp_path / "jobs", database)
    yield jobs
    jobs.close()


def add_job(store: JobStore, values: list[int], model: str = MODEL) -> str:
    """A job with one 8×8 map filled with each of `values`."""
    items = [
        JobItem(np.full((8, 8), value, np.uint8), np.zeros(4, np.float32), idx, f"seed {idx}")
        for idx, value in enumerate(values)
    ]
    return store.create(model, "png", 90, False, items)


def run_jobs(
    store: JobStore, metrics: Metrics, job_ids: list[str], timeout: float = 10
) -> list[dict[str, Any]]:
    """Run a JobRunner until every job has left queued/running; their final statuses, in order.

    A job left unfinished (the runner died or skipped it) times out here instead of hanging the test.
    """

    async def main() -> list[dict[str, Any]]:
        runner = JobRunner(store, ScriptedEngine(), metrics, concurrency=2)  # type: ignore[arg-type]
        await runner.start()
        try:
            deadline = time.monotonic() + timeout
            while True:
                statuses = [store.status(job_id) for job_id in job_ids]
                if all(s["status"] not in UNFINISHED for s in statuses):
                    return statuses
                if time.monotonic() > deadline:
                    raise AssertionError(f"jobs stuck: {statuses}")
                await asyncio.sleep(0.02)
        finally:
            await runner.stop()

    return asyncio.run(main())


def items_counted(metrics: Metrics, outcome: str) -> float | None:
    return metrics.registry.get_sample_value("collage_job_items_total", {"outcome": outcome})


def test_failed_items_keep_a_reason_and_the_job_finishes(store: JobStore) -> None:
    """A refused item keeps its reason; a crashed one only a generic message (the exception stays in the log)."""
    metrics = Metrics()
    job_id = add_job(store, [OK, REFUSED, CRASH, OK])
    [status] = run_jobs(store, metrics, [job_id])
    assert (status["status"], status["done"], status["failed"], status["error"]) == ("done", 2, 2, None)
    assert (items_counted(metrics, "done"), items_counted(metrics, "failed")) == (2, 2)

    with zipfile.ZipFile(store.results_zip(job_id)) as zf:
        assert sorted(zf.namelist()) == ["00000.png", "00003.png", "results.json"]
        text = zf.read("results.json").decode()
    index = json.loads(text)
    assert (index["done"], index["failed"]) == (2, 2)
    assert [(it["status"], it.get("error")) for it in index["items"]] == [
        ("done", None),
        ("failed", REFUSAL),
        ("failed", "internal error while rendering"),
        ("done", None),
    ]
    assert SECRET not in text


def test_a_job_whose_every_item_fails_is_failed_and_the_next_job_runs(store: JobStore) -> None:
    failing = add_job(store, [REFUSED, CRASH])
    following = add_job(store, [OK])
    first, second = run_jobs(store, Metrics(), [failing, following])
    assert (first["status"], first["done"], first["failed"]) == ("failed", 0, 2)
    assert (second["status"], second["done"], second["failed"]) == ("done", 1, 0)


def test_a_job_for_a_model_no_longer_loaded_fails_and_the_next_job_runs(store: JobStore) -> None:
    """Jobs outlive restarts, so their model may have been removed from the weights folder meanwhile."""
    retired = add_job(store, [OK, OK], model="retired")
    following = add_job(store, [OK])
    first, second = run_jobs(store, Metrics(), [retired, following])
    assert (first["status"], first["error"], first["done"], first["failed"]) == (
        "failed",
        "model retired is not loaded",
        0,
        0,
    )
    assert (second["status"], second["done"]) == ("done", 1)


def test_an_input_lost_from_disk_fails_only_its_item(store: JobStore) -> None:
    job_id = add_job(store, [OK, OK])
    (store.job_dir(job_id) / "inputs" / "00001.png").unlink()
    [status] = run_jobs(store, Metrics(), [job_id])
    assert (status["status"], status["done"], status["failed"]) == ("done", 1, 1)


def test_a_job_that_breaks_outside_its_items_fails_and_the_next_job_runs(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's catch-all keeps the queue going, and what broke (paths, errno) stays in the server log."""
    broken = add_job(store, [OK, OK])
    following = add_job(store, [OK])
    set_status = store.set_status

    def disk_full(job_id: str, status: str, error: str | None = None) -> bool:
        if job_id == broken and status == "running":
            raise OSError(SECRET)
        return set_status(job_id, status, error)

    monkeypatch.setattr(store, "set_status", disk_full)
    first, second = run_jobs(store, Metrics(), [broken, following])
    assert (first["status"], first["error"]) == ("failed", "internal error; see the server log")
    assert (second["status"], second["done"]) == ("done", 1)


def test_a_cancel_and_the_runners_last_writes_agree(store: JobStore) -> None:
    """Whichever comes first wins for good: the runner's writes after a cancel change nothing the answer said,
    and a cancel after the final write is refused with the job left done."""
    job_id = add_job(store, [OK, OK, OK])
    assert store.claim(job_id) and store.set_status(job_id, "running")
    assert store.complete(job_id, 0, "png", b"image", 1.0)
    answer = store.cancel(job_id)
    assert not store.complete(job_id, 1, "png", b"image", 1.0)  # a render in flight when the cancel came
    assert not store.fail_item(job_id, 2, REFUSAL)
    assert not store.set_status(job_id, "done")
    assert store.status(job_id) == answer and (answer["status"], answer["done"]) == ("cancelled", 1)
    assert not store.result_path(job_id, 1, "png").exists()
    assert store.cancel(job_id) == answer  # idempotent

    finished = add_job(store, [OK])
    assert store.claim(finished) and store.set_status(finished, "done")
    with pytest.raises(BadInput) as info:
        store.cancel(finished)
    assert info.value.code == "job_finished" and store.status(finished)["status"] == "done"


def test_recover_drops_a_results_zip_cut_short(store: JobStore) -> None:
    """A crash while zipping leaves `results.<random>.tmp`; the next start removes it once it is older than any
    zip in progress on another replica could be, and the zip is rebuilt."""
    job_id = add_job(store, [OK])
    assert run_jobs(store, Metrics(), [job_id])[0]["status"] == "done"
    partial, fresh = (store.job_dir(job_id) / f"results.{name}.tmp" for name in ("0123abcd", "4567cdef"))
    partial.write_bytes(b"PK half a zip")
    fresh.write_bytes(b"PK another replica zipping")
    long_ago = time.time() - DEBRIS_AGE_S - 60
    os.utime(partial, (long_ago, long_ago))
    store.recover()
    assert not partial.exists() and fresh.exists()
    fresh.unlink()
    assert zipfile.ZipFile(store.results_zip(job_id)).namelist() == ["00000.png", "results.json"]


class GatedEngine(ScriptedEngine):
    """Renders only once `gate` opens, counting the renders begun."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.begun = 0

    async def render(self, request: RenderRequest, priority: str = "interactive") -> RenderResult:
        self.begun += 1
        await self.gate.wait()
        return await super().render(request, priority)


def test_a_cancelled_jobs_waiting_items_stay_skipped_whatever_is_cancelled_next(store: JobStore) -> None:
    running, queued = add_job(store, [OK] * 6), add_job(store, [OK])

    async def main() -> int:
        engine = GatedEngine()
        runner = JobRunner(store, engine, Metrics(), concurrency=2)  # type: ignore[arg-type]
        await runner.start()
        try:
            while engine.begun < 2:  # two items of `running` in the engine, four waiting for a slot
                await asyncio.sleep(0.01)
            runner.cancel(running)
            runner.cancel(queued)
            engine.gate.set()
            await asyncio.sleep(0.3)
            return engine.begun
        finally:
            await runner.stop()

    assert asyncio.run(main()) == 2  # none of the four waiting items was sent to the engine
    assert [store.status(j)["status"] for j in (running, queued)] == ["cancelled", "cancelled"]


@pytest.mark.parametrize("job_id", ["../x", "../" + "0" * 29, "0" * 32 + "\n"])
def test_job_dir_refuses_anything_but_a_job_id(store: JobStore, job_id: str) -> None:
    """Job ids come from URLs and become folder names: a traversal must never become a path."""
    with pytest.raises(BadInput) as info:
        store.job_dir(job_id)
    assert info.value.code == "unknown_job"
