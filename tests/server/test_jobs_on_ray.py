"""REST batch jobs with `COLLAGE_RAY_ADDRESS`: rendered by the actors of a real Ray head node (processes of its
own), with the semantics of local jobs: progress, a results zip, a final cancel (server/ray_jobs.py's own test
covers a map refused on an actor).

Ray comes with the dev install (`make dev` installs the scale extra); without it these tests fail, not skip."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from benchmarks.ray_cluster import LocalRay
from common.runtime import RuntimeChoice
from server.batch_render import Renderer
from server.styles import seeded_z
from tests.server.test_batches import results, wait_for

try:
    import ray
except ImportError:
    pytest.fail(
        "ray is not installed: pip install -e '.[cpu,train,dev,scale]' (make dev does)", pytrace=False
    )

ACTOR = "RenderActor"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRay]:
    with LocalRay(cpus=2) as local_ray:
        yield local_ray
        ray.shutdown()  # the server's runner joined it as a driver


@pytest.fixture
def on_ray(make_client: Callable[..., TestClient], cluster: LocalRay) -> TestClient:
    return make_client(ray_address=cluster.address, threads=1)


@pytest.mark.slow
def test_a_job_renders_on_the_cluster_to_a_results_zip(
    on_ray: TestClient,
    cluster: LocalRay,
    landscape,  # noqa: ANN001
    tiny_weights: Path,
    runtime_choice: RuntimeChoice,
) -> None:
    ids = landscape(32, 32)
    items = [{"labels": ids.tolist(), "seed": 40 + i} for i in range(6)]
    resp = on_ray.post("/api/v1/batches", json={"items": items, "format": "png"})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    # The actors live only while the job runs (its end kills the pool), and a status request may wait on the
    # server for longer than that: a thread of its own watches the cluster's processes meanwhile.
    actors: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            actors.update(cluster.pids(ACTOR))
            stop.wait(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    deadline = time.monotonic() + 120
    try:
        while (status := on_ray.get(f"/api/v1/batches/{job_id}").json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join()
    assert actors  # the pictures came from the cluster's actors, not the server's engine
    assert (status["status"], status["done"], status["failed"]) == ("done", 6, 0)
    index, files = results(on_ray, job_id)
    assert sorted(files) == [f"{i:05d}.png" for i in range(6)]
    assert [it["status"] for it in index["items"]] == ["done"] * 6
    # Each picture is the engine's batch-1 render of its seed on the server's runtime at the actors' thread count.
    renderer = Renderer(tiny_weights / "tiny-spade", runtime_choice, 1 << 22)
    try:
        for i in range(6):
            seed = 40 + i
            expected, _ = renderer.render_z(ids, seeded_z(seed, renderer.model.z_dim), seed, "png", 90, False)
            assert files[f"{i:05d}.png"] == expected
            assert Image.open(io.BytesIO(expected)).size == (32, 32)
    finally:
        renderer.close()


@pytest.mark.slow
def test_a_cancel_on_ray_is_final_and_stops_the_actors(
    on_ray: TestClient,
    cluster: LocalRay,
    landscape,  # noqa: ANN001
) -> None:
    items = [{"labels": landscape(64, 64).tolist()} for _ in range(400)]
    job_id = on_ray.post("/api/v1/batches", json={"items": items}).json()["job_id"]
    deadline = time.monotonic() + 120
    while on_ray.get(f"/api/v1/batches/{job_id}").json()["done"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    answer = on_ray.delete(f"/api/v1/batches/{job_id}").json()
    assert answer["status"] == "cancelled" and answer["done"] < 400
    _, at_once = results(on_ray, job_id)
    while cluster.pids(ACTOR):  # the pipeline is closed after the result in hand: its actors go
        assert time.monotonic() < deadline + 30
        time.sleep(0.2)
    status = wait_for(on_ray, job_id, ("cancelled",))
    assert status["done"] == answer["done"] == len(at_once)


@pytest.mark.slow
def test_a_failing_pipeline_leaves_the_items_pending(
    make_client: Callable[..., TestClient],
    cluster: LocalRay,
    landscape,  # noqa: ANN001
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No node has the 3 CPUs an actor of 3 threads reserves, so every pipeline fails at once: the job is retried
    after a back-off, never failed, and nothing is recorded: its items stay pending for a later try."""
    client = make_client(ray_address=cluster.address, threads=3, lease_seconds=1.0)
    items = [{"labels": landscape().tolist()} for _ in range(4)]
    job_id = client.post("/api/v1/batches", json={"items": items}).json()["job_id"]
    deadline = time.monotonic() + 60
    while caplog.text.count("the Ray pipeline failed") < 2:  # tried, waited, tried again
        assert time.monotonic() < deadline, caplog.text[-2000:]
        time.sleep(0.1)
    status = client.get(f"/api/v1/batches/{job_id}").json()
    assert (status["status"], status["done"], status["failed"]) == ("running", 0, 0)
    assert "the largest node of the Ray cluster has 2" in caplog.text
