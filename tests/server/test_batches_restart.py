"""A batch of 50 on a real uvicorn, SIGKILLed mid-job and restarted: exactly 50 results, none rendered twice."""

from __future__ import annotations

import base64
import io
import re
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def poll(url: str, until, timeout: float = 90.0, every: float = 0.02) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(url, timeout=5).json()
        if until(status):
            return status
        time.sleep(every)
    raise AssertionError(f"timed out; last status {status}")


def test_batch_survives_sigkill(server_process, tiny_weights: Path, tmp_path: Path, landscape) -> None:  # noqa: ANN001
    data_dir = tmp_path / "data"
    env = {
        "COLLAGE_WEIGHTS_DIR": str(tiny_weights),
        "COLLAGE_DATA_DIR": str(data_dir),
        "COLLAGE_MAX_BATCH": "4",
        "COLLAGE_LEASE_SECONDS": "2",  # the restarted server is a new replica: it resumes once the lease runs out
    }
    items = []
    for i in range(50):
        ids = landscape(128, 128)
        ids[0, :i] = 1  # 50 different maps
        buf = io.BytesIO()
        Image.fromarray(ids).save(buf, "PNG")
        items.append({"labels_png_b64": base64.b64encode(buf.getvalue()).decode(), "seed": i})

    first = server_process(env)
    job = httpx.post(first.url + "/api/v1/batches", json={"items": items, "format": "png"}, timeout=30).json()
    status_url = f"/api/v1/batches/{job['job_id']}"
    poll(first.url + status_url, lambda s: s["done"] >= 5)
    first.kill()

    results = data_dir / "jobs" / job["job_id"] / "results"
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in results.glob("*.png")}
    assert 5 <= len(before) < 50, f"the kill should land mid-job, found {len(before)} results"

    second = server_process(env)
    status = poll(second.url + status_url, lambda s: s["status"] == "done", every=0.1)
    assert (status["total"], status["done"], status["failed"]) == (50, 50, 0)

    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in results.iterdir()}
    assert sorted(after) == [f"{i:05d}.png" for i in range(50)]  # no temporaries, no extras
    assert {name: after[name] for name in before} == before  # finished results were not rewritten
    metrics = httpx.get(second.url + "/metrics").text
    rendered_again = float(
        re.search(r'^collage_renders_total\{source="job"\} (\S+)$', metrics, re.M).group(1)
    )
    assert rendered_again == 50 - len(before)  # the restart rendered only what was missing

    archive = httpx.get(second.url + status_url + "/results", timeout=30)
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        names = [n for n in zf.namelist() if n.endswith(".png")]
        assert len(names) == 50
        first_image = np.asarray(Image.open(io.BytesIO(zf.read("00000.png"))))
    assert first_image.shape == (128, 128, 3)
