"""benchmarks/train_step.py at a toy size: both precisions timed, the JSON line a `make bench` run parses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_times_fp32_and_bf16_steps_and_prints_their_ratio() -> None:
    torch = pytest.importorskip("torch")
    argv = ["--preset=spade-tiny", "--size=32", "--batch=2", "--steps=2", "--warmup=1", "--threads=1"]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_step", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["preset"], result["size"], result["batch"], result["steps"]) == ("spade-tiny", 32, 2, 2)
    assert result["threads"] == 1 and result["torch"] == torch.__version__
    for precision in ("fp32", "bf16"):
        row = result[precision]
        assert 0 < row["s_per_step_min"] <= row["s_per_step"] and row["images_per_s"] > 0
    ratio = result["fp32"]["s_per_step"] / result["bf16"]["s_per_step"]
    assert result["fp32_vs_bf16"] == pytest.approx(ratio, rel=0.02)  # of the unrounded medians
    assert "fp32 / bf16 time per step" in proc.stdout


def test_refuses_zero_timed_steps(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.train_step import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--steps", "0"])
    assert exit_info.value.code == 2 and "--steps must be ≥ 1" in capsys.readouterr().err
