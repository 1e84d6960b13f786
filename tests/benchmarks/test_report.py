"""benchmarks/report.py on hand-made results: the sections and ratios a run's numbers turn into."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))  # benchmarks/ is run from the checkout, not installed
    return importlib.import_module("benchmarks.report")


def minimal_results(**extra: Any) -> dict[str, Any]:
    """A run that measured nothing but the machine peak, plus `extra` sections."""
    return {
        "meta": {
            "date": "2025-01-01T00:00:00+00:00",
            "command": "make bench",
            "git_commit": "0123456789ab",
            "git_dirty": False,
            "cpu_model": "Test CPU",
            "cores": 2,
            "onnxruntime": "1.0",
            "wall_s": 60.0,
            "load_start": 0.1,
            "load_end": 0.2,
        },
        "config": {"quick": False, "server_threads": 2, "paint_size": 256, "max_config_s": 60.0},
        "peak": {"peak_gflops": {"1": 50.0, "2": 100.0}, "gflops": {}, "shapes": {}},
        "models": [],
        "default_model": None,
        **extra,
    }


def test_training_step_section_and_ratio(report: ModuleType) -> None:
    step = {
        "preset": "spade-fast",
        "size": 256,
        "batch": 4,
        "threads": 2,
        "warmup": 1,
        "steps": 10,
        "fp32": {"s_per_step": 1.59, "s_per_step_min": 1.55, "images_per_s": 2.52},
        "bf16": {"s_per_step": 0.95, "s_per_step_min": 0.93, "images_per_s": 4.21},
        "fp32_vs_bf16": 1.674,
        "torch": "2.13.0+cpu",
        "cpu_model": "Test CPU",
        "avx512_bf16": True,
        "amx_tile": False,
    }
    results = minimal_results(train_step=step)
    results["ratios"] = report.ratios(results)
    assert results["ratios"]["train_step_fp32_vs_bf16"] == {
        "at": "spade-fast, 256², batch 4, 2 thread(s)",
        "ratio": 1.674,
        "avx512_bf16": True,
    }
    page = report.markdown(results)
    assert (
        "- training step (spade-fast, 256², batch 4, 2 thread(s)), fp32 / bf16 autocast seconds per step: "
        "1.674 (CPU reports avx512_bf16: yes)"
    ) in page
    section = page.split("## Training step", 1)[1].split("## Reproduce", 1)[0]
    assert "torch 2.13.0+cpu, Test CPU: avx512_bf16 yes, amx_tile no." in section
    assert "| fp32 | 1.590 | 2.52 |\n| bf16 | 0.950 | 4.21 |" in section
    assert "fp32 / bf16 seconds per step: **1.674**." in section


def test_a_run_without_a_training_step_has_neither_section_nor_ratio(report: ModuleType) -> None:
    results = minimal_results()
    results["ratios"] = report.ratios(results)
    assert "train_step_fp32_vs_bf16" not in results["ratios"]
    page = report.markdown(results)
    assert "## Training step" not in page and "training step" not in page


def test_collage_stage_section_and_ratio(report: ModuleType) -> None:
    stage = {
        "model": "landscape-spade",
        "folder": "landscape-spade",
        "size": 256,
        "date": "2025-01-01T00:00:00+00:00",
        "code": "0123456",
        "runtime": "openvino",
        "runtime_version": "2026.4",
        "device": "CPU",
        "precision": "bf16",
        "class_runtime": ["openvino bf16"],
        "threads": 2,
        "cpu_model": "Test CPU",
        "cpu_flags": ["avx2", "avx512_bf16"],
        "native_bf16": True,
        "runs": 30,
        "warmup": 3,
        "class_generators": [
            {"thing": "tree", "context_size": 64, "target_size": 32, "min_side": 12},
        ],
        "base": {"instances_on_map": 5, "p50_ms": 16.0, "p90_ms": 18.0, "min_ms": 15.0},
        "stage": [
            {
                "instances": n,
                "by_class": {"tree": n},
                "waves": w,
                "p50_ms": ms,
                "p90_ms": ms + 1,
                "min_ms": ms - 1,
                "ms_per_instance": round(ms / n, 2),
                "vs_base": round(ms / 16.0, 3),
                "vs_base_p90": round((ms + 1) / 18.0, 3),
            }
            for n, w, ms in ((1, 1, 4.0), (5, 2, 12.0), (20, 5, 40.0))
        ],
    }
    results = minimal_results(collage=stage)
    results["ratios"] = report.ratios(results)
    assert results["ratios"]["collage_stage_vs_base"] == {
        "at": "landscape-spade, 256², openvino bf16",
        "by_instances": {"1": 0.25, "5": 0.75, "20": 2.5},
    }
    page = report.markdown(results)
    assert (
        "- CollageGAN composition stage / base generator (landscape-spade, 256², openvino bf16), median time: "
        "1 instance(s) 0.25, 5 instance(s) 0.75, 20 instance(s) 2.50"
    ) in page
    section = page.split("## CollageGAN composition stage", 1)[1].split("## Machine peak", 1)[0]
    assert "| base generator | | 16.0 | 18.0 | | 1.00 | 1.00 |" in section
    assert "| 5 (5 tree) | 2 | 12.0 | 13.0 | 2.4 | **0.75×** | 0.72× |" in section
    assert "Test CPU, flags: avx2 avx512_bf16" in section


def test_a_skipped_collage_stage_says_why(report: ModuleType) -> None:
    results = minimal_results(collage={"model": "m", "size": 256, "skipped": "m has no class generators"})
    results["ratios"] = report.ratios(results)
    assert "collage_stage_vs_base" not in results["ratios"]
    page = report.markdown(results)
    assert "## CollageGAN composition stage\n\nNot measured: m has no class generators." in page
