"""The acceptance checks, the metrics merged into model.json, and writing eval.json and model.json."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.eval.report import acceptance, merge_metrics, metrics_for_manifest, sections, table, write_json
from models.labels import LANDSCAPE


def test_merge_metrics_keeps_other_fields_and_old_metrics(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text(json.dumps({"name": "m", "metrics": {"old": 1, "miou": 0.1}}))
    merge_metrics(tmp_path, {"miou": 0.5, "fd_seg": 2.0})
    manifest = json.loads((tmp_path / "model.json").read_text())
    assert manifest == {"name": "m", "metrics": {"old": 1, "miou": 0.5, "fd_seg": 2.0}}


def test_undefined_numbers_are_written_as_null(tmp_path: Path) -> None:
    report = {"miou": float("nan"), "fd": np.float64("inf"), "iou": [0.5, float("-inf")], "pair": (1, np.nan)}
    write_json(tmp_path / "eval.json", report)
    text = (tmp_path / "eval.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"miou": None, "fd": None, "iou": [0.5, None], "pair": [1, None]}
    (tmp_path / "model.json").write_text(json.dumps({"name": "m"}))
    merge_metrics(tmp_path, {"miou": float("nan"), "fd_seg": 2.0})
    assert json.loads((tmp_path / "model.json").read_text())["metrics"] == {"miou": None, "fd_seg": 2.0}


# ----------------------------------------------------------------------------
# Acceptance checks, each exactly at its threshold (passes: the comparisons are inclusive) and just past it.

REF_MIOU, FLAT_FD = 0.8, 10.0
EPS = 1e-6


def _refs(ref_miou: float = REF_MIOU, flat_miou: float = 0.4) -> dict[str, Any]:
    """The two reference sets as `reference_summary` reports them (only the fields acceptance reads)."""
    return {"reference": {"miou": ref_miou}, "flat": {"miou": flat_miou, "fd_seg": FLAT_FD}}


def _scores(miou: float = 0.9, fd_seg: float = 1.0, texture: float = 1.0) -> dict[str, Any]:
    return {"miou": miou, "fd_seg": fd_seg, "texture": {"fraction_in_range": texture}}


def _primary(
    latency_ms: float = 10.0, style_accuracy: float = 1.0, families: int = 8, **scores: float
) -> dict[str, Any]:
    """An `evaluate_model` result for a model with an encoder, passing every check unless overridden."""
    return {
        "z_modes": ["encoded", "random"],
        "encoded": _scores(**scores),
        "random": _scores(),
        "latency_ms": latency_ms,
        "style": {"accuracy": style_accuracy, "families": families},
    }


def _failing(primary: dict[str, Any] | None, refs: dict[str, Any]) -> set[str]:
    return {name for name, ok in acceptance(primary, refs).items() if not ok}


# (check, keyword of _refs or _primary, value at the threshold, value just past it)
THRESHOLDS = [
    ("judge_reference_miou>=0.75", "ref_miou", 0.75, 0.75 - EPS),
    ("flat_miou<=0.8*reference", "flat_miou", 0.8 * REF_MIOU, 0.8 * REF_MIOU + EPS),
    ("generated_miou>=0.9*reference", "miou", 0.9 * REF_MIOU, 0.9 * REF_MIOU - EPS),
    ("fd_seg<=0.5*flat", "fd_seg", 0.5 * FLAT_FD, 0.5 * FLAT_FD + EPS),
    ("texture_in_range>=0.7", "texture", 0.7, 0.7 - EPS),
    ("latency<=40ms", "latency_ms", 40.0, 40.0 + EPS),
    ("style_accuracy>=0.8_with>=6_families", "style_accuracy", 0.8, 0.8 - EPS),
    ("style_accuracy>=0.8_with>=6_families", "families", 6, 5),
]


@pytest.mark.parametrize(
    ("check", "key", "at", "past"), THRESHOLDS, ids=[f"{t[0]}:{t[1]}" for t in THRESHOLDS]
)
def test_each_acceptance_check_flips_just_past_its_threshold(
    check: str, key: str, at: float, past: float
) -> None:
    def failing(value: float) -> set[str]:
        if key in ("ref_miou", "flat_miou"):
            return _failing(_primary(), _refs(**{key: value}))
        return _failing(_primary(**{key: value}), _refs())

    assert failing(at) == set()
    assert failing(past) == {check}  # that check alone: no other threshold reads this number


def test_acceptance_lists_every_check() -> None:
    assert list(acceptance(_primary(), _refs())) == list(dict.fromkeys(t[0] for t in THRESHOLDS))


def test_without_a_model_only_the_judge_is_checked() -> None:
    assert acceptance(None, _refs()) == {"judge_reference_miou>=0.75": True, "flat_miou<=0.8*reference": True}
    assert _failing(None, _refs(ref_miou=0.7, flat_miou=0.6)) == {
        "judge_reference_miou>=0.75",
        "flat_miou<=0.8*reference",
    }


def test_generated_checks_read_the_first_z_mode() -> None:
    """Encoded styles when the model has an encoder (first in z_modes), random latents otherwise."""
    bad = _scores(miou=0.0, fd_seg=FLAT_FD, texture=0.0)
    generated = {"generated_miou>=0.9*reference", "fd_seg<=0.5*flat", "texture_in_range>=0.7"}
    assert _failing(_primary() | {"random": bad}, _refs()) == set()
    assert _failing(_primary() | {"encoded": bad}, _refs()) == generated
    assert _failing(_primary() | {"z_modes": ["random"], "encoded": bad}, _refs()) == set()
    assert _failing(_primary() | {"z_modes": ["random"], "random": bad}, _refs()) == generated


def test_a_model_without_style_scores_fails_the_style_check() -> None:
    assert _failing(_primary() | {"style": None}, _refs()) == {"style_accuracy>=0.8_with>=6_families"}


def test_the_out_of_family_style_check_comes_last_when_scored() -> None:
    """`free_styles` adds its check after the others (decided in the section; a skipped model fails it)."""
    from models.eval.free_styles import CHECK, free_checks

    scored = {"references": 100, "encoded": 5.0, "best_preset": 10.0, "ratio": 0.5}
    checks = acceptance(_primary(), _refs(), free=scored | {"acceptance": free_checks(scored)})
    assert list(checks)[-1] == CHECK and all(checks.values())
    skipped = {"skipped": "not evaluated", "acceptance": {CHECK: {"pass": False, "figures": "not evaluated"}}}
    assert {name for name, ok in acceptance(_primary(), _refs(), free=skipped).items() if not ok} == {CHECK}


# ----------------------------------------------------------------------------
# The numbers merged into model.json.


def test_metrics_for_manifest_rounds_and_names_the_scored_mode() -> None:
    refs = {
        "reference": {"miou": 0.812345, "fd_seg": 1.234567},
        "flat": {"miou": 0.412345, "fd_seg": 9.876543},
    }
    encoded = {
        "miou": 0.723456,
        "pixel_accuracy": 0.912345,
        "fd_seg": 3.456789,
        "crop_fd_seg": {"tree": 5.555555, "rock": None},
        "texture": {"fraction_in_range": 0.666666, "streak_within": 11, "streak_defined": 13},
    }
    random = encoded | {"miou": 0.611111, "fd_seg": 4.444444}
    result = {
        "z_modes": ["encoded", "random"],
        "encoded": encoded,
        "random": random,
        "style": {"accuracy": 0.833333},
        "latency_ms": 12.3456,
    }
    info = {"n": 4}
    assert metrics_for_manifest(result, refs, info) == {
        "eval_z": "encoded",
        "miou": 0.7235,
        "pixel_accuracy": 0.9123,
        "miou_reference": 0.8123,
        "miou_flat": 0.4123,
        "fd_seg": 3.4568,
        "fd_seg_floor": 1.2346,
        "fd_seg_flat": 9.8765,
        "crop_fd_seg": {"tree": 5.5556, "rock": None},
        "texture_in_range": 0.6667,
        "style_accuracy": 0.8333,
        "latency_ms": 12.35,
        "eval": info,
        "streak_within": 11,
        "streak_defined": 13,
        "miou_random_z": 0.6111,
        "fd_seg_random_z": 4.4444,
    }
    # Without an encoder random latents are the scored mode: no separate random-z numbers, no style.
    without_encoder = {"z_modes": ["random"], "random": random, "style": None, "latency_ms": 1.0}
    metrics = metrics_for_manifest(without_encoder, refs, info)
    assert metrics["eval_z"] == "random" and metrics["miou"] == 0.6111 and metrics["style_accuracy"] is None
    assert "miou_random_z" not in metrics and "fd_seg_random_z" not in metrics
    # The out-of-family styles, rounded; None for a model that could not be scored on them.
    free = {
        "references": 100,
        "encoded": 5.123456,
        "best_preset": 10.987654,
        "ratio": 0.466288,
        "encoded_better": 0.93,
    }
    assert metrics_for_manifest(result, refs, info, free=free)["free_styles"] == {
        "references": 100, "encoded": 5.1235, "best_preset": 10.9877, "ratio": 0.4663, "encoded_better": 0.93,
    }  # fmt: skip
    assert metrics_for_manifest(result, refs, info, free={"skipped": "no encoder"})["free_styles"] is None
    assert "free_styles" not in metrics_for_manifest(result, refs, info)


# ----------------------------------------------------------------------------
# Kinds of layouts: procedural at the top level, others in a section each.


def _set_scores(miou: float) -> dict[str, Any]:
    """A set summary as `_set_summary` gives it (every field the table reads)."""
    return {
        "miou": miou,
        "pixel_accuracy": miou,
        "fd_seg": 1.0,
        "crop_fd_seg": {"tree": 2.0, "rock": None, "house": 3.0},
        "iou": {label.name: miou for label in LANDSCAPE.labels},
    }


def _judge_only_section(ref_miou: float) -> dict[str, Any]:
    refs = {"reference": _set_scores(ref_miou), "flat": _set_scores(0.3)}
    return {
        "model": None,
        "compare": [],
        "references": refs,
        "collage": None,
        "acceptance": acceptance(None, refs),
    }


def test_the_table_gives_each_kind_of_layouts_its_own_block() -> None:
    info = {"n": 5, "cpu": "Test CPU", "cpu_count": 2, "runtime": None, "collage": None}
    procedural, painted = _judge_only_section(0.8), _judge_only_section(0.5)
    alone = procedural | {"info": info | {"layouts": ["procedural"]}}
    assert list(sections(alone)) == ["procedural"]
    assert list(sections(procedural | {"info": info})) == ["procedural"]  # an eval.json from before --layouts
    text = table(alone)
    assert "==" not in text and text.count("latency on Test CPU (2 CPUs)") == 1
    both = procedural | {"painted": painted, "info": info | {"layouts": ["procedural", "painted"]}}
    assert sections(both) == {"procedural": both, "painted": painted}
    text = table(both)
    first, second = (
        text.index("== procedural layouts (5 held-out) =="),
        text.index("== painted layouts (5 held-out) =="),
    )
    assert first < second and text.count("latency on Test CPU") == 1
    # Each block its own numbers and checks: the painted references fail the judge's 0.75 mIoU check.
    assert "FAIL  judge_reference_miou>=0.75" not in text[:second]
    assert "FAIL  judge_reference_miou>=0.75" in text[second:]
    assert "0.800" in text[:second] and "0.500" in text[second:]
