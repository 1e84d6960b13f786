"""An exported model folder run on the inference runtimes the server uses (shared with `collage grids`)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict
from importlib import import_module
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.manifest import EncoderInputs, Manifest, ManifestError, read_manifest, verified_files
from common.runtime import Graph, RuntimeChoice, open_graph
from models.labels import LabelSet, get_label_set

LATENCY_RUNS = 30
THREADS = 2  # runtime and torch threads (the serving budget: 2 cores)
# The server's default (OpenVINO where installed, bf16 on CPUs that run it natively), so eval scores and times
# what is served unless asked otherwise.
DEFAULT_CHOICE = RuntimeChoice(threads=THREADS)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [B,3,H,W] in [−1,1] → uint8 [B,H,W,3] with the server's arithmetic (server/codec.py
    `to_uint8_rgb`, which this package may not import), so the judge scores the pixels the studio shows."""
    return ((np.clip(images, -1.0, 1.0) + 1.0) * 127.5 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


class ExportedModel:
    """An exported model folder run on the runtime `choice` asks for, read and checksummed as the server does
    (`common.manifest`): a folder the server would refuse is a `ManifestError` naming the folder.

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
        self.encoder: Graph | None = None
        # The graph names' defaults where a manifest names no encoder inputs.
        self.encoder_inputs = self.manifest.encoder_inputs or EncoderInputs()
        self.encoder_size = self.manifest.encoder_size
        if encoder is not None:
            self.encoder = open_graph(encoder, choice)

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

    def generate(self, labels: np.ndarray, instances: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        """labels/instances [B,H,W], z [B,z_dim] → uint8 [B,H,W,3]."""
        feed = {self.inputs.label: np.asarray(labels, np.int64)[:, None]}
        if self.inputs.instance:
            feed[self.inputs.instance] = np.asarray(instances, np.int64)[:, None]
        if self.inputs.z:
            feed[self.inputs.z] = np.asarray(z, np.float32)
        return to_uint8(self.generator.run([self.inputs.output], feed)[0])

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
