"""The committed manifest schema is generated from `server/manifest.py`, never edited by hand."""

from __future__ import annotations

import json

from server.manifest import SCHEMA_PATH, json_schema


def test_committed_schema_is_the_pydantic_models() -> None:
    # The exporter validates model.json against the committed file; a drift would let it write manifests the
    # server rejects (regenerate with `python -m server.manifest`).
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema()
