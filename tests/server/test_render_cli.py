"""`collage render` on the tiny model: ids and colour maps, folders and zips, seeds, presets, a style photo,
resume (skip, re-render a deleted picture byte for byte), bad files reported while the rest render, and the
manifest listing each finished picture once."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from server.batch_render import Renderer, derived_seed
from server.render_cli import main


@pytest.fixture
def maps(tmp_path: Path, landscape: Callable[..., np.ndarray], tiny_weights: Path) -> Path:
    """`a.png` (ids), `sub/b.png` (the same layout flipped, as label colours) and `notes.txt` (ignored)."""
    folder = tmp_path / "maps"
    (folder / "sub").mkdir(parents=True)
    ids = landscape(32, 32)
    Image.fromarray(ids).save(folder / "a.png")
    labels = json.loads((tiny_weights / "tiny-spade" / "model.json").read_text())["labels"]
    colors = np.array([lb["color"] for lb in sorted(labels, key=lambda lb: lb["id"])], np.uint8)
    Image.fromarray(colors[ids[:, ::-1]]).save(folder / "sub" / "b.png")
    (folder / "notes.txt").write_text("not a map")
    return folder


@pytest.fixture
def render(tiny_weights: Path) -> Callable[..., int]:
    """`collage render INPUT --out OUT …` on tiny-spade, one inference thread."""

    def run(source: Path, out: Path, *args: str) -> int:
        base = [str(source), "--out", str(out), "--weights", str(tiny_weights), "--model", "tiny-spade"]
        return main([*base, "--threads", "1", *args])

    return run


def manifest(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def pictures(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}


def test_ids_and_colour_maps_render_the_same_per_seed(
    maps: Path, render: Callable[..., int], tmp_path: Path
) -> None:
    assert render(maps, tmp_path / "o1", "--seed", "5") == 0
    first = pictures(tmp_path / "o1")
    assert set(first) == {"a__0.png", "sub/b__0.png"}
    assert render(maps, tmp_path / "o2", "--seed", "5") == 0
    assert pictures(tmp_path / "o2") == first
    assert render(maps, tmp_path / "o3", "--seed", "6") == 0
    assert pictures(tmp_path / "o3")["a__0.png"] != first["a__0.png"]
    # the colour map decodes to the ids it was drawn from: as `a.png` it renders a's picture
    colour_only = tmp_path / "colour"
    colour_only.mkdir()
    flipped = np.asarray(Image.open(maps / "sub" / "b.png"))[:, ::-1]
    Image.fromarray(np.ascontiguousarray(flipped)).save(colour_only / "a.png")
    assert render(colour_only, tmp_path / "o4", "--seed", "5") == 0
    assert pictures(tmp_path / "o4")["a__0.png"] == first["a__0.png"]
    entries = manifest(tmp_path / "o1")
    assert sorted(e["file"] for e in entries) == ["a__0.png", "sub/b__0.png"]
    a = next(e for e in entries if e["input"] == "a.png")
    assert a["seed"] == derived_seed(5, "a.png", 0) and isinstance(a["render_ms"], float)


def test_resume_skips_finished_and_rerenders_exactly_a_deleted_picture(
    maps: Path, render: Callable[..., int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    assert render(maps, out, "--styles-per-map", "2") == 0
    before = pictures(out)
    calls: list[str] = []
    original = Renderer.render

    def counted(self: Renderer, plan: object, task: object, labels: np.ndarray) -> tuple[bytes, float]:
        calls.append(task.file)  # type: ignore[attr-defined]
        return original(self, plan, task, labels)  # type: ignore[arg-type]

    monkeypatch.setattr(Renderer, "render", counted)
    assert render(maps, out, "--styles-per-map", "2") == 0
    assert calls == []
    (out / "sub" / "b__1.png").unlink()
    assert render(maps, out, "--styles-per-map", "2") == 0
    assert calls == ["sub/b__1.png"]
    assert pictures(out) == before
    files = [e["file"] for e in manifest(out)]
    assert sorted(files) == sorted(before) and len(files) == len(set(files))


def test_styles_per_map_gives_distinct_pictures(
    maps: Path, render: Callable[..., int], tmp_path: Path
) -> None:
    assert render(maps, tmp_path / "out", "--seed", "1", "--styles-per-map", "3") == 0
    got = pictures(tmp_path / "out")
    assert sorted(got) == [f"{m}__{k}.png" for m in ("a", "sub/b") for k in range(3)]
    assert len(set(got.values())) == 6
    assert {(e["input"], e["k"], e["seed"]) for e in manifest(tmp_path / "out")} == {
        (m, k, derived_seed(1, m, k)) for m in ("a.png", "sub/b.png") for k in range(3)
    }


def test_presets_and_a_style_photo(maps: Path, render: Callable[..., int], tmp_path: Path) -> None:
    assert render(maps, tmp_path / "all", "--preset", "all") == 0
    every = pictures(tmp_path / "all")
    assert sorted(every) == ["a__dusk.png", "a__winter.png", "sub/b__dusk.png", "sub/b__winter.png"]
    assert every["a__dusk.png"] != every["a__winter.png"]
    assert render(maps, tmp_path / "winter", "--preset", "winter") == 0
    assert pictures(tmp_path / "winter") == {k: v for k, v in every.items() if "winter" in k}
    photo = tmp_path / "photo.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(photo)
    assert render(maps, tmp_path / "photo", "--style-image", str(photo)) == 0
    styled = pictures(tmp_path / "photo")
    assert sorted(styled) == ["a__style.png", "sub/b__style.png"]
    assert styled["a__style.png"] not in every.values()
    assert {e["style_image"] for e in manifest(tmp_path / "photo")} == {"photo.jpg"}
    assert len(json.loads((tmp_path / "photo" / "render.json").read_text())["style_z"]) > 0
    assert render(maps, tmp_path / "bad", "--preset", "summer") == 2
    assert render(maps, tmp_path / "bad", "--format", "jpeg", "--quality", "0") == 2


def test_a_model_without_an_encoder_refuses_the_photo(
    maps: Path, tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = Path(shutil.copytree(tiny_weights / "tiny-spade", tmp_path / "no-encoder"))
    manifest_json = json.loads((model / "model.json").read_text())
    del manifest_json["files"]["encoder"]
    manifest_json.pop("encoder_inputs", None)
    (model / "model.json").write_text(json.dumps(manifest_json))
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), (200, 100, 50)).save(photo)
    args = [str(maps), "--out", str(tmp_path / "out"), "--model", str(model), "--style-image", str(photo)]
    assert main([*args, "--threads", "1"]) == 2
    assert "has no style encoder, so --style-image cannot be used" in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def test_a_zip_renders_as_its_folder(maps: Path, render: Callable[..., int], tmp_path: Path) -> None:
    archive = tmp_path / "maps.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(maps.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(maps).as_posix())
    assert render(maps, tmp_path / "from-folder", "--seed", "2") == 0
    assert render(archive, tmp_path / "from-zip", "--seed", "2") == 0
    assert pictures(tmp_path / "from-zip") == pictures(tmp_path / "from-folder")


def test_bad_files_are_reported_and_the_rest_rendered(
    maps: Path, render: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (maps / "cut.png").write_bytes((maps / "a.png").read_bytes()[:40])
    Image.fromarray(np.full((32, 32), 200, np.uint8)).save(maps / "ids-too-high.png")
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(maps / "odd-size.png")
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buf, "PNG")
    (maps / "unknown-colour.png").write_bytes(buf.getvalue())
    out = tmp_path / "out"
    assert render(maps, out) == 1
    err = capsys.readouterr().err
    for name in ("cut.png", "ids-too-high.png", "odd-size.png", "unknown-colour.png"):
        assert name in err
    assert "2/6 pictures" in err and "4 maps failed" in err
    assert sorted(pictures(out)) == ["a__0.png", "sub/b__0.png"]
    assert sorted(e["file"] for e in manifest(out)) == ["a__0.png", "sub/b__0.png"]


def test_the_manifest_is_mended_after_a_crash(maps: Path, render: Callable[..., int], tmp_path: Path) -> None:
    """A picture renamed into place without its line (killed between the two) is listed on the next run; a
    torn last line is dropped; a stale temporary file is removed."""
    out = tmp_path / "out"
    assert render(maps, out) == 0
    lines = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text(lines[0] + "\n" + '{"input": "sub/b.png", "k"')
    (out / "a__0.png.123.collage-tmp").write_bytes(b"half")
    assert render(maps, out) == 0
    entries = manifest(out)
    assert sorted(e["file"] for e in entries) == ["a__0.png", "sub/b__0.png"]
    assert next(e for e in entries if e["file"] == "sub/b__0.png")["recovered"] is True
    assert not list(out.glob("*.collage-tmp"))


def test_other_settings_into_the_same_folder_are_refused(
    maps: Path, render: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert render(maps, tmp_path / "out", "--seed", "1") == 0
    assert render(maps, tmp_path / "out", "--seed", "2") == 2
    assert "seed: 1 then, 2 now" in capsys.readouterr().err
    assert render(maps, tmp_path / "out", "--seed", "1", "--styles-per-map", "2") == 0  # more pictures: fine
    assert len(pictures(tmp_path / "out")) == 4


def test_the_thread_count_is_resolved_recorded_and_kept_on_a_resume(
    maps: Path, tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """OpenVINO's pixels move with the thread count, so `--threads 0` becomes a number in render.json and a
    resume with another number is refused rather than mixing pixel variants in one folder."""
    out = tmp_path / "out"
    base = [str(maps), "--out", str(out), "--weights", str(tiny_weights), "--model", "tiny-spade"]
    assert main([*base, "--threads", "0"]) == 0
    assert json.loads((out / "render.json").read_text())["threads"] == len(os.sched_getaffinity(0))
    assert main([*base, "--threads", str(len(os.sched_getaffinity(0)) + 1)]) == 2
    assert f"threads: {len(os.sched_getaffinity(0))} then" in capsys.readouterr().err
