"""Metric functions (numpy, model-free; unit-tested on synthetic data)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

TEXTURE_RANGE = (0.6, 1.4)  # accepted generated/reference high-frequency energy ratio


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


STREAK_ROWS = (
    8  # streak coherence compares each pixel's horizontal gradient with the one this many rows below
)
STREAK_MARGIN = 0.1  # a class's coherence may exceed the renders' by this much before it counts as streaky


class StreakMeter:
    """Per-class correlation between the horizontal luminance gradient at (y, x) and at (y + STREAK_ROWS, x),
    pooled over every interior pixel pair of one class (as TextureMeter, a 5×5 neighbourhood of one class).

    Vertical stripes ("planks") keep their gradient down a column and score near 1; texture without a preferred
    direction scores near 0. The texture ratio cannot see them: planks have the renders' energy, in one direction.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.sums = np.zeros((6, num_classes))  # Σa, Σb, Σa², Σb², Σab, n

    def add(self, images: np.ndarray, labels: np.ndarray) -> None:
        """images uint8 [B,H,W,3], labels [B,H,W] ids."""
        dy = STREAK_ROWS
        for image, label in zip(images, labels, strict=True):
            lum = luminance(image)  # [H,W]
            gx = np.zeros_like(lum)
            gx[:, 1:-1] = (lum[:, 2:] - lum[:, :-2]) / 2  # central difference; the edge columns have none
            interior = ndimage.minimum_filter(label, 5) == ndimage.maximum_filter(label, 5)
            pair = interior[:-dy] & interior[dy:] & (label[:-dy] == label[dy:])  # [H-dy,W]
            pair[:, [0, -1]] = False
            ids = label[:-dy][pair].astype(np.int64)
            a = gx[:-dy][pair].astype(np.float64)
            b = gx[dy:][pair].astype(np.float64)
            for k, values in enumerate((a, b, a * a, b * b, a * b, np.ones_like(a))):
                self.sums[k] += np.bincount(ids, values, self.num_classes)

    def coherence(self, min_pairs: int = 1) -> np.ndarray:
        """[N] Pearson correlation per class; NaN with fewer than `min_pairs` pairs or a flat class."""
        sa, sb, saa, sbb, sab, n = self.sums
        n_safe = np.maximum(n, 1)
        cov = sab / n_safe - (sa / n_safe) * (sb / n_safe)
        var = (saa / n_safe - (sa / n_safe) ** 2) * (sbb / n_safe - (sb / n_safe) ** 2)
        ok = (n >= min_pairs) & (var > 1e-12)
        return np.divide(
            cov, np.sqrt(np.where(ok, var, 1.0)), out=np.full(self.num_classes, np.nan), where=ok
        )


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
