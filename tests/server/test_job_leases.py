"""The database layer on both backends: job leases between replicas, the result files' invariant, migrations
of old data dirs, styles shared by replicas. Two JobStores with their own owners stand for two replicas."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from server import jobs as jobs_module
from server.db import create_engine, database_url, open_database
from server.errors import BadInput
from server.jobs import JobItem, JobStore
from server.styles import StyleStore

LEASE = 0.5


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    setting = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    engine = open_database(database_url(setting, tmp_path))
    yield engine
    engine.dispose()


def replica(tmp_path: Path, engine: sa.Engine, name: str) -> JobStore:
    return JobStore(tmp_path / "jobs", engine, lease_seconds=LEASE, owner=name)


def add_job(store: JobStore, count: int) -> str:
    items = [
        JobItem(np.full((8, 8), i, np.uint8), np.zeros(4, np.float32), i, f"seed {i}") for i in range(count)
    ]
    return store.create("tiny", "png", 90, False, items)


def results(store: JobStore, job_id: str) -> dict[str, bytes]:
    folder = store.job_dir(job_id) / "results"
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_leased_job_is_claimed_by_another_replica_only_once_the_lease_runs_out(
    tmp_path: Path, engine: sa.Engine
) -> None:
    a, b = replica(tmp_path, engine, "a"), replica(tmp_path, engine, "b")
    job_id = add_job(a, 2)
    assert a.claim_next() == job_id
    assert b.claim_next() is None and not b.claim(job_id)
    time.sleep(LEASE * 0.6)
    assert a.renew(job_id)  # renewed: still a's after the first lease would have ended
    time.sleep(LEASE * 0.6)
    assert b.claim_next() is None
    time.sleep(LEASE * 1.2)
    assert b.claim_next() == job_id
    assert not a.renew(job_id) and not a.claim(job_id)  # a's heartbeat learns it lost the job
    b.close()  # a graceful stop hands the lease back at once
    assert a.claim(job_id)


def test_a_replica_that_lost_its_lease_counts_nothing_and_deletes_nothing(
    tmp_path: Path, engine: sa.Engine
) -> None:
    a, b = replica(tmp_path, engine, "a"), replica(tmp_path, engine, "b")
    job_id = add_job(a, 4)
    assert a.claim_next() == job_id and a.set_status(job_id, "running")
    assert a.complete(job_id, 0, "png", b"a0", 1.0)
    time.sleep(LEASE * 1.5)  # a stalls past its lease
    assert b.claim_next() == job_id
    assert b.complete(job_id, 1, "png", b"b1", 1.0)
    assert not a.complete(job_id, 1, "png", b"a1", 1.0)  # the same item, rendered by both
    assert not a.complete(job_id, 2, "png", b"a2", 1.0)
    assert not a.fail_item(job_id, 3, "late")
    assert not a.set_status(job_id, "done")
    assert not b.complete(job_id, 1, "png", b"b1 again", 1.0)  # an item is never counted twice
    assert results(b, job_id) == {"00000.png": b"a0", "00001.png": b"b1"}  # no temporaries left either
    status = b.status(job_id)
    assert (status["status"], status["done"], status["failed"]) == ("running", 2, 0)
    assert [idx for idx, _, _ in b.pending_items(job_id)] == [2, 3]


def test_the_claim_is_atomic_between_replicas(tmp_path: Path, engine: sa.Engine) -> None:
    """Four replicas claim 12 jobs at once, each taking one at a time until none is left: each job once."""
    job_ids = {add_job(replica(tmp_path, engine, "creator"), 1) for _ in range(12)}
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def run(name: str) -> None:
        store = JobStore(tmp_path / "jobs", engine, lease_seconds=60, owner=name)
        barrier.wait()
        mine = claimed.setdefault(name, [])
        while (job_id := store.claim_next()) is not None:
            mine.append(job_id)
            assert store.set_status(job_id, "done")  # finished, so this replica may claim the next one

    threads = [threading.Thread(target=run, args=(f"r{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    everything = [job_id for mine in claimed.values() for job_id in mine]
    assert sorted(everything) == sorted(job_ids)


def stall_before_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer stops between its mark and its rename (SIGKILL there, or a process frozen past its lease)."""
    monkeypatch.setattr(jobs_module.os, "replace", lambda src, dst: None)


def test_a_mark_whose_rename_never_came_is_rendered_again_by_the_next_owner(
    tmp_path: Path, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = replica(tmp_path, engine, "a"), replica(tmp_path, engine, "b")
    job_id = add_job(a, 2)
    assert a.claim_next() == job_id
    with monkeypatch.context() as patch:
        stall_before_rename(patch)
        assert a.complete(job_id, 0, "png", b"a0", 1.0)
    [stalled] = (a.job_dir(job_id) / "results").glob("00000.png.*.tmp")
    assert a.status(job_id)["done"] == 1
    time.sleep(LEASE * 1.5)
    assert b.claim_next() == job_id
    assert b.status(job_id)["done"] == 0 and [idx for idx, _, _ in b.pending_items(job_id)] == [0, 1]
    with pytest.raises(FileNotFoundError):  # the stalled writer wakes: its rename can no longer land
        os.replace(stalled, a.result_path(job_id, 0, "png"))
    assert b.complete(job_id, 0, "png", b"b0", 1.0) and b.complete(job_id, 1, "png", b"b1", 1.0)
    assert results(b, job_id) == {"00000.png": b"b0", "00001.png": b"b1"}


def test_a_cancelled_jobs_zip_holds_a_result_marked_but_not_yet_renamed(
    tmp_path: Path, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = replica(tmp_path, engine, "a"), replica(tmp_path, engine, "b")
    job_id = add_job(a, 2)
    assert a.claim_next() == job_id
    with monkeypatch.context() as patch:
        stall_before_rename(patch)
        assert a.complete(job_id, 0, "png", b"a0", 1.0)
    assert b.cancel(job_id)["done"] == 1  # on another replica, the owner still stalled
    with jobs_module.zipfile.ZipFile(b.results_zip(job_id)) as zf:
        assert zf.read("00000.png") == b"a0"
        assert json.loads(zf.read("results.json"))["done"] == 1
    assert results(b, job_id) == {"00000.png": b"a0"}


def test_a_late_rename_between_the_reset_and_the_sweep_is_adopted(
    tmp_path: Path, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stalled writer's rename lands after the new owner returned its item to pending, before the sweep of
    temporaries: the result is there, so the item is done again and not rendered twice."""
    a, b = replica(tmp_path, engine, "a"), replica(tmp_path, engine, "b")
    job_id = add_job(a, 1)
    assert a.claim_next() == job_id
    with monkeypatch.context() as patch:
        stall_before_rename(patch)
        assert a.complete(job_id, 0, "png", b"a0", 1.0)
    [stalled] = (a.job_dir(job_id) / "results").glob("*.tmp")
    time.sleep(LEASE * 1.5)
    results_dir = b.job_dir(job_id) / "results"
    glob = Path.glob

    def rename_lands_first(self: Path, pattern: str) -> object:
        if self == results_dir and stalled.exists():
            os.replace(stalled, b.result_path(job_id, 0, "png"))
        return glob(self, pattern)

    monkeypatch.setattr(Path, "glob", rename_lands_first)
    assert b.claim_next() == job_id
    assert b.status(job_id)["done"] == 1 and b.pending_items(job_id) == []
    assert results(b, job_id) == {"00000.png": b"a0"}


def test_styles_are_shared_by_replicas_and_legacy_files_imported(tmp_path: Path, engine: sa.Engine) -> None:
    legacy = tmp_path / "styles"
    legacy.mkdir()
    old = {"style_id": "0123456789abcdef0123", "model": "tiny", "z": [0.5, -1.25], "created": 1700000000.0}
    (legacy / f"{old['style_id']}.json").write_text(json.dumps(old))
    a, b = StyleStore(legacy, engine), StyleStore(legacy, engine)

    pixels = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    first = a.put("tiny", np.array([0.1, 0.2], np.float32), pixels)
    second = b.put("tiny", np.array([0.1, 0.2], np.float32), pixels)  # the same photo on another replica
    assert second == first and b.get(first.style_id) == first
    assert first.z == [float(np.float32(0.1)), float(np.float32(0.2))]

    assert b.get(old["style_id"]).public() == old  # imported on first get
    (legacy / f"{old['style_id']}.json").unlink()
    assert StyleStore(legacy, engine).get(old["style_id"]).public() == old  # from the database now
    with pytest.raises(BadInput):
        a.get("fedcba9876543210fedc")


def test_an_old_sqlite_data_dir_is_migrated(tmp_path: Path) -> None:
    """A jobs.sqlite written by the raw-sqlite3 store (no alembic_version) keeps its jobs and gains the leases."""
    path = tmp_path / "jobs" / "jobs.sqlite"
    path.parent.mkdir()
    with sqlite3.connect(path) as old:
        old.executescript(
            """
            CREATE TABLE jobs (
                id TEXT PRIMARY KEY, model TEXT NOT NULL, fmt TEXT NOT NULL, quality INTEGER NOT NULL,
                collage INTEGER NOT NULL, status TEXT NOT NULL, total INTEGER NOT NULL,
                created REAL NOT NULL, updated REAL NOT NULL, error TEXT
            );
            CREATE TABLE items (
                job_id TEXT NOT NULL, idx INTEGER NOT NULL, seed INTEGER, style TEXT NOT NULL, z BLOB NOT NULL,
                status TEXT NOT NULL, error TEXT, render_ms REAL, PRIMARY KEY (job_id, idx)
            );
            """
        )
        job_id = "ab" * 16
        old.execute("INSERT INTO jobs VALUES (?,'tiny','png',90,0,'running',2,1.0,2.0,NULL)", (job_id,))
        z = np.ones(4, np.float32).tobytes()
        old.execute("INSERT INTO items VALUES (?,0,7,'seed 7',?,'done',NULL,3.5)", (job_id, z))
        old.execute("INSERT INTO items VALUES (?,1,8,'seed 8',?,'pending',NULL,NULL)", (job_id, z))
    old.close()
    (tmp_path / "jobs" / job_id / "results").mkdir(parents=True)
    (tmp_path / "jobs" / job_id / "results" / "00000.png").write_bytes(b"rendered before the upgrade")

    engine = open_database(database_url(None, tmp_path))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0002"
        store = JobStore(tmp_path / "jobs", engine)
        status = store.status(job_id)
        assert (status["status"], status["total"], status["done"], status["updated"]) == (
            "running",
            2,
            1,
            2.0,
        )
        assert store.claim_next() == job_id
        [(idx, z_back, seed)] = store.pending_items(job_id)
        assert (idx, seed) == (1, 8) and z_back.tolist() == [1.0] * 4
        assert StyleStore(tmp_path / "styles", engine).put("tiny", np.zeros(2), np.zeros((1, 1, 3), np.uint8))
    finally:
        engine.dispose()
    open_database(database_url(None, tmp_path)).dispose()  # opening it again changes nothing


def test_postgresql_urls_get_psycopg_3_and_its_absence_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = database_url("postgresql://user:secret@db:5432/collage", tmp_path)
    assert (url.drivername, url.host, url.database) == ("postgresql+psycopg", "db", "collage")
    assert database_url(None, tmp_path).database == str(tmp_path / "jobs" / "jobs.sqlite")
    monkeypatch.setitem(
        __import__("sys").modules, "psycopg", None
    )  # as if the scale extra were not installed
    with pytest.raises(RuntimeError, match=r"pip install 'collage-studio\[scale\]'"):
        create_engine(url)
