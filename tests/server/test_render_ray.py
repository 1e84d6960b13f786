"""`collage render --ray-address` on a real Ray cluster (a head node in processes of its own, its actors in
worker processes): the same bytes and manifest as a local render, nothing lost or doubled when an actor's worker
process is killed mid-job, resume, and the error without Ray.

Ray comes with the dev install (`make dev` installs the scale extra); without it these tests fail, not skip."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.ray_cluster import LocalRay
from common.runtime import RuntimeChoice
from models.data import sample_layout
from server.batch_render import RenderSetupError
from server.codec import encode_label_png
from server.ray_render import row, start_pool
from server.render_cli import main

if importlib.util.find_spec("ray") is None:
    pytest.fail(
        "ray is not installed: pip install -e '.[cpu,train,dev,scale]' (make dev does)", pytrace=False
    )
import ray  # noqa: E402  (after the check that says how to install it)

REPO = Path(__file__).resolve().parents[2]
ACTOR = "RenderActor"  # in the title of a worker process holding one


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRay]:
    with LocalRay(cpus=2) as local_ray:
        yield local_ray


def write_maps(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    """Procedural maps m00.png… (label ids), map i of size sizes[i] (height, width)."""
    folder.mkdir(parents=True)
    for i, (height, width) in enumerate(sizes):
        labels, _ = sample_layout(np.random.default_rng(i), max(height, width))
        Image.fromarray(labels[:height, :width].astype(np.uint8)).save(folder / f"m{i:02d}.png")
    return folder


def args(source: Path, out: Path, weights: Path, *more: str) -> list[str]:
    """`collage render`'s arguments on tiny-spade, one runtime thread (local and per actor: the same pixels)."""
    base = [str(source), "--out", str(out), "--weights", str(weights), "--model", "tiny-spade"]
    return [*base, "--threads", "1", *more]


def on_ray(
    source: Path, out: Path, weights: Path, *more: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`collage render …` in a process of its own (a Ray driver), started."""
    command = [sys.executable, "-m", "common.cli", "render", *args(source, out, weights), *more]
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=os.environ | (env or {}),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = process.communicate(timeout=300)
    return process.returncode, err


def pictures(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}


def manifest(out: Path) -> list[dict[str, object]]:
    """The manifest's lines, sorted by file, without the timing (render_ms)."""
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return sorted(
        ({k: v for k, v in e.items() if k != "render_ms"} for e in lines), key=lambda e: str(e["file"])
    )


@pytest.mark.slow
def test_ray_renders_what_a_local_run_does(cluster: LocalRay, tiny_weights: Path, tmp_path: Path) -> None:
    """12 maps of two sizes and one the model refuses, two pictures each: the same pictures, manifest and failure
    report. $RAY_ADDRESS names a dead cluster: --ray-address wins."""
    maps = write_maps(tmp_path / "maps", [(64, 64)] * 8 + [(48, 96)] * 4)
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(maps / "odd-size.png")
    assert main(args(maps, tmp_path / "local", tiny_weights, "--styles-per-map", "2")) == 1
    process = on_ray(
        maps, tmp_path / "ray", tiny_weights, "--styles-per-map", "2", "--ray-address", cluster.address,
        env={"RAY_ADDRESS": "127.0.0.1:9"},
    )  # fmt: skip
    code, err = finish(process)
    assert code == 1, err
    assert f"on Ray at {cluster.address}, 2 actors × 1 threads" in err
    assert "odd-size.png:" in err and "24/26 pictures" in err and "1 map failed" in err
    local = pictures(tmp_path / "local")
    assert len(local) == 24 and pictures(tmp_path / "ray") == local
    assert manifest(tmp_path / "ray") == manifest(tmp_path / "local")
    assert (tmp_path / "ray" / "render.json").read_text() == (tmp_path / "local" / "render.json").read_text()


@pytest.mark.slow
def test_a_killed_actor_loses_and_doubles_nothing(
    cluster: LocalRay, tiny_weights: Path, tmp_path: Path
) -> None:
    """SIGKILL the worker process of one render actor once some but not all pictures are written: Ray restarts
    the actor and sends its blocks again; every picture is written once, byte for byte as a local run's."""
    maps = write_maps(tmp_path / "maps", [(512, 512)] * 16)
    assert main(args(maps, tmp_path / "local", tiny_weights, "--styles-per-map", "2")) == 0
    out = tmp_path / "ray"
    process = on_ray(maps, out, tiny_weights, "--styles-per-map", "2", "--ray-address", cluster.address)
    killed, done_then = None, 0
    deadline = time.monotonic() + 240
    while killed is None and process.poll() is None and time.monotonic() < deadline:
        done_then = len(list(out.rglob("*.png")))
        actors = cluster.pids(ACTOR)
        if done_then > 0 and actors:
            killed = actors[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    code, err = finish(process)
    assert code == 0, err
    assert killed is not None and 0 < done_then < 32, f"no actor killed mid-job ({done_then} pictures then)"
    assert pictures(out) == pictures(tmp_path / "local")
    files = [json.loads(line)["file"] for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(files) == 32 and len(set(files)) == 32
    assert manifest(out) == manifest(tmp_path / "local")


@pytest.mark.slow
def test_a_resume_on_ray_renders_only_what_is_missing(
    cluster: LocalRay, tiny_weights: Path, tmp_path: Path
) -> None:
    """A local run, three pictures deleted, a resume on Ray ($RAY_ADDRESS): those three come back byte for byte
    and nothing else is touched; a further run finds nothing to do (its pool started before it knew: no picture
    is written again)."""
    maps = write_maps(tmp_path / "maps", [(64, 64)] * 6)
    out = tmp_path / "out"
    assert main(args(maps, out, tiny_weights, "--styles-per-map", "2")) == 0
    before = pictures(out)
    gone = ["m00__1.png", "m03__0.png", "m05__1.png"]
    for name in gone:
        (out / name).unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    env = {"RAY_ADDRESS": cluster.address}
    code, err = finish(on_ray(maps, out, tiny_weights, "--styles-per-map", "2", env=env))
    assert code == 0, err
    assert "(9 done already)" in err and "on Ray at" in err
    assert pictures(out) == before
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept
    assert sorted(e["file"] for e in manifest(out)) == sorted(before)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    code, err = finish(on_ray(maps, out, tiny_weights, "--styles-per-map", "2", env=env))
    assert code == 0 and "(12 done already)" in err, err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == stamps


def test_more_threads_than_any_node_has_cpus_is_refused(
    cluster: LocalRay, tiny_weights: Path, tmp_path: Path
) -> None:
    """An actor reserving 3 CPUs on a 2-CPU cluster would never start: refused before anything renders."""
    maps = write_maps(tmp_path / "maps", [(64, 64)])
    command = ["render", *args(maps, tmp_path / "out", tiny_weights, "--ray-address", cluster.address)]
    command[command.index("--threads") + 1] = "3"
    done = subprocess.run(
        [sys.executable, "-m", "common.cli", *command], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert "the largest node of the Ray cluster has 2; use fewer --threads" in done.stderr
    assert not list((tmp_path / "out").glob("*.png"))


def test_without_ray_the_error_names_the_extra(tiny_weights: Path, tmp_path: Path) -> None:
    """An interpreter where `import ray` fails: exit 2 before the model loads, naming the scale extra."""
    maps = write_maps(tmp_path / "maps", [(64, 64)])
    script = (
        "import sys; sys.modules['ray'] = None\n"  # what `import ray` sees when it is not installed
        "from server.render_cli import main\n"
        f"sys.exit(main({args(maps, tmp_path / 'out', tiny_weights, '--ray-address', '127.0.0.1:9')!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'collage-studio[scale]'" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_by_default_an_actor_takes_every_core_of_a_node(
    cluster: LocalRay, tiny_weights: Path, tmp_path: Path
) -> None:
    """`--threads 0` on Ray resolves to the smallest node's CPUs (2 here): one actor of two threads, recorded in
    render.json, and the pictures of a local run at two threads."""
    maps = write_maps(tmp_path / "maps", [(64, 64)] * 4)
    base = [str(maps), "--weights", str(tiny_weights), "--model", "tiny-spade"]
    assert main([*base, "--out", str(tmp_path / "local"), "--threads", "2"]) == 0
    command = [sys.executable, "-m", "common.cli", "render", *base, "--out", str(tmp_path / "ray")]
    done = subprocess.run(
        [*command, "--ray-address", cluster.address], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert f"on Ray at {cluster.address}, 1 actors × 2 threads" in done.stderr
    assert json.loads((tmp_path / "ray" / "render.json").read_text())["threads"] == 2
    assert pictures(tmp_path / "ray") == pictures(tmp_path / "local")


@pytest.mark.slow
def test_a_pool_refuses_other_pixels_and_fails_when_no_actor_starts(
    cluster: LocalRay, tiny_weights: Path
) -> None:
    """A block asking for another runtime than the actors opened is refused (their pictures would differ), and a
    pool whose actors cannot open the model raises instead of waiting for them: both end the run, neither hangs."""
    labels, _ = sample_layout(np.random.default_rng(0), 64)
    rows = [row(0, encode_label_png(labels.astype(np.uint8)), np.zeros(8, np.float32), 0)]
    encoding = ("png", 90, False)
    choice = RuntimeChoice(runtime="openvino", threads=1)
    try:
        pool = start_pool(cluster.address, tiny_weights / "tiny-spade", choice, 1 << 22, encoding, 1)
        try:
            with pytest.raises(RenderSetupError, match="not onnxruntime f32 as the driver did"):
                list(pool.render(rows, expect=("onnxruntime", "f32")))
        finally:
            pool.close()
        pool = start_pool(cluster.address, tiny_weights / "missing", choice, 1 << 22, encoding, 1)
        try:
            with pytest.raises(ray.exceptions.ActorDiedError, match="no model.json"):
                list(pool.render(rows))
        finally:
            pool.close()
    finally:
        ray.shutdown()
