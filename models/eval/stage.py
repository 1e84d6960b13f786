"""The CollageGAN stage in `collage eval`: one base run per layout and latent, judged without and with the
composition stage, the stage's cost, and issue 21's acceptance checks on the difference.

Without and with share the base generator's pictures (same layouts, same z), so every difference in the
scores is the stage's alone. The checks read the primary z mode (encoded where the model has an encoder), as
the base model's checks do:
- crop FD-seg falls for at least MIN_CLASSES_BETTER of the three thing classes;
- the houses' crop FD-seg falls to at most HOUSE_FD_FACTOR of what it was;
- the houses' IoU is at least HOUSE_IOU_MIN with the stage;
- whole-picture mIoU does not fall (with ≥ without, no tolerance: the issue says "does not fall").
The cost is the stage's wall time per picture (as the server's engine times it, `compose` alone), the
median over every composed picture, beside the base generator's batch-1 latency on the same runtime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.eval.meter import THING_CLASSES
from models.eval.onnx_model import StageCost

MIN_CLASSES_BETTER = 2  # of the 3 thing classes, how many must see their crop FD-seg fall
HOUSE_FD_FACTOR = 0.5  # the houses' crop FD-seg with the stage ≤ this × without
HOUSE_IOU_MIN = 0.6  # the houses' IoU with the stage
SCORE_KEYS = ("miou", "pixel_accuracy", "fd_seg", "iou", "crop_fd_seg")  # copied per side from a set summary


def cost_summary(cost: StageCost) -> dict[str, Any]:
    """Median ms per picture (over every composed picture, those without instances too: the stage still plans
    them) and per instance (median of ms / instances over the pictures that had any)."""
    ms, count = np.array(cost.ms, np.float64), np.array(cost.instances, np.int64)
    has = count > 0
    return {
        "pictures": len(ms),
        "instances": int(count.sum()),
        "instances_per_picture": float(count.mean()) if len(ms) else None,
        "ms_per_picture": float(np.median(ms)) if len(ms) else None,
        "ms_per_instance": float(np.median(ms[has] / count[has])) if has.any() else None,
        "base_ms": None,  # the base generator's batch-1 latency, set by `add_base_cost` once measured
        "stage_over_base": None,
    }


def stage_section(
    classes: Sequence[str],  # the thing classes with a class generator
    modes: Sequence[str],  # z modes, the primary first
    without: Mapping[str, Mapping[str, Any]],  # mode → set summary of the base pictures
    with_stage: Mapping[str, Mapping[str, Any]],  # mode → set summary of the composed pictures
    cost: StageCost,
) -> dict[str, Any]:
    """eval.json's `collage` section: per z mode the scores without and with the stage, and the cost."""
    section: dict[str, Any] = {"classes": list(classes), "z_modes": list(modes)}
    for mode in modes:
        section[mode] = {
            "without": {k: without[mode][k] for k in SCORE_KEYS},
            "with": {k: with_stage[mode][k] for k in SCORE_KEYS},
        }
    section["cost"] = cost_summary(cost)
    section["acceptance"] = {
        name: {"pass": ok, "figures": figures} for name, (ok, figures) in stage_checks(section).items()
    }
    return section


def add_base_cost(section: dict[str, Any], base_ms: float) -> None:
    """The base generator's batch-1 latency beside the stage's time (measured after the scores, taking turns
    with the compared folders: see `latencies_ms`)."""
    cost = section["cost"]
    cost["base_ms"] = base_ms
    if cost["ms_per_picture"] is not None and base_ms > 0:
        cost["stage_over_base"] = cost["ms_per_picture"] / base_ms


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _falls(before: float | None, after: float | None) -> bool:
    return before is not None and after is not None and after < before


def stage_checks(section: Mapping[str, Any]) -> dict[str, tuple[bool, str]]:
    """The issue's checks on the primary z mode → {name: (passed, the figures it was decided on)}.

    A class without crop scores on either side (no instance large enough in the set) counts as not falling."""
    mode = section["z_modes"][0]
    without, with_stage = section[mode]["without"], section[mode]["with"]
    fd0, fd1 = without["crop_fd_seg"], with_stage["crop_fd_seg"]
    fell = [c for c in THING_CLASSES if _falls(fd0.get(c), fd1.get(c))]
    per_class = ", ".join(f"{c} {_num(fd0.get(c))}→{_num(fd1.get(c))}" for c in THING_CLASSES)
    h0, h1 = fd0.get("house"), fd1.get("house")
    house_fd_ok = h0 is not None and h1 is not None and h1 <= HOUSE_FD_FACTOR * h0
    ratio = f", {h1 / h0:.2f}×" if h0 and h1 is not None else ""
    iou0, iou1 = without["iou"].get("house"), with_stage["iou"].get("house")
    m0, m1 = without["miou"], with_stage["miou"]
    return {
        f"collage_crop_fd_seg_falls>={MIN_CLASSES_BETTER}_of_{len(THING_CLASSES)}": (
            len(fell) >= MIN_CLASSES_BETTER,
            f"{per_class}: {len(fell)} of {len(THING_CLASSES)} fall",
        ),
        f"collage_house_crop_fd_seg<={HOUSE_FD_FACTOR}*without": (
            house_fd_ok,
            f"house {_num(h0)}→{_num(h1)}{ratio}",
        ),
        f"collage_house_iou>={HOUSE_IOU_MIN}": (
            iou1 is not None and iou1 >= HOUSE_IOU_MIN,
            f"house IoU {_num(iou0)}→{_num(iou1)}",
        ),
        "collage_miou>=without": (
            bool(np.isfinite(m0) and np.isfinite(m1) and m1 >= m0),
            f"mIoU {_num(m0, 4)}→{_num(m1, 4)}",
        ),
    }


def stage_table(section: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """The console table: per z mode a `without | with` pair of columns, the reference renders beside them
    (the ceiling), then the cost in one line."""
    columns: list[tuple[str, Mapping[str, Any]]] = []
    for mode in section["z_modes"]:
        columns += [(f"{mode}: without", section[mode]["without"]), (f"{mode}: with", section[mode]["with"])]
    columns.append(("reference", reference))
    rows: list[tuple[str, Any]] = [
        ("mIoU", lambda s: s["miou"]),
        ("pixel acc", lambda s: s["pixel_accuracy"]),
        ("FD-seg", lambda s: s["fd_seg"]),
        *[(f"IoU {c}", lambda s, c=c: s["iou"].get(c)) for c in THING_CLASSES],
        *[(f"crop FD {c}", lambda s, c=c: s["crop_fd_seg"].get(c)) for c in THING_CLASSES],
    ]
    width = max(12, *(len(title) + 2 for title, _ in columns))
    lines = [
        f"CollageGAN stage ({', '.join(section['classes'])}): the same base pictures without | with it",
        "".ljust(18) + "".join(title.rjust(width) for title, _ in columns),
    ]
    for label, get in rows:
        lines.append(label.ljust(18) + "".join(_num(get(s)).rjust(width) for _, s in columns))
    cost = section["cost"]
    line = (
        f"stage cost: {_num(cost['ms_per_picture'], 1)} ms per picture (median of {cost['pictures']}, "
        f"{_num(cost['instances_per_picture'], 1)} instances each on average), "
        f"{_num(cost['ms_per_instance'], 1)} ms per instance"
    )
    if cost["base_ms"] is not None:
        line += f"; base generator {_num(cost['base_ms'], 1)} ms (batch 1)"
        if cost["stage_over_base"] is not None:
            line += f", stage / base {cost['stage_over_base']:.2f}×"
    return "\n".join([*lines, line])


def stage_for_manifest(section: Mapping[str, Any]) -> dict[str, Any]:
    """The compact numbers merged into model.json's `metrics.collage` (primary z mode, rounded)."""

    def r(value: float | None, digits: int = 4) -> float | None:
        return None if value is None or not np.isfinite(value) else round(float(value), digits)

    mode = section["z_modes"][0]
    without, with_stage, cost = section[mode]["without"], section[mode]["with"], section["cost"]
    return {
        "eval_z": mode,
        "classes": section["classes"],
        "miou": r(with_stage["miou"]),
        "miou_without": r(without["miou"]),
        "iou": {c: r(with_stage["iou"].get(c)) for c in THING_CLASSES},
        "iou_without": {c: r(without["iou"].get(c)) for c in THING_CLASSES},
        "crop_fd_seg": {c: r(with_stage["crop_fd_seg"].get(c)) for c in THING_CLASSES},
        "ms_per_picture": r(cost["ms_per_picture"], 2),
        "ms_per_instance": r(cost["ms_per_instance"], 2),
        "instances_per_picture": r(cost["instances_per_picture"], 2),
        "base_ms": r(cost["base_ms"], 2),
    }
