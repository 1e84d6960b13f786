"""The `collage` command: one entry point whose subcommands live beside the code they drive.

It lives in `common/` because its subcommands span both sides: training ones in `models/`, `render` in `server/`
(the server's own engine), and `models` never imports `server`. Each subcommand module is imported by name only
when called, so `collage --help` works without torch installed and importing this module imports neither side.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "data": ("models.data.cli", "preview or export procedural landscapes"),
    "train": ("models.train", "train an architecture (spade, segmenter, …)"),
    "export": ("models.export", "export a training run to weights/NAME (model.json + ONNX) or a class pack"),
    "attach": ("models.attach", "attach class-generator packs (CollageGAN) to a model folder"),
    "eval": ("models.eval.cli", "evaluate an exported model folder"),
    "grids": ("models.grids", "draw the README figures (held-out, style families; --collage: CollageGAN)"),
    "slim": ("models.slim", "keep a run's weights (no optimiser state) to continue it elsewhere"),
    "render": ("server.render_cli", "render a folder or zip of label maps into pictures (resumable)"),
}


def usage() -> str:
    lines = ["usage: collage COMMAND [ARGS…]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"collage: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
