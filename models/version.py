"""Which code made a checkpoint or an exported model, and on which CPU a figure was measured, so weights/README
can say how to reproduce it (a latency means little without the machine: sessions here land on different CPUs);
and how a provenance path is shown in a manifest."""

from __future__ import annotations

import platform
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


def shown_path(path: Path) -> str:
    """`path` relative to the working directory, or only its last part when it lies outside.

    Paths in model.json (the training run and data, `collage eval`'s labels and judge) are handed by the server
    to anyone who asks for the model: they must not reveal where the author's machine keeps its files.
    """
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.resolve().name


def _cpuinfo(key: str) -> str:
    """The first CPU's `key` line of /proc/cpuinfo, or "" where there is no such line (or file)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (platform.processor() is often empty on Linux)."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The vector-unit flags that bound conv and matmul speed (FMA, AVX2, AVX-512, BF16, AMX), from /proc/cpuinfo."""
    wanted = ("fma", "avx", "avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")
    return [f for f in _cpuinfo("flags").split() if f in wanted]
