"""Two real replicas (`python -m server` processes) sharing one PostgreSQL database and one data dir: a style
uploaded on one renders on the other, a job is seen and cancelled anywhere, and a killed replica's job is
finished by the other once its lease runs out."""

from __future__ import annotations

import base64
import io
import json
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

LEASE = 3.0
pytestmark = pytest.mark.slow  # two server processes each, ~30 s on 2 cores


@pytest.fixture
def replicas(server_process, tiny_weights: Path, tmp_path: Path, postgres_url: str) -> Callable[[], Any]:  # noqa: ANN001
    """Starts one more replica per call, every one on the same database and data dir."""
    env = {
        "COLLAGE_WEIGHTS_DIR": str(tiny_weights),
        "COLLAGE_DATA_DIR": str(tmp_path / "shared"),
        "COLLAGE_DATABASE_URL": postgres_url,
        "COLLAGE_LEASE_SECONDS": str(LEASE),
        "COLLAGE_MAX_BATCH": "4",
    }
    return lambda: server_process(env)


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def batch(landscape, count: int) -> dict[str, Any]:  # noqa: ANN001
    """`count` different 128² maps, seeds 0…count-1."""
    items = []
    for i in range(count):
        ids = landscape(128, 128)
        ids[0, :i] = 1
        items.append({"labels_png_b64": base64.b64encode(png(ids)).decode(), "seed": i})
    return {"items": items, "format": "png"}


def job_renders(url: str) -> float:
    """Items this replica has sent to its engine."""
    metrics = httpx.get(url + "/metrics", timeout=10).text
    found = re.search(r'^collage_renders_total\{source="job"\} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


def poll(url: str, until: Callable[[dict], bool], timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(url, timeout=10).json()
        if until(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"timed out; last status {status}")


def test_a_style_uploaded_on_one_replica_renders_on_the_other(replicas, landscape) -> None:  # noqa: ANN001
    a, b = replicas(), replicas()
    rng = np.random.default_rng(3)
    photo = png(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    style = httpx.post(a.url + "/api/v1/styles", files={"image": ("p.png", photo, "image/png")}, timeout=30)
    assert style.status_code == 201, style.text
    style_id = style.json()["style_id"]
    again = httpx.post(b.url + "/api/v1/styles", files={"image": ("p.png", photo, "image/png")}, timeout=30)
    assert again.json() == style.json()  # the same photo on the other replica: the same record

    labels = {"labels": ("l.png", png(landscape()), "image/png")}
    on_a = httpx.post(a.url + "/api/v1/render", files=labels, data={"style_id": style_id}, timeout=30)
    on_b = httpx.post(b.url + "/api/v1/render", files=labels, data={"style_id": style_id}, timeout=30)
    assert on_a.status_code == on_b.status_code == 200, on_b.text
    assert on_b.content == on_a.content


def owner_and_other(replicas: list[Any]) -> tuple[Any, Any]:
    """(the replica running the job, the other): the one whose engine got its items. The submitting replica
    usually claims the job at once, but the other's poll may come first."""
    renders = [job_renders(replica.url) for replica in replicas]
    assert sorted(renders)[0] == 0 < renders[0] + renders[1], renders
    return (replicas[0], replicas[1]) if renders[0] else (replicas[1], replicas[0])


def test_a_job_is_seen_and_cancelled_on_another_replica_and_its_owner_stops(replicas, landscape) -> None:  # noqa: ANN001
    a, b = replicas(), replicas()
    job = httpx.post(a.url + "/api/v1/batches", json=batch(landscape, 60), timeout=30).json()
    path = f"/api/v1/batches/{job['job_id']}"
    poll(a.url + path, lambda s: s["done"] >= 2)
    owner, other = owner_and_other([a, b])
    seen = httpx.get(other.url + path, timeout=10).json()
    assert seen["status"] == "running" and seen["total"] == 60

    answer = httpx.delete(other.url + path, timeout=10).json()
    assert answer["status"] == "cancelled" and answer["done"] < 60
    time.sleep(
        LEASE / 3 + 1.0
    )  # the owner's next heartbeat has seen the cancel; renders in flight have ended
    rendered = job_renders(owner.url)
    time.sleep(LEASE)
    assert job_renders(owner.url) == rendered  # the owner sends no more items to its engine
    assert job_renders(other.url) == 0
    for replica in (a, b):
        assert httpx.get(replica.url + path, timeout=10).json() == answer  # the counts froze at the answer
    with zipfile.ZipFile(io.BytesIO(httpx.get(owner.url + path + "/results", timeout=30).content)) as zf:
        assert len([n for n in zf.namelist() if n.endswith(".png")]) == answer["done"]


def test_a_killed_replicas_job_is_finished_by_the_other_with_every_result_once(
    replicas, landscape, tmp_path: Path
) -> None:  # noqa: ANN001
    count = 40
    a, b = replicas(), replicas()
    job = httpx.post(a.url + "/api/v1/batches", json=batch(landscape, count), timeout=30).json()
    path = f"/api/v1/batches/{job['job_id']}"
    results = tmp_path / "shared" / "jobs" / job["job_id"] / "results"
    poll(b.url + path, lambda s: s["done"] >= 5)
    owner, other = owner_and_other([a, b])
    owner.kill()
    killed_at = time.monotonic()
    # The items recorded done: a kill between marking an item and renaming its result into place leaves one
    # more than results/*.png, its file under the attempt's name, which the next owner adopts.
    kept = httpx.get(other.url + path, timeout=10).json()["done"]
    assert kept < count, "the kill should land mid-job"

    poll(other.url + path, lambda s: s["status"] != "running" or s["done"] > kept)
    waited = time.monotonic() - killed_at
    assert waited > LEASE / 2, waited  # for the lease, renewed every LEASE/3, to run out
    status = poll(other.url + path, lambda s: s["status"] == "done")
    assert (status["total"], status["done"], status["failed"]) == (count, count, 0)
    assert job_renders(other.url) == count - kept  # exactly the items without a result

    archive = httpx.get(other.url + path + "/results", timeout=60)
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        names = [n for n in zf.namelist() if n.endswith(".png")]
        assert sorted(names) == [f"{i:05d}.png" for i in range(count)]  # each once, none missing
        for name in names:
            with Image.open(io.BytesIO(zf.read(name))) as image:
                image.load()
                assert image.size == (128, 128)
        index = json.loads(zf.read("results.json"))
    assert [it["status"] for it in index["items"]] == ["done"] * count
    assert sorted(p.name for p in results.iterdir()) == sorted(names)  # no temporaries left
