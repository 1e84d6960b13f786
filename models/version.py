"""Which code made a checkpoint or an exported model, so weights/README can say how to reproduce it."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def code_version(root: Path = REPO_ROOT) -> str:
    """`git describe --always --dirty --tags` of the checkout at `root` (e.g. 'a780e08-dirty' when it has
    uncommitted changes, which a bare commit hash would hide), or 'unknown' outside git."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
