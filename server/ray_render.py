"""Batch renders on a Ray cluster: `collage render --ray-address ADDR`, and the actor pool batch jobs share.

A pool of render actors, each holding one `Renderer` (batch_render.py) opened once, fed blocks of rows:

- The driver (the `collage render` process, or the server) reads the inputs and draws every picture's style: one
  row per picture holding its label map as PNG bytes (label PNGs compress ~50×, so the object store and the
  network carry little), its z (float32 bytes) and its noise seed. Drawing z where the plan was made keeps the
  workers free of the plan, the presets and the style photo.
- Each actor turns a block of rows into encoded pictures with the same batch-1 engine call a local render or a
  batch job's item makes, so the bytes are the same wherever a picture was rendered. Every actor holds
  IN_FLIGHT blocks, so it starts the next one while the driver writes the last one's pictures.
- Results come back block by block as actors finish, in no particular order; `collage render` writes them
  through the same `OutputFolder` as a local run, so resume, manifest and progress behave as they do locally.
- `collage render` starts the pool before it opens its own copy of the model: the actors' start (a process,
  the imports, the model compiled) overlaps the driver's instead of following it (so a resume with nothing
  left to render starts and stops a pool too).

Plain Ray actors rather than a Ray Data pipeline: on a one-node cluster Ray Data's executor took ~0.7 s more to
hand out the first block than an actor took to start, and a short batch pays start-up in full.

Actor pool size: `--ray-actors N`, else the cluster's CPUs divided by the threads each actor runs. `--threads 0`
means the CPU count of the cluster's smallest node: one actor per node using all of its cores, as a local run
uses every core of its machine, and one thread count everywhere (the pixels depend on it). One actor of two
threads beat two actors of one on a 2-core node (landscape-spade, 256², bf16, 500 maps: 33.1 images/s in blocks
of 8 against 23.7 in blocks of 32, local runs 31.1 and 29.0 beside them), as the driver needs CPU too. Each actor
reserves its threads' worth of CPUs, so Ray places actors only where the cores are free.

Fault tolerance: actors are created with `max_restarts=-1` and `max_task_retries=-1`: a killed actor is restarted
(its Renderer opened again) and the blocks it held are sent again; a block's result reaches the driver once. An
actor that cannot start (its constructor raises) is not restarted, and asking it for pictures raises: the
pool fails, what came back is kept and the rest is reported (`collage render`) or stays pending (a batch job).

Same pixels everywhere: every block carries the runtime and precision the driver resolved (OpenVINO bf16 and
f32 give other pixels), and an actor whose node resolved anything else refuses it, restarted actors included.

Where things must be: the actors get the model folder's absolute path as the driver sees it. On a multi-node
cluster the weights folder must be at that same path on every node (or on a shared file system), and the project
installed in the same Python on every node; Ray ships neither. Inputs and outputs stay on the driver.

Ray is imported only when a Ray path runs (the `scale` extra); nothing else in the project needs it.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from common.runtime import RuntimeChoice
from server.batch_render import OutputFolder, Plan, Renderer, RenderSetupError, Sources, Task, by_source
from server.errors import BadInput

RAY_ADDRESS_ENV = "RAY_ADDRESS"
# rows per actor call: small enough that a killed actor loses little and a job's progress moves often, large
# enough that Ray's per-call overhead stays small (4 gave 0.76× the local rate, 16 0.82×, with two 1-thread actors
# on 2 cores)
PICTURES_PER_TASK = 8
IN_FLIGHT = 2  # blocks each actor holds: one rendering, the next one waiting on the actor


def import_ray() -> Any:
    """The `ray` module, or a RenderSetupError naming the extra that brings it."""
    try:
        import ray
    except ImportError as exc:
        raise RenderSetupError(
            f"rendering on Ray needs ray ({exc}); install the scale extra: pip install 'collage-studio[scale]'"
        ) from None
    return ray


def ray_address(flag: str | None) -> str | None:
    """`--ray-address`, else $RAY_ADDRESS, else None (render locally)."""
    return flag or os.environ.get(RAY_ADDRESS_ENV) or None


def connect(address: str) -> None:
    """Join the cluster at `address` as a driver (a no-op when this process already has)."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING)


@dataclass(frozen=True)
class ActorSpec:
    """What every actor opens and how it encodes: the same for every row the pool renders."""

    model_dir: str  # absolute; the same path on every node
    choice: RuntimeChoice
    max_pixels: int  # guards decoding the label PNGs
    fmt: str
    quality: int
    collage: bool


@dataclass(frozen=True)
class Result:
    key: int
    data: bytes  # empty when it failed
    ms: float  # on the actor's inference thread
    error: str | None = None
    bad_input: bool = False  # the error is the input's fault (the message can be shown as is)


class RenderActor:
    """One actor of the pool: a Renderer opened once, blocks of rows → Results (batch 1 each)."""

    def __init__(self, spec: ActorSpec) -> None:
        self.spec = spec
        self.renderer = Renderer(Path(spec.model_dir), spec.choice, spec.max_pixels)

    def render(self, rows: list[dict[str, Any]], expect: tuple[str, str] | None) -> list[Result]:
        """Render `rows`; a Result each. `expect`: the (runtime, precision) the pictures must come from."""
        info = self.renderer.model.runtime
        if expect is not None and (info.runtime, info.precision) != expect:
            raise RenderSetupError(
                f"this node opens {self.spec.model_dir} on {info.runtime} {info.precision}, not "
                f"{' '.join(expect)} as the driver did; its pictures would differ"
            )
        spec, results = self.spec, []
        for r in rows:
            try:
                labels = self.renderer.decode(r["map"])
                z = np.frombuffer(r["z"], dtype=np.float32)
                data, ms = self.renderer.render_z(labels, z, r["seed"], spec.fmt, spec.quality, spec.collage)
                results.append(Result(r["key"], data, ms))
            except Exception as exc:  # one bad map must not fail its block
                if isinstance(exc, BadInput):
                    results.append(Result(r["key"], b"", 0.0, exc.message, bad_input=True))
                else:
                    results.append(Result(r["key"], b"", 0.0, f"{type(exc).__name__}: {exc}"))
        return results


def row(key: int, label_png: bytes, z: np.ndarray, seed: int) -> dict[str, Any]:
    """One picture to render: its key (unique in the pool's run), label map, style latent and noise seed."""
    return {"key": key, "map": label_png, "z": np.asarray(z, np.float32).tobytes(), "seed": int(seed)}


def node_threads() -> int:
    """What `--threads 0` means on the cluster joined: the CPUs of its smallest live node (module docstring)."""
    ray = import_ray()
    cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]
    return max(int(min(cpus, default=1)), 1)


def pool_size(threads: int, actors: int | None) -> tuple[int, int]:
    """(actors, runtime threads per actor): `actors`, else as many as the cluster's CPUs hold (module docstring).
    RenderSetupError when no node has the CPUs one actor reserves: Ray would wait for such a node forever."""
    ray = import_ray()
    per_actor = threads or node_threads()
    largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=0)
    if per_actor > largest:
        raise RenderSetupError(
            f"each actor runs {per_actor} threads and reserves as many CPUs, but the largest node of the "
            f"Ray cluster has {largest:g}; use fewer --threads"
        )
    if actors is not None:
        return max(actors, 1), per_actor
    cpus = ray.cluster_resources().get("CPU", 1)
    return max(int(cpus) // per_actor, 1), per_actor


class RenderPool:
    """`count` render actors of `spec`, started at once: they open the model while the caller goes on.
    Connect first; `close()` kills them (how a cancelled job stops rendering)."""

    def __init__(self, spec: ActorSpec, count: int) -> None:
        ray = import_ray()
        actor = ray.remote(num_cpus=spec.choice.threads, max_restarts=-1, max_task_retries=-1)(RenderActor)
        self.threads = spec.choice.threads  # runtime threads per actor
        self.actors = [actor.remote(spec) for _ in range(count)]

    def render(
        self,
        rows: list[dict[str, Any]],
        expect: tuple[str, str] | None = None,
        per_task: int = PICTURES_PER_TASK,
    ) -> Generator[Result]:
        """A Result per row, as blocks come back. Raises when the pool fails (an actor could not start or
        refused `expect`); the rows not yet yielded then never are."""
        ray = import_ray()
        blocks = [rows[i : i + per_task] for i in range(0, len(rows), per_task)][::-1]  # popped from the end
        waiting: dict[Any, Any] = {}  # the ObjectRef of a block's results → the actor rendering it

        def send(actor: Any) -> None:
            if blocks:
                waiting[actor.render.remote(blocks.pop(), expect)] = actor

        for _ in range(IN_FLIGHT):
            for actor in self.actors:
                send(actor)
        while waiting:
            [ready], _ = ray.wait(list(waiting), num_returns=1)
            actor = waiting.pop(ready)
            results = ray.get(ready)
            send(actor)  # before the driver handles these: the actor is never without work
            yield from results

    def close(self) -> None:
        ray = import_ray()
        for actor in self.actors:
            ray.kill(actor)


def start_pool(
    address: str,
    model_dir: Path,
    choice: RuntimeChoice,
    max_pixels: int,
    encoding: tuple[str, int, bool],
    actors: int | None,
    pictures: int | None = None,
) -> RenderPool:
    """Join the cluster at `address` and start a pool opening `model_dir` with `choice` (its thread count 0:
    every core of the smallest node) and encoding pictures as (format, quality, collage): `actors` actors, else
    as many as the cluster's CPUs hold (module docstring), never more than `pictures` (when known) needs."""
    connect(address)
    count, threads = pool_size(choice.threads, actors)
    if pictures is not None:
        count = max(min(count, math.ceil(pictures / PICTURES_PER_TASK)), 1)
    spec = ActorSpec(str(model_dir.resolve()), replace(choice, threads=threads), max_pixels, *encoding)
    return RenderPool(spec, count)


def run_ray(
    renderer: Renderer,
    plan: Plan,
    sources: Sources,
    out: OutputFolder,
    todo: list[Task],
    bar: tqdm[Any],
    pool: RenderPool,
) -> dict[str, str]:
    """`run_local`'s twin on a Ray actor pool: the driver reads the maps and writes the pictures, the pool
    renders them; → {map: why it failed}."""
    failed: dict[str, str] = {}

    def fail(source: str, why: str) -> None:
        if source not in failed:
            failed[source] = why
            tqdm.write(f"collage render: {source}: {why}", file=sys.stderr)

    keyed: list[Task] = []
    rows = []
    for source, group in by_source(todo):
        try:
            data = sources.read(source)
        except Exception as exc:  # as run_local: a map it cannot read is reported, the rest render
            fail(source, exc.message if isinstance(exc, BadInput) else f"{type(exc).__name__}: {exc}")
            bar.update(len(group))
            continue
        for task in group:
            z, seed = renderer.style(plan, task)
            rows.append(row(len(keyed), data, z, seed))
            keyed.append(task)
    finished: set[int] = set()
    try:
        for result in pool.render(rows, expect=(plan.runtime, plan.precision)):
            task = keyed[result.key]
            if result.error is not None:
                fail(task.source, result.error)
            else:
                try:
                    out.write(plan, task, result.data, result.ms)
                except OSError as exc:  # as run_local: the map fails, the batch goes on
                    fail(task.source, f"{type(exc).__name__}: {exc}")
            finished.add(result.key)
            bar.update(1)
    except Exception as exc:  # the pool itself failed: what came back is written, the rest reported
        tqdm.write(f"collage render: rendering on Ray failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        for key, task in enumerate(keyed):
            if key not in finished:
                failed.setdefault(task.source, "not rendered: rendering on Ray failed (see above)")
                bar.update(1)
    return failed
