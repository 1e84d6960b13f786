"""`collage attach`: class packs merge into a model folder's class_generators (class-id order, the same class
replaced), a pack for other labels or with tampered files is refused before anything changes, the folder's
checksums hold after attaching and catch a file edited afterwards; the `tiny_collage_weights` fixture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from common.cli import main
from common.manifest import MANIFEST_NAME, PACK_NAME, ManifestError, read_manifest, verified_files
from models.archs.collage_class import build_generator, export_spec, get_preset
from models.attach import AttachError, attach, read_pack
from models.export_pack import export_pack
from models.labels import LANDSCAPE


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained collage-class-tiny packs: `tree`, `tree2` (another seed) and `house`."""
    root = tmp_path_factory.mktemp("packs")
    for seed, (name, thing) in enumerate((("tree", "tree"), ("tree2", "tree"), ("house", "house"))):
        torch.manual_seed(seed)
        config = get_preset("collage-class-tiny") | {"thing": thing}
        generator = build_generator(config, len(LANDSCAPE))
        export_pack(export_spec(generator, LANDSCAPE, config), out_dir=root / name, config=config)
    return {name: root / name for name in ("tree", "tree2", "house")}


@pytest.fixture
def model(tiny_weights: Path, tmp_path: Path) -> Path:
    """A scratch copy of the tiny-spade model folder."""
    return Path(shutil.copytree(tiny_weights / "tiny-spade", tmp_path / "tiny-spade"))


def test_attach_orders_by_class_and_replaces_the_same_class(
    model: Path, packs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["attach", str(packs["house"]), str(packs["tree"]), "--model", str(model)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [g["thing"] for g in printed["class_generators"]] == ["tree", "house"]
    manifest = read_manifest(model)
    verified_files(model, manifest)
    assert [(g.thing, g.class_id) for g in manifest.class_generators] == [("tree", 8), ("house", 13)]
    assert (model / "tree_encoder.onnx").read_bytes() == (packs["tree"] / "tree_encoder.onnx").read_bytes()

    attach([packs["tree2"]], model)  # the same class again: replaced, in place
    manifest = read_manifest(model)
    verified_files(model, manifest)
    assert [g.thing for g in manifest.class_generators] == ["tree", "house"]
    assert manifest.class_generators[0] == read_pack(packs["tree2"]).class_generators[0]
    assert (model / "tree_decoder.onnx").read_bytes() == (packs["tree2"] / "tree_decoder.onnx").read_bytes()
    assert manifest.name == "tiny-spade" and manifest.files.generator.path == "generator.onnx"  # rest kept

    assert main(["attach", "--detach", "--model", str(model)]) == 0
    assert read_manifest(model).class_generators == []
    assert not list(model.glob("tree_*")) and not list(model.glob("house_*"))


def test_attach_refuses_another_label_set_and_mismatched_classes(
    model: Path, packs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (model / MANIFEST_NAME).read_bytes()
    foreign = Path(shutil.copytree(packs["tree"], tmp_path / "foreign"))
    pack = json.loads((foreign / PACK_NAME).read_text())
    pack["label_set"] = pack["class_generators"][0]["label_set"] = "cityscapes"
    (foreign / PACK_NAME).write_text(json.dumps(pack))
    assert main(["attach", str(packs["house"]), str(foreign), "--model", str(model)]) == 2
    assert capsys.readouterr().err == (
        f"collage attach: {foreign}: the pack was trained on label set 'cityscapes', model tiny-spade uses "
        "'landscape'; a class generator only fits a model with its own labels\n"
    )
    renamed = Path(shutil.copytree(packs["tree"], tmp_path / "renamed"))
    pack = json.loads((renamed / PACK_NAME).read_text())
    pack["class_generators"][0]["thing"] = "rock"  # class 8 is the tree in landscape labels
    (renamed / PACK_NAME).write_text(json.dumps(pack))
    with pytest.raises(
        AttachError, match="class 8 is 'tree' in model tiny-spade, not the thing class 'rock'"
    ):
        attach([renamed], model)
    with pytest.raises(AttachError, match="a second generator for 'tree'"):
        attach([packs["tree"], packs["tree2"]], model)
    assert (model / MANIFEST_NAME).read_bytes() == before  # nothing attached, nothing copied
    assert sorted(p.name for p in model.iterdir()) == ["encoder.onnx", "generator.onnx", MANIFEST_NAME]


def test_tampered_files_are_refused(model: Path, packs: dict[str, Path], tmp_path: Path) -> None:
    tampered = Path(shutil.copytree(packs["house"], tmp_path / "tampered"))
    data = bytearray((tampered / "house_encoder.onnx").read_bytes())
    data[-1] ^= 1
    (tampered / "house_encoder.onnx").write_bytes(data)
    with pytest.raises(AttachError, match="house_encoder.onnx does not match its sha256 in class_pack.json"):
        attach([tampered], model)
    assert not (model / "house_encoder.onnx").exists()

    attach([packs["house"]], model)
    data = bytearray((model / "house_decoder.onnx").read_bytes())
    data[-1] ^= 1
    (model / "house_decoder.onnx").write_bytes(data)
    with pytest.raises(ManifestError, match="'house_decoder.onnx' does not match its sha256"):
        verified_files(model, read_manifest(model))


def test_tiny_collage_weights(tiny_collage_weights: Path) -> None:
    """The fixture the server's composition tests use: tiny-collage with tree, rock and house attached."""
    assert [p.name for p in tiny_collage_weights.iterdir()] == ["tiny-collage"]
    folder = tiny_collage_weights / "tiny-collage"
    manifest = read_manifest(folder)
    verified_files(folder, manifest)
    assert manifest.name == "tiny-collage" and manifest.image_size == (32, 32)
    assert [(g.thing, g.class_id) for g in manifest.class_generators] == [
        ("rock", 4),
        ("tree", 8),
        ("house", 13),
    ]
    assert {
        (g.context_size, g.target_size, g.phi_size, g.z_dim, g.noise_channels)
        for g in manifest.class_generators
    } == {(32, 16, 16, 8, 3)}
