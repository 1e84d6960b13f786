"""`collage eval`: score an exported model folder the papers' way, with a judge trained here.

    collage eval weights/NAME [--segmenter RUN_OR_PT] [--n 500] [--size 256] [--seed 0] [--out eval.json] \\
        [--compare weights/NAME-10pct …] [--runtime auto|openvino|onnxruntime] [--precision auto|f32|bf16] \\
        [--no-collage] [--layouts procedural|painted|both] [--free-refs 100]

The numbers go to eval.json (default: inside the model folder) and into model.json's `metrics`; a table is
printed. `--compare DIR` scores further model folders (e.g. the same model exported at 10% of its training) on
the identical data and reports them beside the main one. `--runtime` / `--precision` choose what runs the ONNX
graphs as the server's COLLAGE_RUNTIME / COLLAGE_PRECISION do, with the server's default (auto), so the scores
and latency are those of what is served; the report records what actually ran. What is measured is explained in
the package docstring (`models/eval/__init__.py`), the data it is measured on in `models/eval/data.py`.

`--layouts` picks the held-out layouts: procedural (the default, what every published number was measured
on), painted (maps drawn as a person paints them, `models/data/painted_layouts.py`, with sets of their own:
`models/eval/data.py`) or both. Every metric is reported per kind: the top level of eval.json and of model.json's
`metrics` stays procedural, painted layouts get a `painted` section in each, and the table one block per kind.

A model with CollageGAN class generators (model.json's `class_generators`) is also judged with its composition
stage on the same base pictures (`models/eval/stage.py`): eval.json's `collage` section and a `without | with`
table, the stage's cost beside the base generator's, and the issue's checks on the difference. `--no-collage`
skips that; `--compare` folders are scored without it.

Out-of-family styles (issue 22, `models/eval/free_styles.py`): `--free-refs N` references rendered in free
styles (off the seven families) are painted on their own layouts with their encoded style and with each preset;
eval.json's `free_styles` compares the per-class Lab error of the two, for the main model and with procedural
layouts only. `--free-refs 0` skips it; a model without encoder or presets fails its check with a note.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from common.checksums import sha256_file
from common.runtime import PRECISION_CHOICES, RUNTIME_CHOICES, RuntimeChoice, RuntimeUnavailable
from models.eval.data import (
    CENTROID_LAYOUTS,
    FREE_REFS,
    MEAN_SAMPLES,
    STYLE_REFS_PER_FAMILY,
    EvalOptions,
    check_disjoint,
    class_mean_colours,
    eval_seeds,
    prepare,
)
from models.eval.free_styles import free_style_section
from models.eval.judge import Judge
from models.eval.onnx_model import THREADS, ExportedModel, latencies_ms
from models.eval.report import (
    TOP_LEVEL,
    finish_section,
    layout_section,
    merge_metrics,
    metrics_for_manifest,
    table,
    write_json,
)
from models.version import REPO_ROOT, cpu_flags, cpu_model, shown_path

LAYOUT_CHOICES = {"procedural": ("procedural",), "painted": ("painted",), "both": ("procedural", "painted")}
# The judge every published number was measured with (`collage slim` of the run recorded in weights/README.md).
JUDGE = REPO_ROOT / "weights" / "judges" / "landscape.pt"


def judge_checksum(path: Path) -> str | None:
    """sha256 of a judge file (a `collage slim` file or checkpoint); None for a run folder."""
    return sha256_file(path) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collage eval", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add(
        "model",
        type=Path,
        nargs="?",
        help="exported model folder, e.g. weights/landscape-spade; omitted: score only the judge "
        "(reference renders and flat baseline)",
    )
    add(
        "--segmenter",
        type=Path,
        default=JUDGE,
        help="judge checkpoint or run folder (collage train --arch segmenter; default: the committed judge "
        "weights/judges/landscape.pt, so scores are comparable between sessions)",
    )
    add("--n", type=int, default=500, help="held-out layouts (default 500)")
    add(
        "--size",
        type=int,
        default=None,
        help="evaluation size (default: the model's image_size, else the judge's)",
    )
    add("--seed", type=int, default=0, help="shifts every evaluation dataset seed by 16·SEED (default 0)")
    add("--out", type=Path, default=None, help="eval.json path (default: MODEL/eval.json)")
    add(
        "--compare",
        type=Path,
        action="append",
        default=[],
        help="another model folder scored on the same data",
    )
    add(
        "--runtime",
        choices=RUNTIME_CHOICES,
        default="auto",
        help="what runs the ONNX graphs (default auto: OpenVINO where installed, else onnxruntime, as the "
        "server does)",
    )
    add(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="arithmetic of the graphs (default auto: bf16 where OpenVINO runs it natively, else f32); "
        "bf16 needs OpenVINO on a CPU with AVX512-BF16 or AMX",
    )
    add("--batch", type=int, default=8, help="images per runtime / judge call (default 8)")
    add("--workers", type=int, default=2, help="processes rendering the procedural sets (default 2)")
    add(
        "--cache-dir",
        type=Path,
        default=None,
        help="keep the eval renders in this shard cache for later runs",
    )
    add("--mean-samples", type=int, default=MEAN_SAMPLES, help="training renders for the flat-colour means")
    add(
        "--centroid-layouts",
        type=int,
        default=CENTROID_LAYOUTS,
        help="layouts per family for style centroids",
    )
    add("--style-refs", type=int, default=STYLE_REFS_PER_FAMILY, help="style references per family")
    add(
        "--free-refs",
        type=int,
        default=FREE_REFS,
        help=f"references in free styles, off the seven families, for the out-of-family style check (default "
        f"{FREE_REFS}; 0: skip it)",
    )
    add(
        "--layouts",
        choices=list(LAYOUT_CHOICES),
        default="procedural",
        help="held-out layouts: procedural (default), painted (as a person paints), or both, reported apart",
    )
    add("--no-merge", action="store_true", help="do not write the metrics into model.json")
    add(
        "--no-collage",
        action="store_true",
        help="do not evaluate the CollageGAN stage (by default a model with class generators is judged without "
        "and with it)",
    )
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (FileNotFoundError, ValueError, KeyError, RuntimeUnavailable) as e:
        print(f"collage eval: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)  # noqa: T201
        return 2


def distinct_names(models: list[ExportedModel]) -> list[str]:
    """Report labels for the evaluated folders: the manifest name, plus the folder where names clash.

    Two exports of one model (the shipped folder and a newer run, or a 10% snapshot) share their manifest
    name; `fd_seg_compare` is keyed by label and the table headed by it, so clashing names would hide a result.
    """
    names = [m.name for m in models]
    labels = [
        n if names.count(n) == 1 else f"{n} ({shown_path(m.folder)})"
        for n, m in zip(names, models, strict=True)
    ]
    return [lab if labels.count(lab) == 1 else f"{lab} #{i + 1}" for i, lab in enumerate(labels)]


def _stage_status(model: ExportedModel | None, skipped: bool) -> str | None:
    """Whether the CollageGAN stage was judged, for eval.json's `info` (None without a model)."""
    if model is None:
        return None
    if not model.has_collage:
        return "not evaluated: the model has no class generators"
    if skipped:
        return "not evaluated (--no-collage)"
    return f"evaluated for {', '.join(model.collage_classes)}"


def _run(args: argparse.Namespace) -> int:
    torch.set_num_threads(THREADS)
    for key in ("batch", "workers", "mean_samples", "centroid_layouts", "style_refs"):
        if getattr(args, key) < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be ≥ 1, got {getattr(args, key)}")
    if args.free_refs < 0:
        raise ValueError(f"--free-refs must be ≥ 0 (0: skip the out-of-family styles), got {args.free_refs}")
    choice = RuntimeChoice(args.runtime, args.precision, THREADS)
    model = ExportedModel(args.model, choice) if args.model else None
    if model is None and args.compare:
        raise ValueError("--compare needs a model folder to compare with")
    others = [ExportedModel(folder, choice) for folder in args.compare]
    judge = Judge(args.segmenter)
    if args.size is not None:
        size = args.size
    elif model is not None:
        size = model.image_size[0]
    else:
        size = judge.size
    opts = EvalOptions(
        n=args.n, size=size, seed=args.seed, batch=args.batch, workers=args.workers,
        cache_dir=args.cache_dir, mean_samples=args.mean_samples, centroid_layouts=args.centroid_layouts,
        style_refs=args.style_refs, free_refs=args.free_refs,
    )  # fmt: skip
    kinds = LAYOUT_CHOICES[args.layouts]
    seeds = eval_seeds(opts.seed, kinds)
    for m in [model, *others] if model else []:
        m.check_size(opts.size)
        check_disjoint(m, seeds)
    started = time.time()
    names = distinct_names([model, *others] if model else [])
    stage = model is not None and model.has_collage and not args.no_collage
    class_means = class_mean_colours(opts.size, opts.mean_samples, opts.workers)
    parts: dict[str, dict[str, Any]] = {}
    first = None  # the first layout scored: the latency's input
    for kind in kinds:
        data = prepare(judge, opts, model is not None, kind, class_means)
        first = first or (data.labels[0].copy(), data.instances[0].copy())
        parts[kind] = layout_section(data, model, others, judge, names, opts.batch, stage)
        del data  # the renders of one kind at a time
    free_refs = 0  # the out-of-family styles go with procedural layouts (their references are procedural)
    if model is not None and TOP_LEVEL in parts and opts.free_refs:
        free_refs = opts.free_refs
        parts[TOP_LEVEL]["free_styles"] = free_style_section(model, opts)
    latencies = latencies_ms([model, *others], *first) if model is not None and first else None
    for section in parts.values():
        finish_section(section, latencies)
    # What ran the graphs (every folder gets the same choice), read after running: see ExportedModel.runtime.
    requested = {"requested": {"runtime": args.runtime, "precision": args.precision}}
    ran = None if model is None else model.runtime() | requested
    info = {
        "n": opts.n,
        "size": opts.size,
        "layouts": list(kinds),
        "seeds": seeds,
        "style_refs_per_family": opts.style_refs,
        "free_refs": free_refs,  # 0: no out-of-family styles (--free-refs 0, painted layouts only, no model)
        "centroid_layouts": opts.centroid_layouts,
        "mean_samples": opts.mean_samples,
        # The checksum tells two judges apart when a report is read later: the committed judge has been retrained.
        "segmenter": {
            "path": shown_path(args.segmenter),
            "sha256": judge_checksum(args.segmenter),
            **judge.info,
        },
        "wall_time_s": round(time.time() - started, 1),
        # The latency is this machine's: sessions here have landed on CPUs 4× apart.
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "runtime": ran,
        "collage": _stage_status(model, args.no_collage),
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # Procedural layouts at the top level, as before --layouts existed; other kinds in a section each.
    report: dict[str, Any] = {**parts.get(TOP_LEVEL, {})}
    report |= {kind: section for kind, section in parts.items() if kind != TOP_LEVEL}
    report |= {"flat_class_means": class_means.tolist(), "info": info}
    judge_dir = args.segmenter if args.segmenter.is_dir() else args.segmenter.parent
    out = args.out or (model.folder / "eval.json" if model else judge_dir / "judge-eval.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report)
    merged = ""
    if model is not None and not args.no_merge:
        metrics: dict[str, Any] = {}
        for kind, section in parts.items():
            entry = metrics_for_manifest(
                section["model"], section["references"], info, section["collage"], section.get("free_styles")
            )
            if not model.has_collage:  # class generators detached since the last run: their figures go too
                entry["collage"] = None
            if "fd_seg_compare" in section:
                entry["fd_seg_compare"] = section["fd_seg_compare"]
            metrics |= entry if kind == TOP_LEVEL else {kind: entry}
        merge_metrics(model.folder, metrics)
        merged = f" and metrics in {model.folder / 'model.json'}"
    print(table(report))  # noqa: T201
    print(f"\nwrote {out}{merged}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
