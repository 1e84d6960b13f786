"""`server.ray_jobs` on a real Ray cluster (a head node in processes of its own): a batch job's items come back
as the engine's batch-1 call renders them, and dropping the iterator (a cancelled job) kills the actors.

Ray comes with the dev install (`make dev` installs the scale extra); without it these tests fail, not skip."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.ray_cluster import LocalRay
from common.runtime import RuntimeChoice
from models.data import sample_layout
from server.batch_render import Renderer
from server.errors import BadInput
from server.ray_jobs import render_job_items

try:
    import ray
except ImportError:
    pytest.fail(
        "ray is not installed: pip install -e '.[cpu,train,dev,scale]' (make dev does)", pytrace=False
    )

ACTOR = "RenderActor"  # in the title of a worker process holding one


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRay]:
    with LocalRay(cpus=2) as local_ray:
        yield local_ray


@pytest.mark.slow
def test_job_items_on_ray_match_the_engine_and_stop_when_dropped(
    cluster: LocalRay, tiny_weights: Path, tmp_path: Path
) -> None:
    """A job's items (one map, several styles, one map with ids the model lacks) give the local Renderer's bytes
    (the engine at batch 1) or the engine's message; closing the iterator early kills the pool's actors."""
    model = tiny_weights / "tiny-spade"
    choice = RuntimeChoice(threads=1)
    labels, _ = sample_layout(np.random.default_rng(7), 64)
    labels = labels.astype(np.uint8)
    bad = np.full((64, 64), 200, np.uint8)
    rng = np.random.default_rng(0)
    renderer = Renderer(model, choice, 1 << 22)
    try:
        z_dim = renderer.model.z_dim
        items = [(i, labels, rng.standard_normal(z_dim, dtype=np.float32), 10 + i) for i in range(6)]
        items.append((6, bad, items[0][2], 0))
        expected = {i: renderer.render_z(lb, z, s, "webp", 80, False)[0] for i, lb, z, s in items[:6]}
        with pytest.raises(BadInput) as refused:
            renderer.render_z(bad, items[0][2], 0, "webp", 80, False)
    finally:
        renderer.close()
    try:
        got = list(
            render_job_items(
                items, model, "webp", 80, False, choice, address=cluster.address, max_pixels=1 << 22
            )
        )
        assert sorted(r[0] for r in got) == list(range(7))
        done = {r[0]: r[1] for r in got if len(r) == 3}
        assert done == expected
        assert [r for r in got if len(r) == 2] == [(6, refused.value.message)]
        many = [(i, labels, items[i % 6][2], items[i % 6][3]) for i in range(64)]
        results = render_job_items(
            many, model, "webp", 80, False, choice, address=cluster.address, max_pixels=1 << 22
        )
        first = next(results)
        assert first[1] == expected[first[0] % 6]
        assert cluster.pids(ACTOR)
        results.close()
        deadline = time.monotonic() + 30
        while cluster.pids(ACTOR) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert cluster.pids(ACTOR) == []
    finally:
        ray.shutdown()
