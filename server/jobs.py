"""Batch render jobs that survive restarts: SQLite for state, plain files for inputs and results.

Layout under `<data_dir>/jobs/`: `jobs.sqlite` and one folder per job with `inputs/<index>.png` (label ids)
and `results/<index>.<ext>`. Every input and the resolved style latent of every item are stored when the job
is created, so a resumed job renders exactly what was asked.

Job states: queued → running → done | failed, or → cancelled from either unfinished state. Each transition is one
UPDATE conditional on the job being unfinished, so when a cancel races the runner's final write exactly one wins and
the other sees it. Items are marked done or failed only while their job is unfinished, so a finished or cancelled
job's counts (and its results.zip) never change afterwards.

Crash safety (SIGKILL at any instant): a result is written to a temporary name and renamed into place (atomic),
then its item is marked done in one transaction. On start, `recover()` adopts any renamed result whose item is
not yet marked done, so an item whose file exists is never rendered again and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from server.codec import EXTENSIONS, encode_label_png
from server.engine import Engine, RenderRequest
from server.errors import BadInput
from server.metrics import Metrics

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"[0-9a-f]{32}")
UNFINISHED = ("queued", "running")
# SQL condition on an items row: its job is still unfinished (two parameters: UNFINISHED).
_JOB_UNFINISHED = "(SELECT status FROM jobs WHERE id=items.job_id) IN (?,?)"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, model TEXT NOT NULL, fmt TEXT NOT NULL, quality INTEGER NOT NULL,
    collage INTEGER NOT NULL, status TEXT NOT NULL, total INTEGER NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, error TEXT
);
CREATE TABLE IF NOT EXISTS items (
    job_id TEXT NOT NULL, idx INTEGER NOT NULL, seed INTEGER, style TEXT NOT NULL, z BLOB NOT NULL,
    status TEXT NOT NULL, error TEXT, render_ms REAL, PRIMARY KEY (job_id, idx)
);
"""


@dataclass(frozen=True)
class JobItem:
    """One validated label map of a new job, with its resolved style."""

    labels: np.ndarray  # H×W uint8
    z: np.ndarray  # [z_dim] float32
    seed: int | None  # the seed used, when the style was a seed
    style: str  # human description: "seed 7", "preset winter", "style 3fa…"


class JobStore:
    """Jobs in SQLite plus files. Thread-safe: the runner calls it from worker threads."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(directory / "jobs.sqlite", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes, which is what we face
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def job_dir(self, job_id: str) -> Path:
        if not _JOB_ID.fullmatch(job_id):
            raise BadInput("unknown_job", f"{job_id!r} is not a job id")
        return self.directory / job_id

    # ------------------------------------------------------------------ create / read

    def create(self, model: str, fmt: str, quality: int, collage: bool, items: list[JobItem]) -> str:
        """Write every input, then insert the job and its items in one transaction (the commit point)."""
        job_id = uuid.uuid4().hex
        inputs = self.job_dir(job_id) / "inputs"
        inputs.mkdir(parents=True)
        (self.job_dir(job_id) / "results").mkdir()
        for idx, item in enumerate(items):
            (inputs / f"{idx:05d}.png").write_bytes(encode_label_png(item.labels))
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,NULL)",
                (job_id, model, fmt, quality, int(collage), "queued", len(items), now, now),
            )
            db.executemany(
                "INSERT INTO items VALUES (?,?,?,?,?,'pending',NULL,NULL)",
                [
                    (job_id, i, it.seed, it.style, it.z.astype(np.float32).tobytes())
                    for i, it in enumerate(items)
                ],
            )
        return job_id

    def status(self, job_id: str) -> dict[str, Any]:
        self.job_dir(job_id)
        rows = self._query(
            "SELECT model, fmt, status, total, created, updated, error FROM jobs WHERE id=?", (job_id,)
        )
        if not rows:
            raise BadInput("unknown_job", f"no batch job {job_id}")
        model, fmt, status, total, created, updated, error = rows[0]
        counts = dict(
            self._query("SELECT status, COUNT(*) FROM items WHERE job_id=? GROUP BY status", (job_id,))
        )
        return {
            "job_id": job_id,
            "status": status,
            "model": model,
            "format": fmt,
            "total": total,
            "done": counts.get("done", 0),
            "failed": counts.get("failed", 0),
            "created": created,
            "updated": updated,
            "error": error,
        }

    def job(self, job_id: str) -> tuple[str, str, int, bool]:
        """(model, format, quality, collage) of a job."""
        model, fmt, quality, collage = self._query(
            "SELECT model, fmt, quality, collage FROM jobs WHERE id=?", (job_id,)
        )[0]
        return model, fmt, quality, bool(collage)

    def unfinished(self) -> list[str]:
        return [
            r[0]
            for r in self._query("SELECT id FROM jobs WHERE status IN (?,?) ORDER BY created", UNFINISHED)
        ]

    def pending_items(self, job_id: str) -> list[tuple[int, np.ndarray, int]]:
        """(index, z, noise seed) of the items still to render; the noise seed is 0 for a preset or style."""
        rows = self._query(
            "SELECT idx, z, seed FROM items WHERE job_id=? AND status='pending' ORDER BY idx", (job_id,)
        )
        return [(idx, np.frombuffer(z, dtype=np.float32), seed or 0) for idx, z, seed in rows]

    def load_input(self, job_id: str, idx: int) -> np.ndarray:
        with Image.open(self.job_dir(job_id) / "inputs" / f"{idx:05d}.png") as image:
            return np.asarray(image, dtype=np.uint8)

    # ------------------------------------------------------------------ progress

    def set_status(self, job_id: str, status: str, error: str | None = None) -> bool:
        """Move an unfinished job to `status`; False (and no change) when it has already finished."""
        with self._tx() as db:
            changed = db.execute(
                "UPDATE jobs SET status=?, error=?, updated=? WHERE id=? AND status IN (?,?)",
                (status, error, time.time(), job_id, *UNFINISHED),
            ).rowcount
        return changed == 1

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel an unfinished job (idempotent on a cancelled one); finished jobs are refused."""
        if not self.set_status(job_id, "cancelled"):
            status = self.status(job_id)["status"]  # final now: finished jobs never change again
            if status != "cancelled":
                raise BadInput("job_finished", f"batch job {job_id} already finished ({status})")
        return self.status(job_id)

    def result_path(self, job_id: str, idx: int, fmt: str) -> Path:
        return self.job_dir(job_id) / "results" / f"{idx:05d}.{EXTENSIONS[fmt]}"

    def complete(self, job_id: str, idx: int, fmt: str, data: bytes, render_ms: float) -> bool:
        """Write the result atomically, then mark the item done: never half a file, never a lost result.

        False when the job was cancelled meanwhile: the result is dropped, so the cancel answer's counts stay final.
        """
        path = self.result_path(job_id, idx, fmt)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        with self._tx() as db:
            marked = db.execute(
                f"UPDATE items SET status='done', render_ms=? WHERE job_id=? AND idx=? AND {_JOB_UNFINISHED}",
                (render_ms, job_id, idx, *UNFINISHED),
            ).rowcount
            if marked:
                db.execute("UPDATE jobs SET updated=? WHERE id=?", (time.time(), job_id))
        if not marked:
            path.unlink()
        return bool(marked)

    def fail_item(self, job_id: str, idx: int, error: str) -> bool:
        """Mark the item failed; False when the job was cancelled meanwhile (the item stays pending)."""
        with self._tx() as db:
            return bool(
                db.execute(
                    f"UPDATE items SET status='failed', error=? WHERE job_id=? AND idx=? AND {_JOB_UNFINISHED}",
                    (error, job_id, idx, *UNFINISHED),
                ).rowcount
            )

    def recover(self) -> int:
        """After a crash: adopt results renamed into place but not marked done; drop temporaries and orphans."""
        adopted = 0
        known = {r[0] for r in self._query("SELECT id FROM jobs")}
        for folder in self.directory.iterdir():
            if folder.is_dir() and _JOB_ID.fullmatch(folder.name) and folder.name not in known:
                shutil.rmtree(folder, ignore_errors=True)  # created, then crashed before the commit
            elif folder.is_dir():
                for partial in folder.glob("results.*.tmp"):  # a results zip cut short: rebuilt on request
                    partial.unlink()
        for job_id in self.unfinished():
            _, fmt, _, _ = self.job(job_id)
            for tmp in (self.job_dir(job_id) / "results").glob("*.tmp"):
                tmp.unlink()
            for idx, _, _ in self.pending_items(job_id):
                if self.result_path(job_id, idx, fmt).exists():
                    with self._tx() as db:
                        db.execute("UPDATE items SET status='done' WHERE job_id=? AND idx=?", (job_id, idx))
                    adopted += 1
        return adopted

    def results_zip(self, job_id: str) -> Path:
        """The finished job's results plus results.json, zipped once and kept (a finished job never changes)."""
        status = self.status(job_id)
        if status["status"] in UNFINISHED:
            raise BadInput(
                "job_not_finished",
                f"batch job {job_id} is {status['status']}: {status['done']}/{status['total']} done",
            )
        path = self.job_dir(job_id) / "results.zip"
        if path.exists():
            return path
        fmt = status["format"]
        rows = self._query(
            "SELECT idx, seed, style, status, error, render_ms FROM items WHERE job_id=? ORDER BY idx",
            (job_id,),
        )
        index = []
        tmp = path.with_name(f"results.{uuid.uuid4().hex}.tmp")  # two first downloads may zip at once
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:  # images are compressed already
            for idx, seed, style, item_status, error, render_ms in rows:
                entry = {"index": idx, "seed": seed, "style": style, "status": item_status}
                if item_status == "done":
                    result = self.result_path(job_id, idx, fmt)
                    zf.write(result, result.name)
                    entry |= {"file": result.name, "render_ms": render_ms}
                elif error:
                    entry["error"] = error
                index.append(entry)
            zf.writestr("results.json", json.dumps({**status, "items": index}, indent=1))
        os.replace(tmp, path)
        return path

    def count_unfinished(self) -> int:
        return self._query("SELECT COUNT(*) FROM jobs WHERE status IN (?,?)", UNFINISHED)[0][0]


class JobRunner:
    """Runs unfinished jobs one at a time, oldest first, keeping `concurrency` items in the engine's bulk queue."""

    def __init__(self, store: JobStore, engine: Engine, metrics: Metrics, concurrency: int) -> None:
        self.store = store
        self.engine = engine
        self.metrics = metrics
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        # Jobs cancel() stopped: their items not yet in the engine are skipped. Kept by id, as cancel() runs on a
        # worker thread and may land while `_run` moves on to the next job; emptied before each job starts (a job
        # cancelled earlier is refused `running` by the store, so its id is no longer needed).
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
        while True:
            self._wake.clear()
            unfinished = await asyncio.to_thread(self.store.unfinished)
            if not unfinished:
                await self._wake.wait()
                continue
            self._stopped.clear()
            try:
                await self._run_job(unfinished[0])
            except asyncio.CancelledError:
                raise
            except Exception:  # keep serving other jobs whatever happens to this one
                log.exception("batch job %s failed", unfinished[0])
                await asyncio.to_thread(
                    self.store.set_status, unfinished[0], "failed", "internal error; see the server log"
                )

    async def _run_job(self, job_id: str) -> None:
        model, fmt, quality, collage = await asyncio.to_thread(self.store.job, job_id)
        if model not in self.engine.registry.models:
            await asyncio.to_thread(self.store.set_status, job_id, "failed", f"model {model} is not loaded")
            return
        if not await asyncio.to_thread(self.store.set_status, job_id, "running"):
            return  # cancelled since it was picked
        pending = await asyncio.to_thread(self.store.pending_items, job_id)
        slots = asyncio.Semaphore(self.concurrency)

        async def render_one(idx: int, z: np.ndarray, seed: int) -> None:
            async with slots:
                if job_id in self._stopped:
                    return
                try:  # a lost input file fails its item like a failed render
                    labels = await asyncio.to_thread(self.store.load_input, job_id, idx)
                    request = RenderRequest(model, labels, z, fmt, quality, collage, source="job", seed=seed)
                    result = await self.engine.render(request, priority="bulk")
                except Exception as exc:  # one bad item must not sink the job
                    if not isinstance(exc, BadInput):
                        log.exception("batch job %s item %d failed", job_id, idx)
                    message = exc.message if isinstance(exc, BadInput) else "internal error while rendering"
                    if await asyncio.to_thread(self.store.fail_item, job_id, idx, message):
                        self.metrics.job_items.labels("failed").inc()
                    return
                data, ms = result.data, result.infer_ms
                if await asyncio.to_thread(self.store.complete, job_id, idx, fmt, data, ms):
                    self.metrics.job_items.labels("done").inc()

        await asyncio.gather(*(render_one(idx, z, seed) for idx, z, seed in pending))
        status = await asyncio.to_thread(self.store.status, job_id)
        final = "failed" if status["failed"] == status["total"] else "done"
        await asyncio.to_thread(self.store.set_status, job_id, final, None)  # a no-op if it was cancelled
