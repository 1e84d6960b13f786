"""The CollageGAN composition stage's cost beside the base generator's, on the served default model.

Issue 21 asks that composing 5 instances at 256² cost at most the base generator's time on the same runtime.
The model folder is opened by the server's own loader (`server.registry.load_model`: same runtime choice and
fallback, its class generators on the same runtime as its generator). Per instance count (1, 5, 20) one painted
map (`models.data.painted`: deterministic, realistic sizes for 256², every instance large enough for its
generator, so the stage composes exactly that many); the stage's time is `common.collage.compose` alone, what
the server's engine reports as `collage_ms` (not the base generator, not the instance map, which the base
generator needs too). The base generator (batch 1) and the stage on each map take turns frame by frame, as in
`benchmarks.runtimes`, so none pays for going first or for a noisier minute on a shared machine; median and p90
of `runs` frames each after `warmup` frames (which also compile, on OpenVINO, the batch shapes the waves use).

    python -m benchmarks.collage [--weights weights] [--model landscape-spade] [--quick]
                                 [--out benchmarks/results/collage.json] [--markdown docs/benchmarks.md]

`make bench` runs it on the default model (results["collage"], a section of docs/benchmarks.md); alone,
`--markdown` rewrites only this section of a page written by `make bench`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from common.collage import compose, plan, waves
from common.instances import instances_from_labels
from common.runtime import RuntimeChoice, cpu_has_native_bf16, installed_runtimes
from models.data.painted import THINGS, painted_map, thing_mix
from models.version import code_version, cpu_flags, cpu_model

REPO = Path(__file__).resolve().parents[1]
SIZE = 256  # the studio's size, and the issue's
COUNTS = (1, 5, 20)  # instances composed per picture
BUDGET_COUNT = 5  # the count the budget is set for: stage ≤ 1× base
MAP_SEED = 21  # painted maps: seed MAP_SEED + count
HEADING = "## CollageGAN composition stage"


def bench_maps(model: Any, size: int, counts: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """count → (labels, instances) H×W: a painted map on which the stage composes exactly `count` instances,
    of the classes the model has generators for (one of each first, then mostly trees)."""
    specs = {cid: g.spec for cid, g in model.class_generators.items()}
    kinds = [name for name in THINGS if name in {s.thing for s in specs.values()}]
    if not kinds:
        raise ValueError(f"{model.name}'s class generators draw none of {sorted(THINGS)}")
    min_side = max(s.min_side for s in specs.values())
    out = {}
    for count in counts:
        seed = MAP_SEED + count
        labels = painted_map(size, thing_mix(count, kinds, seed), seed, min_side=min_side)
        instances = instances_from_labels(labels, model.thing_ids)
        planned = len(plan(labels, instances, specs))
        if planned != count:  # painted_map checks its own instances; this is the stage's view of them
            raise RuntimeError(f"the stage plans {planned} instances on the {count}-instance map")
        out[count] = (labels, instances)
    return out


def taking_turns(calls: Mapping[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, list[float]]:
    """ms of every timed frame of each call, the calls interleaved frame by frame after `warmup` frames."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for i in tqdm(range(warmup + runs), desc="collage stage vs base", unit="frame", leave=False):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            if i >= warmup:
                times[name].append((time.perf_counter() - start) * 1000.0)
    return times


def _stats(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "min_ms": round(min(ms), 2),
    }


def measure_collage(
    folder: Path,  # a model folder (model.json); skipped, with the reason, when it has no class generators
    size: int = SIZE,
    counts: Sequence[int] = COUNTS,
    runs: int = 30,  # timed frames per call
    warmup: int = 3,  # untimed frames per call first (OpenVINO compiles batch 1 and the open-batch form once)
    threads: int = 0,  # runtime threads; 0 = the runtime's default, as the server's COLLAGE_THREADS
) -> dict[str, Any]:
    """Base generator (batch 1) and the composition stage per instance count, in turns; their ratios."""
    from server.registry import load_model

    model = load_model(folder, RuntimeChoice(threads=threads))
    result: dict[str, Any] = {"model": model.name, "folder": folder.name, "size": size}
    if not model.has_collage:
        return result | {"skipped": f"{model.name} has no class generators (model.json lists none)"}
    model.check_size(size, size)
    maps = bench_maps(model, size, counts)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1, model.z_dim), dtype=np.float32)  # a seeded style, as a paint session has
    noise = (
        rng.standard_normal((1, model.noise_channels, size, size), dtype=np.float32)
        if model.noise_channels
        else None
    )

    def base_call(count: int) -> Callable[[], np.ndarray]:
        labels, instances = maps[count]
        feeds = (labels[None, None].astype(np.int64), instances[None, None].astype(np.int64))
        return partial(model.run_generator, *feeds, z, noise)

    base_count = BUDGET_COUNT if BUDGET_COUNT in maps else counts[len(counts) // 2]
    calls: dict[str, Callable[[], object]] = {"base": base_call(base_count)}
    for count, (labels, instances) in maps.items():
        base = base_call(count)()[0]  # [3,H,W]: the stage composes onto the generator's own picture
        calls[str(count)] = partial(compose, base, labels, instances, model.class_generators)
    times = taking_turns(calls, runs, warmup)

    base_stats = _stats(times["base"])
    specs = {cid: g.spec for cid, g in model.class_generators.items()}
    rows = []
    for count, (labels, instances) in maps.items():
        planned = plan(labels, instances, specs)
        stats = _stats(times[str(count)])
        rows.append(
            {
                "instances": count,
                "by_class": {
                    t: sum(p.thing == t for p in planned) for t in sorted({p.thing for p in planned})
                },
                "waves": len(waves(planned)),  # generator calls per class add up over these
                **stats,
                "ms_per_instance": round(stats["p50_ms"] / count, 2),
                "vs_base": round(stats["p50_ms"] / base_stats["p50_ms"], 3),
                "vs_base_p90": round(stats["p90_ms"] / base_stats["p90_ms"], 3),
            }
        )
    info = model.runtime  # read after the runs: OpenVINO reports the precision it compiled with
    return result | {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": code_version(REPO),
        "runtime": info.runtime,
        "runtime_version": str(import_module(info.runtime).__version__),
        "device": info.device,
        "precision": info.precision,
        "class_runtime": sorted(
            {f"{g.decoder.info.runtime} {g.decoder.info.precision}" for g in model.class_generators.values()}
        ),
        "threads": threads,  # 0: the runtime's default
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "native_bf16": "openvino" in installed_runtimes() and cpu_has_native_bf16(),
        "runs": runs,
        "warmup": warmup,
        "class_generators": [
            {
                "thing": s.thing,
                "context_size": s.context_size,
                "target_size": s.target_size,
                "min_side": s.min_side,
            }
            for s in sorted(specs.values(), key=lambda s: s.class_id)
        ],
        "base": {"instances_on_map": base_count, **base_stats},
        "stage": rows,
    }


def ratio_line(result: Mapping[str, Any]) -> str | None:
    """The stage / base ratios as one sentence (the Ratios list of docs/benchmarks.md), None when skipped."""
    if "stage" not in result:
        return None
    ratios = ", ".join(f"{r['instances']}: {r['vs_base']:.2f}" for r in result["stage"])
    return (
        f"CollageGAN stage / base generator ({result['model']}, {result['size']}², {result['runtime']} "
        f"{result['precision']}), median time by instances composed: {ratios}"
    )


def markdown_lines(result: Mapping[str, Any]) -> list[str]:
    """The "CollageGAN composition stage" section of docs/benchmarks.md."""
    out = [HEADING, ""]
    if "stage" not in result:
        return out + [f"Not measured: {result.get('skipped', 'no result')}.", ""]
    classes = ", ".join(
        f"{c['thing']} ({c['context_size']}² context → {c['target_size']}² box, min side {c['min_side']} px)"
        for c in result["class_generators"]
    )
    base = result["base"]
    out += [
        f"`benchmarks/collage.py` on `{result['model']}` at {result['size']}², {result['runtime']} "
        f"{result['runtime_version']} {result['precision']} ({result['device']}; class generators on "
        f"{', '.join(result['class_runtime'])}), {result['threads'] or 'the runtime default'} threads; "
        f"{result['cpu_model']}, flags: "
        f"{' '.join(result['cpu_flags'])}. Measured {result['date']} (code {result['code']}). Class generators: "
        f"{classes}.",
        "",
        "One painted map per count (`models.data.painted`: mountains, meadow, trees, houses and rocks of 256² "
        "sizes, every one composed); stage = `common.collage.compose` alone, as the server's `collage_ms`. The "
        f"base generator (batch 1, on the {base['instances_on_map']}-instance map) and the stage on every map "
        f"take turns frame by frame: {result['runs']} timed frames each after {result['warmup']} warm-up frame(s). "
        "The issue's budget: 5 instances ≤ 1× the base.",
        "",
        "| instances (by class) | waves | stage p50 ms | p90 ms | ms / instance | stage / base (p50) | (p90) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| base generator | | {base['p50_ms']:.1f} | {base['p90_ms']:.1f} | | 1.00 | 1.00 |",
    ]
    for r in result["stage"]:
        by_class = ", ".join(f"{n} {t}" for t, n in r["by_class"].items())
        out.append(
            f"| {r['instances']} ({by_class}) | {r['waves']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
            f"{r['ms_per_instance']:.1f} | **{r['vs_base']:.2f}×** | {r['vs_base_p90']:.2f}× |"
        )
    return out + [""]


def splice(page: str, lines: Sequence[str]) -> str:
    """`page` with its CollageGAN section replaced by `lines` (inserted before "## Reproduce", or at the end,
    when it has none): a standalone run updates its own section of a page `make bench` wrote."""
    section = "\n".join(lines).rstrip("\n") + "\n\n"
    start = page.find(HEADING + "\n")
    if start >= 0:
        end = page.find("\n## ", start + len(HEADING))
        return page[:start] + section + (page[end + 1 :] if end >= 0 else "")
    anchor = page.find("## Reproduce\n")
    if anchor >= 0:
        return page[:anchor] + section + page[anchor:]
    return page.rstrip("\n") + "\n\n" + section


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.collage", description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "weights", help="folder of model folders")
    parser.add_argument(
        "--model", default="landscape-spade", help="model folder name (default: the served default)"
    )
    parser.add_argument("--size", type=int, default=SIZE, help=f"map side in pixels (default {SIZE})")
    parser.add_argument(
        "--counts", type=int, nargs="+", default=list(COUNTS), help="instances per map (default 1 5 20)"
    )
    parser.add_argument("--quick", action="store_true", help="5 timed frames, 1 warm-up")
    parser.add_argument("--runs", type=int, help="timed frames per call (default 30; quick 5)")
    parser.add_argument("--warmup", type=int, help="warm-up frames per call (default 3; quick 1)")
    parser.add_argument("--threads", type=int, default=0, help="runtime threads (0 = the runtime's default)")
    parser.add_argument("--out", type=Path, help="write the JSON here")
    parser.add_argument("--markdown", type=Path, help="rewrite this section of a benchmarks page")
    args = parser.parse_args(argv)
    runs = args.runs or (5 if args.quick else 30)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    if runs < 1 or warmup < 0 or min(args.counts) < 1:
        parser.error("--runs and --counts must be ≥ 1, --warmup ≥ 0")
    result = measure_collage(args.weights / args.model, args.size, args.counts, runs, warmup, args.threads)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.markdown:
        page = args.markdown.read_text() if args.markdown.exists() else "# Benchmarks\n"
        args.markdown.write_text(splice(page, markdown_lines(result)))
    print(json.dumps(result))  # one line: `benchmarks.run.run_script` and the tests parse the last line
    return result


if __name__ == "__main__":
    main()
