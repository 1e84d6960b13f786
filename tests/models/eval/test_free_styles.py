"""The out-of-family style metric: per-class Lab means, ΔE, the check, and `collage eval` with free styles."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.eval.free_styles import CHECK, class_lab_means, delta_e, free_checks, free_table
from models.eval.metrics import rgb_to_lab

WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (128, 128, 128)


def _two_classes(rest: tuple[int, ...], sliver: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A 10×10 layout: class 3 everywhere but one row of class 7 (10% of the pixels), painted in two colours."""
    label = np.full((10, 10), 3, np.uint8)
    label[0] = 7
    image = np.empty((10, 10, 3), np.uint8)
    image[label == 3], image[label == 7] = rest, sliver
    return image, label


def test_white_against_black_is_100_and_every_class_weighs_alike() -> None:
    """White vs black is ΔE 100 (L 100 vs 0, a = b = 0); one class of two off by that gives 50 whatever its
    size (pixel weights would give 10, the sliver's share)."""
    assert delta_e(rgb_to_lab(np.array([WHITE])), rgb_to_lab(np.array([BLACK]))) == pytest.approx(
        100, abs=0.01
    )
    reference, label = _two_classes(GREY, WHITE)
    picture, _ = _two_classes(GREY, BLACK)
    error = delta_e(class_lab_means(picture, label), class_lab_means(reference, label))
    assert error == pytest.approx(50, abs=0.01)
    # The same error on the large class instead: still one class of two.
    picture, _ = _two_classes(BLACK, WHITE)
    reference, _ = _two_classes(WHITE, WHITE)
    assert delta_e(class_lab_means(picture, label), class_lab_means(reference, label)) == pytest.approx(
        50, abs=0.01
    )


def test_a_known_lab_difference_per_class() -> None:
    """Two classes off by different amounts: the mean of their two Lab distances."""
    reference, label = _two_classes(GREY, (200, 40, 40))
    picture, _ = _two_classes((140, 120, 100), (40, 40, 200))
    lab = {
        c: rgb_to_lab(np.array(c, np.uint8)) for c in (GREY, (200, 40, 40), (140, 120, 100), (40, 40, 200))
    }
    expected = (
        np.linalg.norm(lab[GREY] - lab[(140, 120, 100)])
        + np.linalg.norm(lab[(200, 40, 40)] - lab[(40, 40, 200)])
    ) / 2
    error = delta_e(class_lab_means(picture, label), class_lab_means(reference, label))
    assert error == pytest.approx(expected, rel=1e-9) and error > 50


def test_class_means_average_lab_over_each_class_present() -> None:
    """Rows per class present (ascending id, absent ids skipped), each the mean of its pixels' Lab values (half
    white, half black: L 50, not the L 53.4 of their mean RGB grey)."""
    image, label = _two_classes(GREY, WHITE)
    image[0, :5] = BLACK  # class 7: half black, half white
    means = class_lab_means(image, label)
    assert means.shape == (2, 3)
    np.testing.assert_allclose(means[0], rgb_to_lab(np.array(GREY, np.uint8)), atol=1e-9)  # class 3
    assert means[1, 0] == pytest.approx(50, abs=0.01) and np.abs(means[1, 1:]).max() < 0.01  # class 7


def test_a_picture_equal_to_the_reference_scores_zero() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), np.uint8)
    label = rng.integers(0, 14, (16, 16)).astype(np.uint8)
    means = class_lab_means(image, label)
    assert means.shape == (len(np.unique(label)), 3)
    assert delta_e(means, class_lab_means(image.copy(), label)) == 0.0


def _section(encoded: float, best: float, references: int = 100) -> dict[str, object]:
    return {"references": references, "encoded": encoded, "best_preset": best, "ratio": encoded / best}


def test_the_check_is_inclusive_at_half_the_best_preset_and_needs_100_references() -> None:
    def passes(section: dict[str, object]) -> bool:
        return bool(free_checks(section)[CHECK]["pass"])

    assert CHECK == "free_style_delta_e<=0.5*best_preset"
    assert passes(_section(5.0, 10.0)) and not passes(_section(5.0 + 1e-6, 10.0))
    assert not passes(_section(1.0, 10.0, references=99))
    assert "on 99 references; the issue asks ≥ 100" in free_checks(_section(1.0, 10.0, 99))[CHECK]["figures"]
    assert free_checks(_section(5.0, 10.0))[CHECK]["figures"] == (
        "ΔE encoded 5.00 vs best preset 10.00: 0.50× on 100 references"
    )


def test_a_model_without_presets_is_skipped_with_a_note(model_folder: Path) -> None:
    from models.eval.data import EvalOptions
    from models.eval.free_styles import free_style_section
    from models.eval.onnx_model import ExportedModel

    section = free_style_section(ExportedModel(model_folder), EvalOptions(size=32, free_refs=3))
    assert section["skipped"] == "not evaluated: model.json lists no preset styles"
    assert section["acceptance"] == {CHECK: {"pass": False, "figures": section["skipped"]}}
    assert free_table(section) == "Out-of-family styles: not evaluated: model.json lists no preset styles"


@pytest.mark.slow  # the tiny model's export (tests/conftest.py, ~15–25 s) and a small evaluation
def test_collage_eval_scores_free_styles(
    tiny_weights: Path, tiny_judge: Path, tmp_path: Path, capsys
) -> None:
    from models.eval.cli import main

    model = tmp_path / "model"  # a copy: the evaluation writes into model.json
    shutil.copytree(tiny_weights / "tiny-spade", model)
    out, cache = tmp_path / "eval.json", tmp_path / "cache"
    small = ["--n", "2", "--size", "32", "--workers", "1", "--mean-samples", "2", "--centroid-layouts", "2"]
    argv = [str(model), "--segmenter", str(tiny_judge), *small, "--style-refs", "1", "--batch", "2"]
    assert main([*argv, "--free-refs", "3", "--cache-dir", str(cache), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    free = report["free_styles"]
    assert set(free) == {
        "references", "presets", "delta_e", "encoded", "best_preset", "encoded_median", "best_preset_median",
        "ratio", "encoded_better", "best_preset_counts", "acceptance",
    }  # fmt: skip
    assert free["references"] == report["info"]["free_refs"] == 3
    assert free["presets"] == ["winter", "dusk"] and sum(free["best_preset_counts"].values()) == 3
    for key in ("encoded", "best_preset", "encoded_median", "best_preset_median", "ratio", "encoded_better"):
        assert math.isfinite(free[key]) and free[key] >= 0, key
    assert free["encoded_better"] <= 1
    assert report["acceptance"][CHECK] is False  # 3 references: fewer than the 100
    # Free-style references from a seed of their own, cached like the other sets.
    seed = report["info"]["seeds"]["free_refs"]
    assert sum(f"-seed{seed}-free1.0-" in p.name for p in cache.iterdir()) == 1
    metrics = json.loads((model / "model.json").read_text())["metrics"]["free_styles"]
    assert metrics["references"] == 3 and metrics["encoded"] == pytest.approx(free["encoded"], abs=1e-4)
    printed = capsys.readouterr().out
    assert "Out-of-family styles (3 free-style references, presets winter, dusk)" in printed
    assert f"FAIL  {CHECK}  (ΔE encoded {free['encoded']:.2f}" in printed

    # --free-refs 0: no section, no check, and the metrics merged before stay.
    assert main([*argv, "--free-refs", "0", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert "free_styles" not in report and CHECK not in report["acceptance"]
    assert report["info"]["free_refs"] == 0
    assert json.loads((model / "model.json").read_text())["metrics"]["free_styles"] == metrics
    assert "Out-of-family" not in capsys.readouterr().out


def test_a_negative_count_is_refused(model_folder: Path, capsys) -> None:
    from models.eval.cli import main

    assert main([str(model_folder), "--free-refs", "-1"]) == 2
    assert "--free-refs must be ≥ 0" in capsys.readouterr().err
