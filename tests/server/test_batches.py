"""Batch jobs in process: JSON and zip uploads, progress, results zip, cancel, and every refusal."""

from __future__ import annotations

import base64
import io
import json
import os
import time
import zipfile
from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image


def wait_for(
    client: TestClient, job_id: str, statuses: tuple[str, ...] = ("done",), timeout: float = 30
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/batches/{job_id}").json()
        if status["status"] in statuses:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stuck at {status}")


def results(client: TestClient, job_id: str) -> tuple[dict, dict[str, bytes]]:
    resp = client.get(f"/api/v1/batches/{job_id}/results")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    return json.loads(files.pop("results.json")), files


def test_json_batch_runs_to_a_results_zip(client: TestClient, landscape, png_of) -> None:  # noqa: ANN001
    ids = landscape(32, 32)
    items = [
        {"labels_png_b64": base64.b64encode(png_of(ids)).decode(), "seed": 42},
        {"labels": ids.tolist()},
        {"labels": landscape(16, 40).tolist(), "preset": "winter"},
        {"labels_png_b64": base64.b64encode(png_of(ids)).decode()},
    ]
    resp = client.post("/api/v1/batches", json={"items": items, "format": "png", "seed": 100})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] in ("queued", "running") and job["total"] == 4
    assert resp.headers["location"] == f"/api/v1/batches/{job['job_id']}"
    status = wait_for(client, job["job_id"])
    assert (status["done"], status["failed"], status["total"]) == (4, 0, 4)

    index, files = results(client, job["job_id"])
    assert sorted(files) == ["00000.png", "00001.png", "00002.png", "00003.png"]
    assert [it["seed"] for it in index["items"]] == [42, 101, None, 103]  # job seed + index when unset
    assert index["items"][2]["style"] == "preset winter"
    assert Image.open(io.BytesIO(files["00002.png"])).size == (40, 16)
    # item 0 is what a single render with the same seed gives (batched float noise ≤ 1 grey level)
    single = client.post(
        "/api/v1/render", files={"labels": ("l.png", png_of(ids), "image/png")}, data={"seed": "42"}
    ).content
    a = np.asarray(Image.open(io.BytesIO(single)), np.int16)
    b = np.asarray(Image.open(io.BytesIO(files["00000.png"])), np.int16)
    assert np.abs(a - b).max() <= 1
    assert client.delete(f"/api/v1/batches/{job['job_id']}").status_code == 409  # finished


def test_zip_upload(client: TestClient, landscape, png_of) -> None:  # noqa: ANN001
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("b.png", "a.png", "c.png"):
            zf.writestr(name, png_of(landscape(24, 24)))
        zf.writestr("folder/", b"")
    resp = client.post(
        "/api/v1/batches",
        files={"archive": ("maps.zip", archive.getvalue(), "application/zip")},
        data={"format": "jpeg", "preset": "dusk"},
    )
    assert resp.status_code == 202, resp.text
    status = wait_for(client, resp.json()["job_id"])
    assert status["done"] == 3 and status["format"] == "jpeg"
    index, files = results(client, status["job_id"])
    assert sorted(files) == ["00000.jpg", "00001.jpg", "00002.jpg"]
    assert {it["style"] for it in index["items"]} == {"preset dusk"}


def test_cancel_a_running_job(client: TestClient, slow_engine, landscape) -> None:  # noqa: ANN001
    client.app.state.jobs.engine = slow_engine(client, 0.2)  # type: ignore[attr-defined]
    items = [{"labels": landscape().tolist()} for _ in range(30)]
    job_id = client.post("/api/v1/batches", json={"items": items}).json()["job_id"]
    wait_for(client, job_id, ("running",))
    early = client.get(f"/api/v1/batches/{job_id}/results")
    assert early.status_code == 409 and early.json()["error"]["code"] == "job_not_finished"
    cancelled = client.delete(f"/api/v1/batches/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.delete(f"/api/v1/batches/{job_id}").json()["status"] == "cancelled"  # idempotent
    time.sleep(0.5)
    status = client.get(f"/api/v1/batches/{job_id}").json()
    assert status["status"] == "cancelled" and status["done"] < 30
    index, files = results(client, job_id)
    assert len(files) == status["done"] == sum(it["status"] == "done" for it in index["items"])


def test_a_cancel_answer_is_final_and_results_hold_every_finished_item(
    client: TestClient, slow_engine, landscape
) -> None:  # noqa: ANN001
    """Renders already in the engine when the job is cancelled are dropped, not finished after the answer, so
    the zip built at once (and kept) holds every result the job will ever have."""
    client.app.state.jobs.engine = slow_engine(client, 0.2)  # type: ignore[attr-defined]
    items = [{"labels": landscape().tolist()} for _ in range(30)]
    job_id = client.post("/api/v1/batches", json={"items": items}).json()["job_id"]
    deadline = time.monotonic() + 30
    while client.get(f"/api/v1/batches/{job_id}").json()["done"] < 2:  # the next items are in flight
        assert time.monotonic() < deadline
        time.sleep(0.02)
    answer = client.delete(f"/api/v1/batches/{job_id}").json()
    _, at_once = results(client, job_id)
    time.sleep(0.6)  # the renders in flight at the cancel end meanwhile
    status = client.get(f"/api/v1/batches/{job_id}").json()
    index, later = results(client, job_id)
    assert (status["status"], status["done"]) == ("cancelled", answer["done"])
    assert (
        len(at_once) == len(later) == status["done"] == [it["status"] for it in index["items"]].count("done")
    )


def test_too_many_unfinished_jobs_is_429(
    make_client: Callable[..., TestClient], slow_engine, landscape
) -> None:  # noqa: ANN001
    client = make_client(max_queued_jobs=1)
    client.app.state.jobs.engine = slow_engine(client, 30.0)  # type: ignore[attr-defined]  # job 1 stays running
    body = {"items": [{"labels": landscape().tolist()}]}
    assert client.post("/api/v1/batches", json=body).status_code == 202
    resp = client.post("/api/v1/batches", json=body)
    assert (
        resp.status_code == 429
        and resp.headers["retry-after"]
        and resp.json()["error"]["code"] == "too_many_jobs"
    )


def zip_of(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def good_map() -> list[list[int]]:
    return np.full((32, 32), 6, np.uint8).tolist()


def png_bytes(ids: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(ids).save(buf, "PNG")
    return buf.getvalue()


GOOD_PNG = png_bytes(np.full((32, 32), 6, np.uint8))


BAD_BATCHES = [
    ("too many items", {"json": {"items": [{"labels": good_map()}] * 4}}, 413, "too_many_items"),
    ("no items", {"json": {"items": []}}, 422, "bad_request"),
    ("unknown field", {"json": {"items": [{"labels": good_map()}], "speed": 11}}, 422, "bad_request"),
    (
        "malformed JSON",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        422,
        "bad_request",
    ),
    (
        "label id >= N",
        {"json": {"items": [{"labels": good_map()}, {"labels": [[14] * 32] * 32}]}},
        422,
        "bad_label_id",
    ),
    ("ragged rows", {"json": {"items": [{"labels": [[1, 2], [3]]}]}}, 422, "bad_size"),
    ("ids over 255", {"json": {"items": [{"labels": [[300] * 8] * 8}]}}, 422, "bad_label_id"),
    ("id of 2^70", {"json": {"items": [{"labels": [[2**70] * 32] * 32}]}}, 422, "bad_label_id"),  # no int64
    ("boolean ids", {"json": {"items": [{"labels": [[True] * 32] * 32}]}}, 422, "bad_label_id"),
    ("float ids", {"json": {"items": [{"labels": [[6.0] * 32] * 32}]}}, 422, "bad_label_id"),
    ("string seed", {"json": {"seed": "7", "items": [{"labels": good_map()}]}}, 422, "bad_request"),
    ("boolean item seed", {"json": {"items": [{"labels": good_map(), "seed": True}]}}, 422, "bad_request"),
    ("wrong size", {"json": {"items": [{"labels": [[1] * 30] * 32}]}}, 422, "bad_size"),
    ("bad base64", {"json": {"items": [{"labels_png_b64": "@@@"}]}}, 400, "bad_image"),
    (
        "both encodings",
        {"json": {"items": [{"labels": good_map(), "labels_png_b64": "AA=="}]}},
        400,
        "bad_request",
    ),
    ("unknown model", {"json": {"model": "nope", "items": [{"labels": good_map()}]}}, 404, "unknown_model"),
    (
        "unknown preset",
        {"json": {"items": [{"labels": good_map(), "preset": "summer"}]}},
        404,
        "unknown_preset",
    ),
    (
        "plain text",
        {"content": b"hello", "headers": {"content-type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
    ("not a zip", {"files": {"archive": ("a.zip", b"PK-not-really", "application/zip")}}, 400, "bad_archive"),
    (
        "zip of text",
        {"files": {"archive": ("a.zip", zip_of({"a.txt": b"hi"}), "application/zip")}},
        400,
        "bad_archive",
    ),
    (
        "zip bomb",
        {"files": {"archive": ("a.zip", zip_of({"a.png": bytes(3_000_000)}), "application/zip")}},
        413,
        "too_large",
    ),
    ("zip without field", {"files": {"other": ("a.zip", b"x", "application/zip")}}, 422, "bad_request"),
    (
        "zip with seed and preset",  # refused like /render, not the seed silently ignored
        {
            "files": {"archive": ("a.zip", zip_of({"a.png": GOOD_PNG}), "application/zip")},
            "data": {"seed": "1", "preset": "winter"},
        },
        422,
        "bad_style",
    ),
]


@pytest.mark.parametrize(("case", "kwargs", "status", "code"), BAD_BATCHES, ids=[c[0] for c in BAD_BATCHES])
def test_bad_batches_are_refused(
    make_client: Callable[..., TestClient], case: str, kwargs: dict, status: int, code: str
) -> None:
    client = make_client(max_batch_items=3, max_upload_bytes=1_000_000)
    resp = client.post("/api/v1/batches", **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code
    if case == "label id >= N":
        assert resp.json()["error"]["message"].startswith("item 1:")
    if case == "id of 2^70":
        assert resp.json()["error"]["message"].startswith("item 0: label id at (x=0, y=0)")
    assert client.post("/api/v1/batches", json={"items": [{"labels": good_map()}]}).status_code == 202


def test_media_types_are_case_insensitive(client: TestClient) -> None:
    body = json.dumps({"items": [{"labels": good_map()}]}).encode()
    resp = client.post("/api/v1/batches", content=body, headers={"content-type": "Application/JSON"})
    assert resp.status_code == 202, resp.text


def test_unknown_jobs_are_404(client: TestClient) -> None:
    """Each id reaches the job-id check: a bare `../..` would be resolved away by httpx before it left."""
    for job_id in ("0123456789abcdef0123456789abcdef", "ZZZ", "%2E%2E"):
        resp = client.get(f"/api/v1/batches/{job_id}")
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_job", job_id
    assert client.delete("/api/v1/batches/0123456789abcdef0123456789abcdef").status_code == 404
    assert client.get("/api/v1/batches/0123456789abcdef0123456789abcdef/results").status_code == 404


def test_recovery_adopts_renamed_results_and_drops_debris(tmp_path, database, landscape) -> None:  # noqa: ANN001
    """The crash windows SIGKILL may hit: after an older version's rename but before its commit, and mid-write."""
    from server.jobs import DEBRIS_AGE_S, JobItem, JobStore

    store = JobStore(tmp_path / "jobs", database)
    z = np.zeros(8, np.float32)
    job_id = store.create(
        "tiny-spade", "png", 90, False, [JobItem(landscape(), z, i, f"seed {i}") for i in range(3)]
    )
    assert store.claim(job_id)
    store.complete(job_id, 0, "png", b"done properly", 5.0)
    store.result_path(job_id, 1, "png").write_bytes(b"renamed, never committed")
    store.result_path(job_id, 2, "png").with_suffix(".png.tmp").write_bytes(b"half a fi")
    orphan, fresh = tmp_path / "jobs" / ("f" * 32), tmp_path / "jobs" / ("e" * 32)
    foreign = tmp_path / "jobs" / ("d" * 32)  # a job of the database used before COLLAGE_DATABASE_URL changed
    for folder in (
        orphan,
        fresh,
        foreign,
    ):  # orphan, fresh: created, then killed before the row was committed
        (folder / "inputs").mkdir(parents=True)
        (folder / "results").mkdir()
    (foreign / "results" / "00000.png").write_bytes(b"a result of another database's job")
    long_ago = time.time() - DEBRIS_AGE_S - 60
    for folder in (orphan, foreign):
        os.utime(folder, (long_ago, long_ago))  # `fresh` may be another replica's job being created
    store.close()

    store = JobStore(tmp_path / "jobs", database)
    assert store.recover() == 1
    assert [(idx, seed) for idx, _, seed in store.pending_items(job_id)] == [(2, 2)]
    assert store.status(job_id)["done"] == 2
    assert not orphan.exists() and fresh.exists() and (foreign / "results" / "00000.png").exists()
    assert not list((tmp_path / "jobs" / job_id / "results").glob("*.tmp"))
    np.testing.assert_array_equal(store.load_input(job_id, 2), landscape())
