"""The manifest model: the committed schema is generated from it, and a folder's model.json is read with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.manifest import SCHEMA_PATH, ManifestError, json_schema, read_manifest

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
