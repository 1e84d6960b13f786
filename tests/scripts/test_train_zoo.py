"""scripts/train-zoo.sh, the zoo's recipe: what it runs for each stage, read off its commands (COLLAGE=echo prints
each `collage` command line instead of running it; the folder layout is the real one the stages leave)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train-zoo.sh"


def commands(tmp_path: Path, *args: str) -> list[str]:
    done = subprocess.run(
        ["sh", str(SCRIPT), *args],
        cwd=tmp_path,
        env={**os.environ, "COLLAGE": "echo"},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_stage_b_starts_from_stage_a_and_the_model_is_exported_and_scored(tmp_path: Path) -> None:
    (tmp_path / "runs/zoo-oasis/A/00001-oasis-fast").mkdir(parents=True)
    (tmp_path / "runs/zoo-oasis/B/00001-oasis-fast").mkdir(parents=True)
    lines = commands(tmp_path, "oasis", "B")
    assert [line.split()[:2] for line in lines] == [
        ["data", "cache"], ["data", "cache"], ["train", "--arch"], ["export", "runs/zoo-oasis/B/00001-oasis-fast"],
        ["eval", "weights/landscape-oasis"],
    ]  # fmt: skip
    train = lines[2].split()
    assert (
        "--init_from" in train
        and train[train.index("--init_from") + 1] == "runs/zoo-oasis/A/00001-oasis-fast"
    )
    assert {"--size=256", "--steps=2000", "--lr_decay_start=1000", "--lr_decay_steps=1000"} <= set(train)
    assert lines[3].split()[-3:] == ["weights/landscape-oasis", "--size", "256"]


def test_stage_b_starts_from_a_carried_stage_a_where_its_run_folder_is_absent(tmp_path: Path) -> None:
    (tmp_path / "weights/landscape-sc-gan").mkdir(parents=True)
    (tmp_path / "weights/landscape-sc-gan/init.pt").touch()
    (tmp_path / "runs/zoo-sc-gan/B/00001-sc-gan-fast").mkdir(parents=True)
    train = commands(tmp_path, "sc-gan", "B")[2].split()
    assert train[train.index("--init_from") + 1] == "weights/landscape-sc-gan/init.pt"
    # Where stage A's folder exists it wins over a carried file.
    (tmp_path / "runs/zoo-sc-gan/A/00001-sc-gan-fast").mkdir(parents=True)
    train = commands(tmp_path, "sc-gan", "B")[2].split()
    assert train[train.index("--init_from") + 1] == "runs/zoo-sc-gan/A/00001-sc-gan-fast"


def test_stage_a_alone_is_carried_as_init_pt_for_stage_b(tmp_path: Path) -> None:
    (tmp_path / "runs/zoo-collage-base/A/00001-collage-base").mkdir(parents=True)
    lines = commands(tmp_path, "collage-base", "A")
    assert [line.split()[:2] for line in lines] == [
        ["data", "cache"], ["data", "cache"], ["train", "--arch"],
        ["slim", "runs/zoo-collage-base/A/00001-collage-base"],
    ]  # fmt: skip
    assert {"--size=128", "--steps=4000"} <= set(lines[2].split())
    assert lines[3].split()[-2:] == ["--out", "weights/landscape-collage-base/init.pt"]


def test_spade_on_the_zoo_budget_never_overwrites_the_default_model(tmp_path: Path) -> None:
    (tmp_path / "runs/zoo-spade/B/00001-spade-fast").mkdir(parents=True)
    lines = commands(tmp_path, "spade", "export")
    assert lines[-2].split()[:4] == [
        "export",
        "runs/zoo-spade/B/00001-spade-fast",
        "--out",
        "weights/landscape-spade-24k",
    ]
    assert not any("weights/landscape-spade " in line + " " for line in lines)


def test_a_stage_folder_with_other_than_one_run_stops_the_recipe(tmp_path: Path) -> None:
    for run in ("00001-oasis-fast", "00002-oasis-fast"):
        (tmp_path / "runs/zoo-oasis/B" / run).mkdir(parents=True)
    with pytest.raises(subprocess.CalledProcessError) as failed:
        commands(tmp_path, "oasis", "export")
    assert "expected one run folder in runs/zoo-oasis" in failed.value.stderr


def test_an_unknown_stage_stops_before_any_command(tmp_path: Path) -> None:
    (tmp_path / "runs/zoo-oasis/B/00001-oasis-fast").mkdir(parents=True)
    with pytest.raises(subprocess.CalledProcessError) as failed:
        commands(tmp_path, "oasis", "b")
    assert failed.value.stdout == "" and "unknown stage 'b'" in failed.value.stderr
