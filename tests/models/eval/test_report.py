"""Writing eval.json and merging the metrics into model.json."""

import json
from pathlib import Path

import numpy as np

from models.eval.report import merge_metrics, write_json


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
