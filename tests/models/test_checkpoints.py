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


def test_a_chain_carried_back_onto_its_source_path_ends_instead_of_looping(tmp_path: Path) -> None:
    carry = tmp_path / "init.pt"  # run C started from init.pt (run B, step 10) and was slimmed back onto it
    run_c = {
        "format_version": 1,
        "step": 30,
        "images_seen": 120,
        "config": {"init_from": {"path": str(carry), "step": 10, "size": 256}},
    }
    torch.save(run_c, carry)
    assert lineage_images_seen(run_c) is None  # B's count is gone with the file written over it
    # The same carry at the source's own step (stopped as many steps in as its source had): read once, not again.
    looped = {**run_c, "step": 10}
    torch.save(looped, carry)
    assert lineage_images_seen(looped) is None
    # A later run's carry written over the source is not the source: its count is not added.
    torch.save({"format_version": 1, "step": 50, "images_seen": 200, "config": {}}, carry)
    assert lineage_images_seen(run_c) is None
