"""benchmarks/collage.py at a toy size on the tiny CollageGAN model: its painted maps, its JSON, its section."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from common.collage import plan
from common.instances import instances_from_labels
from common.runtime import RuntimeChoice

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))  # benchmarks/ is run from the checkout, not installed
    return importlib.import_module("benchmarks.collage")


def test_runs_on_the_tiny_collage_model_and_writes_every_key(
    bench: ModuleType, tiny_collage_weights: Path, tmp_path: Path
) -> None:
    out, page = tmp_path / "collage.json", tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\n## Engine\n\nrows\n\n## Reproduce\n\nmake bench\n")
    argv = ["--weights", str(tiny_collage_weights), "--model", "tiny-collage", "--size", "128"]
    argv += ["--counts", "1", "3", "--runs", "2", "--warmup", "1", "--threads", "1"]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.collage", *argv, "--out", str(out), "--markdown", str(page)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == result
    assert (result["model"], result["size"], result["runs"], result["warmup"]) == ("tiny-collage", 128, 2, 1)
    for key in ("runtime", "runtime_version", "device", "precision", "cpu_model", "cpu_flags", "native_bf16"):
        assert key in result
    assert result["runtime"] in ("openvino", "onnxruntime") and result["precision"] in ("f32", "bf16")
    assert [c["thing"] for c in result["class_generators"]] == ["rock", "tree", "house"]  # by class id
    assert (
        result["base"]["instances_on_map"] == 3 and 0 < result["base"]["p50_ms"] <= result["base"]["p90_ms"]
    )
    rows = result["stage"]
    assert [r["instances"] for r in rows] == [1, 3]
    assert rows[0]["by_class"] == {"tree": 1} and rows[1]["by_class"] == {"house": 1, "rock": 1, "tree": 1}
    for r in rows:
        assert 0 < r["p50_ms"] <= r["p90_ms"] and r["waves"] >= 1
        assert r["vs_base"] == pytest.approx(r["p50_ms"] / result["base"]["p50_ms"], rel=0.02)

    text = page.read_text()  # the section spliced in before "## Reproduce", the rest kept
    assert text.index("## Engine") < text.index(bench.HEADING) < text.index("## Reproduce")
    assert "| 3 (1 house, 1 rock, 1 tree) |" in text and "make bench" in text


def test_maps_have_exactly_the_counted_instances(bench: ModuleType, tiny_collage_weights: Path) -> None:
    from server.registry import load_model

    model = load_model(tiny_collage_weights / "tiny-collage", RuntimeChoice("onnxruntime", threads=1))
    specs = {cid: g.spec for cid, g in model.class_generators.items()}
    maps = bench.bench_maps(model, 256, [1, 5, 20])
    for count, (labels, instances) in maps.items():
        assert labels.shape == (256, 256) and labels.dtype == np.uint8
        assert np.array_equal(instances, instances_from_labels(labels, model.thing_ids))
        assert instances.max() == count  # no instance too small for its generator, none merged
        assert len(plan(labels, instances, specs)) == count
    again = bench.bench_maps(model, 256, [5])[5]  # deterministic
    assert np.array_equal(again[0], maps[5][0])


def test_a_model_without_class_generators_is_reported_not_fatal(bench: ModuleType) -> None:
    skipped = {"model": "m", "size": 256, "skipped": "m has no class generators (model.json lists none)"}
    heading = bench.HEADING
    assert bench.ratio_line(skipped) is None
    assert bench.markdown_lines(skipped) == [heading, "", f"Not measured: {skipped['skipped']}.", ""]
    page = "# B\n\n" + "\n".join(bench.markdown_lines(skipped)) + "\n## Reproduce\n"
    assert bench.splice(page, [heading, "", "new", ""]) == f"# B\n\n{heading}\n\nnew\n\n## Reproduce\n"
