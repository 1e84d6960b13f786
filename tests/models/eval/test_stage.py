"""The CollageGAN stage in `collage eval`: the class generators opened with the model, pictures composed only
inside instance boxes, the with/without report and its checks, and `--no-collage`."""

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.collage import plan
from common.runtime import RuntimeChoice
from models.eval.onnx_model import ExportedModel, StageCost, to_uint8
from models.eval.stage import cost_summary, stage_checks
from models.labels import LANDSCAPE

ORT = RuntimeChoice("onnxruntime", "f32", threads=1)  # deterministic: two base runs give the same pixels
SMALL = ["--n", "4", "--size", "64", "--workers", "1", "--mean-samples", "2", "--centroid-layouts", "2"]
SMALL += ["--style-refs", "1"]


# ----------------------------------------------------------------------------
# The checks and the cost, on hand-made numbers.


def _side(miou: float, house_iou: float | None, crop: dict[str, float | None]) -> dict[str, Any]:
    return {"miou": miou, "iou": {"tree": 0.5, "rock": 0.5, "house": house_iou}, "crop_fd_seg": crop}


def _section(without: dict[str, Any], with_stage: dict[str, Any]) -> dict[str, Any]:
    return {"z_modes": ["encoded", "random"], "encoded": {"without": without, "with": with_stage}}


BEFORE = _side(0.70, 0.31, {"tree": 0.5, "rock": 0.5, "house": 4.0})
GOOD = _side(0.70, 0.60, {"tree": 0.4, "rock": 0.6, "house": 2.0})  # every check exactly at its threshold


def _failing(with_stage: dict[str, Any], without: dict[str, Any] = BEFORE) -> set[str]:
    return {name for name, (ok, _) in stage_checks(_section(without, with_stage)).items() if not ok}


def test_each_stage_check_passes_at_its_threshold_and_fails_just_past_it() -> None:
    assert _failing(GOOD) == set()
    eps = 1e-6
    assert _failing(GOOD | {"miou": 0.70 - eps}) == {"collage_miou>=without"}
    assert _failing(_side(0.70, 0.60 - eps, GOOD["crop_fd_seg"])) == {"collage_house_iou>=0.6"}
    assert _failing(GOOD | {"crop_fd_seg": GOOD["crop_fd_seg"] | {"house": 2.0 + eps}}) == {
        "collage_house_crop_fd_seg<=0.5*without"
    }
    # Only the house falls (tree and rock stay): 1 of 3.
    assert _failing(GOOD | {"crop_fd_seg": {"tree": 0.5, "rock": 0.6, "house": 2.0}}) == {
        "collage_crop_fd_seg_falls>=2_of_3"
    }


def test_a_class_without_crop_scores_does_not_count_as_falling() -> None:
    no_house = GOOD | {"crop_fd_seg": {"tree": 0.4, "rock": 0.6, "house": None}}
    assert _failing(no_house) == {
        "collage_crop_fd_seg_falls>=2_of_3",
        "collage_house_crop_fd_seg<=0.5*without",
    }
    checks = stage_checks(_section(BEFORE, no_house))
    assert checks["collage_house_crop_fd_seg<=0.5*without"][1] == "house 4.000→–"
    assert checks["collage_crop_fd_seg_falls>=2_of_3"][1].endswith("1 of 3 fall")


def test_the_checks_read_the_primary_z_mode() -> None:
    section = _section(BEFORE, GOOD) | {"random": {"without": BEFORE, "with": BEFORE}}
    assert all(ok for ok, _ in stage_checks(section).values())
    section["z_modes"] = ["random", "encoded"]
    assert not all(ok for ok, _ in stage_checks(section).values())


def test_cost_is_the_median_per_picture_and_per_instance() -> None:
    cost = cost_summary(StageCost(ms=[1.0, 10.0, 20.0, 40.0], instances=[0, 2, 4, 4]))
    assert cost["pictures"] == 4 and cost["instances"] == 10 and cost["instances_per_picture"] == 2.5
    assert cost["ms_per_picture"] == 15.0  # pictures without instances count: the stage still plans them
    assert cost["ms_per_instance"] == 5.0  # median of 5, 5, 10 over the pictures that had instances
    empty = cost_summary(StageCost())
    assert empty["ms_per_picture"] is None and empty["ms_per_instance"] is None


# ----------------------------------------------------------------------------
# The stage on the tiny class generators.


def _layouts() -> tuple[np.ndarray, np.ndarray]:
    """Two 64² maps: sky over grass with a house, a tree and a rock big enough for the tiny generators
    (min_side 12) and a 4×4 tree too small for them; and one without any thing class."""
    ids = {name: LANDSCAPE[name].id for name in ("sky", "grass", "house", "tree", "rock")}
    labels = np.full((2, 64, 64), ids["grass"], np.uint8)
    labels[:, :28] = ids["sky"]
    instances = np.zeros((2, 64, 64), np.int32)
    for k, (name, rows, cols) in enumerate(
        [
            ("house", slice(30, 50), slice(4, 24)),
            ("tree", slice(18, 44), slice(34, 48)),
            ("rock", slice(52, 60), slice(38, 60)),
            ("tree", slice(4, 8), slice(56, 60)),  # too small: skipped
        ],
        start=1,
    ):
        labels[0, rows, cols] = ids[name]
        instances[0, rows, cols] = k
    return labels, instances


@pytest.mark.slow  # the tiny_collage_weights export (shared with the server tests): ~30 s on 2 cores
def test_the_stage_changes_pictures_only_inside_the_instance_boxes(tiny_collage_weights: Path) -> None:
    model = ExportedModel(tiny_collage_weights / "tiny-collage", ORT)
    assert model.has_collage and model.collage_classes == ["rock", "tree", "house"]
    assert {g.encoder.info.runtime for g in model.class_generators.values()} == {"onnxruntime"}
    labels, instances = _layouts()
    z = np.random.default_rng(0).standard_normal((2, model.z_dim)).astype(np.float32)
    cost = StageCost()
    without = model.generate(labels, instances, z)
    with_stage = model.generate(labels, instances, z, collage=True, cost=cost)
    assert with_stage.shape == without.shape == (2, 64, 64, 3) and with_stage.dtype == np.uint8
    # One base run judged both ways (as evaluate_model does) gives the same pictures as two generate calls.
    base = model.run_base(labels, instances, z)
    assert np.array_equal(to_uint8(base), without)
    assert np.array_equal(to_uint8(model.compose(base, labels, instances)), with_stage)

    planned = plan(labels[0], instances[0], {cid: g.spec for cid, g in model.class_generators.items()})
    assert sorted(p.thing for p in planned) == ["house", "rock", "tree"]  # the 4×4 tree is skipped
    inside = np.zeros((64, 64), bool)
    for p in planned:
        inside[max(p.square.y0, 0) : p.square.y1, max(p.square.x0, 0) : p.square.x1] = True
    changed = (with_stage[0] != without[0]).any(-1)
    assert changed.any() and not (changed & ~inside).any()
    for p in planned:  # every composed instance is redrawn
        assert changed[p.tight.y0 : p.tight.y1, p.tight.x0 : p.tight.x1].any()
    assert np.array_equal(with_stage[1], without[1])  # no thing class: the picture is the base's
    assert cost.instances == [3, 0] and len(cost.ms) == 2 and all(ms > 0 for ms in cost.ms)


def test_a_model_without_class_generators_has_no_stage(model_folder: Path) -> None:
    model = ExportedModel(model_folder)
    assert not model.has_collage and model.collage_classes == []
    with pytest.raises(ValueError, match="has no class generators"):
        model.compose(np.zeros((1, 3, 32, 32), np.float32), np.zeros((1, 32, 32)), np.zeros((1, 32, 32)))


# ----------------------------------------------------------------------------
# `collage eval` end to end.


def _finite_numbers(value: Any) -> list[float]:
    """Every number nested in `value` (None is an undefined score and is skipped)."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in _finite_numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _finite_numbers(v)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []


@pytest.mark.slow  # the tiny_collage_weights export and two small evaluations
def test_collage_eval_reports_without_and_with_the_stage(
    tiny_collage_weights: Path, tiny_judge: Path, tmp_path: Path, capsys
) -> None:
    from models.eval.cli import main

    folder = tmp_path / "tiny-collage"  # a copy: model.json's metrics are merged into it
    shutil.copytree(tiny_collage_weights / "tiny-collage", folder)
    out, cache = tmp_path / "eval.json", ["--cache-dir", str(tmp_path / "cache")]
    assert main([str(folder), "--segmenter", str(tiny_judge), *SMALL, *cache, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    collage = report["collage"]
    assert collage["classes"] == ["rock", "tree", "house"] and collage["z_modes"] == ["encoded", "random"]
    for mode in collage["z_modes"]:
        for side in ("without", "with"):
            scores = collage[mode][side]
            assert set(scores) == {"miou", "pixel_accuracy", "fd_seg", "iou", "crop_fd_seg"}
            assert set(scores["crop_fd_seg"]) == {"tree", "rock", "house"}
            assert 0.0 <= scores["miou"] <= 1.0 and scores["fd_seg"] >= 0.0
            assert scores["crop_fd_seg"]["tree"] is not None  # trees ≥ 8 px exist in 4 layouts at 64²
        # "without" is the base model's own score: the same pictures.
        assert collage[mode]["without"]["miou"] == report["model"][mode]["miou"]
    assert all(math.isfinite(x) for x in _finite_numbers(collage))
    cost = collage["cost"]
    assert cost["pictures"] == 8 and cost["instances"] > 0  # 4 layouts × 2 z modes
    assert cost["ms_per_picture"] > 0 and cost["ms_per_instance"] > 0
    assert cost["base_ms"] == report["model"]["latency_ms"]
    assert cost["stage_over_base"] == pytest.approx(cost["ms_per_picture"] / cost["base_ms"])
    stage_checks = [name for name in report["acceptance"] if name.startswith("collage_")]
    assert stage_checks == list(collage["acceptance"]) and len(stage_checks) == 4
    assert all(report["acceptance"][n] is collage["acceptance"][n]["pass"] for n in stage_checks)
    assert "collage" not in report["model"]  # one section, at the top
    assert report["info"]["collage"] == "evaluated for rock, tree, house"
    metrics = json.loads((folder / "model.json").read_text())["metrics"]["collage"]
    assert metrics["eval_z"] == "encoded" and set(metrics["iou"]) == {"tree", "rock", "house"}
    text = capsys.readouterr().out
    assert "encoded: without" in text and "encoded: with" in text and "stage cost:" in text
    assert "collage_house_iou>=0.6  (house IoU" in text

    # --no-collage: the same model scored without the stage, on the cached renders.
    assert (
        main(
            [str(folder), "--segmenter", str(tiny_judge), *SMALL, *cache, "--out", str(out)]
            + ["--no-collage", "--no-merge"]
        )
        == 0
    )
    skipped = json.loads(out.read_text())
    assert skipped["collage"] is None and skipped["info"]["collage"] == "not evaluated (--no-collage)"
    assert not [name for name in skipped["acceptance"] if name.startswith("collage_")]
    assert skipped["model"]["encoded"]["miou"] == pytest.approx(report["model"]["encoded"]["miou"], abs=1e-3)
    assert "CollageGAN stage: not evaluated (--no-collage)" in capsys.readouterr().out
