"""The model zoo: every served architecture side by side, written to docs/model-zoo.md by one command.

    python -m benchmarks.zoo        # times every model: run it alone on the machine (no training, no benchmark)

One row per model folder under `weights/` (the served models), plus untrained SPADE exports at the `spade-fast`
and `spade-paper` widths as cost references. Per model: parameters and GMACs at 256² (from the export), generator
latency at 256² and 512² on the default runtime (OpenVINO, bf16 where the CPU has it) and on onnxruntime f32 —
2 threads, batch 1, the runtimes taking turns frame by frame, median of `--runs` — then the quality `collage
eval` merged into the model's model.json (mIoU against the reference renders', FD-seg, texture in range, streak
coherence, on procedural and on painted layouts) and the training budget in images seen. Below the table, one
picture per model of the same eval layouts (procedural, then painted), each rendered from one seed as the server
renders it: docs/model-zoo.png. The raw figures go to benchmarks/results/zoo.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.paint_latency import export_untrained
from benchmarks.runtimes import generator_feeds, taking_turns
from common.runtime import RuntimeChoice, open_graph
from models.version import cpu_flags, cpu_model

REPO = Path(__file__).resolve().parents[1]
REFERENCES = ("spade-fast", "spade-paper")  # SPADE widths timed untrained, for cost only
SIZES = (256, 512)
THREADS = 2
PICTURES = 4  # eval layouts per kind in the picture rows
PICTURE_SEED = 11  # the style seed of every picture


def served(weights: Path) -> list[Path]:
    """Model folders under `weights` (a folder with model.json), the default model first."""
    folders = sorted(p.parent for p in weights.glob("*/model.json"))
    return sorted(folders, key=lambda p: p.name != "landscape-spade")


def latency(folder: Path, runs: int) -> dict[str, dict[str, float]]:
    """Median generator ms per runtime name and size ("256", "512")."""
    manifest = json.loads((folder / "model.json").read_text())
    path = folder / manifest["files"]["generator"]["path"]
    graphs = [open_graph(path, RuntimeChoice("openvino", "auto", THREADS))]
    graphs.append(open_graph(path, RuntimeChoice("onnxruntime", "f32", THREADS)))
    names = [f"{g.info.runtime} {g.info.precision}" for g in graphs]
    out: dict[str, dict[str, float]] = {name: {} for name in names}
    for size in SIZES:
        x = generator_feeds(manifest, size, 1)
        ms = taking_turns(
            {n: partial(g.run, g.outputs[:1], x) for n, g in zip(names, graphs, strict=True)}, runs
        )
        for name, value in ms.items():
            out[name][str(size)] = value
    return out


def row(folder: Path, runs: int, reference: bool) -> dict[str, Any]:
    """Everything the table shows about one model folder."""
    m = json.loads((folder / "model.json").read_text())
    export, metrics, training = m.get("export", {}), m.get("metrics", {}), m.get("training", {})
    params = export.get("params", {})
    quality = {}
    for kind, section in (("procedural", metrics), ("painted", metrics.get("painted", {}))):
        if section.get("miou") is not None:
            quality[kind] = {
                "miou": section["miou"],
                "miou_reference": section["miou_reference"],
                "fd_seg": section["fd_seg"],
                "texture_in_range": section.get("texture_in_range"),
                "streak": f"{section['streak_within']}/{section['streak_defined']}"
                if section.get("streak_defined")
                else None,
            }
    capabilities = [
        name
        for name, has in (
            ("photo style", bool(m["files"].get("encoder"))),
            ("seeded noise", bool(m["inputs"].get("noise"))),
            ("z", bool(m["inputs"].get("z"))),
            ("instance edges", bool(m["inputs"].get("instance"))),
            ("per-object collage", bool(m.get("class_generators"))),
        )
        if has
    ]
    return {
        "model": m["name"] if not reference else f"{m['name']} (untrained)",
        "architecture": m["architecture"],
        "reference": reference,
        "params_m": round(sum(params.values()) / 1e6, 2) if params else None,
        "gmacs_256": export.get("gmacs", {}).get("generator"),
        "latency_ms": latency(folder, runs),
        "quality": quality,
        # The whole --init_from chain's budget where the export knows it, else only its last run's.
        "images_seen": None if reference else training.get("images_seen_total"),
        "images_seen_last_run": None if reference else training.get("images_seen"),
        "capabilities": capabilities,
    }


def pictures(folders: list[Path], out: Path) -> None:
    """Rows of pictures: the label maps, the reference renders, then one row per served model."""
    from models.data.samples import Mix, render_sample
    from models.eval.data import EVAL_SEED, PAINTED_OFFSET
    from models.labels import LANDSCAPE
    from server.batch_render import Renderer
    from server.styles import seeded_z

    samples = [render_sample(EVAL_SEED, i, 256) for i in range(PICTURES)]
    samples += [render_sample(EVAL_SEED + PAINTED_OFFSET, i, 256, Mix(painted=1.0)) for i in range(PICTURES)]
    colors = np.array([label.color for label in LANDSCAPE.labels], dtype=np.uint8)
    rows: list[tuple[str, list[np.ndarray]]] = [
        ("label map", [colors[label] for label, *_ in samples]),
        ("reference render", [image for _, _, image, _ in samples]),
    ]
    for folder in folders:
        renderer = Renderer(folder, RuntimeChoice("auto", "auto", THREADS), 1 << 20)
        try:
            z = seeded_z(PICTURE_SEED, renderer.model.z_dim)
            images = []
            for label, *_ in samples:
                data, _ = renderer.render_z(label, z, PICTURE_SEED, "png", 90, False)
                images.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
            rows.append((renderer.model.name, images))
        finally:
            renderer.close()
    side, gap, left = 128, 4, 150
    sheet = Image.new("RGB", (left + len(samples) * (side + gap), len(rows) * (side + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, images) in enumerate(rows):
        y = r * (side + gap)
        draw.text((4, y + side // 2 - 6), name, fill="black")
        for c, image in enumerate(images):
            x = left + c * (side + gap) + (gap if c >= PICTURES else 0)
            sheet.paste(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR), (x, y))
    sheet.save(out, optimize=True)


def _cell(value: Any) -> str:
    return "–" if value is None else str(value)


def markdown(result: dict[str, Any], picture: str) -> str:
    runtimes = list(result["rows"][0]["latency_ms"]) if result["rows"] else []
    head = ["model", "architecture", "params G+encoder (M)", "GMACs 256²"]
    head += [f"{r} ms {s}²" for r in runtimes for s in SIZES]
    head += [
        "mIoU (renders) procedural",
        "FD-seg",
        "texture",
        "streak ok",
        "mIoU (renders) painted",
        "images seen",
    ]
    lines = [
        "# Model zoo",
        "",
        "Written by `python -m benchmarks.zoo` (do not edit by hand). "
        f"{result['cpu_model']}, {result['cores']} cores, flags: {' '.join(result['cpu_flags'])}; "
        f"generator only, {THREADS} threads, batch 1, median of {result['runs']} frames, the runtimes taking turns. "
        "Quality is `collage eval` as merged into each model.json: mIoU of the judge on the model's pictures "
        "(in brackets on the reference renders of the same layouts), FD-seg (lower is better), the share of "
        "classes whose texture is in the renders' range, and the classes whose streak coherence stays within "
        "0.1 of the renders'. Untrained rows are cost references.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * 2 + "---:|" * (len(head) - 2),
    ]
    for r in result["rows"]:
        proc, painted = r["quality"].get("procedural", {}), r["quality"].get("painted", {})
        cells = [r["model"], r["architecture"], _cell(r["params_m"]), _cell(r["gmacs_256"])]
        cells += [_cell(r["latency_ms"].get(n, {}).get(str(s))) for n in runtimes for s in SIZES]
        cells += [
            f"{proc['miou']} ({proc['miou_reference']})" if proc else "–",
            _cell(proc.get("fd_seg")),
            _cell(proc.get("texture_in_range")),
            _cell(proc.get("streak")),
            f"{painted['miou']} ({painted['miou_reference']})" if painted else "–",
            _cell(r["images_seen"])
            if r["images_seen"] is not None or r["images_seen_last_run"] is None
            else f"≥ {r['images_seen_last_run']} (last run)",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "What each model offers in the studio: "
        + "; ".join(f"{r['model']}: {', '.join(r['capabilities']) or 'labels only'}" for r in result["rows"])
        + ".",
        "",
        f"![The same eval layouts rendered by every served model]({picture})",
        "",
        f"Columns: {PICTURES} procedural eval layouts, then {PICTURES} painted ones; rows: the label map, the "
        f"procedural renderer's picture, then each served model from style seed {PICTURE_SEED}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--weights", type=Path, default=REPO / "weights", help="folder of served model folders"
    )
    parser.add_argument("--runs", type=int, default=20, help="timed frames per cell (median)")
    parser.add_argument(
        "--references", nargs="*", default=list(REFERENCES), help="SPADE presets timed untrained"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "model-zoo.md")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "zoo.json")
    args = parser.parse_args(argv)
    folders = served(args.weights)
    rows = [row(folder, args.runs, reference=False) for folder in folders]
    with tempfile.TemporaryDirectory(prefix="zoo-") as tmp:
        for preset in args.references:
            rows.append(row(Path(tmp) / export_untrained(preset, Path(tmp)), args.runs, reference=True))
    result = {"cpu_model": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "runs": args.runs}
    result["rows"] = rows
    picture = args.out.with_suffix(".png")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pictures(folders, picture)
    args.out.write_text(markdown(result, picture.name))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(args.out.read_text())
    return result


if __name__ == "__main__":
    main()
