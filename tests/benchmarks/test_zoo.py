"""`python -m benchmarks.zoo` end to end on tiny models (no timing assertions: the figures are the machine's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import export_untrained


@pytest.mark.slow
def test_zoo_writes_the_table_the_json_and_the_picture_rows(tmp_path: Path) -> None:
    pytest.importorskip("torch")  # the models are exported on the fly
    from benchmarks.zoo import PICTURES, main

    weights = tmp_path / "weights"
    export_untrained(weights / "tiny-oasis", "oasis", "oasis-tiny")
    export_untrained(weights / "tiny-lggan", "lggan", "lggan-tiny")
    out = tmp_path / "docs" / "model-zoo.md"
    result = main(
        ["--weights", str(weights), "--runs", "2", "--references", "spade-tiny", "--out", str(out),
         "--json", str(tmp_path / "zoo.json")]
    )  # fmt: skip
    models = [r["model"] for r in result["rows"]]
    assert models == ["tiny-lggan", "tiny-oasis", "bench-spade-tiny (untrained)"]
    assert json.loads((tmp_path / "zoo.json").read_text()) == result
    for r in result["rows"]:
        assert set(r["latency_ms"]) == {"openvino bf16", "onnxruntime f32"} or set(r["latency_ms"]) == {
            "openvino f32",
            "onnxruntime f32",
        }
        assert all(ms > 0 for sizes in r["latency_ms"].values() for ms in sizes.values())
        assert r["params_m"] > 0 and r["gmacs_256"] > 0
    by_name = {r["model"]: r for r in result["rows"]}
    assert "seeded noise" in by_name["tiny-oasis"]["capabilities"]  # OASIS draws 3D noise from the seed
    assert "photo style" not in by_name["tiny-lggan"]["capabilities"]
    text = out.read_text()
    assert text.startswith("# Model zoo") and text.count("| tiny-") == 2 and "(untrained)" in text
    # Rows: label maps, reference renders, one per served model; columns: procedural then painted layouts.
    with Image.open(out.with_suffix(".png")) as sheet:
        assert sheet.height == 4 * (128 + 4) and sheet.width == 150 + 2 * PICTURES * (128 + 4)
