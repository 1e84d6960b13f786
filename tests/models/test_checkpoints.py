from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoints import CheckpointError, lineage_images_seen, load_checkpoint, read_checkpoint


def test_unreadable_files_are_named_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"junk junk")
    with pytest.raises(CheckpointError, match=r"junk\.pt is not a readable collage checkpoint \("):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"format_version": 1, "step": 1}, tmp_path / "whole.pt")
    whole = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt is not a readable collage checkpoint"):
        read_checkpoint(tmp_path / "truncated.pt")


def test_a_weights_only_refusal_keeps_the_global_it_refused(tmp_path: Path) -> None:
    torch.save({"step": np.float64(1.0)}, tmp_path / "numpy.pt")  # a pickled numpy scalar: not weights-only
    with pytest.raises(CheckpointError, match="Unsupported global"):
        read_checkpoint(tmp_path / "numpy.pt")


def test_only_checkpoints_of_the_format_load(tmp_path: Path) -> None:
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        read_checkpoint(tmp_path / "list.pt")
    torch.save({"format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="not a collage checkpoint of format 1"):
        load_checkpoint(tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "run")  # a run folder without checkpoint-latest.pt
    (tmp_path / "run").mkdir()
    torch.save({"format_version": 1, "step": 3}, tmp_path / "run" / "checkpoint-latest.pt")
    checkpoint, folder = load_checkpoint(tmp_path / "run")
    assert (checkpoint["step"], folder) == (3, tmp_path / "run")


def test_the_images_a_chain_has_seen_come_from_its_record_or_else_its_source_file(tmp_path: Path) -> None:
    assert lineage_images_seen({"images_seen": 40, "config": {}}) == 40
    source = tmp_path / "a.pt"
    recorded = {"path": str(source), "step": 10, "size": 128}
    assert (
        lineage_images_seen({"images_seen": 8, "config": {"init_from": {**recorded, "images_seen": 40}}})
        == 48
    )
    # Recorded before the count was kept: read from the source checkpoint while it exists, else unknown.
    older = {"images_seen": 8, "config": {"init_from": recorded}}
    assert lineage_images_seen(older) is None
    torch.save({"format_version": 1, "step": 10, "images_seen": 40, "config": {}}, source)
    assert lineage_images_seen(older) == 48
