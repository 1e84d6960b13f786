"""Scoring one model, and the report: per-set summaries, acceptance checks, eval.json, model.json, a table.

eval.json keeps its form for the procedural layouts (the default `--layouts`): `model`, `compare`,
`references`, `collage`, `acceptance` (and `fd_seg_compare`) at the top level, and `free_styles`
(`models/eval/free_styles.py`) when the out-of-family styles were scored: they go with procedural layouts. Any
other kind of layouts evaluated gets the same keys in a section of its own (`report["painted"]`), and
model.json's metrics likewise (`metrics["painted"]`), so a number at the top level always means procedural
layouts.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from models.eval.data import EvalData
from models.eval.free_styles import free_for_manifest, free_table
from models.eval.judge import Judge
from models.eval.meter import THING_CLASSES, SetMeter
from models.eval.metrics import (
    STREAK_MARGIN,
    TEXTURE_RANGE,
    colour_stats,
    fraction_in_range,
    frechet_distance,
    nearest_centroid,
    segmentation_scores,
    texture_ratios,
)
from models.eval.onnx_model import ExportedModel, StageCost, seeded_z, to_uint8
from models.eval.stage import add_base_cost, stage_for_manifest, stage_section, stage_table
from models.labels import LANDSCAPE
from models.version import shown_path

TEXTURE_MIN_PIXELS = 2000  # interior pixels a class needs (over the whole set) for a texture ratio
CLASS_NAMES = tuple(label.name for label in LANDSCAPE.labels)
TOP_LEVEL = "procedural"  # the layouts whose section is the report's (and model.json's) top level


def _fd_or_none(a: np.ndarray, b: np.ndarray) -> float | None:
    return frechet_distance(a, b) if len(a) >= 2 and len(b) >= 2 else None


def _set_summary(meter: SetMeter, data: EvalData, names: Sequence[str]) -> dict[str, Any]:
    seg = segmentation_scores(meter.conf)
    crop_fd = {}
    for cls_name in THING_CLASSES:
        cls = LANDSCAPE[cls_name].id
        crop_fd[cls_name] = _fd_or_none(meter.crop_features(cls), data.heldout.crop_features(cls))
    return {
        "miou": seg["miou"],
        "pixel_accuracy": seg["pixel_accuracy"],
        "iou": dict(zip(names, seg["iou"], strict=True)),
        "fd_seg": frechet_distance(meter.all_features(), data.heldout.all_features()),
        "crop_fd_seg": crop_fd,
    }


def _per_class(values: np.ndarray, names: Sequence[str]) -> dict[str, float | None]:
    return {name: None if np.isnan(v) else round(float(v), 4) for name, v in zip(names, values, strict=True)}


def _texture_summary(meter: SetMeter, data: EvalData, names: Sequence[str]) -> dict[str, Any]:
    """Texture ratio and streak coherence per class against the reference renders of the same layouts."""
    ratios = texture_ratios(
        meter.texture.variance(TEXTURE_MIN_PIXELS), data.reference.texture.variance(TEXTURE_MIN_PIXELS)
    )
    streak = meter.streak.coherence(TEXTURE_MIN_PIXELS)
    streak_ref = data.reference.streak.coherence(TEXTURE_MIN_PIXELS)
    defined = np.isfinite(streak) & np.isfinite(streak_ref)
    return {
        "ratio": _per_class(ratios, names),
        "fraction_in_range": fraction_in_range(ratios),
        "range": list(TEXTURE_RANGE),
        "streak": _per_class(streak, names),
        "streak_reference": _per_class(streak_ref, names),
        # classes whose coherence is at most STREAK_MARGIN above the renders', of the classes both define
        "streak_within": int((streak[defined] <= streak_ref[defined] + STREAK_MARGIN).sum()),
        "streak_defined": int(defined.sum()),
    }


def evaluate_model(
    model: ExportedModel,
    judge: Judge,
    data: EvalData,
    batch: int,
    name: str | None = None,  # reported under this label (default: the manifest's name)
    collage: bool = False,  # also judge the pictures composed by the model's class generators
) -> dict[str, Any]:
    """All model-dependent numbers for one exported folder.

    With `collage` (and class generators in the folder) each base picture is also composed by the CollageGAN
    stage and judged again: the result's `collage` is then `stage.stage_section`'s, else None."""
    name = name or model.name
    stage = collage and model.has_collage
    model.check_size(data.size)
    if model.labels.name != LANDSCAPE.name:
        raise ValueError(
            f"{model.name} paints label set {model.labels.name!r}; the evaluator judges landscapes"
        )
    names = CLASS_NAMES
    num_classes, things = len(LANDSCAPE), tuple(LANDSCAPE[c].id for c in THING_CLASSES)
    modes = (["encoded"] if model.encoder is not None else []) + ["random"]
    meters = {mode: SetMeter(num_classes, things) for mode in modes}
    composed = {mode: SetMeter(num_classes, things) for mode in modes} if stage else {}
    cost = StageCost()
    if stage:
        model.warm_collage()
    desc = f"{name}: generate + judge" + (" without and with the collage stage" if stage else "")
    for start in tqdm(range(0, data.n, batch), desc=desc, unit="batch"):
        stop = min(data.n, start + batch)
        ids, inst = data.labels[start:stop], data.instances[start:stop]
        for mode in modes:
            z = (
                model.encode(data.renders[start:stop])
                if mode == "encoded"
                else seeded_z(range(start, stop), model.z_dim)
            )
            base = model.run_base(ids, inst, z)  # one base run, judged as it is and composed
            meters[mode].add(judge, to_uint8(base), ids, inst)
            if stage:
                composed[mode].add(judge, to_uint8(model.compose(base, ids, inst, cost)), ids, inst)
    result: dict[str, Any] = {"name": name, "folder": shown_path(model.folder), "z_modes": modes}
    for mode in modes:
        result[mode] = _set_summary(meters[mode], data, names) | {
            "texture": _texture_summary(meters[mode], data, names)
        }
    result["collage"] = None
    if stage:
        with_stage = {mode: _set_summary(composed[mode], data, names) for mode in modes}
        result["collage"] = stage_section(model.collage_classes, modes, result, with_stage, cost)

    result["style"] = None
    style = data.style
    if model.encoder is not None and style is not None:
        mu = np.concatenate(
            [model.encode(style.refs[s : s + batch]) for s in range(0, len(style.refs), batch)]
        )
        stats = []
        for s in tqdm(range(0, len(mu), batch), desc=f"{model.name}: style fidelity", unit="batch"):
            t = style.targets[s : s + batch]
            for image in model.generate(data.labels[t], data.instances[t], mu[s : s + batch]):
                stats.append(colour_stats(image))
        correct = nearest_centroid(np.stack(stats), style.centroids, style.scale) == style.ref_family
        result["style"] = {
            "accuracy": float(correct.mean()),
            "per_family": {
                name: float(correct[style.ref_family == f].mean()) for f, name in enumerate(style.families)
            },
            "families": len(style.families),
            "references_per_family": len(style.refs) // len(style.families),
            "render_ceiling": style.ceiling,
        }
    return result


def _streak_ok(summary: dict[str, Any]) -> str | None:
    """ "12/14": classes whose streak coherence is within the margin of the renders', of those defined."""
    texture = summary.get("texture", {})
    if "streak_within" not in texture:
        return None
    return f"{texture['streak_within']}/{texture['streak_defined']}"


def reference_summary(data: EvalData) -> dict[str, Any]:
    names = CLASS_NAMES
    flat_texture = _texture_summary(data.flat, data, names)
    return {
        "reference": _set_summary(data.reference, data, names)
        | {"texture": _texture_summary(data.reference, data, names)},
        "flat": _set_summary(data.flat, data, names) | {"texture": flat_texture},
    }


def acceptance(
    primary: dict[str, Any] | None,
    refs: dict[str, Any],
    collage: dict[str, Any] | None = None,
    free: dict[str, Any] | None = None,
) -> dict[str, bool]:
    """The issue's acceptance checks (only the judge's two without a model), then the CollageGAN stage's when
    it was evaluated (decided in `stage.stage_checks`, with their figures in the `collage` section), then the
    out-of-family styles' when they were asked for (decided in `free_styles`, figures in its section)."""
    ref, flat = refs["reference"], refs["flat"]
    checks = {
        "judge_reference_miou>=0.75": ref["miou"] >= 0.75,
        "flat_miou<=0.8*reference": flat["miou"] <= 0.8 * ref["miou"],
    }
    if primary is None:
        return checks
    gen = primary[primary["z_modes"][0]]
    checks |= {
        "generated_miou>=0.9*reference": gen["miou"] >= 0.9 * ref["miou"],
        "fd_seg<=0.5*flat": gen["fd_seg"] <= 0.5 * flat["fd_seg"],
        "texture_in_range>=0.7": gen["texture"]["fraction_in_range"] >= 0.7,
        "latency<=40ms": primary["latency_ms"] <= 40.0,
    }
    style = primary.get("style")
    checks["style_accuracy>=0.8_with>=6_families"] = bool(
        style and style["accuracy"] >= 0.8 and style["families"] >= 6
    )
    for section in (collage, free):
        if section is not None:
            checks |= {name: check["pass"] for name, check in section["acceptance"].items()}
    return checks


def layout_section(
    data: EvalData,
    model: ExportedModel | None,
    others: Sequence[ExportedModel],  # --compare folders
    judge: Judge,
    names: Sequence[str],  # report labels: the model's, then the compared folders'
    batch: int,
    collage: bool,  # judge the model's CollageGAN stage too
) -> dict[str, Any]:
    """Every number measured on one kind of layouts (`data.layouts`), before the latency is known."""
    refs = reference_summary(data)
    primary = evaluate_model(model, judge, data, batch, names[0], collage=collage) if model else None
    compare = [evaluate_model(m, judge, data, batch, n) for m, n in zip(others, names[1:], strict=True)]
    return {"model": primary, "compare": compare, "references": refs}


def finish_section(section: dict[str, Any], latencies: Sequence[float] | None) -> None:
    """Complete a `layout_section` once the latency is measured (once, on the first kind's first layout: it
    does not depend on the layout): the latency into each result, the CollageGAN stage's section beside
    the base generator's cost, the acceptance checks and the compared folders' FD-seg."""
    primary, compare = section["model"], section["compare"]
    if primary is not None and latencies is not None:
        for result, ms in zip([primary, *compare], latencies, strict=True):
            result["latency_ms"] = ms
    collage = primary.pop("collage", None) if primary else None
    if collage is not None and primary is not None:
        add_base_cost(collage, primary["latency_ms"])
    for result in compare:
        result.pop("collage", None)
    section["collage"] = collage
    section["acceptance"] = acceptance(primary, section["references"], collage, section.get("free_styles"))
    if primary and compare:
        mode = primary["z_modes"][0]
        section["fd_seg_compare"] = {m["name"]: m[mode]["fd_seg"] if mode in m else None for m in compare}


def sections(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Layouts → their section of an eval.json (`info.layouts` absent: procedural only, as before it existed)."""
    kinds = report["info"].get("layouts", [TOP_LEVEL])
    return {kind: report if kind == TOP_LEVEL else report[kind] for kind in kinds}


def metrics_for_manifest(
    result: dict[str, Any],
    refs: dict[str, Any],
    info: dict[str, Any],
    collage: dict[str, Any] | None = None,
    free: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The compact numbers merged into model.json's `metrics` (`collage` too when the stage was evaluated,
    `free_styles` when the out-of-family styles were asked for: None for a model without encoder or presets)."""
    mode = result["z_modes"][0]
    gen = result[mode]
    out = {
        "eval_z": mode,
        "miou": round(gen["miou"], 4),
        "pixel_accuracy": round(gen["pixel_accuracy"], 4),
        "miou_reference": round(refs["reference"]["miou"], 4),
        "miou_flat": round(refs["flat"]["miou"], 4),
        "fd_seg": round(gen["fd_seg"], 4),
        "fd_seg_floor": round(refs["reference"]["fd_seg"], 4),
        "fd_seg_flat": round(refs["flat"]["fd_seg"], 4),
        "crop_fd_seg": {k: None if v is None else round(v, 4) for k, v in gen["crop_fd_seg"].items()},
        "texture_in_range": round(gen["texture"]["fraction_in_range"], 4),
        "style_accuracy": None if result["style"] is None else round(result["style"]["accuracy"], 4),
        "latency_ms": round(result["latency_ms"], 2),
        "eval": info,
    }
    if "streak_within" in gen["texture"]:  # classes whose streak coherence stays within the renders' margin
        out["streak_within"] = gen["texture"]["streak_within"]
        out["streak_defined"] = gen["texture"]["streak_defined"]
    if "random" in result and mode != "random":
        out["miou_random_z"] = round(result["random"]["miou"], 4)
        out["fd_seg_random_z"] = round(result["random"]["fd_seg"], 4)
    if collage is not None:
        out["collage"] = stage_for_manifest(collage)
    if free is not None:
        out["free_styles"] = free_for_manifest(free)
    return out


def finite_or_none(value: Any) -> Any:
    """`value` with every NaN or ±inf float (nested in dicts, lists and tuples) replaced by None.

    Undefined numbers (mIoU of an empty set, a texture ratio without pixels) are NaN in the computations, but
    NaN is not JSON: `json.dumps` would write a bare `NaN` that strict readers (browsers, jq) reject.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def write_json(path: Path, value: Any) -> None:
    """Strict JSON (NaN/inf as null), written to a temporary file and renamed so a crash leaves no half file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(finite_or_none(value), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def merge_metrics(folder: Path, metrics: Mapping[str, Any]) -> None:
    """Merge into model.json's `metrics` (atomic rewrite; the ONNX files and their checksums are untouched)."""
    path = folder / "model.json"
    manifest = json.loads(path.read_text())
    manifest["metrics"] = {**manifest.get("metrics", {}), **metrics}
    write_json(path, manifest)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(report: dict[str, Any]) -> str:
    """A plain-text summary per kind of layouts (a heading each unless only procedural ones were scored): one
    column per image set, the CollageGAN stage, the acceptance checks; the latency's machine once."""
    info = report["info"]
    parts = sections(report)
    lines: list[str] = []
    for i, (kind, section) in enumerate(parts.items()):
        if list(parts) != [TOP_LEVEL]:
            lines += ([""] if i else []) + [f"== {kind} layouts ({info['n']} held-out) ==", ""]
        lines += _scores_table(section)
        if i == 0:
            lines += ["", f"latency on {_machine(info)}"]
        lines.append("")
        collage = section.get("collage")
        if collage is not None:
            lines += [stage_table(collage, section["references"]["reference"]), ""]
        elif info.get("collage"):
            lines += [f"CollageGAN stage: {info['collage']}", ""]
        free = section.get("free_styles")
        if free is not None:
            lines += [free_table(free), ""]
        figures = {name: c["figures"] for s in (collage, free) if s for name, c in s["acceptance"].items()}
        for name, ok in section["acceptance"].items():
            lines.append(
                f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({figures[name]})" if name in figures else "")
            )
    return "\n".join(lines)


def _machine(info: Mapping[str, Any]) -> str:
    """The CPU, and the runtime and precision the scores and the latency are those of."""
    machine = f"{info['cpu']} ({info['cpu_count']} CPUs)"
    ran = info.get("runtime")
    if ran:
        machine += f", {ran['runtime']} {ran['version']} on {ran['device']} in {ran['precision']}"
    return machine


def _scores_table(section: Mapping[str, Any]) -> list[str]:
    """One column per image set of a section (the model's z modes, compared folders, reference and flat)."""
    refs = section["references"]
    columns: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for model in [section["model"], *section.get("compare", [])] if section["model"] else []:
        for mode in model["z_modes"]:
            columns.append((f"{model['name']}[{mode}]", model[mode], model))
    columns += [("reference", refs["reference"], None), ("flat", refs["flat"], None)]
    rows: list[tuple[str, Callable[[dict[str, Any], dict[str, Any] | None], Any]]] = [
        ("mIoU", lambda s, m: s["miou"]),
        ("pixel acc", lambda s, m: s["pixel_accuracy"]),
        ("FD-seg", lambda s, m: s["fd_seg"]),
        *[(f"crop FD {c}", lambda s, m, c=c: s["crop_fd_seg"][c]) for c in THING_CLASSES],
        ("texture in range", lambda s, m: s.get("texture", {}).get("fraction_in_range")),
        ("streak ok / of", lambda s, m: _streak_ok(s)),
        ("style accuracy", lambda s, m: m["style"]["accuracy"] if m and m.get("style") else None),
        ("latency ms", lambda s, m: m["latency_ms"] if m else None),
        *[(f"IoU {name}", lambda s, m, name=name: s["iou"][name]) for name in CLASS_NAMES],
        *[
            (f"streak {name}", lambda s, m, name=name: s.get("texture", {}).get("streak", {}).get(name))
            for name in CLASS_NAMES
        ],
    ]
    width = max(14, *(len(c[0]) + 2 for c in columns))
    lines = ["".ljust(18) + "".join(c[0].rjust(width) for c in columns)]
    for label, get in rows:
        lines.append(label.ljust(18) + "".join(_fmt(get(s, m)).rjust(width) for _, s, m in columns))
    return lines
