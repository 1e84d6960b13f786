"""Batch renders on a Ray cluster: `collage render --ray-address ADDR`, and the actor pool batch jobs share.

The pipeline is one Ray Data `map_batches` stage on an actor pool:

- The driver (the `collage render` process, or the server) reads the inputs and draws every picture's style: one
  row per picture holding its label map as PNG bytes (label PNGs compress ~50×, so the object store and the
  network carry little), its z (float32 bytes) and its noise seed. Drawing z where the plan was made keeps the
  workers free of the plan, the presets and the style photo.
- Each actor of the pool holds one `Renderer` (batch_render.py), opened once per actor, and turns a few rows at
  a time into encoded pictures with the same batch-1 engine call a local render or a batch job's item makes, so
  the bytes are the same wherever a picture was rendered.
- Results stream back to the driver as blocks finish, in no particular order; `collage render` writes them
  through the same `OutputFolder` as a local run, so resume, manifest and progress behave as they do locally.

Actor pool size: `--ray-actors N`, else the cluster's CPUs divided by the threads each actor runs. `--threads 0`
means the CPU count of the cluster's smallest node: one actor per node using all of its cores, as a local run
uses every core of its machine, and one thread count everywhere (the pixels depend on it). One actor of two
threads beat two actors of one on a 2-core node (landscape-spade, 256², bf16, 500 maps: 33.1 images/s in blocks
of 8 against 23.7 in blocks of 32, local runs 31.1 and 29.0 beside them), as the driver and Ray Data's own actors
need CPU too. Each actor
reserves its threads' worth of CPUs, so Ray places actors only where the cores are free.

Fault tolerance: Ray Data gives actor pools `max_restarts=-1` and `max_task_retries=-1` unless told otherwise (Ray
2.60, `ActorPoolMapOperator._apply_default_remote_args`), and 2.60 deprecates passing remote arguments to
`map_batches` (removal planned for 2.64), so the defaults are relied on rather than restated: a killed actor is
restarted (its Renderer opened again) and the block it was rendering is sent again. A retried block can come back
twice, so every row carries a key and `render_rows` hands each key on once; a key that never comes back (the
pipeline failed) is reported as an error, never dropped in silence.

Same pixels everywhere: the actors open the model with the runtime and precision the driver resolved (OpenVINO
bf16 and f32 give other pixels) and refuse to start when their node resolves to anything else.

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
from typing import Any, cast

import numpy as np
from tqdm import tqdm

from common.runtime import RuntimeChoice
from server.batch_render import OutputFolder, Plan, Renderer, RenderSetupError, Sources, Task, by_source
from server.errors import BadInput

RAY_ADDRESS_ENV = "RAY_ADDRESS"
NO_RESULT = "no result came back from the Ray cluster"  # a row the pipeline lost (it failed or was shut down)
PICTURES_PER_TASK = (
    8  # rows per actor call: small enough that a killed actor loses little and a job's progress
)
# moves often, large enough that Ray's per-task overhead stays small (4 gave 0.76× the local rate, 16 0.82×, with
# two 1-thread actors on 2 cores)


def import_ray() -> Any:
    """The `ray` module, or a RenderSetupError naming the extra that brings it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the Data library is an extra of ray itself)
    except ImportError as exc:
        raise RenderSetupError(
            f"rendering on Ray needs ray[data] ({exc}); install the scale extra: pip install 'collage-studio[scale]'"
        ) from None
    return ray


def ray_address(flag: str | None) -> str | None:
    """`--ray-address`, else $RAY_ADDRESS, else None (render locally)."""
    return flag or os.environ.get(RAY_ADDRESS_ENV) or None


def connect(address: str) -> None:
    """Join the cluster at `address` as a driver (a no-op when this process already has), with Ray Data's own
    progress bars and start-of-run banners off: the caller reports progress."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no "execution finished" line per run
    # …and no warning that its progress bars are off
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


@dataclass(frozen=True)
class ActorSpec:
    """What every actor opens and how it encodes: the same for every row of a pipeline."""

    model_dir: str  # absolute; the same path on every node
    choice: RuntimeChoice
    max_pixels: int  # guards decoding the label PNGs
    fmt: str
    quality: int
    collage: bool
    expect: tuple[str, str] | None = None  # (runtime, precision) the actors must resolve to


class RenderActor:
    """One actor of the pool: a Renderer opened once, rows → pictures (batch 1 each)."""

    def __init__(self, spec: ActorSpec) -> None:
        self.spec = spec
        self.renderer = Renderer(Path(spec.model_dir), spec.choice, spec.max_pixels)
        info = self.renderer.model.runtime
        if spec.expect is not None and (info.runtime, info.precision) != spec.expect:
            raise RenderSetupError(
                f"this node opens {spec.model_dir} on {info.runtime} {info.precision}, not "
                f"{' '.join(spec.expect)} as the driver did; its pictures would differ"
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec, n = self.spec, len(batch["key"])
        data, ms, error = np.empty(n, object), np.zeros(n), np.full(n, "", object)
        bad = np.zeros(n, bool)
        for i in range(n):
            data[i] = b""
            try:
                labels = self.renderer.decode(batch["map"][i])
                z = np.frombuffer(batch["z"][i], dtype=np.float32)
                data[i], ms[i] = self.renderer.render_z(
                    labels, z, int(batch["seed"][i]), spec.fmt, spec.quality, spec.collage
                )
            except (
                Exception
            ) as exc:  # one bad map must not fail the pipeline: Ray Data stops at a UDF's error
                bad[i] = isinstance(exc, BadInput)
                error[i] = exc.message if isinstance(exc, BadInput) else f"{type(exc).__name__}: {exc}"
        return {"key": batch["key"], "data": data, "ms": ms, "error": error, "bad_input": bad}


def row(key: int, label_png: bytes, z: np.ndarray, seed: int) -> dict[str, Any]:
    """One picture to render: its key (unique in the pipeline), label map, style latent and noise seed."""
    return {"key": key, "map": label_png, "z": np.asarray(z, np.float32).tobytes(), "seed": seed}


@dataclass(frozen=True)
class Result:
    key: int
    data: bytes  # empty when it failed
    ms: float  # on the actor's inference thread
    error: str | None = None
    bad_input: bool = False  # the error is the input's fault (the message can be shown as is)


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


def render_rows(
    rows: list[dict[str, Any]], spec: ActorSpec, actors: int, per_task: int = PICTURES_PER_TASK
) -> Generator[Result]:
    """Render `rows` on an actor pool of `actors` (connect first); a Result per key, once each, as they come
    back. Closing the iterator early shuts the pipeline down (its actors are killed)."""
    if not rows:
        return
    ray = import_ray()
    tasks = math.ceil(len(rows) / per_task)
    dataset = ray.data.from_items(rows, override_num_blocks=tasks).map_batches(
        RenderActor,
        fn_constructor_args=(spec,),
        compute=ray.data.ActorPoolStrategy(size=min(actors, tasks)),
        num_cpus=spec.choice.threads,
        batch_size=None,  # a whole block per call: PICTURES_PER_TASK rows
        batch_format="numpy",
    )
    left = {r["key"] for r in rows}
    # iter() of Ray's iterable is a generator whose `finally` shuts the executor down: closed below
    batches = cast(
        Generator[dict[str, np.ndarray]], iter(dataset.iter_batches(batch_size=None, batch_format="numpy"))
    )
    try:
        for batch in batches:
            for key, data, ms, error, bad in zip(
                batch["key"], batch["data"], batch["ms"], batch["error"], batch["bad_input"], strict=True
            ):
                if int(key) not in left:
                    continue  # a retried block's second copy
                left.discard(int(key))
                yield Result(int(key), bytes(data), float(ms), str(error) or None, bool(bad))
    finally:
        batches.close()  # a caller that stops early (a cancelled job) stops the executor and its actors
    for key in sorted(left):
        yield Result(key, b"", 0.0, NO_RESULT)


def run_ray(
    renderer: Renderer,
    plan: Plan,
    sources: Sources,
    out: OutputFolder,
    todo: list[Task],
    bar: tqdm[Any],
    address: str,
    actors: int | None,
) -> dict[str, str]:
    """`run_local`'s twin on a Ray cluster: the driver reads the maps and writes the pictures, the actor pool
    renders them; → {map: why it failed}."""
    failed: dict[str, str] = {}

    def fail(source: str, why: str) -> None:
        if source not in failed:
            failed[source] = why
            tqdm.write(f"collage render: {source}: {why}", file=sys.stderr)

    ray = import_ray()
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
    if not rows:
        return failed  # nothing to render: no need to join the cluster
    connect(address)
    try:
        count, threads = pool_size(renderer.choice.threads, actors)
        choice = replace(renderer.choice, runtime=plan.runtime, precision=plan.precision, threads=threads)
        spec = ActorSpec(
            str(renderer.model.directory.resolve()),
            choice,
            renderer.max_pixels,
            plan.fmt,
            plan.quality,
            plan.collage,
            expect=(plan.runtime, plan.precision),
        )
        tqdm.write(
            f"collage render: on Ray at {address}, {count} actors × {threads} threads", file=sys.stderr
        )
        finished: set[int] = set()
        try:
            for result in render_rows(rows, spec, count):
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
        except Exception as exc:  # the pipeline itself failed: what came back is written, the rest reported
            tqdm.write(
                f"collage render: the Ray pipeline failed: {type(exc).__name__}: {exc}", file=sys.stderr
            )
            for key, task in enumerate(keyed):
                if key not in finished:
                    failed.setdefault(task.source, "not rendered: the Ray pipeline failed (see above)")
                    bar.update(1)
    finally:
        ray.shutdown()
    return failed
