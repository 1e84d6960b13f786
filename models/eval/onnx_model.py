"""An exported model folder run on the inference runtimes the server uses (shared with `collage grids`).

With its CollageGAN class generators, when model.json lists any: `generate(..., collage=True)` composes each
picture after the base generator with `common.collage.compose`, the server's own stage, so what is judged is
what the studio shows with its collage switch on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import import_module
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.collage import MAX_CHUNK, ClassGraphs, compose
from common.manifest import EncoderInputs, Manifest, ManifestError, read_manifest, verified_files
from common.runtime import Graph, RuntimeChoice, open_graph
from models.labels import LabelSet, get_label_set

LATENCY_RUNS = 30
NOISE_SEED = 7_100_000  # first word of the per-call streams of per-pixel noise (`ExportedModel.run_base`)
THREADS = 2  # runtime and torch threads (the serving budget: 2 cores)
# The server's default (OpenVINO where installed, bf16 on CPUs that run it natively), so eval scores and times
# what is served unless asked otherwise.
DEFAULT_CHOICE = RuntimeChoice(threads=THREADS)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [B,3,H,W] in [−1,1] → uint8 [B,H,W,3] with the server's arithmetic (server/codec.py
    `to_uint8_rgb`, which this package may not import), so the judge scores the pixels the studio shows."""
    return ((np.clip(images, -1.0, 1.0) + 1.0) * 127.5 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


@dataclass
class StageCost:
    """Wall time of the composition stage per picture and the instances it composed there: the stage's cost as
    the server's engine measures it (`collage_ms`: `compose` alone, not the base generator nor the uint8 step)."""

    ms: list[float] = field(default_factory=list)
    instances: list[int] = field(default_factory=list)


class ExportedModel:
    """An exported model folder run on the runtime `choice` asks for, read and checksummed as the server does
    (`common.manifest`): a folder the server would refuse is a `ManifestError` naming the folder.

    Its class generators (model.json's `class_generators`) are opened on the same runtime choice, as the
    server's registry opens them (`common.collage.ClassGraphs`), so the stage's cost sits beside the base
    generator's on equal terms.

    Raises `common.runtime.RuntimeUnavailable` for a choice this install or CPU cannot run (bf16 on
    onnxruntime, OpenVINO not installed), after the checksums and before any graph is opened.
    """

    def __init__(self, folder: str | Path, choice: RuntimeChoice = DEFAULT_CHOICE) -> None:
        self.folder = Path(folder)
        try:
            self.manifest: Manifest = read_manifest(self.folder)
            generator, encoder = verified_files(self.folder, self.manifest)
        except ManifestError as e:
            raise ManifestError(f"{self.folder}: {e}") from None
        self.name = self.manifest.name
        self.labels: LabelSet = get_label_set(self.manifest.label_set)
        self.inputs = self.manifest.inputs
        self.z_dim = self.inputs.z_dim
        self.image_size = self.manifest.image_size
        self.generator: Graph = open_graph(generator, choice)
        self._noise_calls = 0  # generator calls that drew per-pixel noise (`run_base`)
        self.encoder: Graph | None = None
        # The graph names' defaults where a manifest names no encoder inputs.
        self.encoder_inputs = self.manifest.encoder_inputs or EncoderInputs()
        self.encoder_size = self.manifest.encoder_size
        if encoder is not None:
            self.encoder = open_graph(encoder, choice)
        self.class_generators: dict[int, ClassGraphs] = {}  # class id → its CollageGAN generator
        for cg in self.manifest.class_generators:
            if cg.label_set != self.manifest.label_set:  # the registry's refusal, in eval's words
                raise ValueError(
                    f"{self.folder}: class generator {cg.thing!r} was trained on label set {cg.label_set!r}, "
                    f"the model's is {self.manifest.label_set!r}"
                )
            # Paths checked (inside the folder, sha256) by verified_files above.
            self.class_generators[cg.class_id] = ClassGraphs(
                cg,
                open_graph(self.folder / cg.encoder.path, choice),
                open_graph(self.folder / cg.decoder.path, choice),
            )

    @property
    def has_collage(self) -> bool:
        return bool(self.class_generators)

    @property
    def collage_classes(self) -> list[str]:
        """Names of the thing classes with a class generator, by class id (as the server lists them)."""
        return [self.class_generators[cid].spec.thing for cid in sorted(self.class_generators)]

    def runtime(self) -> dict[str, str]:
        """What runs the generator (runtime, its version, device, precision), for the report.

        Read after generating: OpenVINO reports the precision it really compiled with only once a shape is
        compiled (it may keep a graph in f32 although bf16 was asked for).
        """
        info = asdict(self.generator.info)
        # The module's own version: the gpu extra's distribution is onnxruntime-gpu, imported as onnxruntime.
        return info | {"version": str(import_module(info["runtime"]).__version__)}

    def check_size(self, size: int) -> None:
        """Refuse, before any work, a size×size the generator cannot take: the server's rule and words
        (`Manifest.size_problem`), with the way out on the command line where the model has one size only."""
        problem = self.manifest.size_problem(size, size)
        if problem is None:
            return
        if not self.inputs.dynamic_size:
            problem += f"; drop --size or pass --size {self.image_size[0]}"
        raise ValueError(problem)

    def generate(
        self,
        labels: np.ndarray,  # [B,H,W] label ids
        instances: np.ndarray,  # [B,H,W] instance ids (0 = stuff)
        z: np.ndarray | None,  # [B,z_dim]
        collage: bool = False,  # compose the class generators' instances after the base (needs has_collage)
        cost: StageCost | None = None,  # where the stage's time per picture is recorded
    ) -> np.ndarray:
        """→ uint8 [B,H,W,3]: the base generator's pictures, composed by the collage stage when asked."""
        base = self.run_base(labels, instances, z)
        return to_uint8(self.compose(base, labels, instances, cost) if collage else base)

    def run_base(self, labels: np.ndarray, instances: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        """labels/instances [B,H,W], z [B,z_dim] → the base generator's float32 [B,3,H,W] in [−1,1].

        Float, not uint8: the collage stage composes onto the generator's own output, as the server's engine
        does, and only the final picture is rounded (so eval can judge one base run without and with it).
        A generator with a noise input gets N(0, 1) noise as the server draws it, from a stream of this model's
        own taken call by call (`_noise_calls`): an evaluation repeated in the same order sees the same noise."""
        feed: dict[str, np.ndarray] = {self.inputs.label: np.asarray(labels, np.int64)[:, None]}
        if self.inputs.instance:
            feed[self.inputs.instance] = np.asarray(instances, np.int64)[:, None]
        if self.inputs.z:
            feed[self.inputs.z] = np.asarray(z, np.float32)
        if self.inputs.noise:
            batch, height, width = np.shape(labels)
            rng = np.random.default_rng([NOISE_SEED, self._noise_calls])
            self._noise_calls += 1
            shape = (batch, self.inputs.noise_channels, height, width)
            feed[self.inputs.noise] = rng.standard_normal(shape, dtype=np.float32)  # [B,C,H,W]
        return np.asarray(self.generator.run([self.inputs.output], feed)[0], np.float32)

    def compose(
        self, base: np.ndarray, labels: np.ndarray, instances: np.ndarray, cost: StageCost | None = None
    ) -> np.ndarray:
        """base float32 [B,3,H,W] → the pictures with every instance of a class with a generator redrawn by
        it (`common.collage.compose`, no anchors: each instance's latent is the encoder's μ), float32
        [B,3,H,W]. Each picture's wall time and instance count go to `cost`."""
        if not self.class_generators:
            raise ValueError(f"{self.name} has no class generators (model.json lists none)")
        out = np.empty_like(base)
        for k, (picture, label, instance) in enumerate(zip(base, labels, instances, strict=True)):
            start = time.perf_counter()
            composed = compose(picture, label, instance, self.class_generators)
            elapsed = time.perf_counter() - start
            out[k] = composed.picture
            if cost is not None:
                cost.ms.append(elapsed * 1000.0)
                cost.instances.append(len(composed.placed))
        return out

    def warm_collage(self) -> None:
        """Run every class generator once at each batch size the stage uses (1, 2, 4, … MAX_CHUNK), so OpenVINO
        compiles them now (batch 1, and the open-batch form the larger sizes share) and no picture's time includes
        a compilation (the server warms batch 1 at load and then pays the other once; an evaluation of a few
        pictures would report mostly compile time)."""
        for graphs in self.class_generators.values():
            spec, b = graphs.spec, 1
            s, t = spec.context_size, spec.target_size
            while b <= MAX_CHUNK:
                blank = np.zeros((b, 1, s, s), np.float32)
                graphs.generate(
                    np.zeros((b, 3, s, s), np.float32),
                    blank.astype(np.int64),
                    blank,
                    blank,
                    np.zeros((b, spec.z_dim), np.float32),
                    np.zeros((b, spec.noise_channels, t, t), np.float32),
                )
                b *= 2

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 [B,H,W,3] → μ [B,z_dim] (resized to the encoder's input size when needed)."""
        if self.encoder is None:
            raise ValueError(f"{self.name} has no encoder")
        x = np.asarray(images, np.float32).transpose(0, 3, 1, 2) / 127.5 - 1  # [B,3,H,W]
        if x.shape[2:] != self.encoder_size:
            t = torch.from_numpy(x)
            x = F.interpolate(
                t, size=self.encoder_size, mode="bilinear", antialias=True, align_corners=False
            ).numpy()
        mu = self.encoder.run([self.encoder_inputs.mu], {self.encoder_inputs.image: x})[0]
        return np.asarray(mu, np.float32)


def latencies_ms(
    models: list[ExportedModel], label: np.ndarray, instance: np.ndarray, runs: int = LATENCY_RUNS
) -> list[float]:
    """Median wall time of one batch-1 frame per model, the models taking turns frame by frame (after 3
    warm-up frames each).

    Measured one after another, the first model paid ~5 ms more on a 2-core machine than the same graph
    measured later; taking turns gives every model the same machine state, so no model pays for going first
    (two generators of one graph still differed by ~4% in one such run: compare ratios, not milliseconds).
    """
    zs = [np.zeros((1, m.z_dim), np.float32) for m in models]
    times: list[list[float]] = [[] for _ in models]
    for i in range(runs + 3):
        for model, z, out in zip(models, zs, times, strict=True):
            start = time.perf_counter()
            model.generate(label[None], instance[None], z)
            if i >= 3:
                out.append(time.perf_counter() - start)
    return [float(np.median(t) * 1000) for t in times]


def seeded_z(seeds: Iterable[int], z_dim: int) -> np.ndarray:
    """The contract's seeded style: default_rng(seed).standard_normal(z_dim) per seed → [B,z_dim]."""
    return np.stack([np.random.default_rng(s).standard_normal(z_dim, dtype=np.float32) for s in seeds])
