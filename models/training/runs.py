"""Run folders: `runs/NNNNN-desc/`, numbered in the order runs start, holding all a run writes.

A folder's `log.jsonl` is cut back to its checkpoint's step on resume, so the log never holds steps twice.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch.distributed as dist

from models.training.setup import DistEnv


def runs_root(cli_value: str | None) -> Path:
    """Where new run folders go: --runs-dir, else $COLLAGE_RUNS_DIR, else ./runs."""
    return Path(cli_value or os.environ.get("COLLAGE_RUNS_DIR") or "runs")


def create_run_dir(config: dict[str, Any], root: Path, env: DistEnv) -> Path:
    """A new run's folder, root/NNNNN-desc: made by rank 0, its name shared with the other processes."""
    arch, preset = config["arch"], config["preset"]
    desc = preset if preset.startswith(arch) else f"{arch}-{preset}"  # spade-fast; toy-small
    run_dir = new_run_dir(root, desc) if env.is_main else Path()
    if env.world > 1:
        shared = [str(run_dir)]
        dist.broadcast_object_list(shared, src=0)
        run_dir = Path(shared[0])
    return run_dir


def new_run_dir(root: Path, desc: str) -> Path:
    """root/NNNNN-desc with NNNNN one above the highest number already there."""
    root.mkdir(parents=True, exist_ok=True)
    while True:
        ids = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"^(\d{5,})-", p.name))]
        run_dir = root / f"{max(ids, default=0) + 1:05d}-{desc}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:  # another run took the number between listing and mkdir
            continue


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after `step` (a run that died between logging and checkpointing)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(ln + "\n" for ln in lines))
    os.replace(tmp, path)
