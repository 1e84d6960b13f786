"""Smoke test of the benchmark suite: `python -m benchmarks.run --quick` end to end (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_run_writes_json_and_markdown(tmp_path: Path) -> None:
    pytest.importorskip("torch")  # the reference models are exported on the fly
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out), "--weights", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ratios (independent of machine speed)" in proc.stdout

    results = json.loads(out.read_text())
    assert results["config"]["quick"] is True
    peak = results["peak"]["peak_gflops"]
    assert set(peak) == {"1", str(results["config"]["cores"])} and all(v > 0 for v in peak.values())
    names = [m["name"] for m in results["models"]]
    assert names == ["bench-spade-fast", "bench-spade-tiny"]  # the empty --weights folder serves nothing
    assert results["default_model"] == "bench-spade-fast"
    for model in results["models"]:
        assert model["memory"]["peak_rss_mb"] > 0
        rows = model["engine"]
        assert [(r["size"], r["batch"], r["threads"]) for r in rows] == [
            (256, 1, t) for t in results["config"]["threads"]
        ]
        for row in rows:
            assert 0 < row["p50_ms"] <= row["p95_ms"]
            assert row["achieved_gflops"] == pytest.approx(
                2 * row["gmacs_per_image"] / (row["p50_ms"] / 1000), rel=0.01
            )
    fast = results["models"][0]
    assert fast["gmacs_256"] == pytest.approx(2.548, rel=0.01)  # spade-fast's budgeted size

    runtimes = results["runtimes"]
    assert list(runtimes["peaks_gflops"])[:2] == ["onnxruntime f32", "openvino f32"]
    assert ("openvino bf16" in runtimes["peaks_gflops"]) == runtimes["native_bf16"]
    # Nothing is served from the empty --weights, so the default reference model is the one timed.
    (timed,) = runtimes["models"]
    assert timed["model"] == "bench-spade-fast" and timed["storage"] == "int16"
    assert [(r["graph"], r["batch"]) for r in timed["rows"]] == [("generator", 1), ("encoder", 1)]
    for row in timed["rows"]:
        assert row["vs_onnxruntime"]["onnxruntime f32"] == 1.0 and all(v > 0 for v in row["ms"].values())
    # Only positive: the quick probes are small, so a real generator may beat them (CI saw 1.53 on one CPU).
    assert timed["rows"][0]["peak_fraction"]["openvino f32"] > 0
    (latency,) = results["paint_latency"]
    assert latency["size"] == 256 and latency["paint_to_frame"]["1"]["frames"] == 10
    assert latency["ratio_1_client_p50"] > 0

    collage = results["collage"]  # the default reference model has no class generators
    assert collage["model"] == "bench-spade-fast" and "no class generators" in collage["skipped"]
    assert "collage_stage_vs_base" not in results["ratios"]

    paint = results["paint"]["runs"]
    assert [r["clients"] for r in paint] == [1, 4, 16]
    for r in paint:
        assert r["frames"] > 0
        assert r["maps_sent"] == r["frames"] + r["unanswered"] + sum(r["errors"].values())
        assert 0 <= r["server_dropped"] <= r["unanswered"]  # a map replaced in the slot is never answered
    rest = results["rest"]
    assert rest["batch"]["items"] == 8 and rest["batch"]["images_per_s"] > 0
    assert rest["render"]["p50_ms"] > 0
    step = results["train_step"]
    assert (step["preset"], step["size"], step["batch"], step["steps"]) == ("spade-tiny", 32, 2, 2)
    for precision in ("fp32", "bf16"):
        assert 0 < step[precision]["s_per_step_min"] <= step[precision]["s_per_step"]
        assert step[precision]["images_per_s"] > 0
    assert step["fp32_vs_bf16"] > 0

    ratios = results["ratios"]
    assert ratios["default_vs_paper"] is None  # --quick does not export spade-paper
    assert {"paint_1_client_vs_engine", "rest_render_vs_engine", "batch_job_vs_engine_throughput"} <= set(
        ratios
    )
    assert set(ratios["achieved_vs_peak"]) == set(names)
    assert ratios["train_step_fp32_vs_bf16"]["ratio"] == step["fp32_vs_bf16"]

    page = out.with_suffix(".md").read_text()
    for heading in (
        "## Ratios (independent of machine speed)",
        "## Runtimes side by side",
        "### Paint → frame, 1 client, against the engine's own time",
        "## CollageGAN composition stage",
        "## Machine peak",
        "## Models",
        "## Engine",
        "## Where the time goes",
        "## Paint path",
        "## REST",
        "## Training step",
    ):
        assert heading in page
    assert results["meta"]["git_commit"] in page and results["meta"]["cpu_model"] in page
