"""Batch render jobs that survive restarts and run on any replica: the database for state, files for the rest.

Layout under `<data_dir>/jobs/` (a folder every replica shares): one folder per job with `inputs/<index>.png`
(label ids) and `results/<index>.<ext>`; the embedded SQLite database `jobs.sqlite` lives there too unless
COLLAGE_DATABASE_URL names another (`server/db.py`). Every input and the resolved style latent of every item are
stored when the job is created, so a resumed job renders exactly what was asked.

Job states: queued → running → done | failed, or → cancelled from either unfinished state. Each transition is one
UPDATE conditional on the job being unfinished and checked by its row count, so when a cancel races the runner's
final write exactly one wins and the other sees it. Items are marked done or failed only while their job is
unfinished, so a finished or cancelled job's counts (and its results.zip) never change afterwards.

Leases: one replica runs a job at a time. It claims the job with one conditional UPDATE (unfinished, and nobody
else's lease is running: `owner` is NULL, this replica, or `lease_until` has passed), renews the lease while it
runs (`server.job_runner`), and every write it makes for the job (an item done or failed, the job's status)
first passes the gate: an UPDATE of the job row conditional on it being unfinished and still this replica's. A
cancel from any replica, or a takeover after the lease expired, fails that gate, so a replica that lost its job
changes nothing of it. On PostgreSQL the gate also locks the job row until its transaction ends, so a takeover
waits for a write in progress instead of missing it. Lease times are each replica's clock: keep the clocks in
sync (NTP) to far better than `lease_seconds`. A graceful stop hands the leases back; after a crash the job
waits for its lease to run out, whoever resumes it.

Results, and why in this order: a done item's result is in place, or, between its mark and its rename, in the
temporary of the attempt the mark recorded, whatever instant SIGKILL hits and however long a replica stalls past
its lease. `complete()` writes the image to a name of its own attempt (`<index>.<ext>.<attempt>.tmp`), marks the
item done through the gate (recording the attempt), then renames the file into place. A refused gate deletes
only that attempt's own temporary, never a result another replica wrote. A mark whose rename never came is
settled by whoever looks next: the job's next owner (`_tidy()`, on each claim) returns such items to pending and
deletes every temporary, so a stalled writer's rename can no longer land, then adopts as done any pending item
whose result did land meanwhile; a cancelled job's results.zip renames the recorded attempt into place itself.
So the new owner renders exactly the items without a result, and results.zip holds every done item.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from PIL import Image

from server import db
from server.codec import EXTENSIONS, encode_label_png
from server.errors import BadInput

_JOB_ID = re.compile(r"[0-9a-f]{32}")
UNFINISHED = ("queued", "running")
# Leftovers no live request can still be writing: a job folder whose commit never came, a results zip cut short.
# Any younger one may belong to another replica's request in progress.
DEBRIS_AGE_S = 3600.0
JOB, ITEM = db.jobs.c, db.items.c  # the columns, as every query names them
_UNFINISHED = JOB.status.in_(UNFINISHED)


def replica_id() -> str:
    """This process as a job owner: the host, to find it, and a fresh uuid, as a restarted process on the same
    host is another replica whose predecessor's leases must run out first."""
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class JobItem:
    """One validated label map of a new job, with its resolved style."""

    labels: np.ndarray  # H×W uint8
    z: np.ndarray  # [z_dim] float32
    seed: int | None  # the seed used, when the style was a seed
    style: str  # human description: "seed 7", "preset winter", "style 3fa…"


def _has_results(folder: Path) -> bool:
    """Whether a job folder holds any result or results zip (a crash before the job's commit leaves neither)."""
    results = folder / "results"
    return (folder / "results.zip").exists() or (results.is_dir() and any(results.iterdir()))


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:  # another replica swept it first
        return False


class JobStore:
    """Jobs in the database plus files, for one replica (`owner`). Thread-safe: the runner calls it from worker
    threads, each taking a connection of its own from the engine's pool."""

    def __init__(
        self, directory: Path, engine: sa.Engine, lease_seconds: float = 30.0, owner: str | None = None
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.engine = engine
        self._reader = engine.execution_options(**db.READ_ONLY)
        self.lease_seconds = lease_seconds
        self.owner = owner or replica_id()

    def close(self) -> None:
        """Hand back this replica's leases, so another replica (or this one restarted) resumes at once."""
        self._release(JOB.owner == self.owner, _UNFINISHED)

    def _rows(self, query: sa.Select[Any]) -> Sequence[Any]:
        with self._reader.connect() as conn:
            return conn.execute(query).all()

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
        row = dict(model=model, fmt=fmt, quality=quality, collage=int(collage), total=len(items))
        with self.engine.begin() as conn:
            conn.execute(db.jobs.insert().values(id=job_id, status="queued", created=now, updated=now, **row))
            conn.execute(
                db.items.insert(),
                [
                    dict(
                        job_id=job_id,
                        idx=i,
                        seed=it.seed,
                        style=it.style,
                        status="pending",
                        z=it.z.astype(np.float32).tobytes(),
                    )
                    for i, it in enumerate(items)
                ],
            )
        return job_id

    def status(self, job_id: str) -> dict[str, Any]:
        self.job_dir(job_id)

        def count(status: str) -> sa.ScalarSelect[int]:
            return (
                sa.select(sa.func.count())
                .where(ITEM.job_id == JOB.id, ITEM.status == status)
                .scalar_subquery()
            )

        columns = (JOB.model, JOB.fmt, JOB.status, JOB.total, JOB.created, JOB.updated)
        rows = self._rows(  # one statement: one snapshot of the job and its counts on every backend
            sa.select(*columns, JOB.error, count("done"), count("failed")).where(JOB.id == job_id)
        )
        if not rows:
            raise BadInput("unknown_job", f"no batch job {job_id}")
        model, fmt, status, total, created, updated, error, done, failed = rows[0]
        return {
            "job_id": job_id,
            "status": status,
            "model": model,
            "format": fmt,
            "total": total,
            "done": done,
            "failed": failed,
            "created": created,
            "updated": updated,
            "error": error,
        }

    def job(self, job_id: str) -> tuple[str, str, int, bool]:
        """(model, format, quality, collage) of a job."""
        query = sa.select(JOB.model, JOB.fmt, JOB.quality, JOB.collage).where(JOB.id == job_id)
        model, fmt, quality, collage = self._rows(query)[0]
        return model, fmt, quality, bool(collage)

    def unfinished(self) -> list[str]:
        query = sa.select(JOB.id).where(_UNFINISHED).order_by(JOB.created)
        return [row[0] for row in self._rows(query)]

    def count_unfinished(self) -> int:
        return self._rows(sa.select(sa.func.count()).where(_UNFINISHED))[0][0]

    def pending_items(self, job_id: str) -> list[tuple[int, np.ndarray, int]]:
        """(index, z, noise seed) of the items still to render; the noise seed is 0 for a preset or style."""
        query = (
            sa.select(ITEM.idx, ITEM.z, ITEM.seed)
            .where(ITEM.job_id == job_id, ITEM.status == "pending")
            .order_by(ITEM.idx)
        )
        return [(idx, np.frombuffer(z, dtype=np.float32), seed or 0) for idx, z, seed in self._rows(query)]

    def load_input(self, job_id: str, idx: int) -> np.ndarray:
        with Image.open(self.job_dir(job_id) / "inputs" / f"{idx:05d}.png") as image:
            return np.asarray(image, dtype=np.uint8)

    def result_path(self, job_id: str, idx: int, fmt: str) -> Path:
        return self.job_dir(job_id) / "results" / f"{idx:05d}.{EXTENSIONS[fmt]}"

    def _attempt_path(self, job_id: str, idx: int, fmt: str, attempt: str) -> Path:
        path = self.result_path(job_id, idx, fmt)
        return path.with_name(f"{path.name}.{attempt}.tmp")

    # ------------------------------------------------------------------ leases

    def _claimable(self, now: float) -> sa.ColumnElement[bool]:
        return sa.and_(
            _UNFINISHED,
            sa.or_(JOB.owner.is_(None), JOB.owner == self.owner, JOB.lease_until < now),
        )

    def claim(self, job_id: str) -> bool:
        """Take the job's lease if nobody else holds a running one; the one UPDATE decides between replicas."""
        now = time.time()
        with self.engine.begin() as conn:
            taken = conn.execute(
                db.jobs.update()
                .where(JOB.id == job_id, self._claimable(now))
                .values(owner=self.owner, lease_until=now + self.lease_seconds)
            ).rowcount
        return taken == 1

    def claim_next(self) -> str | None:
        """Claim the oldest job this replica may run, tidied for it (`_tidy`); None when there is none."""
        while True:
            query = sa.select(JOB.id).where(self._claimable(time.time())).order_by(JOB.created).limit(8)
            candidates = [row[0] for row in self._rows(query)]
            if not candidates:
                return None
            for job_id in candidates:  # a candidate another replica claimed meanwhile is skipped
                if self.claim(job_id):
                    self._tidy(job_id)
                    return job_id

    def renew(self, job_id: str) -> bool:
        """Extend this replica's lease; False once the job was cancelled, finished or taken over."""
        now = time.time()
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    db.jobs.update()
                    .where(JOB.id == job_id, _UNFINISHED, JOB.owner == self.owner)
                    .values(lease_until=now + self.lease_seconds)
                ).rowcount
            )

    def release(self, job_id: str) -> None:
        self._release(JOB.id == job_id, JOB.owner == self.owner)

    def _release(self, *where: sa.ColumnElement[bool]) -> None:
        with self.engine.begin() as conn:
            conn.execute(db.jobs.update().where(*where).values(owner=None, lease_until=None))

    def _gated(self, conn: sa.Connection, job_id: str) -> bool:
        """The gate of every write for a job: it is unfinished and this replica's (and, on PostgreSQL, its row
        stays locked until `conn` commits)."""
        return bool(
            conn.execute(
                db.jobs.update()
                .where(JOB.id == job_id, _UNFINISHED, JOB.owner == self.owner)
                .values(updated=time.time())
            ).rowcount
        )

    def _tidy(self, job_id: str) -> int:
        """Make done ⇔ result file hold again for a job just claimed; the number of results adopted.

        Done items without a file (their writer died or stalled between the mark and the rename) go back to
        pending, then every temporary goes, so no late rename can land after this, then pending items with a
        file (one such late rename, or a crash of a version that renamed before marking) are adopted as done.
        """
        fmt = self.job(job_id)[1]
        done = self._rows(sa.select(ITEM.idx).where(ITEM.job_id == job_id, ITEM.status == "done"))
        lost = [idx for (idx,) in done if not self.result_path(job_id, idx, fmt).exists()]
        with self.engine.begin() as conn:
            if not self._gated(conn, job_id):
                return 0  # cancelled or taken over meanwhile: its temporaries are another's business now
            conn.execute(
                db.items.update()
                .where(ITEM.job_id == job_id, ITEM.idx.in_(lost), ITEM.status == "done")
                .values(status="pending", render_ms=None, attempt=None)
            )
        for tmp in (self.job_dir(job_id) / "results").glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        found = [
            idx for idx, _, _ in self.pending_items(job_id) if self.result_path(job_id, idx, fmt).exists()
        ]
        with self.engine.begin() as conn:
            if not self._gated(conn, job_id):
                return 0
            return conn.execute(
                db.items.update()
                .where(ITEM.job_id == job_id, ITEM.idx.in_(found), ITEM.status == "pending")
                .values(status="done")
            ).rowcount

    # ------------------------------------------------------------------ progress

    def set_status(self, job_id: str, status: str, error: str | None = None) -> bool:
        """Move this replica's unfinished job to `status`; False (and no change) when it finished, was cancelled
        or is no longer this replica's."""
        with self.engine.begin() as conn:
            if not self._gated(conn, job_id):
                return False
            conn.execute(db.jobs.update().where(JOB.id == job_id).values(status=status, error=error))
        return True

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel an unfinished job, whichever replica runs it (idempotent on a cancelled one); finished jobs are
        refused."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                db.jobs.update()
                .where(JOB.id == job_id, _UNFINISHED)
                .values(status="cancelled", error=None, updated=time.time())
            ).rowcount
        if not changed:
            status = self.status(job_id)["status"]  # final now: finished jobs never change again
            if status != "cancelled":
                raise BadInput("job_finished", f"batch job {job_id} already finished ({status})")
        return self.status(job_id)

    def complete(self, job_id: str, idx: int, fmt: str, data: bytes, render_ms: float) -> bool:
        """Write the result under this attempt's name, mark the item done, then rename it into place.

        False when the job was cancelled or taken over meanwhile: the result is dropped, so the cancel answer's
        counts stay final, and only this attempt's own file is deleted.
        """
        attempt = uuid.uuid4().hex
        tmp = self._attempt_path(job_id, idx, fmt, attempt)
        tmp.write_bytes(data)
        with self.engine.begin() as conn:
            marked = (
                self._gated(conn, job_id)
                and conn.execute(
                    db.items.update()
                    .where(ITEM.job_id == job_id, ITEM.idx == idx, ITEM.status == "pending")
                    .values(status="done", render_ms=render_ms, attempt=attempt)
                ).rowcount
            )
        if not marked:
            tmp.unlink()
            return False
        try:
            os.replace(tmp, self.result_path(job_id, idx, fmt))
        except FileNotFoundError:  # a results.zip renamed it first, or the job's next owner swept it away
            return self.result_path(job_id, idx, fmt).exists()
        return True

    def fail_item(self, job_id: str, idx: int, error: str) -> bool:
        """Mark the item failed; False when the job was cancelled or taken over meanwhile (it stays pending)."""
        with self.engine.begin() as conn:
            return bool(
                self._gated(conn, job_id)
                and conn.execute(
                    db.items.update()
                    .where(ITEM.job_id == job_id, ITEM.idx == idx, ITEM.status == "pending")
                    .values(status="failed", error=error)
                ).rowcount
            )

    def recover(self) -> int:
        """At startup: sweep old debris, and tidy every unfinished job no live replica holds (adopting results an
        older version renamed into place but never marked); the number of results adopted."""
        known = {row[0] for row in self._rows(sa.select(JOB.id))}
        cutoff = time.time() - DEBRIS_AGE_S
        for folder in self.directory.iterdir():
            if not (folder.is_dir() and _JOB_ID.fullmatch(folder.name)):
                continue
            if folder.name not in known:
                # Created, then crashed before the commit: inputs and nothing else. A folder with any result is
                # a real job of another database (COLLAGE_DATABASE_URL changed): kept, never swept.
                if _older_than(folder, cutoff) and not _has_results(folder):
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            for partial in folder.glob("results.*.tmp"):  # a results zip cut short: rebuilt on request
                if _older_than(partial, cutoff):
                    partial.unlink(missing_ok=True)
        adopted = 0
        for job_id in self.unfinished():
            if self.claim(job_id):
                adopted += self._tidy(job_id)
                self.release(job_id)
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
        columns = (ITEM.seed, ITEM.style, ITEM.status, ITEM.error, ITEM.render_ms)
        query = sa.select(ITEM.idx, *columns, ITEM.attempt)
        rows = self._rows(query.where(ITEM.job_id == job_id).order_by(ITEM.idx))
        index = []
        tmp = path.with_name(f"results.{uuid.uuid4().hex}.tmp")  # two first downloads may zip at once
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:  # images are compressed already
            for idx, seed, style, item_status, error, render_ms, attempt in rows:
                entry = {"index": idx, "seed": seed, "style": style, "status": item_status}
                if item_status == "done":
                    result = self.result_path(job_id, idx, fmt)
                    if attempt and not result.exists():  # marked, then cancelled before its rename
                        with contextlib.suppress(FileNotFoundError):  # its writer renamed it just now
                            os.replace(self._attempt_path(job_id, idx, fmt, attempt), result)
                    zf.write(result, result.name)
                    entry |= {"file": result.name, "render_ms": render_ms}
                elif error:
                    entry["error"] = error
                index.append(entry)
            zf.writestr("results.json", json.dumps({**status, "items": index}, indent=1))
        os.replace(tmp, path)
        return path
