"""Batch renders of a folder or zip of label maps: what `collage render` runs.

Three parts: the work list (`Plan` resolved once, `tasks()`: one `Task` per picture), the `Renderer` (one model's
runtime session inside the server's own engine, driven synchronously) and the `OutputFolder` (atomic pictures,
`manifest.jsonl`, the resume rules), kept apart so that two runners share them: the local loop in
server/render_cli.py and the Ray actor pool in server/ray_render.py (actors each holding one Renderer, the
driver writing through the same OutputFolder).

Same settings, same bytes, on a resume or on a second machine:
- Seeds. Picture k of map `a/b.png` under `--seed S` uses seed `derived_seed(S, "a/b.png", k)`: the first 8 bytes
  of sha256("S/a/b.png/k"), big-endian, shifted to 63 bits. It depends on nothing but those three, never on which
  pictures are left, and the manifest records it, so the studio or the REST API can render that style
  again from it.
  A preset or photo style uses noise seed 0, as the REST API does.
- Batching. Every picture is its own generator call (batch 1), whatever else is left. OpenVINO compiles batch 1
  static and larger batches with an open batch axis, and in bf16 the two disagree by up to 0.13 on [-1, 1]
  (landscape-spade, 256²: 28% of the 8-bit values differ), so a picture re-rendered alone on a resume must have been
  rendered alone the first time too. The cost, measured against the server's engine batching 8 at a time (AMD
  EPYC, 2 cores shared with other work, OpenVINO bf16): landscape-spade at 256² 28–29 images/s against 36
  (0.78–0.81×), tiny-spade at 64² 0.70–0.79×.
- Threads. OpenVINO splits a convolution's work by its thread count and the pixels move with it, in bf16 and f32
  alike (landscape-spade, 256², bf16: 1 against 2 threads changes ~23% of the 8-bit values, by up to 13;
  onnxruntime gives the same bytes either way). So the thread count each picture renders with is resolved before
  the first picture (`--threads 0`: every usable core locally, every core of the smallest node per actor on Ray)
  and recorded in render.json with the other deciding settings: a resume with another count is refused instead
  of mixing pixel variants, and a Ray run gives a local run's bytes at the same thread count (so by default on
  a one-node cluster of the local machine).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from common.manifest import MANIFEST_NAME
from common.runtime import RuntimeChoice
from server.codec import EXTENSIONS, decode_image_rgb, decode_label_png, to_model_input
from server.engine import Engine, RenderRequest
from server.errors import BadInput
from server.metrics import Metrics
from server.registry import LoadedModel, Registry, load_model
from server.styles import MAX_SEED, seeded_z

MANIFEST = "manifest.jsonl"  # one JSON line per finished picture, appended as each is written
CONFIG = "render.json"  # the resolved Plan of the first run; a resume must match it


class RenderSetupError(Exception):
    """The batch cannot start (no such input, a model without an encoder, OUT holds another render…)."""


def derived_seed(base: int, source: str, k: int) -> int:
    """Seed of picture k of the map at relative path `source` under `--seed base` (module docstring)."""
    digest = hashlib.sha256(f"{base}/{source}/{k}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 0..2^63-1, what seeded_z takes


# ----------------------------------------------------------------------------
# Inputs


@dataclass
class Sources:
    """The label maps of a folder or zip: relative '/'-separated paths, sorted, and how to read each."""

    path: Path
    names: list[str]
    bad: dict[str, str] = field(default_factory=dict)  # entries refused before reading (unsafe zip paths)
    ignored: int = 0  # files that are not .png
    max_bytes: int = 16 * 1024 * 1024  # a larger file is refused unread
    _zip: zipfile.ZipFile | None = field(default=None, repr=False)  # opened once: its directory is read once

    def read(self, name: str) -> bytes:
        """The file's bytes; BadInput when it is over `max_bytes` (a zip member is checked before inflating)."""
        if self.path.is_dir():
            file = self.path / name
            self._check_size(file.stat().st_size)
            return file.read_bytes()
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        self._check_size(self._zip.getinfo(name).file_size)
        return self._zip.read(name)

    def _check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise BadInput("too_large", f"{size} bytes, over the {self.max_bytes}-byte limit")


def read_sources(path: Path, exclude: Path | None = None, max_bytes: int = 16 * 1024 * 1024) -> Sources:
    """Every *.png under a folder (hidden ones and `exclude`, the output folder, left out) or in a zip."""
    if path.is_dir():
        skip = exclude.resolve() if exclude is not None else None
        names, ignored = [], 0
        for file in path.rglob("*"):
            rel = file.relative_to(path)
            if not file.is_file() or any(p.startswith(".") for p in rel.parts):
                continue
            if skip is not None and skip in file.resolve().parents:
                continue
            if file.suffix.lower() == ".png":
                names.append(rel.as_posix())
            else:
                ignored += 1
        return Sources(path, sorted(names), ignored=ignored, max_bytes=max_bytes)
    if zipfile.is_zipfile(path):
        sources = Sources(path, [], max_bytes=max_bytes)
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename
                if info.is_dir() or name.startswith("__MACOSX/"):
                    continue
                if not name.lower().endswith(".png"):
                    sources.ignored += 1
                elif name.startswith("/") or ".." in PurePosixPath(name).parts or "\\" in name:
                    sources.bad[name] = "unsafe path in the zip (absolute or with '..')"
                else:
                    sources.names.append(name)
        sources.names.sort()
        return sources
    raise RenderSetupError(f"{path} is neither a folder nor a zip file")


# ----------------------------------------------------------------------------
# The plan and its tasks


@dataclass(frozen=True)
class Plan:
    """Everything that decides the pictures, resolved once and saved as OUT/render.json."""

    model: str
    model_sha256: str  # of model.json, which holds every graph's checksum
    runtime: str  # what the generator runs on: bf16 and f32 give other pixels
    precision: str
    threads: int  # runtime threads per picture, never 0 (module docstring: they move OpenVINO's pixels)
    fmt: str  # png | jpeg | webp
    quality: int
    collage: bool
    seed: int | None  # seed mode: the base seed
    styles_per_map: int  # seed mode: pictures per map
    presets: tuple[str, ...]  # preset mode: one picture per preset
    style_image: str | None  # photo mode: the photo's file name …
    style_z: tuple[float, ...] | None  # … and its latent, encoded once

    # Fields that change a picture already on disk (and style_z, checked apart: a message would not print it);
    # the others only add pictures.
    DECIDING = (
        "model",
        "model_sha256",
        "runtime",
        "precision",
        "threads",
        "fmt",
        "quality",
        "collage",
        "seed",
    )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Task:
    """One picture: picture k of one map, its style and its output path relative to OUT."""

    source: str
    k: int
    seed: int | None  # z and noise from this seed; None for a preset or the photo (noise seed 0)
    preset: str | None
    file: str

    def entry(self, plan: Plan, render_ms: float | None) -> dict[str, Any]:
        """Its manifest line."""
        return {
            "input": self.source,
            "k": self.k,
            "seed": self.seed,
            "preset": self.preset,
            "style_image": plan.style_image if self.seed is None and self.preset is None else None,
            "file": self.file,
            "render_ms": None if render_ms is None else round(render_ms, 3),
        }


def tasks(plan: Plan, names: list[str]) -> list[Task]:
    """The pictures of every map, map by map: `OUT/<path without extension>__<k>.<ext>` for seeds,
    `__<preset>` for presets, `__style` for the photo."""
    ext = EXTENSIONS[plan.fmt]
    out: list[Task] = []
    for name in names:
        stem = name.rsplit(".", 1)[0]
        if plan.seed is not None:
            out += [
                Task(name, k, derived_seed(plan.seed, name, k), None, f"{stem}__{k}.{ext}")
                for k in range(plan.styles_per_map)
            ]
        elif plan.presets:
            out += [Task(name, k, None, p, f"{stem}__{p}.{ext}") for k, p in enumerate(plan.presets)]
        else:
            out.append(Task(name, 0, None, None, f"{stem}__style.{ext}"))
    return out


# ----------------------------------------------------------------------------
# Rendering


class Renderer:
    """One model's runtime session inside the server's engine (batch 1, no waiting), driven synchronously: the
    same validation, instance maps, CollageGAN stage and encoder as a REST render or a batch job."""

    def __init__(self, model_dir: Path, choice: RuntimeChoice, max_pixels: int) -> None:
        self.model: LoadedModel = load_model(model_dir, choice)
        self.choice = choice  # a distributed runner opens its workers' copies the same way
        self.max_pixels = max_pixels
        registry = Registry({self.model.name: self.model}, {}, self.model.name)
        self._runner = asyncio.Runner()
        self._engine = Engine(registry, Metrics(), max_batch=1, max_wait_ms=0.0)
        self._runner.run(self._engine.start())

    def close(self) -> None:
        self._runner.run(self._engine.stop())
        self._runner.close()

    def plan(
        self,
        fmt: str,
        quality: int,
        collage: bool,
        seed: int | None,
        styles_per_map: int,
        preset: str | None,
        style_image: Path | None,
    ) -> Plan:
        """Resolve the style options against the model; RenderSetupError says what it cannot do."""
        m = self.model
        if collage and not m.has_collage:
            raise RenderSetupError(f"model {m.name} has no class generators; drop --collage")
        if fmt not in EXTENSIONS:
            raise RenderSetupError(f"unknown format {fmt!r} (png, jpeg or webp)")
        if not 1 <= quality <= 100:
            raise RenderSetupError(f"--quality {quality} is not in 1..100")
        presets: tuple[str, ...] = ()
        if preset is not None:
            names = tuple(s.name for s in m.manifest.styles)
            presets = names if preset == "all" else (preset,)
            if not presets or any(p not in names for p in presets):
                raise RenderSetupError(
                    f"model {m.name} has no preset {preset!r} (presets: {', '.join(names) or 'none'})"
                )
        style_z = None
        if style_image is not None:
            if m.encoder is None:
                raise RenderSetupError(
                    f"model {m.name} has no style encoder, so --style-image cannot be used; "
                    "use --seed or --preset"
                )
            try:
                pixels = decode_image_rgb(style_image.read_bytes(), self.max_pixels)
            except (OSError, BadInput) as exc:
                raise RenderSetupError(
                    f"--style-image {style_image}: {getattr(exc, 'message', exc)}"
                ) from None
            mu = m.run_encoder(to_model_input(pixels, m.encoder_size))
            style_z = tuple(float(v) for v in mu[0])
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise RenderSetupError(f"--seed {seed} is not in 0..2^63-1")
        return Plan(
            model=m.name,
            model_sha256=hashlib.sha256((m.directory / MANIFEST_NAME).read_bytes()).hexdigest(),
            runtime=m.runtime.runtime,
            precision=m.runtime.precision,
            threads=self.choice.threads,
            fmt=fmt,
            quality=quality,
            collage=collage,
            seed=seed if preset is None and style_image is None else None,
            styles_per_map=styles_per_map,
            presets=presets,
            style_image=style_image.name if style_image is not None else None,
            style_z=style_z,
        )

    def decode(self, data: bytes) -> np.ndarray:
        """A label PNG (ids, or the model's label colours) → H×W uint8 ids; BadInput says why not."""
        return decode_label_png(data, self.model.colors, self.max_pixels)

    def style(self, plan: Plan, task: Task) -> tuple[np.ndarray, int]:
        """The picture's (z, noise seed): a distributed runner draws them where the plan was made and ships
        them, so its workers need neither the plan nor the style photo."""
        m = self.model
        if task.seed is not None:
            return seeded_z(task.seed, m.z_dim), task.seed
        if task.preset is not None:
            return m.preset(task.preset), 0
        assert plan.style_z is not None
        return np.asarray(plan.style_z, dtype=np.float32), 0

    def render(self, plan: Plan, task: Task, labels: np.ndarray) -> tuple[bytes, float]:
        """One picture → (encoded bytes, milliseconds on the inference thread); BadInput for a map the model
        cannot take (size, label ids)."""
        z, seed = self.style(plan, task)
        return self.render_z(labels, z, seed, plan.fmt, plan.quality, plan.collage)

    def render_z(
        self, labels: np.ndarray, z: np.ndarray, seed: int, fmt: str, quality: int, collage: bool
    ) -> tuple[bytes, float]:
        """`render` from a style already drawn: the request a batch job's item makes, batch 1."""
        request = RenderRequest(self.model.name, labels, z, fmt, quality, collage, source="job", seed=seed)
        result = self._runner.run(self._engine.render(request, priority="bulk"))
        return result.data, result.infer_ms


# ----------------------------------------------------------------------------
# The output folder


class OutputFolder:
    """OUT: pictures written atomically (tmp + rename), render.json, manifest.jsonl.

    A picture on disk is finished: a resume skips it. A crash between the rename and the manifest line leaves a
    picture the manifest lacks; `open` adds it back (render_ms null), drops lines whose picture is gone (deleted
    to be rendered again) or cut short, and keeps one line per picture."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, plan: Plan, todo: list[Task]) -> None:
        """Check or write render.json, clear temporaries, reconcile the manifest with the pictures on disk."""
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / CONFIG
        if config.exists():
            old = json.loads(config.read_text())
            new = plan.to_json()
            diff = [k for k in (*Plan.DECIDING, "style_z") if json.dumps(old.get(k)) != json.dumps(new[k])]
            if diff:
                said = "; ".join(f"{k}: {old.get(k)!r} then, {new[k]!r} now" for k in diff if k != "style_z")
                raise RenderSetupError(
                    f"{self.root} holds a render made with other settings ({said or 'another style photo'}); "
                    "use another --out, or the same settings to resume it"
                )
        self._write_atomic(config, json.dumps(plan.to_json(), indent=1).encode())
        for tmp in self.root.rglob("*.collage-tmp"):
            tmp.unlink()
        entries: dict[str, dict[str, Any]] = {}
        manifest = self.root / MANIFEST
        lines = manifest.read_text().splitlines() if manifest.exists() else []
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(entry, dict) and (self.root / str(entry.get("file"))).is_file():
                entries[entry["file"]] = entry
        for task in todo:
            if task.file not in entries and self.done(task):
                entries[task.file] = task.entry(plan, None) | {"recovered": True}
        text = "".join(json.dumps(e) + "\n" for e in entries.values())
        if text != "".join(line + "\n" for line in lines):
            self._write_atomic(manifest, text.encode())

    def done(self, task: Task) -> bool:
        return (self.root / task.file).is_file()

    def write(self, plan: Plan, task: Task, data: bytes, render_ms: float) -> None:
        """The picture (atomic), then its manifest line in one append."""
        self._write_atomic(self.root / task.file, data)
        with open(self.root / MANIFEST, "a") as f:
            f.write(json.dumps(task.entry(plan, render_ms)) + "\n")

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.collage-tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


def by_source(todo: list[Task]) -> Iterator[tuple[str, list[Task]]]:
    """Tasks grouped by map, in order (each map is read and decoded once)."""
    group: list[Task] = []
    for task in todo:
        if group and group[0].source != task.source:
            yield group[0].source, group
            group = []
        group.append(task)
    if group:
        yield group[0].source, group
