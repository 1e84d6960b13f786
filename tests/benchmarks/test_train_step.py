"""benchmarks/train_step.py at a toy size: both precisions timed, the JSON line a `make bench` run parses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_times_each_variant_and_prints_its_speedup_over_fp32() -> None:
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
    for variant in ("fp32", "bf16", "bf16-cl"):  # the default variants
        row = result[variant]
        assert 0 < row["s_per_step_min"] <= row["s_per_step"] and row["images_per_s"] > 0
        ratio = result["fp32"]["s_per_step"] / row["s_per_step"]
        assert row["speedup_vs_fp32"] == pytest.approx(ratio, rel=0.02)  # of the unrounded medians
    assert result["fp32_vs_bf16"] == result["bf16"]["speedup_vs_fp32"]
    assert "bf16-compile" not in result and "vs fp32" in proc.stdout


def test_refuses_zero_timed_steps(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.train_step import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--steps", "0"])
    assert exit_info.value.code == 2 and "--steps must be ≥ 1" in capsys.readouterr().err


def test_variants_start_with_fp32(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.train_step import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--variants", "bf16", "fp32"])
    assert exit_info.value.code == 2 and "--variants must start with fp32" in capsys.readouterr().err
