"""The manifest model: the committed schema is generated from it, and a folder's model.json is read with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from common.manifest import (
    SCHEMA_PATH,
    ClassGenerator,
    EncoderInputs,
    Manifest,
    ManifestError,
    json_schema,
    read_manifest,
)

REPO = Path(__file__).resolve().parents[2]


def test_committed_schema_is_the_pydantic_models() -> None:
    # The exporter validates model.json against the committed file; a drift would let it write manifests the
    # server rejects (regenerate with `python -m common.manifest`).
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema()


def test_read_manifest_names_what_is_wrong_but_never_the_folder(tmp_path: Path) -> None:
    """The server shows these reasons to any client (/readyz): they name model.json, not where it lives."""
    folder = tmp_path / "secret-location"
    folder.mkdir()
    with pytest.raises(ManifestError, match=r"^no model\.json: not a model folder$"):
        read_manifest(folder)
    shipped = json.loads((REPO / "weights" / "landscape-spade" / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({k: v for k, v in shipped.items() if k != "labels"}))
    with pytest.raises(ManifestError) as invalid:
        read_manifest(folder)
    assert str(invalid.value) == "model.json is invalid (1 errors; first: labels: Field required)"
    (folder / "model.json").write_text(json.dumps(shipped))
    assert read_manifest(folder).name == "landscape-spade"


def _shipped() -> Manifest:
    """The served default: sizes in multiples of 32 from 32 to 1024, trained at 256², encoder at 128²."""
    return Manifest.model_validate_json((REPO / "weights" / "landscape-spade" / "model.json").read_bytes())


def test_size_rule_of_a_dynamic_graph() -> None:
    manifest = _shipped()
    for height, width in ((256, 256), (32, 1024), (96, 64)):
        assert manifest.size_problem(height, width) is None
    # Width is checked before height, so a size wrong both ways names the width.
    assert manifest.size_problem(30, 31) == (
        "width 31 is not supported by model landscape-spade: it needs a multiple of 32 between 32 and 1024"
    )
    assert manifest.size_problem(2048, 64) == (
        "height 2048 is not supported by model landscape-spade: it needs a multiple of 32 between 32 and 1024"
    )
    assert "height 0 " in str(manifest.size_problem(0, 64))


def test_size_rule_of_a_fixed_size_graph() -> None:
    shipped = _shipped()
    manifest = shipped.model_copy(
        update={
            "image_size": (64, 128),
            "inputs": shipped.inputs.model_copy(update={"dynamic_size": False}),
        }
    )
    assert manifest.size_problem(64, 128) is None
    assert manifest.size_problem(128, 64) == "model landscape-spade renders only 128×64, got 64×128"
    assert manifest.size_problem(64, 256) is not None  # a multiple of 32 within range is no excuse


def test_encoder_size_is_its_own_or_else_image_size() -> None:
    shipped = _shipped()
    assert shipped.encoder_size == (128, 128)
    assert shipped.model_copy(update={"encoder_inputs": EncoderInputs()}).encoder_size == (256, 256)
    assert shipped.model_copy(update={"encoder_inputs": None}).encoder_size == (256, 256)


def test_a_class_generator_max_side_below_its_min_side_is_refused() -> None:
    entry = _shipped().class_generators[0].model_dump()
    assert (
        ClassGenerator.model_validate(entry | {"max_side": entry["min_side"]}).max_side == entry["min_side"]
    )
    with pytest.raises(ValidationError, match="max_side 11 is below min_side 12"):
        ClassGenerator.model_validate(entry | {"max_side": 11})
