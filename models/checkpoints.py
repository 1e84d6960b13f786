"""Checkpoint files of `collage train`: what they hold, how they are written and read back.

Shared by the trainer (`--resume`, `--init_from`), `collage slim` and `collage export`, which must not need the
whole trainer to open one.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = 1
LATEST = "checkpoint-latest.pt"  # what `collage train` keeps up to date in its run folder
# Top-level checkpoint entries besides the networks (NAME, NAME_ema) and the arch's `meta`.
CHECKPOINT_KEYS = (
    "format_version",
    "config",
    "step",
    "images_seen",
    "wall_time",
    "optimizers",
    "rng",
    "sampler",
    "label_set",
    "code_version",
    "torch_version",
)


class CheckpointError(ValueError):
    """A path that holds no checkpoint `collage train` could have written; the message names the file."""


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def checkpoint_file(path: str | Path) -> Path:
    """A checkpoint file itself, or a run folder's checkpoint-latest.pt."""
    path = Path(path)
    return path if path.suffix == ".pt" else path / LATEST


def read_checkpoint(file: Path) -> dict[str, Any]:
    """torch.load of a checkpoint file; a truncated or foreign file is a CheckpointError naming it."""
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    # What torch's zip reader and weights-only unpickler raise on a truncated or foreign file.
    except (RuntimeError, OSError, EOFError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        # The weights-only refusal puts its reason (the global it will not load) on a later line.
        reason = next((line for line in lines if "Unsupported global" in line), lines[0] if lines else "")
        raise CheckpointError(
            f"{file} is not a readable collage checkpoint ({type(e).__name__}{': ' if reason else ''}{reason})"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f"{file} is not a readable collage checkpoint (it holds a {type(ckpt).__name__})"
        )
    return ckpt


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], Path]:
    """(checkpoint, run folder) from a run folder (its checkpoint-latest.pt) or a checkpoint file."""
    file = checkpoint_file(path)
    if not file.is_file():
        raise CheckpointError(f"no checkpoint at {file}")
    ckpt = read_checkpoint(file)
    if ckpt.get("format_version") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{file}: not a collage checkpoint of format {CHECKPOINT_FORMAT}")
    return ckpt, file.parent
