"""Style latents: a seed, a model's preset, or an uploaded reference image encoded once and kept in the database.

An uploaded style's id is derived from the model and the decoded pixels, so uploading the same photo twice gives
the same id on any replica, and ids survive restarts. Earlier versions kept each style as
`<data_dir>/styles/<style_id>.json`; such a file is imported into the database the first time its id is asked for.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from server import db
from server.errors import BadInput
from server.registry import LoadedModel

MAX_SEED = 2**63 - 1
_STYLE_ID = re.compile(r"^[0-9a-f]{20}$")


def seeded_z(seed: int, z_dim: int) -> np.ndarray:
    """The shared definition of a random style: the same seed gives the same picture on every client."""
    if not 0 <= seed <= MAX_SEED:
        raise BadInput("bad_style", f"seed {seed} is not in 0..2^63-1")
    return np.random.default_rng(seed).standard_normal(z_dim, dtype=np.float32)


def seeded_noise(seed: int, channels: int, height: int, width: int) -> np.ndarray:
    """The per-pixel noise [channels,H,W] float32 of a generator with a noise input, drawn from the request's seed
    (a preset or uploaded style renders with seed 0). Its own stream, `default_rng([seed, 1])`, so it is not the
    seed's z; a new seed re-rolls the texture, the same seed gives the same picture at the same size."""
    return np.random.default_rng([seed, 1]).standard_normal((channels, height, width), dtype=np.float32)


@dataclass(frozen=True)
class StyleRecord:
    style_id: str
    model: str  # a latent only means something to the model whose encoder made it
    z: list[float]
    created: float  # unix time

    def public(self) -> dict[str, object]:
        return {"style_id": self.style_id, "model": self.model, "z": self.z, "created": self.created}


class StyleStore:
    """Uploaded styles in the database, cached in memory: a style never changes once stored."""

    def __init__(self, legacy_dir: Path, engine: sa.Engine) -> None:
        self.legacy_dir = legacy_dir  # JSON files of earlier versions, read only
        self.engine = engine
        self._reader = engine.execution_options(**db.READ_ONLY)
        self._cache: dict[str, StyleRecord] = {}
        self._lock = threading.Lock()

    def put(self, model: str, z: np.ndarray, pixels: np.ndarray) -> StyleRecord:
        """Store the style unless it is there already: the first upload's record is everyone's."""
        digest = hashlib.sha256(model.encode() + b"\0" + str(pixels.shape).encode() + pixels.tobytes())
        return self._insert(StyleRecord(digest.hexdigest()[:20], model, [float(v) for v in z], time.time()))

    def get(self, style_id: str) -> StyleRecord:
        if not _STYLE_ID.match(style_id):
            raise BadInput("unknown_style", f"{style_id!r} is not a style id")
        with self._lock:
            if style_id in self._cache:
                return self._cache[style_id]
        with self._reader.connect() as conn:
            row = conn.execute(sa.select(db.styles).where(db.styles.c.style_id == style_id)).one_or_none()
        if row is not None:
            return self._remember(_record(row))
        try:
            legacy = StyleRecord(**json.loads((self.legacy_dir / f"{style_id}.json").read_text()))
        except FileNotFoundError:
            raise BadInput(
                "unknown_style", f"no style {style_id!r}; upload a reference image first"
            ) from None
        return self._insert(legacy)

    def _insert(self, record: StyleRecord) -> StyleRecord:
        """Insert if absent, then read back what is stored: replicas racing with the same photo agree."""
        with self._lock:
            if record.style_id in self._cache:
                return self._cache[record.style_id]
        values = {
            "style_id": record.style_id,
            "model": record.model,
            "z": np.asarray(record.z, np.float32).tobytes(),
            "created": record.created,
        }
        with self.engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(dialect.insert(db.styles).values(values).on_conflict_do_nothing())
            row = conn.execute(sa.select(db.styles).where(db.styles.c.style_id == record.style_id)).one()
        return self._remember(_record(row))

    def _remember(self, record: StyleRecord) -> StyleRecord:
        with self._lock:
            return self._cache.setdefault(record.style_id, record)


def _record(row: sa.Row[str, str, bytes, float]) -> StyleRecord:
    style_id, model, z, created = row
    return StyleRecord(style_id, model, np.frombuffer(z, np.float32).tolist(), created)


def resolve_style(
    model: LoadedModel, store: StyleStore, seed: int | None, style_id: str | None, preset: str | None
) -> np.ndarray:
    """Exactly one of seed / style_id / preset → the model's z [z_dim] float32."""
    given = [
        name
        for name, value in (("seed", seed), ("style_id", style_id), ("preset", preset))
        if value is not None
    ]
    if len(given) != 1:
        raise BadInput("bad_style", f"give exactly one of seed, style_id, preset (got {given or 'none'})")
    if seed is not None:
        return seeded_z(seed, model.z_dim)
    if preset is not None:
        return model.preset(preset)
    assert style_id is not None
    record = store.get(style_id)
    if record.model != model.name:
        raise BadInput(
            "unknown_style", f"style {style_id} was made for model {record.model}, not {model.name}"
        )
    return np.asarray(record.z, dtype=np.float32)
