"""`collage eval`: score an exported model folder the papers' way, with a judge trained here.

    collage eval weights/NAME --segmenter /work/runs/NNNNN-segmenter-…/checkpoint-latest.pt \\
        [--n 500] [--size 256] [--seed 0] [--out eval.json] [--compare weights/NAME-10pct …]

SPADE and DP-GAN score label alignment with a pretrained segmenter and realism with FID. Neither DeepLab nor
Inception weights can be had here, so the judge is our own segmentation net (`models/nets/segmenter.py`,
trained with `collage train --arch segmenter` under strong colour augmentation so it must read texture and
shape). Everything runs the exported ONNX graphs with onnxruntime, exactly what the server serves.

Data (all procedural, `models.data.datasets.render_sample(seed, index, size)`; style families cycle with the
index). Training reads dataset seed 0 (`collage train --data procedural`) and its val split seed 1_000_003;
different seeds give independent streams, so every set below is disjoint from training:
- eval layouts: seed EVAL_SEED + 16·S (S = `--seed`), samples 0..n-1, each with its reference render;
- held-out renders (the other side of every Fréchet distance): seed EVAL_SEED + 16·S + 1;
- style centroids: seed … + 2 (CENTROID_LAYOUTS layouts, each rendered in every family);
- style references: seed … + 3 (STYLE_REFS_PER_FAMILY per family);
- flat-colour class means: training renders (seed 0, samples 0..MEAN_SAMPLES-1).

Latent z. Primary: "encoded" — z = μ of encoder.onnx on the reference render of the same layout. That pairs
each generated image with a render in the same style, so per-class texture can be compared like for like, and
it is the path a user takes when uploading a reference. Also reported: "random" — z =
default_rng(i).standard_normal(z_dim) for layout i (the contract's seeded style), the "random style" button;
it shows how good the prior is. Models without an encoder get only "random".

Metrics (each beside its ceiling / floor / flat-colour baseline, where "flat" fills each class with its mean
training colour):
- segmentation: judge mIoU and pixel accuracy against the input label map, for generated images, the reference
  renders (ceiling) and flat;
- FD-seg: Fréchet distance between the judge's pooled features of a set and of the held-out renders; the
  reference renders give the floor (renders vs renders), flat the baseline; per-class crop FD-seg for the thing
  classes (square crops around instance boxes, resized to CROP_SIZE);
- texture: per class, variance of the Laplacian of luminance inside the class (borders excluded),
  generated / reference; the fraction of classes within TEXTURE_RANGE;
- style fidelity: encode a reference render of each family, generate on eval layouts, and check whether the
  output's colour statistics lie nearest the reference family's centroid (accuracy over families); the same
  classifier on renders of those layouts in the reference's style is its ceiling;
- latency: onnxruntime set up as the server runs it (2 threads, no spinning), batch 1, median over
  LATENCY_RUNS frames at `--size`.
The numbers go to eval.json (default: inside the model folder) and into model.json's `metrics`; a table is
printed. `--compare DIR` scores further model folders (e.g. the same model exported at 10% of its training) on
the identical data and reports them beside the main one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from models.export import ort_session, sha256_file
from models.labels import LANDSCAPE, LabelSet, get_label_set

EVAL_SEED = 7_000_000  # base dataset seed of every evaluation set (see the module docstring)
TRAIN_SEED = 0  # dataset seed `collage train --data procedural` reads; source of the flat-colour means
MEAN_SAMPLES = 64  # training renders averaged for the flat-colour baseline
CENTROID_LAYOUTS = 24  # layouts rendered in every family to place the style centroids
STYLE_REFS_PER_FAMILY = 8  # reference renders (and generations) per style family
THING_CLASSES = ("tree", "rock", "house")  # crop FD-seg classes (the CollageGAN class generators)
CROP_SIZE = 64  # crops are resized to CROP_SIZE² before the judge sees them
CROP_SCALE = 1.25  # crop side = CROP_SCALE × the longer side of the instance box
MIN_CROP_SIDE = 8  # instances whose box is smaller than this (at eval size) are skipped
MAX_CROPS = 1000  # per class and image set
TEXTURE_RANGE = (0.6, 1.4)  # accepted generated/reference high-frequency energy ratio
TEXTURE_MIN_PIXELS = 2000  # interior pixels a class needs (over the whole set) for a texture ratio
LATENCY_RUNS = 30
CLASS_NAMES = tuple(label.name for label in LANDSCAPE.labels)
THREADS = 2  # onnxruntime and torch threads (the serving budget: 2 cores)

# ----------------------------------------------------------------------------
# Metric functions (numpy, model-free; unit-tested on synthetic data).


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [N,N] with rows = target class, columns = predicted class."""
    target = np.asarray(target, dtype=np.int64).ravel()
    pred = np.asarray(pred, dtype=np.int64).ravel()
    if target.shape != pred.shape:
        raise ValueError(f"prediction has {pred.size} pixels, target {target.size}")
    if target.size and (target.max() >= num_classes or pred.max() >= num_classes):
        raise ValueError(f"ids must be < {num_classes}")
    return np.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def segmentation_scores(conf: np.ndarray) -> dict[str, Any]:
    """mIoU (mean over classes present in target or prediction), pixel accuracy and per-class IoU (None = absent)."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    iou = np.divide(tp, union, out=np.full_like(tp, np.nan), where=union > 0)
    total = conf.sum()
    return {
        "miou": float(np.nanmean(iou)) if (union > 0).any() else float("nan"),
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "iou": [None if np.isnan(v) else float(v) for v in iou],
    }


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [n,D] and b [m,D] (the FID formula).

    ‖μa−μb‖² + tr(Ca) + tr(Cb) − 2·tr((Ca^½ Cb Ca^½)^½): the last matrix is symmetric positive semi-definite, so
    its square root comes from `eigvalsh` without the complex round-off of a general `sqrtm(Ca Cb)`.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be [n,D] with the same D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = sqrt_a @ cov_b @ sqrt_a
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(max(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt, 0.0))


def luminance(images: np.ndarray) -> np.ndarray:
    """uint8 [...,H,W,3] → float [...,H,W] in [0,1] (Rec. 601 weights)."""
    return np.asarray(images, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0


class TextureMeter:
    """Per-class variance of the Laplacian of luminance, pooled over all pixels of a set of images.

    Only interior pixels count: a pixel whose 5×5 neighbourhood holds one class. Class borders are edges by
    construction and would otherwise dominate the high-frequency energy of small classes.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.sum = np.zeros(num_classes)
        self.sum_sq = np.zeros(num_classes)
        self.count = np.zeros(num_classes, np.int64)

    def add(self, images: np.ndarray, labels: np.ndarray) -> None:
        """images uint8 [B,H,W,3], labels [B,H,W] ids."""
        for image, label in zip(images, labels, strict=True):
            lap = ndimage.laplace(luminance(image), mode="reflect")  # [H,W]
            interior = ndimage.minimum_filter(label, 5) == ndimage.maximum_filter(label, 5)
            ids = label[interior].astype(np.int64)
            values = lap[interior].astype(np.float64)
            self.sum += np.bincount(ids, values, self.num_classes)
            self.sum_sq += np.bincount(ids, values**2, self.num_classes)
            self.count += np.bincount(ids, minlength=self.num_classes)

    def variance(self, min_pixels: int = 1) -> np.ndarray:
        """[N] variance per class; NaN for classes with fewer than `min_pixels` interior pixels."""
        n = np.maximum(self.count, 1)
        var = self.sum_sq / n - (self.sum / n) ** 2
        return np.where(self.count >= min_pixels, var, np.nan)


def texture_ratios(generated: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-class high-frequency energy ratio generated / reference (NaN where either is undefined or zero)."""
    ok = np.isfinite(generated) & np.isfinite(reference) & (reference > 0)
    return np.divide(generated, reference, out=np.full(len(reference), np.nan), where=ok)


def fraction_in_range(ratios: np.ndarray, bounds: tuple[float, float] = TEXTURE_RANGE) -> float:
    """Share of the defined ratios inside [lo, hi]."""
    defined = ratios[np.isfinite(ratios)]
    if not defined.size:
        return float("nan")
    return float(((defined >= bounds[0]) & (defined <= bounds[1])).mean())


def rgb_to_lab(images: np.ndarray) -> np.ndarray:
    """sRGB uint8 [...,3] → CIE Lab [...,3] (D65): L in [0,100], a/b roughly in [−128,127]."""
    rgb = np.asarray(images, np.float64) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = linear @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def colour_stats(image: np.ndarray) -> np.ndarray:
    """uint8 [H,W,3] → [12]: Lab mean and std of the top and bottom halves (sky/light vs ground)."""
    lab = rgb_to_lab(image)
    half = lab.shape[0] // 2
    parts = [lab[:half], lab[half:]]
    return np.concatenate([np.concatenate([p.mean((0, 1)), p.std((0, 1))]) for p in parts])


def nearest_centroid(stats: np.ndarray, centroids: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid [M] for stats [M,D], distances measured in units of `scale` [D]."""
    diff = (stats[:, None, :] - centroids[None, :, :]) / np.maximum(scale, 1e-8)  # [M,F,D]
    return np.argmin((diff**2).sum(-1), axis=1)


def instance_boxes(
    instance: np.ndarray, label: np.ndarray, class_ids: Iterable[int]
) -> list[tuple[int, slice, slice]]:
    """(class id, rows, cols) bounding boxes of the instances whose class is in `class_ids`."""
    wanted = set(class_ids)
    out = []
    for index, box in enumerate(ndimage.find_objects(np.asarray(instance, np.int64)), start=1):
        if box is None:
            continue
        cls = int(np.bincount(label[box][instance[box] == index]).argmax())
        if cls in wanted:
            out.append((cls, box[0], box[1]))
    return out


def square_crop(image: np.ndarray, rows: slice, cols: slice, scale: float, out: int) -> np.ndarray:
    """A square crop of side scale·max(box side) centred on the box (edge-padded), resized to out² (uint8)."""
    h, w = image.shape[:2]
    side = max(2, round(scale * max(rows.stop - rows.start, cols.stop - cols.start)))
    cy, cx = (rows.start + rows.stop) / 2, (cols.start + cols.stop) / 2
    top, left = round(cy - side / 2), round(cx - side / 2)
    ys = np.clip(np.arange(top, top + side), 0, h - 1)
    xs = np.clip(np.arange(left, left + side), 0, w - 1)
    crop = image[ys[:, None], xs[None, :]]
    return np.asarray(Image.fromarray(crop).resize((out, out), Image.Resampling.BILINEAR))


def flat_images(labels: np.ndarray, class_means: np.ndarray) -> np.ndarray:
    """The flat-colour baseline: every pixel painted with its class's mean training colour, uint8 [B,H,W,3]."""
    return class_means[np.asarray(labels, np.int64)]


# ----------------------------------------------------------------------------
# The judge and the exported model.


class Judge:
    """The trained segmenter at its training resolution; images are resized to it and logits back."""

    def __init__(self, checkpoint: str | Path, batch: int = 16) -> None:
        from models.archs.segmenter import load_segmenter

        self.net, self.size, self.info = load_segmenter(checkpoint)
        self.net.eval()
        self.batch = batch

    def _tensor(self, images: np.ndarray) -> torch.Tensor:
        x = (
            torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
        )  # [B,3,H,W]
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )
        return x

    @torch.no_grad()
    def segment(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [B,H,W,3] → (predicted ids [B,H,W] uint8 at the images' size, pooled features [B,D])."""
        preds, feats = [], []
        for start in range(0, len(images), self.batch):
            chunk = images[start : start + self.batch]
            logits, features = self.net.logits_and_features(self._tensor(chunk))
            logits = F.interpolate(logits, size=chunk.shape[1:3], mode="bilinear", align_corners=False)
            preds.append(logits.argmax(1).to(torch.uint8).numpy())
            feats.append(features.numpy())
        return np.concatenate(preds), np.concatenate(feats)

    @torch.no_grad()
    def features(self, images: np.ndarray) -> np.ndarray:
        """uint8 [B,h,w,3] (any size, e.g. crops; not resized) → pooled features [B,D]."""
        out = []
        for start in range(0, len(images), self.batch):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + self.batch]))
            out.append(self.net.features(x.permute(0, 3, 1, 2).float() / 127.5 - 1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.net.feature_dim), np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [B,3,H,W] in [−1,1] → uint8 [B,H,W,3], rounded as the server encodes frames."""
    return np.clip(np.rint((images + 1) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


class ExportedModel:
    """An exported model folder run with onnxruntime, checksums verified like the server does."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        path = self.folder / "model.json"
        if not path.is_file():
            raise FileNotFoundError(f"{self.folder} is not a model folder: no model.json")
        self.manifest: dict[str, Any] = json.loads(path.read_text())
        files = self.manifest["files"]
        for role, ref in files.items():
            if ref is None:
                continue
            file = self.folder / ref["path"]
            if not file.is_file():
                raise FileNotFoundError(f"{file} ({role}) named by {path} does not exist")
            if sha256_file(file) != ref["sha256"]:
                raise ValueError(f"{file} does not match the sha256 in {path}; re-export the model")
        self.name = str(self.manifest["name"])
        self.labels: LabelSet = get_label_set(self.manifest["label_set"])
        self.inputs: dict[str, Any] = self.manifest["inputs"]
        self.z_dim = int(self.inputs.get("z_dim") or 0)
        self.image_size = tuple(int(v) for v in self.manifest["image_size"])
        self.generator = ort_session(self.folder / files["generator"]["path"], THREADS)
        self.encoder = None
        if files.get("encoder"):
            self.encoder = ort_session(self.folder / files["encoder"]["path"], THREADS)
            self.encoder_inputs = self.manifest.get("encoder_inputs") or {"image": "image", "mu": "mu"}
            # The encoder's own input size (absent in manifests written before it had one: image_size).
            self.encoder_size = tuple(int(v) for v in self.encoder_inputs.get("size") or self.image_size)

    def check_size(self, size: int) -> None:
        if self.inputs.get("dynamic_size"):
            multiple, lo, hi = self.inputs["size_multiple"], self.inputs["min_size"], self.inputs["max_size"]
            if size % multiple or not lo <= size <= hi:
                raise ValueError(f"{self.name}: size {size} must be a multiple of {multiple} in [{lo}, {hi}]")
        elif (size, size) != self.image_size:
            raise ValueError(
                f"{self.name} runs only at {self.image_size}; drop --size or pass --size {self.image_size[0]}"
            )

    def generate(self, labels: np.ndarray, instances: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        """labels/instances [B,H,W], z [B,z_dim] → uint8 [B,H,W,3]."""
        feed = {self.inputs["label"]: np.asarray(labels, np.int64)[:, None]}
        if self.inputs.get("instance"):
            feed[self.inputs["instance"]] = np.asarray(instances, np.int64)[:, None]
        if self.inputs.get("z"):
            feed[self.inputs["z"]] = np.asarray(z, np.float32)
        return to_uint8(self.generator.run([self.inputs.get("output", "image")], feed)[0])

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
        mu = self.encoder.run([self.encoder_inputs["mu"]], {self.encoder_inputs["image"]: x})[0]
        return np.asarray(mu, np.float32)

    def latency_ms(self, label: np.ndarray, instance: np.ndarray, runs: int = LATENCY_RUNS) -> float:
        """Median wall time of one batch-1 frame (after 3 warm-up frames)."""
        z = np.zeros((1, self.z_dim), np.float32)
        times = []
        for i in range(runs + 3):
            start = time.perf_counter()
            self.generate(label[None], instance[None], z)
            if i >= 3:
                times.append(time.perf_counter() - start)
        return float(np.median(times) * 1000)


def seeded_z(seeds: Iterable[int], z_dim: int) -> np.ndarray:
    """The contract's seeded style: default_rng(seed).standard_normal(z_dim) per seed → [B,z_dim]."""
    return np.stack([np.random.default_rng(s).standard_normal(z_dim, dtype=np.float32) for s in seeds])


# ----------------------------------------------------------------------------
# Accumulating scores over a set of images.


@dataclass
class SetMeter:
    """Everything measured on one set of images (generated, reference, flat or held-out renders)."""

    num_classes: int
    thing_ids: tuple[int, ...]
    conf: np.ndarray = field(init=False)
    texture: TextureMeter = field(init=False)
    features: list[np.ndarray] = field(default_factory=list)
    crops: dict[int, list[np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.conf = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.texture = TextureMeter(self.num_classes)
        self.crops = {c: [] for c in self.thing_ids}

    def add(self, judge: Judge, images: np.ndarray, labels: np.ndarray, instances: np.ndarray) -> None:
        pred, feats = judge.segment(images)
        self.conf += confusion_matrix(pred, labels, self.num_classes)
        self.features.append(feats)
        self.texture.add(images, labels)
        crops: list[np.ndarray] = []
        classes: list[int] = []
        for image, label, instance in zip(images, labels, instances, strict=True):
            for cls, rows, cols in instance_boxes(instance, label, self.thing_ids):
                if max(rows.stop - rows.start, cols.stop - cols.start) < MIN_CROP_SIDE:
                    continue
                if sum(len(f) for f in self.crops[cls]) + classes.count(cls) >= MAX_CROPS:
                    continue
                crops.append(square_crop(image, rows, cols, CROP_SCALE, CROP_SIZE))
                classes.append(cls)
        if crops:
            crop_feats = judge.features(np.stack(crops))  # [K,D]
            for cls in set(classes):
                self.crops[cls].append(crop_feats[np.array(classes) == cls])

    def all_features(self) -> np.ndarray:
        return np.concatenate(self.features)

    def crop_features(self, cls: int) -> np.ndarray:
        return np.concatenate(self.crops[cls]) if self.crops[cls] else np.zeros((0, 1), np.float32)


def _fd_or_none(a: np.ndarray, b: np.ndarray) -> float | None:
    return frechet_distance(a, b) if len(a) >= 2 and len(b) >= 2 else None


# ----------------------------------------------------------------------------
# The reference side: data and scores that do not depend on the evaluated model.


@dataclass
class StyleData:
    families: tuple[str, ...]
    centroids: np.ndarray  # [F,D] colour-statistics centroid per family
    scale: np.ndarray  # [D] spread of the statistics (distance units)
    refs: np.ndarray  # [F·R,H,W,3] uint8 reference renders
    ref_family: np.ndarray  # [F·R] family index of each reference
    targets: np.ndarray  # [F·R] eval layout each reference is applied to
    ceiling: float  # accuracy of the colour classifier on renders in the reference style


@dataclass
class EvalData:
    size: int
    n: int
    labels: np.ndarray  # [n,H,W] uint8
    instances: np.ndarray  # [n,H,W] int32
    renders: np.ndarray  # [n,H,W,3] uint8, the reference renders
    class_means: np.ndarray  # [N,3] uint8
    heldout: SetMeter  # held-out renders (features, crops)
    reference: SetMeter  # reference renders of the eval layouts (ceiling / floor)
    flat: SetMeter  # flat-colour baseline of the eval layouts
    style: StyleData | None  # None when no model is evaluated


@dataclass(frozen=True)
class EvalOptions:
    n: int = 500  # eval layouts (and held-out renders)
    size: int = 256  # evaluation resolution (square)
    seed: int = 0  # shifts every evaluation dataset seed by 16·seed
    batch: int = 8  # images per onnxruntime / judge call
    workers: int = 2  # processes rendering the procedural sets
    cache_dir: Path | None = None  # shard cache for the eval / held-out renders (None: a temporary folder)
    mean_samples: int = MEAN_SAMPLES
    centroid_layouts: int = CENTROID_LAYOUTS
    style_refs: int = STYLE_REFS_PER_FAMILY


def eval_seeds(seed: int) -> dict[str, int]:
    """Dataset seeds of every set; `train` is the trainer's default data_seed (flat-colour means)."""
    base = EVAL_SEED + 16 * seed
    return {
        "eval": base,
        "heldout": base + 1,
        "centroids": base + 2,
        "style_refs": base + 3,
        "train": TRAIN_SEED,
    }


def _pool_map(fn: Callable[..., Any], jobs: Sequence[Any], workers: int, desc: str) -> list[Any]:
    """[fn(*job) for job in jobs] in `workers` processes (in order), with a progress bar."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with tqdm(total=len(jobs), desc=desc, unit="render", leave=False) as bar:
        if workers <= 1:
            out = []
            for job in jobs:
                out.append(fn(*job))
                bar.update(1)
            return out
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(fn, *job) for job in jobs]
            for _ in as_completed(futures):
                bar.update(1)
            return [future.result() for future in futures]


def _class_sums(seed: int, index: int, size: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class colour sums [N,3] and pixel counts [N] of one training render."""
    from models.data.datasets import render_sample

    label, _, image, _ = render_sample(seed, index, size)
    ids = label.ravel().astype(np.int64)
    sums = np.stack(
        [np.bincount(ids, image[..., c].ravel().astype(np.float64), num_classes) for c in range(3)], 1
    )
    return sums, np.bincount(ids, minlength=num_classes)


def class_mean_colours(
    size: int, samples: int, workers: int = 1, num_classes: int = len(LANDSCAPE)
) -> np.ndarray:
    """Mean render colour of each class over training renders → uint8 [N,3] (display colour if never seen)."""
    jobs = [(TRAIN_SEED, i, size, num_classes) for i in range(samples)]
    parts = _pool_map(_class_sums, jobs, workers, "flat-colour means")
    sums = sum(p[0] for p in parts)
    counts = sum(p[1] for p in parts)
    fallback = np.array(LANDSCAPE.palette(), np.float64)[:num_classes]
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], fallback)
    return np.rint(means).astype(np.uint8)


def _centroid_stats(seed: int, k: int, size: int) -> np.ndarray:
    """Colour statistics [F,12] of one layout rendered in every family (so centroids differ by style alone)."""
    from models.data import FAMILIES, render, sample_layout, sample_style

    rng = np.random.default_rng([seed, k])
    label, instance = sample_layout(rng, size)
    rows = []
    for family in FAMILIES:
        style = sample_style(rng, family)
        rows.append(colour_stats(render(label, instance, style, int(rng.integers(2**31)))))
    return np.stack(rows)


def _style_reference(
    seed: int, f: int, r: int, size: int, target_label: np.ndarray, target_instance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(reference render of family f, colour statistics of the target layout rendered in the same style)."""
    from models.data import FAMILIES, render, sample_layout, sample_style

    rng = np.random.default_rng([seed, f, r])
    label, instance = sample_layout(rng, size)
    style = sample_style(rng, FAMILIES[f])
    reference = render(label, instance, style, int(rng.integers(2**31)))
    in_style = render(target_label, target_instance, style, int(rng.integers(2**31)))
    return reference, colour_stats(in_style)


def load_renders(seed: int, n: int, size: int, cache_dir: Path, workers: int) -> tuple[np.ndarray, ...]:
    """Samples 0..n-1 of procedural dataset `seed` through the shard cache: (labels, instances, images, families)."""
    from models.data.datasets import ProceduralLandscapes

    data = ProceduralLandscapes(size, n, seed, cache_dir=cache_dir, workers=workers)
    labels = np.empty((n, size, size), np.uint8)
    instances = np.empty((n, size, size), np.int32)
    images = np.empty((n, size, size, 3), np.uint8)
    families = np.empty(n, np.int64)
    for i in range(n):
        sample = data[i]
        labels[i], instances[i] = sample["label"].numpy(), sample["instance"].numpy()
        images[i] = to_uint8(sample["image"][None].numpy())[0]
        families[i] = sample["style"]
    return labels, instances, images, families


def prepare(judge: Judge, opts: EvalOptions, with_style: bool = True) -> EvalData:
    """Render every model-independent set once and score the renders and the flat baseline."""
    import tempfile

    n, size, batch = opts.n, opts.size, opts.batch
    if n < 2:
        raise ValueError(f"--n must be at least 2 (Fréchet distances need two samples), got {n}")
    seeds = eval_seeds(opts.seed)
    num_classes = len(LANDSCAPE)
    things = tuple(LANDSCAPE[name].id for name in THING_CLASSES)
    class_means = class_mean_colours(size, opts.mean_samples, opts.workers)

    with tempfile.TemporaryDirectory(prefix="collage-eval-") as tmp:
        cache = opts.cache_dir or Path(tmp)
        labels, instances, renders, _ = load_renders(seeds["eval"], n, size, cache, opts.workers)
        held_labels, held_instances, held_renders, _ = load_renders(
            seeds["heldout"], n, size, cache, opts.workers
        )
    reference, flat, heldout = (SetMeter(num_classes, things) for _ in range(3))
    for start in tqdm(range(0, n, batch), desc="judging renders + flat baseline", unit="batch"):
        window = slice(start, min(n, start + batch))
        ids, inst = labels[window], instances[window]
        reference.add(judge, renders[window], ids, inst)
        flat.add(judge, flat_images(ids, class_means), ids, inst)
        heldout.add(judge, held_renders[window], held_labels[window], held_instances[window])

    style = prepare_style(opts, labels, instances) if with_style else None
    return EvalData(
        size=size, n=n, labels=labels, instances=instances, renders=renders, class_means=class_means,
        heldout=heldout, reference=reference, flat=flat, style=style,
    )  # fmt: skip


def prepare_style(opts: EvalOptions, labels: np.ndarray, instances: np.ndarray) -> StyleData:
    """Family centroids of the colour statistics, and reference renders of every family."""
    from models.data import FAMILIES

    seeds, size, n = eval_seeds(opts.seed), opts.size, len(labels)
    names = tuple(FAMILIES)
    jobs = [(seeds["centroids"], k, size) for k in range(opts.centroid_layouts)]
    stats = np.stack(_pool_map(_centroid_stats, jobs, opts.workers, "style centroids"))  # [K,F,12]
    centroids = stats.mean(0)  # [F,12]
    scale = stats.reshape(-1, stats.shape[-1]).std(0)  # [12]

    pairs = [(f, r) for f in range(len(names)) for r in range(opts.style_refs)]
    targets = [(f * opts.style_refs + r) % n for f, r in pairs]  # eval layout each reference is applied to
    ref_family = np.array([f for f, _ in pairs])
    ref_jobs = [
        (seeds["style_refs"], f, r, size, labels[t], instances[t])
        for (f, r), t in zip(pairs, targets, strict=True)
    ]
    made = _pool_map(_style_reference, ref_jobs, opts.workers, "style references")
    ceiling_pred = nearest_centroid(np.stack([m[1] for m in made]), centroids, scale)
    return StyleData(
        families=names, centroids=centroids, scale=scale, refs=np.stack([m[0] for m in made]),
        ref_family=ref_family, targets=np.array(targets), ceiling=float((ceiling_pred == ref_family).mean()),
    )  # fmt: skip


# ----------------------------------------------------------------------------
# Scoring one model.


def _set_summary(meter: SetMeter, data: EvalData, names: Sequence[str]) -> dict[str, Any]:
    seg = segmentation_scores(meter.conf)
    crop_fd = {}
    for cls_name in THING_CLASSES:
        cls = LANDSCAPE[cls_name].id
        crop_fd[cls_name] = _fd_or_none(meter.crop_features(cls), data.heldout.crop_features(cls))
    return {
        "miou": seg["miou"],
        "pixel_accuracy": seg["pixel_accuracy"],
        "iou": dict(zip(names, seg["iou"], strict=True)),
        "fd_seg": frechet_distance(meter.all_features(), data.heldout.all_features()),
        "crop_fd_seg": crop_fd,
    }


def _texture_summary(meter: SetMeter, data: EvalData, names: Sequence[str]) -> dict[str, Any]:
    ratios = texture_ratios(
        meter.texture.variance(TEXTURE_MIN_PIXELS), data.reference.texture.variance(TEXTURE_MIN_PIXELS)
    )
    return {
        "ratio": {
            name: None if np.isnan(r) else round(float(r), 4) for name, r in zip(names, ratios, strict=True)
        },
        "fraction_in_range": fraction_in_range(ratios),
        "range": list(TEXTURE_RANGE),
    }


def evaluate_model(model: ExportedModel, judge: Judge, data: EvalData, batch: int) -> dict[str, Any]:
    """All model-dependent numbers for one exported folder."""
    model.check_size(data.size)
    if model.labels.name != LANDSCAPE.name:
        raise ValueError(
            f"{model.name} paints label set {model.labels.name!r}; the evaluator judges landscapes"
        )
    names = CLASS_NAMES
    num_classes, things = len(LANDSCAPE), tuple(LANDSCAPE[c].id for c in THING_CLASSES)
    modes = (["encoded"] if model.encoder is not None else []) + ["random"]
    meters = {mode: SetMeter(num_classes, things) for mode in modes}
    for start in tqdm(range(0, data.n, batch), desc=f"{model.name}: generate + judge", unit="batch"):
        stop = min(data.n, start + batch)
        ids, inst = data.labels[start:stop], data.instances[start:stop]
        for mode in modes:
            z = (
                model.encode(data.renders[start:stop])
                if mode == "encoded"
                else seeded_z(range(start, stop), model.z_dim)
            )
            meters[mode].add(judge, model.generate(ids, inst, z), ids, inst)
    result: dict[str, Any] = {"name": model.name, "folder": str(model.folder), "z_modes": modes}
    for mode in modes:
        result[mode] = _set_summary(meters[mode], data, names) | {
            "texture": _texture_summary(meters[mode], data, names)
        }

    result["style"] = None
    style = data.style
    if model.encoder is not None and style is not None:
        mu = np.concatenate(
            [model.encode(style.refs[s : s + batch]) for s in range(0, len(style.refs), batch)]
        )
        stats = []
        for s in tqdm(range(0, len(mu), batch), desc=f"{model.name}: style fidelity", unit="batch"):
            t = style.targets[s : s + batch]
            for image in model.generate(data.labels[t], data.instances[t], mu[s : s + batch]):
                stats.append(colour_stats(image))
        correct = nearest_centroid(np.stack(stats), style.centroids, style.scale) == style.ref_family
        result["style"] = {
            "accuracy": float(correct.mean()),
            "per_family": {
                name: float(correct[style.ref_family == f].mean()) for f, name in enumerate(style.families)
            },
            "families": len(style.families),
            "references_per_family": len(style.refs) // len(style.families),
            "render_ceiling": style.ceiling,
        }
    result["latency_ms"] = model.latency_ms(data.labels[0], data.instances[0])
    return result


def reference_summary(data: EvalData) -> dict[str, Any]:
    names = CLASS_NAMES
    flat_texture = _texture_summary(data.flat, data, names)
    return {
        "reference": _set_summary(data.reference, data, names),
        "flat": _set_summary(data.flat, data, names) | {"texture": flat_texture},
    }


def acceptance(primary: dict[str, Any] | None, refs: dict[str, Any]) -> dict[str, bool]:
    """The issue's acceptance checks (only the judge's two without a model)."""
    ref, flat = refs["reference"], refs["flat"]
    checks = {
        "judge_reference_miou>=0.75": ref["miou"] >= 0.75,
        "flat_miou<=0.8*reference": flat["miou"] <= 0.8 * ref["miou"],
    }
    if primary is None:
        return checks
    gen = primary[primary["z_modes"][0]]
    checks |= {
        "generated_miou>=0.9*reference": gen["miou"] >= 0.9 * ref["miou"],
        "fd_seg<=0.5*flat": gen["fd_seg"] <= 0.5 * flat["fd_seg"],
        "texture_in_range>=0.7": gen["texture"]["fraction_in_range"] >= 0.7,
        "latency<=40ms": primary["latency_ms"] <= 40.0,
    }
    style = primary.get("style")
    checks["style_accuracy>=0.8_with>=6_families"] = bool(
        style and style["accuracy"] >= 0.8 and style["families"] >= 6
    )
    return checks


def metrics_for_manifest(
    result: dict[str, Any], refs: dict[str, Any], info: dict[str, Any]
) -> dict[str, Any]:
    """The compact numbers merged into model.json's `metrics`."""
    mode = result["z_modes"][0]
    gen = result[mode]
    out = {
        "eval_z": mode,
        "miou": round(gen["miou"], 4),
        "pixel_accuracy": round(gen["pixel_accuracy"], 4),
        "miou_reference": round(refs["reference"]["miou"], 4),
        "miou_flat": round(refs["flat"]["miou"], 4),
        "fd_seg": round(gen["fd_seg"], 4),
        "fd_seg_floor": round(refs["reference"]["fd_seg"], 4),
        "fd_seg_flat": round(refs["flat"]["fd_seg"], 4),
        "crop_fd_seg": {k: None if v is None else round(v, 4) for k, v in gen["crop_fd_seg"].items()},
        "texture_in_range": round(gen["texture"]["fraction_in_range"], 4),
        "style_accuracy": None if result["style"] is None else round(result["style"]["accuracy"], 4),
        "latency_ms": round(result["latency_ms"], 2),
        "eval": info,
    }
    if "random" in result and mode != "random":
        out["miou_random_z"] = round(result["random"]["miou"], 4)
        out["fd_seg_random_z"] = round(result["random"]["fd_seg"], 4)
    return out


def finite_or_none(value: Any) -> Any:
    """`value` with every NaN or ±inf float (nested in dicts, lists and tuples) replaced by None.

    Undefined numbers (mIoU of an empty set, a texture ratio without pixels) are NaN in the computations, but
    NaN is not JSON: `json.dumps` would write a bare `NaN` that strict readers (browsers, jq) reject.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def write_json(path: Path, value: Any) -> None:
    """Strict JSON (NaN/inf as null), written to a temporary file and renamed so a crash leaves no half file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(finite_or_none(value), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def merge_metrics(folder: Path, metrics: Mapping[str, Any]) -> None:
    """Merge into model.json's `metrics` (atomic rewrite; the ONNX files and their checksums are untouched)."""
    path = folder / "model.json"
    manifest = json.loads(path.read_text())
    manifest["metrics"] = {**manifest.get("metrics", {}), **metrics}
    write_json(path, manifest)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(report: dict[str, Any]) -> str:
    """A plain-text summary: one column per image set."""
    refs = report["references"]
    columns: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for model in [report["model"], *report.get("compare", [])] if report["model"] else []:
        for mode in model["z_modes"]:
            columns.append((f"{model['name']}[{mode}]", model[mode], model))
    columns += [("reference", refs["reference"], None), ("flat", refs["flat"], None)]
    rows: list[tuple[str, Callable[[dict[str, Any], dict[str, Any] | None], Any]]] = [
        ("mIoU", lambda s, m: s["miou"]),
        ("pixel acc", lambda s, m: s["pixel_accuracy"]),
        ("FD-seg", lambda s, m: s["fd_seg"]),
        *[(f"crop FD {c}", lambda s, m, c=c: s["crop_fd_seg"][c]) for c in THING_CLASSES],
        ("texture in range", lambda s, m: s.get("texture", {}).get("fraction_in_range")),
        ("style accuracy", lambda s, m: m["style"]["accuracy"] if m and m.get("style") else None),
        ("latency ms", lambda s, m: m["latency_ms"] if m else None),
        *[(f"IoU {name}", lambda s, m, name=name: s["iou"][name]) for name in CLASS_NAMES],
    ]
    width = max(14, *(len(c[0]) + 2 for c in columns))
    lines = ["".ljust(18) + "".join(c[0].rjust(width) for c in columns)]
    for label, get in rows:
        lines.append(label.ljust(18) + "".join(_fmt(get(s, m)).rjust(width) for _, s, m in columns))
    lines.append("")
    lines += [f"{'PASS' if ok else 'FAIL'}  {name}" for name, ok in report["acceptance"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collage eval", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add(
        "model",
        type=Path,
        nargs="?",
        help="exported model folder, e.g. weights/landscape-spade; omitted: score only the judge "
        "(reference renders and flat baseline)",
    )
    add(
        "--segmenter",
        type=Path,
        required=True,
        help="judge checkpoint or run folder (collage train --arch segmenter)",
    )
    add("--n", type=int, default=500, help="held-out layouts (default 500)")
    add("--size", type=int, default=None, help="evaluation size (default: the model's image_size)")
    add("--seed", type=int, default=0, help="shifts every evaluation dataset seed by 16·SEED (default 0)")
    add("--out", type=Path, default=None, help="eval.json path (default: MODEL/eval.json)")
    add(
        "--compare",
        type=Path,
        action="append",
        default=[],
        help="another model folder scored on the same data",
    )
    add("--batch", type=int, default=8, help="images per onnxruntime / judge call (default 8)")
    add("--workers", type=int, default=2, help="processes rendering the procedural sets (default 2)")
    add(
        "--cache-dir",
        type=Path,
        default=None,
        help="keep the eval renders in this shard cache for later runs",
    )
    add("--mean-samples", type=int, default=MEAN_SAMPLES, help="training renders for the flat-colour means")
    add(
        "--centroid-layouts",
        type=int,
        default=CENTROID_LAYOUTS,
        help="layouts per family for style centroids",
    )
    add("--style-refs", type=int, default=STYLE_REFS_PER_FAMILY, help="style references per family")
    add("--no-merge", action="store_true", help="do not write the metrics into model.json")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"collage eval: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)  # noqa: T201
        return 2


def check_disjoint(model: ExportedModel, seeds: Mapping[str, int]) -> None:
    """Refuse to evaluate on layouts the model was trained on (a run with --data_seed set to an eval seed)."""
    from models.data.datasets import VAL_SEED_OFFSET

    config = model.manifest.get("training", {}).get("config", {})
    trained = config.get("data_seed")
    if trained is None:
        return
    used = {int(trained), int(trained) + VAL_SEED_OFFSET}
    clash = sorted(name for name, s in seeds.items() if name != "train" and s in used)
    if clash:
        raise ValueError(
            f"{model.name} was trained on data_seed {trained}, which the eval sets {clash} use; pass another --seed"
        )


def _run(args: argparse.Namespace) -> int:
    torch.set_num_threads(THREADS)
    for key in ("batch", "workers", "mean_samples", "centroid_layouts", "style_refs"):
        if getattr(args, key) < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be ≥ 1, got {getattr(args, key)}")
    model = ExportedModel(args.model) if args.model else None
    if model is None and args.compare:
        raise ValueError("--compare needs a model folder to compare with")
    others = [ExportedModel(folder) for folder in args.compare]
    if args.size is not None:
        size = args.size
    elif model is not None:
        size = model.image_size[0]
    else:
        raise ValueError("without a model folder, pass --size")
    opts = EvalOptions(
        n=args.n, size=size, seed=args.seed, batch=args.batch, workers=args.workers,
        cache_dir=args.cache_dir, mean_samples=args.mean_samples, centroid_layouts=args.centroid_layouts,
        style_refs=args.style_refs,
    )  # fmt: skip
    seeds = eval_seeds(opts.seed)
    for m in [model, *others] if model else []:
        m.check_size(opts.size)
        check_disjoint(m, seeds)
    judge = Judge(args.segmenter)
    started = time.time()
    data = prepare(judge, opts, with_style=model is not None)
    refs = reference_summary(data)
    primary = evaluate_model(model, judge, data, opts.batch) if model else None
    compare = [evaluate_model(m, judge, data, opts.batch) for m in others]
    info = {
        "n": opts.n,
        "size": opts.size,
        "seeds": seeds,
        "style_refs_per_family": opts.style_refs,
        "centroid_layouts": opts.centroid_layouts,
        "mean_samples": opts.mean_samples,
        "segmenter": {"path": str(args.segmenter), **judge.info},
        "wall_time_s": round(time.time() - started, 1),
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    report = {
        "model": primary,
        "compare": compare,
        "references": refs,
        "flat_class_means": data.class_means.tolist(),
        "acceptance": acceptance(primary, refs),
        "info": info,
    }
    if primary and compare:
        mode = primary["z_modes"][0]
        report["fd_seg_compare"] = {m["name"]: m[mode]["fd_seg"] if mode in m else None for m in compare}
    judge_dir = args.segmenter if args.segmenter.is_dir() else args.segmenter.parent
    out = args.out or (model.folder / "eval.json" if model else judge_dir / "judge-eval.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report)
    merged = ""
    if model is not None and primary is not None and not args.no_merge:
        metrics = metrics_for_manifest(primary, refs, info)
        if compare:
            metrics["fd_seg_compare"] = report["fd_seg_compare"]
        merge_metrics(model.folder, metrics)
        merged = f" and metrics in {model.folder / 'model.json'}"
    print(table(report))  # noqa: T201
    print(f"\nwrote {out}{merged}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
