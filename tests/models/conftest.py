"""Fixtures for the trainer tests, which run real training commands in a scratch folder.

Fixtures rather than a helper module: the tests folders are not packages and pytest runs in importlib mode, so
a test module cannot import a sibling module. torch is imported inside the fixtures because the data tests
under this folder run without it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Runs land in ./runs of a fresh folder, whatever COLLAGE_RUNS_DIR or a torchrun WORLD_SIZE the shell has."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COLLAGE_RUNS_DIR", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.fixture
def tiny_spade() -> list[str]:
    """`collage train` flags for a spade-tiny run at 32² on procedural data that writes only its checkpoint."""
    return [
        "--arch", "spade", "--preset", "spade-tiny", "--data=procedural", "--size=32", "--num-workers=0",
        "--threads=1", "--sample-every=0", "--snapshot-every=0", "--checkpoint-every=1000",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_segmenter() -> list[str]:
    """`collage train` flags for a segmenter-tiny run on procedural data that writes no sample sheets."""
    return ["--arch", "segmenter", "--preset", "segmenter-tiny", "--num_workers=0", "--sample_every=0"]


@pytest.fixture
def load() -> Callable[[Path], dict[str, Any]]:
    """Reads a checkpoint the way the trainer does: tensors on the CPU, no pickled code."""
    import torch

    def read(path: Path) -> dict[str, Any]:
        return torch.load(path, map_location="cpu", weights_only=True)

    return read
