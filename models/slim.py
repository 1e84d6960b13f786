"""`collage slim`: a run's network weights without its optimiser and RNG state, small enough to keep in git.

    collage slim runs/00001-spade-fast --out weights/landscape-spade/init.pt
    collage train --arch spade --preset spade-fast --size=256 --init_from weights/landscape-spade/init.pt

Run folders here do not outlive the machine that trained them, and a full checkpoint (networks, EMA copies,
two Adam states) is several times the size of the networks. The slim file keeps what `--init_from` reads —
every network and EMA copy, the config, step, images seen and wall time — in half precision, so a later
session continues the training from it (fresh optimisers, as `--init_from` always gives) instead of from
scratch. float16 keeps ~3 significant decimal digits for values between ~6e-5 and 65504; a tensor with a
value outside float16's range (it would become inf) is refused. The file is marked `"slim": True`, and
`collage train --resume` refuses it: there is no optimiser state to resume.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from models.checkpoints import CHECKPOINT_KEYS, atomic_save, load_checkpoint

# What `--init_from` and the records need; the optimisers, RNG and sampler position are dropped.
KEPT = ("format_version", "config", "step", "images_seen", "wall_time", "label_set", "code_version")
DROPPED = tuple(key for key in CHECKPOINT_KEYS if key not in KEPT)


def half(state: dict[str, torch.Tensor], net: str) -> dict[str, torch.Tensor]:
    """Floating-point tensors to float16 (integer buffers such as step counters stay as they are).

    Raises ValueError naming the first tensor of network `net` that is not finite in float16 (|x| > 65504).
    """
    out = {}
    for name, value in state.items():
        if value.is_floating_point():
            value = value.half()
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"{net}.{name} is not finite in float16 (values beyond ±65504); not slimmed")
        out[name] = value
    return out


def slim(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint minus optimiser/RNG/sampler state, network state dicts in float16, marked slim."""
    out: dict[str, Any] = {}
    for key, value in checkpoint.items():
        if key in DROPPED:
            continue
        is_state_dict = (
            isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values())
        )
        out[key] = half(value, key) if key not in KEPT and is_state_dict else value
    out["slim"] = True  # `collage train --resume` refuses it (no optimiser state)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collage slim", description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="training run folder (its checkpoint-latest.pt) or a .pt file")
    parser.add_argument("--out", type=Path, required=True, help="file to write, e.g. weights/NAME/init.pt")
    args = parser.parse_args(argv)
    try:
        checkpoint, _ = load_checkpoint(args.run)
        small = slim(checkpoint)
    except ValueError as err:  # CheckpointError or a tensor float16 cannot hold
        print(f"collage slim: {err}", file=sys.stderr)  # noqa: T201
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(small, args.out)
    size = args.out.stat().st_size / 2**20
    print(f"{args.out}: step {checkpoint['step']}, {size:.1f} MB")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
