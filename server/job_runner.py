"""The batch job runner of one replica: claims jobs from the shared store and renders their items, in this
replica's engine or, with `COLLAGE_RAY_ADDRESS`, on a Ray cluster (server/ray_jobs.py)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.runtime import RuntimeChoice
from server.engine import Engine, RenderRequest
from server.errors import BadInput
from server.jobs import JobStore
from server.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayTarget:
    """Where and how batch items render on Ray."""

    address: str  # HOST:PORT of the cluster's head
    choice: RuntimeChoice  # the actors' runtime; threads 0 = every core of the cluster's smallest node
    max_pixels: int  # the server's limit, checked again where the actors decode the maps


class JobRunner:
    """Runs jobs one at a time, oldest first, keeping `concurrency` items in the engine's bulk queue.

    Any replica's runner may run any job: it claims one (`JobStore.claim_next`), renews the lease every third of
    `lease_seconds` while rendering, and stops sending its items to the engine as soon as the job is no longer
    its own (cancelled anywhere, or the lease lost). With nothing to claim it sleeps until this replica queues a
    job (`wake`) or half a lease has passed: jobs queued on other replicas and leases running out are found by
    that poll.

    On Ray (`ray` given) the same claim, lease and store calls hold; only the rendering moves: the job's pending
    items go to the cluster's actor pool as one pipeline, each result is recorded as it comes back, and a stopped
    job closes the pipeline (its actors are killed) after the result in hand. Items never recorded stay pending,
    so a restart, or another replica, renders exactly those.
    """

    def __init__(
        self,
        store: JobStore,
        engine: Engine,
        metrics: Metrics,
        concurrency: int,
        ray: RayTarget | None = None,
    ) -> None:
        self.store = store
        self.ray = ray
        self.engine = engine
        self.metrics = metrics
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        # Jobs stopped here (cancel() on this replica, a write refused by the gate, a lease not renewed): their
        # items not yet in the engine are skipped. Kept by id, as cancel() runs on a worker thread and may land
        # while `_run` moves on to the next job; emptied before each job starts (a job cancelled earlier is never
        # claimed again, and one lost to another replica is claimed back only once that replica lost it).
        self._stopped: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        adopted = await asyncio.to_thread(self.store.recover)
        if adopted:
            log.info("recovered %d finished batch results written just before the last stop", adopted)
        self._task = asyncio.create_task(self._run(), name="collage-jobs")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> dict[str, Any]:
        status = self.store.cancel(job_id)
        self._stopped.add(job_id)
        return status

    async def _run(self) -> None:
        poll = self.store.lease_seconds / 2
        while True:
            self._wake.clear()
            try:
                job_id = await asyncio.to_thread(self.store.claim_next)
            except Exception:  # the database away for a moment: try again at the next poll
                log.exception("could not look for batch jobs")
                job_id = None
            if job_id is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), poll)
                continue
            self._stopped.clear()
            try:
                await self._run_job(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep serving other jobs whatever happens to this one
                log.exception("batch job %s failed", job_id)
                with contextlib.suppress(Exception):  # logged above; the lease then runs out instead
                    await asyncio.to_thread(
                        self.store.set_status, job_id, "failed", "internal error; see the server log"
                    )

    async def _heartbeat(self, job_id: str) -> None:
        """Renew the lease until the job ends; once a renewal fails, launch no more of its items."""
        while True:
            await asyncio.sleep(self.store.lease_seconds / 3)
            try:
                kept = await asyncio.to_thread(self.store.renew, job_id)
            except Exception:  # unsure whether the lease still holds: another replica may take over soon
                log.exception("could not renew the lease of batch job %s", job_id)
                kept = False
            if not kept:
                log.info("batch job %s is no longer this replica's; its remaining items are left", job_id)
                self._stopped.add(job_id)
                return

    async def _run_job(self, job_id: str) -> None:
        model, fmt, quality, collage = await asyncio.to_thread(self.store.job, job_id)
        if model not in self.engine.registry.models:
            await asyncio.to_thread(self.store.set_status, job_id, "failed", f"model {model} is not loaded")
            return
        if not await asyncio.to_thread(self.store.set_status, job_id, "running"):
            return  # cancelled or taken over since it was claimed
        heartbeat = asyncio.create_task(self._heartbeat(job_id), name=f"collage-lease-{job_id}")
        try:
            pending = await asyncio.to_thread(self.store.pending_items, job_id)
            if self.ray is not None:
                await self._render_on_ray(job_id, pending, (model, fmt, quality, collage), self.ray)
                pending = []
            slots = asyncio.Semaphore(self.concurrency)

            async def render_one(idx: int, z: np.ndarray, seed: int) -> None:
                async with slots:
                    if job_id in self._stopped:
                        return
                    if await self._render_item(job_id, idx, z, seed, (model, fmt, quality, collage)):
                        return
                    self._stopped.add(job_id)  # the gate refused: cancelled or taken over

            await asyncio.gather(*(render_one(idx, z, seed) for idx, z, seed in pending))
        finally:
            heartbeat.cancel()
        status = await asyncio.to_thread(self.store.status, job_id)
        if job_id in self._stopped or status["done"] + status["failed"] < status["total"]:
            return  # not this replica's to finish: cancelled, taken over, or claimed again at the next poll
        final = "failed" if status["failed"] == status["total"] else "done"
        await asyncio.to_thread(self.store.set_status, job_id, final, None)  # a no-op if it was cancelled

    async def _render_item(
        self, job_id: str, idx: int, z: np.ndarray, seed: int, job: tuple[str, str, int, bool]
    ) -> bool:
        """Render and record one item; False when the store refused the record (the job is not ours now)."""
        model, fmt, quality, collage = job
        try:  # a lost input file fails its item like a failed render
            labels = await asyncio.to_thread(self.store.load_input, job_id, idx)
            request = RenderRequest(model, labels, z, fmt, quality, collage, source="job", seed=seed)
            result = await self.engine.render(request, priority="bulk")
        except Exception as exc:  # one bad item must not sink the job
            if not isinstance(exc, BadInput):
                log.exception("batch job %s item %d failed", job_id, idx)
            message = exc.message if isinstance(exc, BadInput) else "internal error while rendering"
            failed = await asyncio.to_thread(self.store.fail_item, job_id, idx, message)
            if failed:
                self.metrics.job_items.labels("failed").inc()
            return failed
        done = await asyncio.to_thread(self.store.complete, job_id, idx, fmt, result.data, result.infer_ms)
        if done:
            self.metrics.job_items.labels("done").inc()
        return done

    async def _render_on_ray(
        self,
        job_id: str,
        pending: list[tuple[int, np.ndarray, int]],
        job: tuple[str, str, int, bool],
        target: RayTarget,
    ) -> None:
        """Render `pending` (index, z, noise seed) on Ray, recording each outcome as it arrives."""
        from server.ray_jobs import render_job_items  # Ray only where it is used: the scale extra

        model, fmt, quality, collage = job
        unreadable: list[tuple[int, str]] = []

        def items() -> Iterator[tuple[int, np.ndarray, np.ndarray, int]]:
            for idx, z, seed in pending:
                try:  # a lost input file fails its item, as in the engine's loop
                    yield idx, self.store.load_input(job_id, idx), z, seed
                except Exception:
                    log.exception("batch job %s item %d: input unreadable", job_id, idx)
                    unreadable.append((idx, "internal error while rendering"))

        outcomes = render_job_items(
            items(),
            self.engine.registry.models[model].directory,
            fmt,
            quality,
            collage,
            target.choice,
            address=target.address,
            max_pixels=target.max_pixels,
        )
        try:
            while job_id not in self._stopped:
                try:
                    outcome = await asyncio.to_thread(next, outcomes, None)
                except Exception:  # the pipeline itself failed: what is not recorded stays pending
                    log.exception(
                        "batch job %s: the Ray pipeline failed; its items left stay pending", job_id
                    )
                    self._stopped.add(job_id)
                    await asyncio.sleep(self.store.lease_seconds / 2)  # before this replica claims it again
                    return
                if outcome is None:
                    break
                if len(outcome) == 3:
                    idx, data, ms = outcome
                    recorded = await asyncio.to_thread(self.store.complete, job_id, idx, fmt, data, ms)
                    kind = "done"
                else:
                    idx, message = outcome
                    recorded = await asyncio.to_thread(self.store.fail_item, job_id, idx, message)
                    kind = "failed"
                if not recorded:
                    self._stopped.add(job_id)  # the gate refused: cancelled or taken over
                    break
                self.metrics.job_items.labels(kind).inc()
            for idx, message in unreadable:
                if job_id in self._stopped or not await asyncio.to_thread(
                    self.store.fail_item, job_id, idx, message
                ):
                    break
                self.metrics.job_items.labels("failed").inc()
        finally:
            # Stops the pipeline and its actors; when this task was cancelled (a shutdown) while a `next` still runs
            # in its thread, the close waits for that call in a thread of its own.
            threading.Thread(target=_close_when_idle, args=(outcomes,), daemon=True).start()


def _close_when_idle(outcomes: Generator[Any]) -> None:
    while inspect.getgeneratorstate(outcomes) == inspect.GEN_RUNNING:
        time.sleep(0.05)
    outcomes.close()
