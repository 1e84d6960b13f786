"""Checkpoint files of `collage train`: what they hold, how they are written and read back.

Shared by the trainer (`--resume`, `--init_from`), `collage slim` and `collage export`, which must not need the
whole trainer to open one.
"""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:  # the recipe's class only: slim and export open checkpoints without the arch registry
    from models.archs import Recipe

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


def check_meta_keys(arch: str, recipe: Recipe) -> None:
    """Refuse an arch whose `meta` entries would overwrite a network or one of the trainer's own entries (they
    share the checkpoint's top level); checked before training, not at the first save."""
    clash = set(recipe.meta) & (set(recipe.nets) | {f"{n}_ema" for n in recipe.ema} | set(CHECKPOINT_KEYS))
    if clash:
        raise RuntimeError(f"arch {arch!r}: meta keys {sorted(clash)} collide with checkpoint keys")


def training_checkpoint(
    config: dict[str, Any],
    recipe: Recipe,
    ema: Mapping[str, nn.Module],
    *,
    step: int,
    wall_time: float,
    rngs: list[dict[str, Any]],
    sampler: dict[str, int],
    label_set: str,
    code_version: str,
) -> dict[str, Any]:
    """Everything `--resume` needs to continue exactly (weights, EMA copies, optimisers, every process's RNG,
    the data position) and export needs to serve the run (config, label set, the arch's `meta`)."""
    return {
        "format_version": CHECKPOINT_FORMAT,
        "config": config,
        "step": step,
        "images_seen": step * config["batch"],
        "wall_time": wall_time,
        **{name: net.state_dict() for name, net in recipe.nets.items()},
        **{f"{name}_ema": net.state_dict() for name, net in ema.items()},
        "optimizers": {name: opt.state_dict() for name, opt in recipe.optimizers.items()},
        "rng": rngs,
        "sampler": sampler,
        "label_set": label_set,
        "code_version": code_version,
        "torch_version": str(torch.__version__),
        **recipe.meta,
    }


def restore_training(checkpoint: Mapping[str, Any], recipe: Recipe, ema: Mapping[str, nn.Module]) -> None:
    """Load a `training_checkpoint`'s weights, EMA copies and optimiser states into a freshly built recipe."""
    for name, net in recipe.nets.items():
        net.load_state_dict(checkpoint[name])
    for name, net in ema.items():
        net.load_state_dict(checkpoint[f"{name}_ema"])
    for name, opt in recipe.optimizers.items():
        opt.load_state_dict(checkpoint["optimizers"][name])


def write_checkpoint(checkpoint: dict[str, Any], run_dir: Path, snapshot: bool) -> None:
    """Replace the run's checkpoint-latest.pt, and keep a copy as checkpoint-NNNNNNNN.pt if `snapshot`."""
    atomic_save(checkpoint, run_dir / LATEST)
    if snapshot:
        kept = run_dir / f"checkpoint-{checkpoint['step']:08d}.pt"
        tmp = kept.with_name(kept.name + ".tmp")
        shutil.copyfile(run_dir / LATEST, tmp)
        os.replace(tmp, kept)


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


def lineage_images_seen(checkpoint: Mapping[str, Any]) -> int | None:
    """Images a checkpoint's weights have seen: its run's own plus what its --init_from source had seen; None
    when unknown (a checkpoint without the count, or a source recorded before the count was kept and gone).

    A carried run is written back where it started from (`--init_from weights/X/init.pt`, then `collage slim
    … --out weights/X/init.pt`), so the file at a source's path may now be this very run, or a later one: it is
    read only while it still holds the source's step, and no file twice (either would loop forever)."""
    return _lineage(checkpoint, frozenset())


def _lineage(checkpoint: Mapping[str, Any], read: frozenset[Path]) -> int | None:
    own = checkpoint.get("images_seen")
    source = checkpoint.get("config", {}).get("init_from")
    if own is None or source is None:
        return own
    before = source.get("images_seen")
    path = Path(source["path"]).resolve()
    if before is None and path.is_file() and path not in read:  # recorded before the count was kept
        older = load_checkpoint(path)[0]
        if older.get("step") == source["step"]:  # still the source, not a carry written over it
            before = _lineage(older, read | {path})
    return None if before is None else int(own) + int(before)
