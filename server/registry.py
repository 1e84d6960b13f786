"""Model registry: every `weights/<name>/model.json` validated, checksummed and opened by the inference runtime.

A model whose manifest is invalid or whose files do not match their sha256 is refused with a clear reason
(kept in `Registry.failures` and shown by /readyz) while the other models are served; so is one with a class
generator that does not fit it (another label set, not a thing class, graphs unlike their manifest entry). A
model OpenVINO cannot run falls back to onnxruntime, said in one log line. A reason names no absolute path (the
model folder is named by its name, any other path by its last part); the server log has the runtime's own words.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from common.collage import DECODER_INPUTS, DECODER_OUTPUT, ENCODER_INPUTS, ENCODER_OUTPUTS, ClassGraphs
from common.manifest import Manifest, ManifestError, read_manifest, verified_files
from common.runtime import (
    Graph,
    RuntimeChoice,
    RuntimeInfo,
    RuntimeUnavailable,
    installed_runtimes,
    open_graph,
    resolve_runtime,
)
from server.errors import BadInput

log = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """Why one model folder cannot be served. The message is public (/readyz shows it) and names no absolute
    path; `detail`, when a runtime's error is behind it, is that error's own text, paths and all, for the log."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class _RuntimeFailed(Exception):
    """The runtime could not open or run a graph (as opposed to a manifest that does not fit its graph); the
    message is public like ModelLoadError's, `detail` the runtime's own text."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


@dataclass
class LoadedModel:
    """One served model: its manifest and its graphs opened by the runtime."""

    manifest: Manifest
    directory: Path
    generator: Graph
    encoder: Graph | None  # when the model has a style encoder
    batchable: bool  # the generator graph has a dynamic batch axis
    class_generators: dict[int, ClassGraphs] = field(
        default_factory=dict
    )  # class id → its CollageGAN generator
    thing_ids: list[int] = field(init=False)
    colors: list[tuple[int, int, int]] = field(init=False)

    def __post_init__(self) -> None:
        self.thing_ids = [lb.id for lb in self.manifest.labels if lb.is_thing]
        self.colors = [lb.color for lb in sorted(self.manifest.labels, key=lambda lb: lb.id)]

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def num_labels(self) -> int:
        return len(self.manifest.labels)

    @property
    def z_dim(self) -> int:
        return self.manifest.inputs.z_dim

    @property
    def noise_channels(self) -> int:
        """Channels of the generator's per-pixel noise input; 0 when it has none."""
        inputs = self.manifest.inputs
        return inputs.noise_channels if inputs.noise else 0

    @property
    def encoder_size(self) -> tuple[int, int]:
        """(H, W) the style encoder takes (the manifest's rule)."""
        return self.manifest.encoder_size

    @property
    def runtime(self) -> RuntimeInfo:
        """What the generator really runs on (the encoder is opened the same way)."""
        return self.generator.info

    @property
    def has_collage(self) -> bool:
        return bool(self.class_generators)

    @property
    def collage_classes(self) -> list[str]:
        """Names of the thing classes with a class generator, by class id."""
        return [self.class_generators[cid].spec.thing for cid in sorted(self.class_generators)]

    def check_size(self, height: int, width: int) -> None:
        """Refuse a label-map size the generator graph cannot take (the manifest's rule, `collage eval`'s too)."""
        problem = self.manifest.size_problem(height, width)
        if problem is not None:
            raise BadInput("bad_size", problem)

    def preset(self, name: str) -> np.ndarray:
        for style in self.manifest.styles:
            if style.name == name:
                return np.asarray(style.z, dtype=np.float32)
        names = ", ".join(s.name for s in self.manifest.styles) or "none"
        raise BadInput("unknown_preset", f"model {self.name} has no preset style {name!r} (presets: {names})")

    def run_generator(
        self, label: np.ndarray, instance: np.ndarray, z: np.ndarray, noise: np.ndarray | None = None
    ) -> np.ndarray:
        """label, instance int64 [B,1,H,W]; z float32 [B,z_dim]; noise float32 [B,noise_channels,H,W] (only for
        a generator with a noise input) → image float32 [B,3,H,W] in [-1,1]."""
        inputs = self.manifest.inputs
        feeds: dict[str, np.ndarray] = {inputs.label: label}
        if inputs.instance:
            feeds[inputs.instance] = instance
        if inputs.z:
            feeds[inputs.z] = z
        if inputs.noise:
            if noise is None:
                raise ValueError(f"model {self.name} takes a noise input and none was given")
            feeds[inputs.noise] = noise
        return self.generator.run([inputs.output], feeds)[0]

    def run_encoder(self, image: np.ndarray) -> np.ndarray:
        """image float32 [B,3,H,W] in [-1,1] at encoder_size → μ float32 [B,z_dim] (the style latent)."""
        if self.encoder is None or self.manifest.encoder_inputs is None:
            raise BadInput("no_encoder", f"model {self.name} has no style encoder; use a seed or a preset")
        names = self.manifest.encoder_inputs
        return self.encoder.run([names.mu], {names.image: image})[0]

    def summary(self, default: bool) -> dict[str, Any]:
        m = self.manifest
        return {
            "name": m.name,
            "architecture": m.architecture,
            "image_size": list(m.image_size),
            "labels_count": self.num_labels,
            "default": default,
        }

    def public(self, default: bool) -> dict[str, Any]:
        """What clients need: palette, sizes, presets, capabilities, runtime. Never file paths."""
        m, inputs = self.manifest, self.manifest.inputs
        return {
            **self.summary(default),
            "label_set": m.label_set,
            "labels": [lb.model_dump() for lb in sorted(m.labels, key=lambda lb: lb.id)],
            "background_label": m.background_label,
            "dynamic_size": inputs.dynamic_size,
            "size_multiple": inputs.size_multiple,
            "min_size": inputs.min_size if inputs.dynamic_size else min(m.image_size),
            "max_size": inputs.max_size if inputs.dynamic_size else max(m.image_size),
            "styles": [s.name for s in m.styles],
            "capabilities": {
                "style_image": self.encoder is not None,
                "collage": self.has_collage,
                "collage_classes": self.collage_classes,  # the thing classes the collage stage redraws
                "z_dim": self.z_dim,
                "noise": self.noise_channels > 0,  # the seed re-rolls the texture, not only the style
            },
            "runtime": self.runtime.runtime,
            "device": self.runtime.device,
            "precision": self.runtime.precision,
            "metrics": m.metrics,
        }


def _open(path: Path, choice: RuntimeChoice) -> Graph:
    try:
        return open_graph(path, choice)
    except RuntimeUnavailable as exc:
        raise ModelLoadError(str(exc)) from None
    except Exception as exc:  # each runtime raises its own exception types
        raise _RuntimeFailed(f"cannot open {path.name}: {_reason(exc, path.parent)}", str(exc)) from None


# An absolute path: POSIX (/a/b, not the // of a URL) or Windows (C:\\a\\b), not the tail of a relative path.
_ABSOLUTE_PATH = re.compile(r"""(?<![\w.~/\\-])(?:/(?!/)|[A-Za-z]:[\\/])[^\s"'`,;()<>\[\]{}]+""")


def public_text(text: str, directory: Path) -> str:
    """`text` without absolute paths: the model folder (as given or resolved) becomes its name, so a file in it
    reads `folder/file`, and any other absolute path becomes its last part (a runtime may name the file an
    external-data reference resolves to, or its own build tree)."""
    for form in sorted({str(directory.resolve()), str(directory.absolute()), str(directory)}, key=len)[::-1]:
        text = text.replace(form, directory.name)
    return _ABSOLUTE_PATH.sub(lambda m: re.split(r"[\\/]", m.group(0).rstrip("\\/"))[-1], text)


def _reason(exc: Exception, directory: Path) -> str:
    """The line of a runtime's message that says what went wrong, without absolute paths.

    OpenVINO wraps the cause in lines naming its own C++ sources ("Exception from src/…", "Check 'false' failed
    at src/…"); the last other line is the specific one ("-- No conversion rule found for operations: …"). A
    one-line message naming a source file (onnxruntime's "… Status Message: /onnxruntime_src/…: the input tensor
    cannot be reshaped …") is kept rather than lost. Messages reach /readyz, which any client may read, so
    `public_text` cuts every absolute path."""
    all_lines = [line.strip(" -") for line in str(exc).splitlines() if line.strip(" -")]
    lines = [
        line
        for line in all_lines
        if not line.startswith(("Exception from ", "Check '")) and "src/" not in line
    ] or all_lines
    return public_text(lines[-1] if lines else type(exc).__name__, directory)


def _check_graphs(model: LoadedModel) -> None:
    """The graphs have the inputs, outputs and sizes model.json names, and the generator runs on a blank map
    at the model's size (on OpenVINO this compiles the default size, so the first frame is not slow)."""
    manifest, inputs, generator = model.manifest, model.manifest.inputs, model.generator
    wanted = [n for n in (inputs.label, inputs.instance, inputs.z, inputs.noise) if n]
    if missing := [n for n in wanted if n not in generator.inputs]:
        raise ModelLoadError(
            f"generator graph lacks inputs {missing} named in model.json (has {list(generator.inputs)})"
        )
    if inputs.output not in generator.outputs:
        raise ModelLoadError(f"generator graph has no output {inputs.output!r}")
    if inputs.z and inputs.z_dim < 1:
        raise ModelLoadError("model.json names a z input but z_dim is 0")
    if inputs.noise:
        if inputs.noise_channels < 1:
            raise ModelLoadError("model.json names a noise input but noise_channels is 0")
        shape = generator.inputs[inputs.noise]  # [B,C,H,W]
        if len(shape) != 4 or shape[1] not in (inputs.noise_channels, None):
            raise ModelLoadError(
                f"generator graph's noise input has shape {list(shape)}, but model.json says "
                f"[B,{inputs.noise_channels},H,W]"
            )
    if model.encoder is not None and manifest.encoder_inputs is not None:
        image_shape = model.encoder.inputs.get(manifest.encoder_inputs.image)
        if image_shape is None:
            raise ModelLoadError(f"encoder graph has no input {manifest.encoder_inputs.image!r}")
        size = model.encoder_size
        graph_size = [d for d in image_shape[2:] if d is not None]
        if len(graph_size) == 2 and tuple(graph_size) != tuple(size):
            raise ModelLoadError(
                f"encoder graph takes {graph_size[1]}×{graph_size[0]} images but model.json says "
                f"{size[1]}×{size[0]}"
            )
    if manifest.labels and sorted(lb.id for lb in manifest.labels) != list(range(model.num_labels)):
        raise ModelLoadError("label ids in model.json must be 0..N-1")
    for style in manifest.styles:
        if len(style.z) != model.z_dim:
            raise ModelLoadError(f"preset {style.name!r} has {len(style.z)} values, z_dim is {model.z_dim}")
    h, w = manifest.image_size
    try:
        out = model.run_generator(
            np.zeros((1, 1, h, w), np.int64),
            np.zeros((1, 1, h, w), np.int64),
            np.zeros((1, model.z_dim), np.float32),
            np.zeros((1, model.noise_channels, h, w), np.float32) if model.noise_channels else None,
        )
        if model.encoder is not None and manifest.encoder_inputs is not None:
            model.run_encoder(np.zeros((1, 3, *model.encoder_size), np.float32))
    except Exception as exc:
        raise _RuntimeFailed(
            f"fails on a blank {w}×{h} map: {_reason(exc, model.directory)}", str(exc)
        ) from None
    if out.shape != (1, 3, h, w):
        raise ModelLoadError(f"generator returns shape {out.shape}, expected (1, 3, {h}, {w})")


def load_model(directory: Path, choice: RuntimeChoice) -> LoadedModel:
    """Validate, checksum and open one model folder with the runtime `choice` names, and warm it up once.

    When OpenVINO cannot open or run the graphs, the model is opened with onnxruntime instead (one log line
    says so); a manifest that does not fit its graphs is refused whatever the runtime."""
    try:
        manifest = read_manifest(directory)
        gen_path, enc_path = verified_files(directory, manifest)
    except ManifestError as exc:
        raise ModelLoadError(str(exc)) from None
    _check_class_specs(manifest)
    try:
        runtime = resolve_runtime(choice.runtime)
    except RuntimeUnavailable as exc:
        raise ModelLoadError(str(exc)) from None
    try:
        return _open_model(manifest, directory, gen_path, enc_path, choice)
    except _RuntimeFailed as exc:
        if runtime == "onnxruntime" or "onnxruntime" not in installed_runtimes():
            raise ModelLoadError(f"{runtime} {exc}", exc.detail) from None
        log.warning("model %s: OpenVINO %s; falling back to onnxruntime", directory.name, exc)
        log.debug("model %s: OpenVINO said: %s", directory.resolve(), exc.detail)
    try:
        return _open_model(
            manifest, directory, gen_path, enc_path, replace(choice, runtime="onnxruntime", precision="auto")
        )
    except _RuntimeFailed as exc:
        raise ModelLoadError(f"onnxruntime {exc} (OpenVINO failed too)", exc.detail) from None


def _open_model(
    manifest: Manifest, directory: Path, gen_path: Path, enc_path: Path | None, choice: RuntimeChoice
) -> LoadedModel:
    generator = _open(gen_path, choice)
    model = LoadedModel(
        manifest=manifest,
        directory=directory,
        generator=generator,
        encoder=_open(enc_path, choice) if enc_path is not None else None,
        batchable=generator.inputs.get(manifest.inputs.label, (1,))[0] is None,
        class_generators={
            cg.class_id: ClassGraphs(
                cg, _open(directory / cg.encoder.path, choice), _open(directory / cg.decoder.path, choice)
            )
            for cg in manifest.class_generators
        },
    )
    _check_graphs(model)
    for graphs in model.class_generators.values():
        _check_class_graphs(graphs, model.directory)
    return model


def _check_class_specs(manifest: Manifest) -> None:
    """Each class generator fits the base model: its label set, a thing class of it (by id and name), once,
    and sizes the feature crop can cut (T = S/2, P a multiple of 4)."""
    labels = {lb.id: lb for lb in manifest.labels}
    seen: set[int] = set()
    for cg in manifest.class_generators:
        where = f"class generator {cg.thing!r}"
        if cg.label_set != manifest.label_set:
            raise ModelLoadError(
                f"{where} was trained on label set {cg.label_set!r}, the model's is {manifest.label_set!r}"
            )
        label = labels.get(cg.class_id)
        if label is None or not label.is_thing or label.name != cg.thing:
            things = ", ".join(f"{lb.name}={lb.id}" for lb in manifest.labels if lb.is_thing) or "none"
            raise ModelLoadError(
                f"{where} names class id {cg.class_id}, which is not the thing class {cg.thing!r} of the "
                f"model's labels (thing classes: {things})"
            )
        if cg.class_id in seen:
            raise ModelLoadError(f"{where}: two class generators for class id {cg.class_id}")
        seen.add(cg.class_id)
        if cg.context_size != 2 * cg.target_size or cg.phi_size % 4:
            raise ModelLoadError(
                f"{where}: context_size {cg.context_size} must be twice target_size {cg.target_size} and "
                f"phi_size {cg.phi_size} a multiple of 4 (the square box is the context's central half)"
            )


def _check_class_graphs(graphs: ClassGraphs, directory: Path) -> None:
    """The class generator's graphs have the fixed names and sizes of its manifest entry and run on one blank
    context (which also warms them: OpenVINO compiles batch size 1 now, not on the first painted tree)."""
    spec, encoder, decoder = graphs.spec, graphs.encoder, graphs.decoder
    where = f"class generator {spec.thing!r}"
    wanted = DECODER_INPUTS + (("noise",) if spec.noise_channels else ())
    for role, graph, inputs, outputs in (
        ("encoder", encoder, ENCODER_INPUTS, ENCODER_OUTPUTS),
        ("decoder", decoder, wanted, (DECODER_OUTPUT,)),
    ):
        missing = [n for n in inputs if n not in graph.inputs] + [
            n for n in outputs if n not in graph.outputs
        ]
        if missing:
            raise ModelLoadError(
                f"{where}: {role} graph lacks {missing} (has inputs {list(graph.inputs)}, outputs {graph.outputs})"
            )
    noise = decoder.inputs.get("noise")
    if noise is not None and (len(noise) != 4 or noise[1] not in (spec.noise_channels, None)):
        raise ModelLoadError(
            f"{where}: decoder graph's noise input has shape {list(noise)}, model.json says "
            f"[B,{spec.noise_channels},T,T]"
        )
    s, t = spec.context_size, spec.target_size
    side = [d for d in encoder.inputs["context"][2:] if d is not None]
    if len(side) == 2 and side != [s, s]:
        raise ModelLoadError(
            f"{where}: encoder graph takes {side[1]}×{side[0]} contexts, model.json says {s}×{s}"
        )
    try:
        blank = np.zeros((1, 1, s, s), np.float32)
        mu, logvar, phi_prime = encoder.run(
            ENCODER_OUTPUTS,
            {
                "context": np.zeros((1, 3, s, s), np.float32),
                "labels": blank.astype(np.int64),
                "mask": blank,
                "valid": blank,
            },
        )
    except Exception as exc:
        raise _RuntimeFailed(
            f"{where}: encoder fails on a blank context: {_reason(exc, directory)}", str(exc)
        ) from None
    p = spec.phi_size
    if mu.shape != (1, spec.z_dim) or logvar.shape != mu.shape or phi_prime.shape[2:] != (p, p):
        raise ModelLoadError(
            f"{where}: encoder returns mu {list(mu.shape)}, phi_prime {list(phi_prime.shape)}; model.json says "
            f"z_dim {spec.z_dim}, phi_size {p}"
        )
    try:
        image = graphs.generate(
            np.zeros((1, 3, s, s), np.float32),
            blank.astype(np.int64),
            blank,
            blank,
            np.zeros((1, spec.z_dim), np.float32),
            np.zeros((1, spec.noise_channels, t, t), np.float32),
        )
    except Exception as exc:
        raise _RuntimeFailed(
            f"{where}: fails on a blank context: {_reason(exc, directory)}", str(exc)
        ) from None
    if image.shape != (1, 3, t, t):
        raise ModelLoadError(f"{where}: decoder returns shape {list(image.shape)}, expected [1, 3, {t}, {t}]")


@dataclass
class Registry:
    """The models being served, the folders refused (with reasons) and the default model's name."""

    models: dict[str, LoadedModel]
    failures: dict[str, str]
    default_name: str | None

    @classmethod
    def load(cls, weights_dir: Path, choice: RuntimeChoice, default: str | None = None) -> Registry:
        models: dict[str, LoadedModel] = {}
        failures: dict[str, str] = {}
        folders = sorted(p.parent for p in weights_dir.glob("*/model.json")) if weights_dir.is_dir() else []
        for folder in folders:
            try:
                model = load_model(folder, choice)
            except ModelLoadError as exc:
                failures[folder.name] = public_text(str(exc), folder)  # already path-free; this makes sure
                said = f"; the runtime said: {exc.detail}" if exc.detail else ""
                log.error("refusing model %s (folder %s): %s%s", folder.name, folder.resolve(), exc, said)
                continue
            if model.name in models:
                failures[folder.name] = f"duplicate model name {model.name!r}"
                log.error("refusing model folder %s: duplicate model name %r", folder.name, model.name)
                continue
            models[model.name] = model
            log.info(
                "loaded model %s (%s) from %s on %s",
                model.name,
                model.manifest.architecture,
                folder.name,
                model.runtime,
            )
        if default and default not in models:
            log.warning("default model %r is not loaded; using the first model instead", default)
            default = None
        return cls(models=models, failures=failures, default_name=default or next(iter(sorted(models)), None))

    def get(self, name: str | None) -> LoadedModel:
        """The named model, or the default one when name is None/empty."""
        key = name or self.default_name
        if key is None:
            raise BadInput("unknown_model", "no model is loaded on this server")
        try:
            return self.models[key]
        except KeyError:
            names = ", ".join(sorted(self.models)) or "none"
            raise BadInput("unknown_model", f"no model named {key!r} (loaded: {names})") from None
