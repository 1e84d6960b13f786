"""Style latents: a seed, a model's preset, or an uploaded reference image encoded once and kept on disk.

An uploaded style is stored as `<data_dir>/styles/<style_id>.json`; its id is derived from the model and the
decoded pixels, so uploading the same photo twice gives the same id and ids survive restarts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

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
    """Uploaded styles as one small JSON file each, cached in memory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._cache: dict[str, StyleRecord] = {}
        self._lock = threading.Lock()

    def put(self, model: str, z: np.ndarray, pixels: np.ndarray) -> StyleRecord:
        digest = hashlib.sha256(model.encode() + b"\0" + str(pixels.shape).encode() + pixels.tobytes())
        record = StyleRecord(digest.hexdigest()[:20], model, [float(v) for v in z], time.time())
        path = self.directory / f"{record.style_id}.json"
        tmp = path.with_suffix(".tmp")
        with self._lock:
            tmp.write_text(json.dumps(asdict(record)))
            os.replace(tmp, path)  # atomic: a crash never leaves half a style
            self._cache[record.style_id] = record
        return record

    def get(self, style_id: str) -> StyleRecord:
        if not _STYLE_ID.match(style_id):
            raise BadInput("unknown_style", f"{style_id!r} is not a style id")
        with self._lock:
            if style_id in self._cache:
                return self._cache[style_id]
            path = self.directory / f"{style_id}.json"
            try:
                record = StyleRecord(**json.loads(path.read_text()))
            except FileNotFoundError:
                raise BadInput(
                    "unknown_style", f"no style {style_id!r}; upload a reference image first"
                ) from None
            self._cache[style_id] = record
            return record


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
