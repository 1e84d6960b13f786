"""Export trained networks to a served model folder: `weights/<name>/model.json` + ONNX graphs.

The folder is the only contract with the server (docs/contracts.md). The exporter works on a deep copy in eval
mode with spectral norm folded into plain weights, exports with the dynamo exporter (opset 18), runs the same
random inputs through torch and onnxruntime and refuses to write a manifest when they disagree by more than
1e-3, then stores the weights in 16 bits (`models/weight_storage.py`: about half the file, outputs within 2e-3
of the fp32 file, checked). The manifest is validated against `weights/model.schema.json` (generated from `server/manifest.py`) as
data, so this module never imports `server`.

CLI: `collage export runs/00001-spade-fast --out weights/landscape-spade [--checkpoint latest|PATH] [--name N]
[--size S] [--style-refs K]`.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from common.checksums import sha256_file
from common.runtime import Graph, RuntimeChoice, open_graph
from models.checkpoints import LATEST, read_checkpoint
from models.data.datasets import data_kind
from models.flops import count_params, encoder_gmacs, generator_gmacs
from models.labels import LabelSet, get_label_set
from models.nets.spade import ConvEncoder, SPADEGenerator
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
# Generator and encoder graphs.


def _generator_inputs(
    label_nc: int, z_dim: int, batch: int, size: tuple[int, int], seed: int
) -> tuple[torch.Tensor, ...]:
    """Random (label, instance, z) with several labels and instances, so one-hot and edges are exercised."""
    gen = torch.Generator().manual_seed(seed)
    height, width = size
    # Blocky maps (8×8 cells) look like painted regions; per-pixel noise would make every pixel an edge.
    cells = (batch, 1, -(-height // 8), -(-width // 8))
    label = torch.randint(0, label_nc, cells, generator=gen).repeat_interleave(8, 2).repeat_interleave(8, 3)
    instance = torch.randint(0, 4, cells, generator=gen).repeat_interleave(8, 2).repeat_interleave(8, 3)
    label, instance = label[:, :, :height, :width].contiguous(), instance[:, :, :height, :width].contiguous()
    z = torch.randn(batch, z_dim, generator=gen)
    return label, instance, z  # [B,1,H,W] int64, [B,1,H,W] int64, [B,z_dim]


def export_generator(
    generator: SPADEGenerator, path: Path, image_size: tuple[int, int], max_size: int = 1024
) -> dict[str, Any]:
    """Export a prepared (label, instance, z) -> image generator; returns the manifest `inputs` + parity.

    H and W are dynamic (multiples of `generator.size_multiple`) when the network declares `size_multiple`.
    """
    from torch.export import Dim

    multiple = int(getattr(generator, "size_multiple", 0))
    dynamic = multiple > 0 and image_size[0] % multiple == 0 and image_size[1] % multiple == 0
    args = _generator_inputs(generator.label_nc, generator.z_dim, 2, image_size, seed=0)
    batch = Dim("batch", min=1, max=MAX_BATCH)
    if dynamic:
        top = max(max_size, *image_size) // multiple
        height, width = multiple * Dim("h_blocks", min=1, max=top), multiple * Dim("w_blocks", min=1, max=top)
        spatial = {0: batch, 2: height, 3: width}
    else:
        spatial = {0: batch}
    dynamic_shapes = {"label": spatial, "instance": spatial, "z": {0: batch}}
    _onnx_export(
        generator,
        args,
        path,
        input_names=["label", "instance", "z"],
        output_names=["image"],
        dynamic_shapes=dynamic_shapes,
    )
    graph = _parity_graph(path)
    graph_inputs = set(graph.inputs)
    checks = [args]
    if dynamic:  # a second shape proves the dynamic axes really work
        checks.append(_generator_inputs(generator.label_nc, generator.z_dim, 1, (multiple, 2 * multiple), 1))
    diff = 0.0
    for label, instance, z in checks:
        feed = {"label": label.numpy(), "instance": instance.numpy(), "z": z.numpy()}
        feed = {k: v for k, v in feed.items() if k in graph_inputs}
        with torch.no_grad():
            expected = generator(label, instance, z)
        diff = max(diff, _max_abs_diff([expected], graph.run(["image"], feed)))
    if diff > PARITY_TOL:
        raise ExportError(f"generator: onnxruntime differs from torch by {diff:.3g} > {PARITY_TOL}")
    inputs = {
        "label": "label",
        "instance": "instance" if "instance" in graph_inputs else None,  # dropped when edges are off
        "z": "z",
        "z_dim": int(generator.z_dim),
        "output": "image",
        "dynamic_size": dynamic,
        "size_multiple": multiple if dynamic else 1,
        "min_size": multiple if dynamic else min(image_size),
        "max_size": top * multiple if dynamic else max(image_size),
    }
    return {"inputs": inputs, "parity_max_abs_diff": diff}


def export_encoder(encoder: ConvEncoder, path: Path) -> float:
    """Export a prepared image -> (mu, logvar) encoder at its own fixed image_size (which may differ from the
    generator's: the manifest records it as encoder_inputs.size); returns the parity diff."""
    from torch.export import Dim

    gen = torch.Generator().manual_seed(2)
    image = torch.rand(2, 3, *encoder.image_size, generator=gen) * 2 - 1  # [2,3,H,W] in [-1,1]
    _onnx_export(
        encoder,
        (image,),
        path,
        input_names=["image"],
        output_names=["mu", "logvar"],
        dynamic_shapes={"image": {0: Dim("batch", min=1, max=MAX_BATCH)}},
    )
    graph = _parity_graph(path)
    diff = 0.0
    for batch in (image, image[:1]):
        with torch.no_grad():
            expected = encoder(batch)
        diff = max(diff, _max_abs_diff(expected, graph.run(["mu", "logvar"], {"image": batch.numpy()})))
    if diff > PARITY_TOL:
        raise ExportError(f"encoder: onnxruntime differs from torch by {diff:.3g} > {PARITY_TOL}")
    return diff


# ----------------------------------------------------------------------------
# The manifest.


def _storage_feeds(
    generator: SPADEGenerator, inputs: Mapping[str, Any], image_size: tuple[int, int]
) -> list[dict[str, np.ndarray]]:
    """Generator feeds the 16-bit weights are checked on: 8 blocky random maps with random styles."""
    label, instance, z = _generator_inputs(generator.label_nc, generator.z_dim, 8, image_size, seed=3)
    feeds = []
    for i in range(len(label)):
        feed = {inputs["label"]: label[i : i + 1].numpy(), inputs["z"]: z[i : i + 1].numpy()}
        if inputs["instance"]:
            feed[inputs["instance"]] = instance[i : i + 1].numpy()
        feeds.append(feed)
    return feeds


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
    """Raise ExportError naming the first schema violation (JSON Schema generated from server/manifest.py)."""
    import jsonschema

    if not schema_path.exists():
        raise ExportError(f"{schema_path} is missing; generate it with `python -m server.manifest`")
    schema = json.loads(schema_path.read_text())
    try:
        jsonschema.validate(json.loads(json.dumps(manifest)), schema)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        raise ExportError(f"manifest does not match {schema_path.name} at {where}: {err.message}") from None


def export_modules(
    generator: SPADEGenerator,
    encoder: ConvEncoder | None,
    *,
    label_set: LabelSet | str,
    out_dir: str | Path,
    name: str,
    architecture: str = "spade",
    image_size: tuple[int, int] = (256, 256),
    styles: Any = None,
    training: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> dict[str, Any]:
    """Export G (and E) to `out_dir` as generator.onnx / encoder.onnx + model.json; returns the manifest.

    `training` is provenance (data, steps, wall time, perceptual loss used…), `config` the resolved training
    config (stored under training.config); `styles` are preset latents ({name: z} or [{name, z, family}]).
    """
    if not NAME_RE.match(name):
        raise ValueError(f"model name {name!r} must match {NAME_RE.pattern}")
    labels = get_label_set(label_set) if isinstance(label_set, str) else label_set
    if generator.label_nc != len(labels):
        raise ValueError(
            f"generator has label_nc={generator.label_nc} but {labels.name!r} has {len(labels)} labels"
        )
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

    gen = prepare_for_export(generator)
    gen_report = export_generator(gen, out / "generator.onnx", image_size)
    int16 = {
        "generator": convert_file(
            out / "generator.onnx", _storage_feeds(gen, gen_report["inputs"], image_size)
        )
    }
    files: dict[str, Any] = {"generator": _file_ref(out / "generator.onnx", max_file_bytes, "int16")}
    parity = {"generator": gen_report["parity_max_abs_diff"]}
    gmacs = {"generator": round(generator_gmacs(gen, image_size), 4)}
    params = {"generator": count_params(gen)}
    encoder_inputs = None
    if encoder is not None:
        enc = prepare_for_export(encoder)
        if enc.fc_mu.out_features != gen.z_dim:
            raise ValueError(
                f"encoder z_dim {enc.fc_mu.out_features} differs from generator z_dim {gen.z_dim}"
            )
        parity["encoder"] = export_encoder(enc, out / "encoder.onnx")
        images = torch.rand(8, 1, 3, *enc.image_size, generator=torch.Generator().manual_seed(3)) * 2 - 1
        int16["encoder"] = convert_file(out / "encoder.onnx", [{"image": x.numpy()} for x in images])
        files["encoder"] = _file_ref(out / "encoder.onnx", max_file_bytes, "int16")
        gmacs["encoder"] = round(encoder_gmacs(enc), 4)
        params["encoder"] = count_params(enc)
        encoder_inputs = {"image": "image", "mu": "mu", "logvar": "logvar", "size": list(enc.image_size)}

    import onnxruntime as ort

    provenance = dict(training or {})
    if config is not None:
        provenance["config"] = dict(config)
    manifest = {
        "format_version": 1,
        "name": name,
        "architecture": architecture,
        "label_set": labels.name,
        "image_size": list(image_size),
        "labels": labels.to_json(),
        "background_label": labels.background,
        "inputs": gen_report["inputs"],
        "encoder_inputs": encoder_inputs,
        "files": files,
        "class_generators": [],
        "styles": _styles_json(styles, gen.z_dim),
        "export": {
            "opset": OPSET,
            "parity_max_abs_diff": parity,
            "parity_tolerance": PARITY_TOL,
            "int16_at_rest": int16,
            "gmacs": gmacs,
            "gmacs_at": list(image_size),
            "params": params,
            "spectral_norm_folded": True,
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "code_version": code_version(),
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
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


def load_for_export(
    checkpoint: Mapping[str, Any],
) -> tuple[SPADEGenerator, ConvEncoder | None, dict[str, Any]]:
    """Rebuild (G, E) from a checkpoint that carries its resolved config; prefers the EMA generator."""
    from models.presets import build_encoder, build_generator

    if "config" not in checkpoint:
        raise ValueError("checkpoint has no 'config'; it was not written by `collage train`")
    config = dict(checkpoint["config"])
    if config.get("arch") != "spade":
        raise ValueError(
            f"`collage export` exports the spade architecture, this run is {config.get('arch')!r}"
        )
    label_set = get_label_set(str(checkpoint.get("label_set") or config.get("label_set") or "landscape"))
    generator = build_generator(config, len(label_set))
    g_key = next((k for k in ("G_ema", "G") if k in checkpoint), None)
    if g_key is None:
        raise ValueError("checkpoint has neither 'G_ema' nor 'G'")
    generator.load_state_dict(checkpoint[g_key])
    encoder = None
    if "E" in checkpoint:
        encoder = build_encoder(config)
        encoder.load_state_dict(checkpoint["E"])
    config["label_set"] = label_set.name
    return generator, encoder, {"generator_weights": g_key, **config}


@torch.no_grad()
def encode_family_styles(
    encoder: ConvEncoder, per_family: int, seed: int = 0, size: tuple[int, int] | None = None
) -> list[dict[str, Any]]:
    """One preset latent per procedural style family: the mean μ of `per_family` encoded reference renders.

    Landscape models only: the references are procedural layouts rendered in each family (day, golden hour,
    overcast, dusk, winter, autumn, …), so a preset reproduces that family's colours and mood. They are
    rendered at `size` (`export_run` passes the served image size: --size, default the training size; None
    renders at the encoder's input size) and resized to the encoder's input with `fit_to_encoder`, as the
    training step resizes real images, so E sees what it was trained on.
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
            label, instance = sample_layout(rng, size or enc.image_size)
            rgb = render(label, instance, sample_style(rng, family), seed=int(rng.integers(2**31)))
            images.append(torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1)  # [3,H,W] in [-1,1]
        mu, _ = enc(fit_to_encoder(torch.stack(images), enc.image_size))  # [per_family,z_dim]
        styles.append({"name": family, "family": family, "z": mu.mean(0)})
    return styles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collage export", description=__doc__.split("\n")[0])
    parser.add_argument(
        "run", type=Path, help="training run folder (e.g. runs/00001-spade-fast) or a .pt file"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="model folder to write, e.g. weights/landscape"
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
        "the generator takes any multiple of 2^num_up (its up-sampling stages), so a 128² run may serve 256²",
    )
    args = parser.parse_args(argv)
    try:
        manifest = export_run(
            args.run, args.out, args.checkpoint, args.name or args.out.name, args.style_refs, args.size
        )
    except (FileNotFoundError, KeyError, ValueError, ExportError) as err:
        print(f"collage export: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)  # noqa: T201
        return 2
    print(json.dumps({"out": str(args.out), "files": manifest["files"], **manifest["export"]}, indent=2))  # noqa: T201
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
    run: Path, out: Path, which: str, name: str, style_refs: int, serve_size: int | None = None
) -> dict[str, Any]:
    """Checkpoint of a `collage train` run -> model folder `out`; returns the manifest."""
    ckpt_path = find_checkpoint(run, which)
    checkpoint = read_checkpoint(ckpt_path)
    generator, encoder, config = load_for_export(checkpoint)
    if serve_size is not None:
        multiple = generator.size_multiple  # 2^num_up: the generator up-samples from an (H/multiple)² grid
        if serve_size < multiple or serve_size % multiple:
            raise ExportError(
                f"--size {serve_size}: the generator takes sizes that are positive multiples of {multiple}"
            )
    size = config.get("size", 256) if serve_size is None else serve_size
    image_size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    styles = None
    # Presets are encoded from procedural renders: they fit only a model trained on them, not one trained on
    # photos that merely use the landscape label set.
    procedural = data_kind(str(config.get("data", "procedural"))) == "procedural"
    if encoder is not None and procedural and style_refs > 0:
        styles = encode_family_styles(encoder, style_refs, seed=int(config.get("seed", 0)), size=image_size)
    elif encoder is not None and style_refs > 0:
        note = (
            f"no style presets: they come from procedural renders, this run trained on {config.get('data')}"
        )
        print(note, file=sys.stderr)  # noqa: T201
    hide_locations(config)
    training = {
        "run": shown_path(ckpt_path.parent),
        "checkpoint": ckpt_path.name,
        "step": checkpoint.get("step"),
        "images_seen": checkpoint.get("images_seen"),
        "wall_time_s": checkpoint.get("wall_time"),
        "data": config.get("data"),
        "perceptual": checkpoint.get("perceptual"),
        "precision": config.get("precision", "fp32"),
        "code_version": checkpoint.get("code_version"),
        "torch": checkpoint.get("torch_version"),
    }
    return export_modules(
        generator,
        encoder,
        label_set=config["label_set"],
        out_dir=out,
        name=name,
        architecture="spade",
        image_size=image_size,
        styles=styles,
        training={k: v for k, v in training.items() if v is not None},
        config=config,
    )


if __name__ == "__main__":
    sys.exit(main())
