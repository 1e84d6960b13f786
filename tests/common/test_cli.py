"""The `collage` dispatcher: `--help` lists every subcommand (render among them) without importing torch, the
models package or the server; importing `models` never imports `server`, though `collage` reaches both."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_help_lists_render_and_imports_neither_side() -> None:
    code = (
        "import contextlib, io, json, sys\n"
        "from common.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf): assert main(['--help']) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'models', 'server'))\n"
        "print(json.dumps([buf.getvalue(), *heavy]))"
    )
    usage, *heavy = run(code)
    assert heavy == []
    for name in ("data", "train", "export", "eval", "render"):
        assert f"\n  {name} " in usage


def test_importing_models_never_imports_server() -> None:
    """Every top-level module of `models` (found on disk), imported in a fresh interpreter."""
    modules = sorted(f"models.{p.stem}" for p in (REPO / "models").glob("*.py") if p.stem != "__init__")
    code = (
        f"import json, sys, models, {', '.join(modules)}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'server')))"
    )
    assert run(code) == []
