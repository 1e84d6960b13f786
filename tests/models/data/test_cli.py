import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.data import FAMILIES
from models.data.cli import grid_gap, main
from models.data.datasets import ProceduralLandscapes, make_dataset
from models.data.samples import Mix
from models.labels import LANDSCAPE


def cache_argv(folder: Path, *share: str) -> list[str]:
    """`collage data cache` of 2 samples at 16², seed 3, into `folder`, with a share's flag and value."""
    return ["cache", "--length", "2", "--size", "16", "--seed", "3", "--dir", str(folder), *share]


def test_preview_writes_grid_of_label_colours_beside_renders(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "grid.png"
    assert main(["preview", "--n", "5", "--size", "32", "--seed", "4", "--out", str(out)]) == 0
    grid = np.asarray(Image.open(out).convert("RGB"))
    gap = grid_gap(32)
    # 5 pairs → 3 pairs per row, 2 rows; each pair is label colours (32 wide) then the render (32 wide).
    assert grid.shape == (2 * 32 + 3 * gap, 3 * 64 + 4 * gap, 3)
    first = ProceduralLandscapes(32, 5, seed=4)[0]
    colors = LANDSCAPE.ids_to_colors(first["label"].numpy())
    render = ((first["image"] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(grid[gap : gap + 32, gap : gap + 32], colors)
    assert np.array_equal(grid[gap : gap + 32, gap + 32 : gap + 64], render)
    assert (grid[gap + 32 + gap + 32 :, :] == 255).all()  # nothing below the second row
    assert (grid[gap + 32 + gap :, 2 * gap + 128 :] == 255).all()  # the sixth cell stays empty


def test_export_round_trips_through_the_folder_loader(tmp_path: Path) -> None:
    out = tmp_path / "pairs"
    assert main(["export", "--n", "3", "--size", "32", "--seed", "9", "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    with Image.open(out / "labels" / "00000.png") as im:
        assert im.mode == "L"
    with Image.open(out / "instances" / "00000.png") as im:
        assert im.mode.startswith("I")  # 16-bit
    assert json.loads((out / "meta.json").read_text())["label_set"] == "landscape"
    loaded, label_set = make_dataset(f"folder:{out}", 32)
    original = ProceduralLandscapes(32, 3, seed=9)
    assert label_set is LANDSCAPE and len(loaded) == 3
    for i in range(3):
        a, b = original[i], loaded[i]
        assert torch.equal(a["label"], b["label"])
        assert torch.equal(a["image"], b["image"])  # PNG is lossless
        assert a["style"] == b["style"] and 0 <= b["style"] < len(FAMILIES)
        # Same partition into instances (the loader may renumber ids to 1..K).
        pairs = set(zip(a["instance"].flatten().tolist(), b["instance"].flatten().tolist(), strict=True))
        assert (
            len(pairs)
            == len(set(a["instance"].flatten().tolist()))
            == len(set(b["instance"].flatten().tolist()))
        )
        assert torch.equal(a["instance"] == 0, b["instance"] == 0)


def test_export_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    args = ["export", "--n", "1", "--size", "16", "--out", str(tmp_path)]
    assert main(args) == 0
    with pytest.raises(SystemExit, match="already holds an export"):
        main(args)
    assert main([*args, "--force"]) == 0
    assert len(list((tmp_path / "images").iterdir())) == 1


def test_bad_arguments_exit_with_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["preview", "--n", "0"])
    assert exit_info.value.code == 2


def test_cache_command_fills_the_trainers_cache(tmp_path: Path) -> None:
    assert main(cache_argv(tmp_path)) == 0
    cached = ProceduralLandscapes(16, 2, seed=3, cache_dir=tmp_path)
    assert cached.folder is not None and cached.folder.parent == tmp_path
    assert torch.equal(cached[1]["image"], ProceduralLandscapes(16, 2, seed=3)[1]["image"])


def _render_of(sample: dict) -> np.ndarray:
    return ((sample["image"] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def test_preview_shows_painted_layouts_or_both(tmp_path: Path) -> None:
    gap = grid_gap(32)
    for layouts, painted in (("painted", [1.0, 1.0]), ("both", [0.0, 1.0])):
        out = tmp_path / f"{layouts}.png"
        argv = ["preview", "--layouts", layouts, "--n", "2", "--size", "32", "--seed", "4", "--cols", "2"]
        assert main([*argv, "--out", str(out)]) == 0
        grid = np.asarray(Image.open(out).convert("RGB"))
        assert grid.shape == (32 + 2 * gap, 2 * 64 + 3 * gap, 3)  # one row of two pairs
        for i, share in enumerate(painted):
            sample = ProceduralLandscapes(32, 2, seed=4, mix=Mix(painted=share))[i]
            x = gap + i * (64 + gap)
            assert np.array_equal(
                grid[gap : gap + 32, x : x + 32], LANDSCAPE.ids_to_colors(sample["label"].numpy())
            )
            assert np.array_equal(grid[gap : gap + 32, x + 32 : x + 64], _render_of(sample))
    out = tmp_path / "palette.png"
    assert (
        main(
            [
                "preview",
                "--layouts",
                "painted",
                "--n",
                "2",
                "--size",
                "32",
                "--colors",
                "64",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with Image.open(out) as im:
        assert im.mode == "P" and len(im.getcolors(256) or []) <= 64


def test_cache_and_export_take_a_painted_share(tmp_path: Path) -> None:
    argv = cache_argv(tmp_path, "--painted", "0.5")
    assert main(argv) == 0
    cached = ProceduralLandscapes(16, 2, seed=3, cache_dir=tmp_path, mix=Mix(painted=0.5))
    assert cached.folder is not None and "painted0.5" in cached.folder.name
    assert torch.equal(
        cached[1]["label"], ProceduralLandscapes(16, 2, seed=3, mix=Mix(painted=0.5))[1]["label"]
    )
    out = tmp_path / "pairs"
    assert (
        main(["export", "--n", "2", "--size", "16", "--seed", "3", "--out", str(out), "--painted", "1"]) == 0
    )
    assert json.loads((out / "meta.json").read_text())["generator"] == {"seed": 3, "size": 16, "painted": 1.0}
    with Image.open(out / "labels" / "00001.png") as im:
        assert np.array_equal(
            np.asarray(im), ProceduralLandscapes(16, 2, seed=3, mix=Mix(painted=1.0))[1]["label"].numpy()
        )
    for bad in (["--painted", "1.5"], ["--painted", "-0.1"]):
        with pytest.raises(SystemExit):
            main(["cache", "--length", "1", "--dir", str(tmp_path), *bad])


def test_preview_cache_and_export_take_a_free_style_share(tmp_path: Path) -> None:
    from models.data.datasets import folder_dataset

    gap = grid_gap(16)
    out = tmp_path / "free.png"
    argv = ["preview", "--n", "2", "--size", "16", "--seed", "3", "--cols", "2", "--free-styles", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    grid = np.asarray(Image.open(out).convert("RGB"))
    free = ProceduralLandscapes(16, 2, seed=3, mix=Mix(free=1.0))
    for i in range(2):
        x = gap + i * (32 + gap)
        assert np.array_equal(grid[gap : gap + 16, x + 16 : x + 32], _render_of(free[i]))
    assert not np.array_equal(_render_of(free[1]), _render_of(ProceduralLandscapes(16, 2, seed=3)[1]))

    argv = cache_argv(tmp_path, "--free-styles", "0.5")
    assert main(argv) == 0
    cached = ProceduralLandscapes(16, 2, seed=3, cache_dir=tmp_path, mix=Mix(free=0.5))
    assert cached.folder is not None and "-free0.5-" in cached.folder.name and cached.folder.is_dir()

    pairs = tmp_path / "pairs"
    argv = ["export", "--n", "2", "--size", "16", "--seed", "3", "--out", str(pairs), "--free-styles", "1"]
    assert main(argv) == 0
    meta = json.loads((pairs / "meta.json").read_text())
    assert meta["generator"] == {"seed": 3, "size": 16, "free_styles": 1.0}
    assert meta["styles"] == {"00000": None, "00001": None}  # a free style belongs to no family
    exported = folder_dataset(pairs, 16)
    assert [exported[i]["style"] for i in range(2)] == [-1, -1]
    for bad in (["--free-styles", "1.5"], ["--free-styles", "-0.1"]):
        with pytest.raises(SystemExit):
            main(["preview", "--n", "1", "--out", str(out), *bad])


def test_preview_cache_and_export_take_a_large_share(tmp_path: Path) -> None:
    gap = grid_gap(16)
    out = tmp_path / "large.png"
    argv = ["preview", "--n", "2", "--size", "16", "--seed", "3", "--cols", "2", "--large", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    grid = np.asarray(Image.open(out).convert("RGB"))
    large = ProceduralLandscapes(16, 2, seed=3, mix=Mix(large=1.0))
    for i in range(2):
        x = gap + i * (32 + gap)
        assert np.array_equal(
            grid[gap : gap + 16, x : x + 16], LANDSCAPE.ids_to_colors(large[i]["label"].numpy())
        )
        assert np.array_equal(grid[gap : gap + 16, x + 16 : x + 32], _render_of(large[i]))
    assert not np.array_equal(_render_of(large[1]), _render_of(ProceduralLandscapes(16, 2, seed=3)[1]))

    argv = cache_argv(tmp_path, "--large", "0.5")
    assert main(argv) == 0
    cached = ProceduralLandscapes(16, 2, seed=3, cache_dir=tmp_path, mix=Mix(large=0.5))
    assert cached.folder is not None and "-large0.5-" in cached.folder.name and cached.folder.is_dir()

    pairs = tmp_path / "pairs"
    argv = ["export", "--n", "2", "--size", "16", "--seed", "3", "--out", str(pairs), "--large", "1"]
    assert main(argv) == 0
    assert json.loads((pairs / "meta.json").read_text())["generator"] == {"seed": 3, "size": 16, "large": 1.0}
    with Image.open(pairs / "labels" / "00001.png") as im:
        assert np.array_equal(np.asarray(im), large[1]["label"].numpy())
    for command in (
        ["preview", "--n", "1", "--out", str(out)],
        ["cache", "--length", "1", "--dir", str(tmp_path)],
    ):
        for bad in ("1.5", "-0.1"):
            with pytest.raises(SystemExit) as exit_info:
                main([*command, "--large", bad])
            assert exit_info.value.code == 2  # a usage error, before anything is rendered
