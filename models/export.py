"""Export trained networks to a served model folder: `weights/<name>/model.json` + ONNX graphs.

The folder is the only contract with the server (docs/contracts.md). Any architecture is exported the same way:
its `Arch.export` (models/archs) rebuilds the networks to serve from a checkpoint as an `ExportSpec`, one
`ExportRole` per graph ("generator", optionally "encoder") with example inputs, outputs, dynamic axes and its
block of model.json; `architecture` in the manifest is the arch's name. A CollageGAN class generator's
`ClassPackSpec` becomes a class pack instead (`models/export_pack.py`), through the same per-graph path
(`write_graph`). Each role is exported from a deep copy in
eval mode with spectral norm folded into plain weights, by the dynamo exporter (opset 18); the same example
inputs run through torch and onnxruntime, and no manifest is written when they disagree by more than 1e-3; the
weights are then stored in 16 bits (`models/weight_storage.py`: about half the file, outputs within 2e-3 of the
fp32 file, checked on the examples). The manifest is validated against `weights/model.schema.json` (generated
from `common/manifest.py`) as data, so this module never imports `server`.

CLI: `collage export runs/00001-spade-fast --out weights/landscape-spade [--checkpoint latest|PATH] [--name N]
[--size S] [--style-refs K]`; `collage export runs/00007-collage-class --out packs/house` (a class pack: --name,
--size and --style-refs do not apply).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from common.checksums import sha256_file
from common.runtime import Graph, RuntimeChoice, open_graph
from models.archs import ClassPackSpec, ExportRole, ExportSpec, get_arch
from models.checkpoints import LATEST, lineage_images_seen, read_checkpoint
from models.data.datasets import data_kind
from models.flops import count_gmacs, count_params
from models.labels import get_label_set
from models.version import REPO_ROOT, code_version, shown_path
from models.weight_storage import convert_file

OPSET = 18
PARITY_TOL = 1e-3  # max abs difference allowed between torch and onnxruntime outputs in [-1, 1]
MAX_FILE_BYTES = 30 * 2**20  # served ONNX files stay ≤ 30 MB (the budget for weights in git history)
MAX_BATCH = 1024
SCHEMA_PATH = REPO_ROOT / "weights" / "model.schema.json"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

ModuleT = TypeVar("ModuleT", bound=nn.Module)


class ExportError(RuntimeError):
    """The export cannot produce a folder the server would accept (parity, size, schema)."""


# ----------------------------------------------------------------------------
# Preparing modules.


def fold_spectral_norm(module: ModuleT) -> ModuleT:
    """Replace every parametrization (spectral norm) by its current value, in place; returns `module`.

    Call on an eval-mode copy: spectral norm then uses its stored power-iteration vectors without updating
    them, so the folded weight is exactly what the network computed with. Not `remove_parametrizations`: it
    deletes the property from the module's generated class, which a deep copy shares with the original.
    """
    with torch.no_grad():
        for sub in module.modules():
            if parametrize.is_parametrized(sub):
                names = cast(nn.ModuleDict, sub.parametrizations)  # a ModuleDict, typed Tensor | Module
                values = {name: getattr(sub, name).detach().clone() for name in names}
                sub.__class__ = sub.__class__.__bases__[0]  # parametrize subclasses the original class
                del sub.parametrizations
                for name, value in values.items():
                    sub.register_parameter(name, nn.Parameter(value))
    return module


def prepare_for_export(module: ModuleT) -> ModuleT:
    """A deep copy on CPU, in eval mode, with spectral norm folded and gradients off."""
    prepared = fold_spectral_norm(copy.deepcopy(module).cpu().eval())
    prepared.requires_grad_(False)
    return prepared


def _parity_graph(path: Path) -> Graph:
    """The exported file on onnxruntime's CPU provider in f32, 2 threads: the parity check compares it with
    torch in f32, so neither a GPU provider nor OpenVINO's bf16 may stand between the two."""
    return open_graph(path, RuntimeChoice("onnxruntime", "f32", threads=2, providers=("cpu",)))


def _max_abs_diff(torch_out: Sequence[torch.Tensor], ort_out: Sequence[np.ndarray]) -> float:
    return max(float(np.abs(t.numpy() - o).max()) for t, o in zip(torch_out, ort_out, strict=True))


def _onnx_export(module: nn.Module, args: tuple[Any, ...], path: Path, **kwargs: Any) -> None:
    path.unlink(missing_ok=True)
    torch.onnx.export(
        module,
        args,
        str(path),
        dynamo=True,
        opset_version=OPSET,
        external_data=False,
        verbose=False,
        **kwargs,
    )


# ----------------------------------------------------------------------------
# One role's graph.


@dataclass(frozen=True)
class ExportedGraph:
    """One role's graph as written: what the manifest, the 16-bit check and the GMAC count need."""

    module: nn.Module  # the prepared copy that was exported
    size: tuple[int, int]  # (H, W) of its example inputs: the served size, or the role's own size
    inputs: frozenset[str]  # the graph's input names (an input the network ignores is dropped from the graph)
    fields: dict[str, Any]  # the role's manifest block, size fields included
    parity: float  # max abs difference between torch and onnxruntime over the checks


def export_graph(
    name: str, role: ExportRole, path: Path, image_size: tuple[int, int], max_size: int = 1024
) -> ExportedGraph:
    """Export a prepared copy of `role.module` to `path` and measure the file against torch.

    `name` is the role ("generator", "encoder"), which errors begin with. The graph is traced on a batch of 2 at
    the role's size; parity is checked on that batch and on a batch of 1, at (m, 2m) when H and W are dynamic
    multiples of m (proving the dynamic axes work), else at the same size.
    """
    from torch.export import Dim

    module = prepare_for_export(role.module)
    size = role.size or image_size
    multiple = role.size_multiple
    dynamic = role.size is None and multiple > 0 and size[0] % multiple == 0 and size[1] % multiple == 0
    top = max(max_size, *size) // multiple if dynamic else 0
    batch = Dim("batch", min=1, max=MAX_BATCH)
    picture: dict[int, Any] = {0: batch}  # the axes of a `spatial` input
    if dynamic:
        picture |= {
            2: multiple * Dim("h_blocks", min=1, max=top),
            3: multiple * Dim("w_blocks", min=1, max=top),
        }
    args = role.example(2, size, 0)
    _onnx_export(
        module,
        tuple(args.values()),
        path,
        input_names=list(args),
        output_names=list(role.outputs),
        dynamic_shapes=tuple(picture if arg in role.spatial else {0: batch} for arg in args),
    )
    graph = _parity_graph(path)
    inputs = frozenset(graph.inputs)
    diff = 0.0
    for feed in (args, role.example(1, (multiple, 2 * multiple) if dynamic else size, 1)):
        with torch.no_grad():
            expected = module(*feed.values())
        expected = (expected,) if isinstance(expected, torch.Tensor) else tuple(expected)
        got = graph.run(list(role.outputs), {k: v.numpy() for k, v in feed.items() if k in inputs})
        diff = max(diff, _max_abs_diff(expected, got))
    if diff > PARITY_TOL:
        raise ExportError(f"{name}: onnxruntime differs from torch by {diff:.3g} > {PARITY_TOL}")
    dropped = set(args) - inputs
    fields = {k: None if isinstance(v, str) and v in dropped else v for k, v in role.fields.items()}
    if role.size is not None:
        fields["size"] = list(role.size)
    else:
        fields |= {
            "dynamic_size": dynamic,
            "size_multiple": multiple if dynamic else 1,
            "min_size": multiple if dynamic else min(size),
            "max_size": top * multiple if dynamic else max(size),
        }
    return ExportedGraph(module, size, inputs, fields, diff)


def _storage_feeds(role: ExportRole, graph: ExportedGraph) -> list[dict[str, np.ndarray]]:
    """The feeds the 16-bit weights are checked on: 8 examples (seed 3), one at a time."""
    example = role.example(8, graph.size, 3)
    return [{k: v[i : i + 1].numpy() for k, v in example.items() if k in graph.inputs} for i in range(8)]


@dataclass(frozen=True)
class StoredGraph:
    """One role's file as served: exported, parity-checked, weights in 16 bits, measured."""

    file: dict[str, Any]  # its FileRef (path, sha256, bytes, storage)
    inputs: frozenset[str]  # the graph's input names
    fields: dict[str, Any]  # the role's manifest block, size fields included
    parity: float  # max abs difference between torch and onnxruntime (fp32 file)
    int16: dict[str, Any]  # the 16-bit conversion's report (weights, bytes before and after, max abs diff)
    gmacs: float  # per batch-1 call at the role's size
    params: int


def write_graph(
    name: str, role: ExportRole, path: Path, image_size: tuple[int, int], max_file_bytes: int = MAX_FILE_BYTES
) -> StoredGraph:
    """`export_graph`, then the 16-bit weights (checked on the role's examples), the file's checksum and size
    limit, and its GMACs and parameter count: everything a served graph gets, for a model's roles and a class
    pack's alike."""
    graph = export_graph(name, role, path, image_size)
    int16 = convert_file(path, _storage_feeds(role, graph))
    return StoredGraph(
        file=_file_ref(path, max_file_bytes, "int16"),
        inputs=graph.inputs,
        fields=graph.fields,
        parity=graph.parity,
        int16=int16,
        gmacs=round(count_gmacs(graph.module, *role.example(1, graph.size, 0).values()), 4),
        params=count_params(graph.module),
    )


def export_report(graphs: Mapping[str, StoredGraph]) -> dict[str, Any]:
    """The `export` figures of a set of graphs: opset, parity, 16-bit storage, GMACs, parameters, versions."""
    import onnxruntime as ort

    return {
        "opset": OPSET,
        "parity_max_abs_diff": {name: g.parity for name, g in graphs.items()},
        "parity_tolerance": PARITY_TOL,
        "int16_at_rest": {name: g.int16 for name, g in graphs.items()},
        "gmacs": {name: g.gmacs for name, g in graphs.items()},
        "params": {name: g.params for name, g in graphs.items()},
        "spectral_norm_folded": True,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "code_version": code_version(),
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------
# The manifest.


def _file_ref(path: Path, max_bytes: int, storage: str) -> dict[str, Any]:
    size = path.stat().st_size
    if size > max_bytes:
        raise ExportError(
            f"{path.name} is {size / 2**20:.1f} MB > {max_bytes / 2**20:.0f} MB; use a smaller preset"
        )
    return {"path": path.name, "sha256": sha256_file(path), "bytes": size, "storage": storage}


def _styles_json(styles: Any, z_dim: int) -> list[dict[str, Any]]:
    """Preset latents as manifest entries; accepts {name: z} or [{name, z, family?}] with z of length z_dim."""
    if styles is None:
        return []
    entries = (
        [{"name": k, "z": v} for k, v in styles.items()] if isinstance(styles, Mapping) else list(styles)
    )
    out = []
    for entry in entries:
        z = np.asarray(torch.as_tensor(entry["z"]).detach().cpu(), dtype=np.float32).reshape(-1)
        if z.shape[0] != z_dim:
            raise ValueError(
                f"style {entry['name']!r} has {z.shape[0]} values, the generator takes z_dim={z_dim}"
            )
        out.append({"name": str(entry["name"]), "family": entry.get("family"), "z": [float(v) for v in z]})
    return out


def validate_manifest(manifest: Mapping[str, Any], schema_path: Path = SCHEMA_PATH) -> None:
    """Raise ExportError naming the first schema violation (JSON Schema generated from common/manifest.py)."""
    import jsonschema

    if not schema_path.exists():
        raise ExportError(f"{schema_path} is missing; generate it with `python -m common.manifest`")
    schema = json.loads(schema_path.read_text())
    try:
        jsonschema.validate(json.loads(json.dumps(manifest)), schema)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        raise ExportError(f"manifest does not match {schema_path.name} at {where}: {err.message}") from None


def export_modules(
    spec: ExportSpec,
    *,
    out_dir: str | Path,
    name: str,
    image_size: tuple[int, int] = (256, 256),
    styles: Any = None,
    training: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> dict[str, Any]:
    """Export every role of `spec` to `out_dir` as `<role>.onnx` + model.json; returns the manifest.

    `image_size` is the served size (H, W); `training` is provenance (data, steps, wall time, perceptual loss
    used…), `config` the resolved training config (stored under training.config); `styles` are preset latents
    ({name: z} or [{name, z, family}]).
    """
    if not NAME_RE.match(name):
        raise ValueError(f"model name {name!r} must match {NAME_RE.pattern}")
    image_size = (int(image_size[0]), int(image_size[1]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.json").unlink(
        missing_ok=True
    )  # a failed export must not leave an old manifest over new files
    stale = out / "eval.json"  # `collage eval`'s numbers judge the networks this export replaces
    if stale.exists():
        stale.unlink()
        print(f"removed {stale}: it judged the previous model; run collage eval again", file=sys.stderr)  # noqa: T201

    roles = {"generator": spec.generator, "encoder": spec.encoder}
    graphs = {
        role_name: write_graph(role_name, role, out / f"{role_name}.onnx", image_size, max_file_bytes)
        for role_name, role in roles.items()
        if role is not None
    }
    blocks = {role_name: graph.fields for role_name, graph in graphs.items()}

    provenance = dict(training or {})
    if config is not None:
        provenance["config"] = dict(config)
    labels = spec.label_set
    manifest = {
        "format_version": 1,
        "name": name,
        "architecture": spec.architecture,
        "label_set": labels.name,
        "image_size": list(image_size),
        "labels": labels.to_json(),
        "background_label": labels.background,
        "inputs": blocks["generator"],
        "encoder_inputs": blocks.get("encoder"),
        "files": {role_name: graph.file for role_name, graph in graphs.items()},
        "class_generators": [],
        "styles": _styles_json(styles, int(blocks["generator"].get("z_dim", 0))),
        "export": export_report(graphs) | {"gmacs_at": list(image_size)},
        "training": provenance,
        "metrics": {},
    }
    validate_manifest(manifest)
    (out / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# ----------------------------------------------------------------------------
# CLI: checkpoint -> model folder.


def find_checkpoint(run: Path, which: str = "latest") -> Path:
    """`latest` = RUN/checkpoint-latest.pt (RUN may also be a .pt file); anything else is a checkpoint path."""
    path = (
        run
        if which == "latest" and run.suffix == ".pt"
        else Path(which)
        if which != "latest"
        else run / LATEST
    )
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return path


def load_spec(checkpoint: Mapping[str, Any]) -> tuple[ExportSpec | ClassPackSpec, dict[str, Any]]:
    """The networks a `collage train` checkpoint serves, rebuilt by its architecture's `export`, and the run's
    resolved config (with its label set, and the architecture's provenance first)."""
    if "config" not in checkpoint:
        raise ValueError("checkpoint has no 'config'; it was not written by `collage train`")
    config = dict(checkpoint["config"])
    arch = get_arch(str(config.get("arch")))
    build = arch.export
    if build is None:
        raise ValueError(f"the {arch.name} architecture serves no networks; there is nothing to export")
    label_set = get_label_set(str(checkpoint.get("label_set") or config.get("label_set") or "landscape"))
    spec = build(checkpoint, label_set)
    config["label_set"] = label_set.name
    return spec, {**spec.provenance, **config}


@torch.no_grad()
def encode_family_styles(
    encoder: nn.Module,
    input_size: tuple[int, int],
    per_family: int,
    seed: int = 0,
    size: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """One preset latent per procedural style family: the mean μ of `per_family` encoded reference renders.

    Landscape models only: the references are procedural layouts rendered in each family (day, golden hour,
    overcast, dusk, winter, autumn, …), so a preset reproduces that family's colours and mood. They are
    rendered at `size` (`export_run` passes the served image size: --size, default the training size; None
    renders at the encoder's `input_size`) and resized to `input_size` with `fit_to_encoder`, as the training
    step resizes real images, so the encoder (image -> (mu, logvar), docs/contracts.md) sees what it was
    trained on.
    """
    from tqdm import tqdm

    from models.data import FAMILIES, render, sample_layout, sample_style
    from models.nets.spade import fit_to_encoder

    enc = prepare_for_export(encoder)
    styles = []
    for f, family in enumerate(tqdm(FAMILIES, desc="style presets", file=sys.stderr)):
        images = []
        for i in range(per_family):
            rng = np.random.default_rng([seed, f, i])
            label, instance = sample_layout(rng, size or input_size)
            rgb = render(label, instance, sample_style(rng, family), seed=int(rng.integers(2**31)))
            images.append(torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1)  # [3,H,W] in [-1,1]
        mu, _ = enc(fit_to_encoder(torch.stack(images), input_size))  # [per_family,z_dim]
        styles.append({"name": family, "family": family, "z": mu.mean(0)})
    return styles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collage export", description=__doc__.split("\n")[0])
    parser.add_argument(
        "run", type=Path, help="training run folder (e.g. runs/00001-spade-fast) or a .pt file"
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="model folder to write, e.g. weights/landscape (a class pack folder for a collage-class run)",
    )
    parser.add_argument(
        "--checkpoint", default="latest", help="'latest' (RUN/checkpoint-latest.pt) or a path"
    )
    parser.add_argument("--name", help="model name in the manifest (default: the --out folder name)")
    parser.add_argument(
        "--style-refs",
        type=int,
        default=4,
        help="reference renders per style family for preset latents (procedural-data runs; 0 = none)",
    )
    parser.add_argument(
        "--size",
        type=int,
        help="square size the studio paints at and GMACs are counted at (default: the training size); "
        "a dynamic-size generator takes any multiple of its size multiple (SPADE: 2^num_up, its up-sampling "
        "stages), so a 128² run may serve 256²",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        help="class packs only: instances whose tight box is longer than this (picture pixels) are left to the "
        "base generator (default: no limit), for classes whose large instances the T² box would blur",
    )
    args = parser.parse_args(argv)
    try:
        manifest = export_run(
            args.run,
            args.out,
            args.checkpoint,
            args.name or args.out.name,
            args.style_refs,
            args.size,
            args.max_side,
        )
    except (FileNotFoundError, KeyError, ValueError, ExportError) as err:
        print(f"collage export: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)  # noqa: T201
        return 2
    if "files" in manifest:
        summary = {"files": manifest["files"], **manifest["export"]}
    else:  # a class pack: one generator
        entry = manifest["class_generators"][0]
        summary = {
            "thing": entry["thing"],
            "files": [entry["encoder"], entry["decoder"]],
            **entry["training"]["export"],
        }
    print(json.dumps({"out": str(args.out), **summary}, indent=2))  # noqa: T201
    return 0


def hide_locations(config: dict[str, Any]) -> None:
    """Name, not locate, the author's folders in a config bound for model.json, which the server hands to any
    client: the data folder (stored absolute so --resume works from anywhere), the render cache, --init_from."""
    kind, colon, data_path = str(config.get("data", "")).partition(":")
    if colon and data_path:
        config["data"] = f"{kind}:{shown_path(Path(data_path))}"
    if config.get("data_cache"):
        config["data_cache"] = shown_path(Path(config["data_cache"]))
    if isinstance(config.get("init_from"), dict) and config["init_from"].get("path"):
        config["init_from"] = {**config["init_from"], "path": shown_path(Path(config["init_from"]["path"]))}


def export_run(
    run: Path,
    out: Path,
    which: str,
    name: str,
    style_refs: int,
    serve_size: int | None = None,
    max_side: int | None = None,
) -> dict[str, Any]:
    """Checkpoint of a `collage train` run -> model folder `out`; returns the manifest. A class generator's run
    -> class pack folder `out`; returns class_pack.json."""
    ckpt_path = find_checkpoint(run, which)
    checkpoint = read_checkpoint(ckpt_path)
    spec, config = load_spec(checkpoint)
    if isinstance(spec, ClassPackSpec):
        from models.export_pack import export_pack  # it imports this module

        if serve_size is not None:
            raise ExportError(f"--size {serve_size}: a class generator's graphs keep the sizes it trained at")
        if max_side is not None and max_side < spec.entry["min_side"]:
            raise ExportError(
                f"--max-side {max_side}: below the generator's min_side {spec.entry['min_side']}"
            )
        hide_locations(config)
        return export_pack(
            spec,
            out_dir=out,
            training=training_record(ckpt_path, checkpoint, config),
            config=config,
            max_side=max_side,
        )
    if max_side is not None:
        raise ExportError(f"--max-side {max_side}: only a class generator's run has instances to limit")
    step = max(spec.generator.size_multiple, 1)  # e.g. SPADE's 2^num_up: it up-samples from an (H/step)² grid
    if serve_size is not None and (serve_size < step or serve_size % step):
        raise ExportError(
            f"--size {serve_size}: the generator takes sizes that are positive multiples of {step}"
        )
    size = config.get("size", 256) if serve_size is None else serve_size
    image_size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    styles = None
    # Presets are encoded from procedural renders: they fit only a model trained on them, not one trained on
    # photos that merely use the landscape label set.
    procedural = data_kind(str(config.get("data", "procedural"))) == "procedural"
    encoder = spec.encoder
    if encoder is not None and procedural and style_refs > 0:
        styles = encode_family_styles(
            encoder.module, encoder.size or image_size, style_refs, int(config.get("seed", 0)), image_size
        )
    elif encoder is not None and style_refs > 0:
        note = (
            f"no style presets: they come from procedural renders, this run trained on {config.get('data')}"
        )
        print(note, file=sys.stderr)  # noqa: T201
    hide_locations(config)
    return export_modules(
        spec,
        out_dir=out,
        name=name,
        image_size=image_size,
        styles=styles,
        training=training_record(ckpt_path, checkpoint, config),
        config=config,
    )


def training_record(
    ckpt_path: Path, checkpoint: Mapping[str, Any], config: Mapping[str, Any]
) -> dict[str, Any]:
    """Where the exported weights came from (model.json's or a pack entry's `training`, without the config);
    `config` with its locations hidden already."""
    training = {
        "run": shown_path(ckpt_path.parent),
        "checkpoint": ckpt_path.name,
        "step": checkpoint.get("step"),
        "images_seen": checkpoint.get("images_seen"),
        "images_seen_total": lineage_images_seen(checkpoint),  # with its --init_from chain's
        "wall_time_s": checkpoint.get("wall_time"),
        "data": config.get("data"),
        "perceptual": checkpoint.get("perceptual"),
        "precision": config.get("precision", "fp32"),
        "code_version": checkpoint.get("code_version"),
        "torch": checkpoint.get("torch_version"),
    }
    return {k: v for k, v in training.items() if v is not None}


if __name__ == "__main__":
    sys.exit(main())
