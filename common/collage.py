"""The CollageGAN composition stage (models.md §1.5): class-specific instances composed onto a base picture.

Shared, torch-free: the server's engine runs it after the base generator, and `collage eval` runs the same
code to judge pictures with and without it (models may not import the server).

After the base generator (any of them) has drawn the whole scene, every instance of a thing class that has a
class generator is redrawn by that generator, largest first:

1. `plan`: the instances (connected components of the thing classes, or the ids given), those too small for
   their generator skipped, sorted largest first; each with its tight, square and context boxes (common.crops,
   the geometry training cut its samples with).
2. `waves`: consecutive instances whose contexts do not see each other's boxes are generated together.
3. per wave and class, `_context_batch` cuts each context from the CURRENT picture (uint8, like training
   data), removes the instance and resizes; `ClassGraphs.generate` runs encoder → feature crop → decoder.
4. `_paste` — the compositing step: the T×T result resized into the square box and blended with a dilated,
   feathered alpha of the instance's mask; only pixels inside the square box can change.

The picture after each paste is the context for the next instance, so small objects match the big ones drawn
before them; a wave gives exactly that, since nothing it pastes lies in another member's context.

Every instance's latent is z = μ + σ·ε with ε = 0 (z = μ, the encoder's best guess from the context) unless a
seed is anchored on it (`Anchor`): the paint socket's re-roll and REST's `instance_seeds` give one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import ndimage

from common.crops import (
    Box,
    context_box,
    crop_padded,
    remove_instance,
    resize_square,
    square_box,
)
from common.manifest import ClassGenerator
from common.runtime import Graph

# Graph I/O names of a class generator (docs/contracts.md "Class generators"; fixed by the exporter).
ENCODER_INPUTS = ("context", "labels", "mask", "valid")
ENCODER_OUTPUTS = ("mu", "logvar", "phi_prime")
DECODER_INPUTS = ("phi", "z")  # + "noise" when the generator has noise channels
DECODER_OUTPUT = "image"

MAX_CHUNK = 8  # most instances per graph call; larger groups run as power-of-two chunks (see `_chunks`)
EPS_STREAM, NOISE_STREAM = 3, 4  # default_rng([seed, stream]) streams of an instance's ε and noise
DEFAULT_NOISE_SEED = 0  # the noise of an instance without a seed
DILATE_FRACTION = 0.03  # alpha dilation radius as a fraction of the square box's side (models.md §1.5)
MIN_DILATE = 2  # px: the smallest dilation radius


@dataclass(frozen=True)
class ClassGraphs:
    """One class generator as served: its manifest entry and its two graphs opened by the runtime."""

    spec: ClassGenerator
    encoder: Graph
    decoder: Graph

    def generate(
        self,
        context: np.ndarray,  # [B,3,S,S] float32 in [-1,1], the instance removed
        labels: np.ndarray,  # [B,1,S,S] int64
        mask: np.ndarray,  # [B,1,S,S] float32 0/1: the instance's pixels
        valid: np.ndarray,  # [B,1,S,S] float32 0/1: inside the picture
        eps: np.ndarray,  # [B,z_dim] float32: z = μ + exp(logvar/2)·ε
        noise: np.ndarray,  # [B,noise_channels,T,T] float32
    ) -> np.ndarray:
        """→ the square boxes [B,3,T,T] float32 in [-1,1]; encoder, the feature crop in numpy, decoder."""
        out = []
        for start, stop in _chunks(len(context)):
            mu, logvar, phi_prime = self.encoder.run(
                ENCODER_OUTPUTS,
                {
                    "context": context[start:stop],
                    "labels": labels[start:stop],
                    "mask": mask[start:stop],
                    "valid": valid[start:stop],
                },
            )
            p = phi_prime.shape[-1]  # φ′ [b,C,P,P] → φ [b,C,P/2,P/2]: the features over the square box
            phi = np.ascontiguousarray(phi_prime[:, :, p // 4 : 3 * p // 4, p // 4 : 3 * p // 4])
            z = (mu + np.exp(0.5 * logvar) * eps[start:stop]).astype(np.float32)  # [b,z_dim]
            feeds = {"phi": phi, "z": z}
            if self.spec.noise_channels:
                feeds["noise"] = noise[start:stop]
            out.append(self.decoder.run([DECODER_OUTPUT], feeds)[0])
        return np.concatenate(out)


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    """[start, stop) pieces of n items with power-of-two sizes ≤ MAX_CHUNK (13 → 8, 4, 1): one call never holds
    more than MAX_CHUNK crops' buffers, and a graph only ever sees batch sizes 1, 2, 4 and 8."""
    start = 0
    while start < n:
        size = min(MAX_CHUNK, 1 << ((n - start).bit_length() - 1))
        yield start, start + size
        start += size


# ---------------------------------------------------------------------------------------------------------
# Which instances, in which order


@dataclass(frozen=True)
class Anchor:
    """A seed for the instance under picture pixel (x, y)."""

    x: int
    y: int
    seed: int


@dataclass(frozen=True, eq=False)  # eq would compare arrays
class Planned:
    """One instance to compose."""

    instance_id: int
    class_id: int
    thing: str
    area: int  # pixels of the instance
    tight: Box
    tight_mask: np.ndarray  # tight.height × tight.width bool: the instance's pixels in its tight box
    square: Box  # the box the generator draws (may reach outside the picture)
    context: Box  # the square box enlarged 2×: what the generator sees

    def contains(self, x: int, y: int) -> bool:
        t = self.tight
        return t.x0 <= x < t.x1 and t.y0 <= y < t.y1 and bool(self.tight_mask[y - t.y0, x - t.x0])

    def mask_in(self, box: Box) -> np.ndarray:
        """The instance's mask cut to `box` (which holds its tight box), box.height × box.width bool."""
        out = np.zeros((box.height, box.width), bool)
        t = self.tight
        out[t.y0 - box.y0 : t.y1 - box.y0, t.x0 - box.x0 : t.x1 - box.x0] = self.tight_mask
        return out


@dataclass(frozen=True)
class Placed:
    """A composited instance, as reported to clients (the re-roll answer names the one it hit)."""

    order: int  # 0 = composited first (the largest)
    instance_id: int
    thing: str
    box: tuple[int, int, int, int]  # the square box clipped to the picture: x0, y0, x1, y1
    area: int
    seed: int | None  # the anchored seed, None for the default latent


def plan(
    labels: np.ndarray,  # H×W label ids
    instances: np.ndarray,  # H×W instance ids (0 = stuff)
    specs: Mapping[int, ClassGenerator],  # class id → its generator's manifest entry
) -> list[Planned]:
    """The instances to compose, largest first (ties: lower instance id, then lower class id).

    An instance is one instance id within one class with a generator (as training cut them: the pixels with that
    id and that label); one whose tight box is shorter than its generator's `min_side` on both sides, or longer
    than its `max_side` on either, is skipped.
    """
    found: list[Planned] = []
    for class_id, spec in specs.items():
        in_class = labels == class_id
        if not in_class.any():
            continue
        ids, compact = _compact(np.where(in_class, instances, 0))
        for k, slices in enumerate(ndimage.find_objects(compact), start=1):
            if slices is None:
                continue
            ys, xs = slices
            tight = Box(ys.start, xs.start, ys.stop, xs.stop)
            longer = max(tight.height, tight.width)
            if longer < spec.min_side or (spec.max_side is not None and longer > spec.max_side):
                continue
            tight_mask = compact[slices] == k
            square = square_box(tight)
            found.append(
                Planned(
                    int(ids[k - 1]),
                    class_id,
                    spec.thing,
                    int(tight_mask.sum()),
                    tight,
                    tight_mask,
                    square,
                    context_box(square),
                )
            )
    found.sort(key=lambda p: (-p.area, p.instance_id, p.class_id))
    return found


def _compact(ids_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H×W instance ids → (ids, map): map holds 0 where ids_map is 0 and k ≥ 1 where it holds ids[k-1].

    `ndimage.find_objects` keeps one row per value up to the largest, so the ids of `instances_from_labels`
    (1..K) are used as they are and anything else a client sends (huge or negative ids) is renumbered first."""
    top = int(ids_map.max())
    if ids_map.min() >= 0 and top <= ids_map.size:
        return np.arange(1, top + 1), ids_map
    values, inverse = np.unique(ids_map, return_inverse=True)
    kept = values != 0
    table = np.zeros(len(values), np.int64)
    table[kept] = np.arange(1, int(kept.sum()) + 1)
    return values[kept], table[inverse].reshape(ids_map.shape)


def instance_at(
    labels: np.ndarray, instances: np.ndarray, specs: Mapping[int, ClassGenerator], x: int, y: int
) -> Planned | None:
    """The instance the stage would compose that has pixel (x, y), if any: what a re-roll there re-rolls."""
    return next((p for p in plan(labels, instances, specs) if p.contains(x, y)), None)


def seeds_for(planned: Sequence[Planned], anchors: Sequence[Anchor]) -> list[int | None]:
    """Each planned instance's seed: that of the last anchor on one of its pixels, else None."""
    seeds: list[int | None] = [None] * len(planned)
    for anchor in anchors:
        for i, item in enumerate(planned):
            if item.contains(anchor.x, anchor.y):
                seeds[i] = anchor.seed
                break
    return seeds


def _overlap(a: Box, b: Box) -> bool:
    return a.y0 < b.y1 and b.y0 < a.y1 and a.x0 < b.x1 and b.x0 < a.x1


def waves(planned: Sequence[Planned]) -> list[list[int]]:
    """Consecutive runs of planned indices that can be generated together: an instance starts a new wave when
    its context box overlaps the square box of one already in the current wave (it must see that paste)."""
    out: list[list[int]] = []
    for i, item in enumerate(planned):
        if out and not any(_overlap(item.context, planned[j].square) for j in out[-1]):
            out[-1].append(i)
        else:
            out.append([i])
    return out


# ---------------------------------------------------------------------------------------------------------
# Composition


@dataclass(frozen=True, eq=False)
class Composition:
    picture: np.ndarray  # [3,H,W] float32 in [-1,1]
    placed: list[Placed]


def compose(
    base: np.ndarray,  # [3,H,W] float32 in [-1,1]: the base generator's picture (not modified)
    labels: np.ndarray,  # H×W uint8 label ids
    instances: np.ndarray,  # H×W instance ids (0 = stuff)
    generators: Mapping[int, ClassGraphs],  # class id → class generator
    anchors: Sequence[Anchor] = (),  # per-instance seeds by pixel; a later anchor wins
    batched: bool = True,  # False: one instance at a time (the reference the waves must equal)
) -> Composition:
    """The base picture with every planned instance redrawn by its class generator, largest first."""
    planned = plan(labels, instances, {cid: g.spec for cid, g in generators.items()})
    seeds = seeds_for(planned, anchors)
    picture = np.array(base, dtype=np.float32)  # a copy: pixels outside every square box stay the base's
    groups = waves(planned) if batched else [[i] for i in range(len(planned))]
    for wave in groups:
        drawn: dict[int, np.ndarray] = {}  # planned index → [3,T,T]
        for class_id in dict.fromkeys(planned[i].class_id for i in wave):  # classes in wave order
            members = [i for i in wave if planned[i].class_id == class_id]
            graphs = generators[class_id]
            feeds = _context_batch(picture, labels, [planned[i] for i in members], graphs.spec)
            eps, noise = _latents(graphs.spec, [seeds[i] for i in members])
            images = graphs.generate(*feeds, eps, noise)
            drawn.update(zip(members, images, strict=True))
        for i in wave:  # largest first: a smaller instance's paste lands over a larger one's
            _paste(picture, planned[i], drawn[i])
    h, w = labels.shape
    placed = [
        Placed(order, p.instance_id, p.thing, clipped_box(p.square, h, w), p.area, seed)
        for order, (p, seed) in enumerate(zip(planned, seeds, strict=True))
    ]
    return Composition(picture, placed)


def clipped_box(box: Box, height: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of box ∩ picture."""
    return max(box.x0, 0), max(box.y0, 0), min(box.x1, width), min(box.y1, height)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float in [-1,1] → uint8, rounded as training data was ((x+1)·127.5, round half to even, clamp)."""
    return np.clip(np.rint((image + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _context_batch(
    picture: np.ndarray, labels: np.ndarray, items: Sequence[Planned], spec: ClassGenerator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The encoder's inputs for `items`, cut from the current picture exactly as `models/data/crops.py`
    cuts a training sample from a real one: context [B,3,S,S], labels [B,1,S,S] int64, mask, valid [B,1,S,S]."""
    s, n = spec.context_size, len(items)
    context = np.empty((n, 3, s, s), np.float32)
    crop_labels = np.empty((n, 1, s, s), np.int64)
    mask = np.empty((n, 1, s, s), np.float32)
    valid = np.empty((n, 1, s, s), np.float32)
    hwc = picture.transpose(1, 2, 0)  # [H,W,3] view
    inside = np.broadcast_to(True, labels.shape)  # a view: crop_padded pads it with False
    for k, item in enumerate(items):
        ctx = item.context
        own = item.mask_in(ctx)
        rgb = to_uint8(crop_padded(hwc, ctx, -1.0))  # padding -1 → 0, as crop_padded pads a uint8 picture
        rgb = remove_instance(rgb, own, spec.removal)
        context[k] = resize_square(rgb, s, nearest=False).transpose(2, 0, 1) / np.float32(127.5) - 1.0
        crop_labels[k, 0] = resize_square(crop_padded(labels, ctx), s, nearest=True)
        mask[k, 0] = resize_square(own, s, nearest=True)
        valid[k, 0] = resize_square(crop_padded(inside, ctx, False), s, nearest=True)
    return context, crop_labels, mask, valid


@cache
def _default_noise(channels: int, side: int) -> np.ndarray:
    noise = np.random.default_rng([DEFAULT_NOISE_SEED, NOISE_STREAM]).standard_normal(
        (channels, side, side), dtype=np.float32
    )
    noise.flags.writeable = False  # shared by every call
    return noise


def _latents(spec: ClassGenerator, seeds: Sequence[int | None]) -> tuple[np.ndarray, np.ndarray]:
    """ε [B,z_dim] and noise [B,C,T,T] float32 per instance: zeros and the seed-0 noise without a seed, else
    drawn from default_rng([seed, 3]) and default_rng([seed, 4]) (docs/protocol.md)."""
    c, t = spec.noise_channels, spec.target_size
    eps = np.zeros((len(seeds), spec.z_dim), np.float32)
    noise = np.empty((len(seeds), c, t, t), np.float32)
    for k, seed in enumerate(seeds):
        if seed is None:
            noise[k] = _default_noise(c, t)
            continue
        eps[k] = np.random.default_rng([seed, EPS_STREAM]).standard_normal(spec.z_dim, dtype=np.float32)
        noise[k] = np.random.default_rng([seed, NOISE_STREAM]).standard_normal((c, t, t), dtype=np.float32)
    return eps, noise


def dilation_radius(side: int) -> int:
    """The alpha's dilation radius (px) for a square box of this side."""
    return max(MIN_DILATE, round(DILATE_FRACTION * side))


def blend_alpha(mask: np.ndarray) -> np.ndarray:
    """side×side bool mask of the instance in its square box → alpha side×side float32 in [0,1].

    Dilated by r = max(2, 3% of the side) px, then blurred with σ = r/2 (models.md §1.5), and 1 on the mask.
    Relative to the side because the generator draws at T×T and is resized to the box: its edge errors (the
    object's outline a pixel off, the resize's blur) scale with the box, and a fixed radius would eat a small
    object's surroundings while leaving a seam around a large one. The dilated band is filled with the
    generator's own copy of the context, so it blends into the picture rather than cutting the object out.
    """
    r = dilation_radius(mask.shape[0])
    padded = np.pad(mask, r)  # room for the dilation where the mask touches the box's border
    dilated = ndimage.distance_transform_edt(~padded) <= r
    soft = ndimage.gaussian_filter(dilated.astype(np.float32), sigma=r / 2, mode="constant")
    alpha = np.maximum(soft[r:-r, r:-r], mask)  # the object itself is entirely the generator's
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def _paste(picture: np.ndarray, item: Planned, image: np.ndarray) -> None:
    """The compositing step: `image` [3,T,T] resized to the square box and alpha-blended into `picture`
    [3,H,W] in place, within the square box ∩ the picture only."""
    box, (_, h, w) = item.square, picture.shape
    side = box.height
    rgb = resize_square(to_uint8(image.transpose(1, 2, 0)), side, nearest=False)  # [side,side,3]
    alpha = blend_alpha(item.mask_in(box))  # [side,side]
    x0, y0, x1, y1 = clipped_box(box, h, w)  # never empty: the box holds the instance's pixels
    ys, xs = slice(y0 - box.y0, y1 - box.y0), slice(x0 - box.x0, x1 - box.x0)
    drawn = rgb[ys, xs].transpose(2, 0, 1) / np.float32(127.5) - 1.0  # [3,h',w']
    a = alpha[ys, xs]
    region = picture[:, y0:y1, x0:x1]
    picture[:, y0:y1, x0:x1] = a * drawn + (1.0 - a) * region  # a = 0 leaves a pixel bit-identical
