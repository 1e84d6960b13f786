"""The reference side: data and scores that do not depend on the evaluated model.

Data (`models.data.datasets.render_sample(seed, index, size, painted)`; style families cycle with the index).
Training reads dataset seed 0 (`collage train --data procedural`) and its val split seed 1_000_003;
different seeds give independent streams, so every set below is disjoint from training (whatever share of
painted layouts it mixed in: those are samples of the training seeds too):
- eval layouts: seed EVAL_SEED + 16·S (S = `--seed`), samples 0..n-1, each with its reference render;
- held-out renders (the other side of every Fréchet distance): seed EVAL_SEED + 16·S + 1;
- style centroids: seed … + 2 (CENTROID_LAYOUTS layouts, each rendered in every family);
- style references: seed … + 3 (STYLE_REFS_PER_FAMILY per family);
- out-of-family style references: seed … + 4 (FREE_REFS by default, every sample in a free style:
  `models/eval/free_styles.py`);
- flat-colour class means: training renders (seed 0, samples 0..MEAN_SAMPLES-1).
Those are the procedural layouts (`--layouts procedural`, the default). The painted layouts
(`models.data.painted_layouts`, `--layouts painted`) have sets of their own from seeds … + 8 (eval), + 9
(held-out) and + 10 (centroids), every sample painted: a picture generated on a painted map is compared with
renders of painted maps. Two things are shared: the style references stay procedural renders (the pictures a
user takes a style from; only the layouts they are applied to change) and so do the flat-colour means.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from models.eval.judge import Judge
from models.eval.meter import THING_CLASSES, SetMeter
from models.eval.metrics import colour_stats, flat_images, nearest_centroid
from models.eval.onnx_model import ExportedModel, to_uint8
from models.labels import LANDSCAPE

EVAL_SEED = 7_000_000  # base dataset seed of every evaluation set (see the module docstring)
TRAIN_SEED = 0  # dataset seed `collage train --data procedural` reads; source of the flat-colour means
MEAN_SAMPLES = 64  # training renders averaged for the flat-colour baseline
CENTROID_LAYOUTS = 24  # layouts rendered in every family to place the style centroids
STYLE_REFS_PER_FAMILY = 8  # reference renders (and generations) per style family
FREE_REFS = 100  # out-of-family style references (`--free-refs`; 0: not evaluated)
FREE_OFFSET = 4  # their set's seed: the procedural sets' base + this (0–3 and PAINTED_OFFSET + 0–2 are taken)
LAYOUTS = ("procedural", "painted")  # the kinds of layouts an evaluation can score on
PAINTED_OFFSET = 8  # painted sets' seeds: the procedural sets' + this (within the 16 of one --seed)


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
    layouts: str  # procedural | painted
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
    batch: int = 8  # images per runtime / judge call
    workers: int = 2  # processes rendering the procedural sets
    cache_dir: Path | None = None  # shard cache for the eval / held-out renders (None: a temporary folder)
    mean_samples: int = MEAN_SAMPLES
    centroid_layouts: int = CENTROID_LAYOUTS
    style_refs: int = STYLE_REFS_PER_FAMILY
    free_refs: int = FREE_REFS


def eval_seeds(seed: int, layouts: Sequence[str] = ("procedural",)) -> dict[str, int]:
    """Dataset seeds of every set the evaluation of `layouts` reads; `train` is the trainer's default
    data_seed (flat-colour means). Painted sets are named `painted_eval`, `painted_heldout`, …; the free-style
    references (`free_refs`) go with procedural layouts."""
    base = EVAL_SEED + 16 * seed
    seeds: dict[str, int] = {}
    for kind in layouts:
        prefix, offset = ("", 0) if kind == "procedural" else (f"{kind}_", PAINTED_OFFSET)
        seeds |= {
            f"{prefix}{name}": base + offset + i for i, name in enumerate(("eval", "heldout", "centroids"))
        }
        seeds["style_refs"] = base + 3  # procedural references, whatever layouts they are applied to
        if kind == "procedural":
            seeds["free_refs"] = base + FREE_OFFSET
    return seeds | {"train": TRAIN_SEED}


def kind_seeds(seeds: Mapping[str, int], layouts: str) -> dict[str, int]:
    """The seeds of one kind's sets under their procedural names (eval, heldout, centroids, style_refs)."""
    prefix = "" if layouts == "procedural" else f"{layouts}_"
    names = ("eval", "heldout", "centroids")
    return {name: seeds[prefix + name] for name in names} | {"style_refs": seeds["style_refs"]}


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
    from models.data.samples import render_sample

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


def _centroid_stats(seed: int, k: int, size: int, painted: bool = False) -> np.ndarray:
    """Colour statistics [F,12] of one layout (procedural or painted) rendered in every family (so centroids
    differ by style alone)."""
    from models.data import FAMILIES, render, sample_layout, sample_painted_layout, sample_style

    rng = np.random.default_rng([seed, k])
    label, instance = (sample_painted_layout if painted else sample_layout)(rng, size)
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


def load_renders(
    seed: int, n: int, size: int, cache_dir: Path, workers: int, painted: float = 0.0, free: float = 0.0
) -> tuple[np.ndarray, ...]:
    """Samples 0..n-1 of procedural dataset `seed` (a share `painted` of them painted layouts: 1.0 for the
    painted sets; a share `free` in free styles: 1.0 for the free-style references) through the shard cache:
    (labels, instances, images, families)."""
    from models.data.datasets import ProceduralLandscapes
    from models.data.samples import Mix

    data = ProceduralLandscapes(size, n, seed, cache_dir, workers, Mix(painted=painted, free=free))
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


def prepare(
    judge: Judge,
    opts: EvalOptions,
    with_style: bool = True,  # the style sets too (only a model is scored on them)
    layouts: str = "procedural",  # procedural | painted: which kind of layouts the sets hold
    class_means: np.ndarray | None = None,  # flat-colour means when already computed (shared by the kinds)
) -> EvalData:
    """Render every model-independent set of one kind of layouts once and score the renders and the flat
    baseline."""
    import tempfile

    n, size, batch = opts.n, opts.size, opts.batch
    if n < 2:
        raise ValueError(f"--n must be at least 2 (Fréchet distances need two samples), got {n}")
    if layouts not in LAYOUTS:
        raise ValueError(f"unknown layouts {layouts!r}; choose from {', '.join(LAYOUTS)}")
    seeds = kind_seeds(eval_seeds(opts.seed, (layouts,)), layouts)
    painted = float(layouts == "painted")
    num_classes = len(LANDSCAPE)
    things = tuple(LANDSCAPE[name].id for name in THING_CLASSES)
    if class_means is None:
        class_means = class_mean_colours(size, opts.mean_samples, opts.workers)

    with tempfile.TemporaryDirectory(prefix="collage-eval-") as tmp:
        cache = opts.cache_dir or Path(tmp)
        labels, instances, renders, _ = load_renders(seeds["eval"], n, size, cache, opts.workers, painted)
        held_labels, held_instances, held_renders, _ = load_renders(
            seeds["heldout"], n, size, cache, opts.workers, painted
        )
    reference, flat, heldout = (SetMeter(num_classes, things) for _ in range(3))
    desc = "judging renders + flat baseline" + ("" if layouts == "procedural" else f" ({layouts})")
    for start in tqdm(range(0, n, batch), desc=desc, unit="batch"):
        window = slice(start, min(n, start + batch))
        ids, inst = labels[window], instances[window]
        reference.add(judge, renders[window], ids, inst)
        flat.add(judge, flat_images(ids, class_means), ids, inst)
        heldout.add(judge, held_renders[window], held_labels[window], held_instances[window])

    style = prepare_style(opts, labels, instances, layouts) if with_style else None
    return EvalData(
        layouts=layouts, size=size, n=n, labels=labels, instances=instances, renders=renders,
        class_means=class_means, heldout=heldout, reference=reference, flat=flat, style=style,
    )  # fmt: skip


def prepare_style(
    opts: EvalOptions, labels: np.ndarray, instances: np.ndarray, layouts: str = "procedural"
) -> StyleData:
    """Family centroids of the colour statistics (of `layouts` rendered in every family), and procedural
    reference renders of every family, each applied to one of the eval layouts."""
    from models.data import FAMILIES

    seeds = kind_seeds(eval_seeds(opts.seed, (layouts,)), layouts)
    size, n = opts.size, len(labels)
    names = tuple(FAMILIES)
    painted = layouts == "painted"
    jobs = [(seeds["centroids"], k, size, painted) for k in range(opts.centroid_layouts)]
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


def check_disjoint(model: ExportedModel, seeds: Mapping[str, int]) -> None:
    """Refuse to evaluate on layouts the model was trained on (a run with --data_seed set to an eval seed)."""
    from models.data.datasets import VAL_SEED_OFFSET

    config = model.manifest.training.get("config", {})
    trained = config.get("data_seed")
    if trained is None:
        return
    used = {int(trained), int(trained) + VAL_SEED_OFFSET}
    clash = sorted(name for name, s in seeds.items() if name != "train" and s in used)
    if clash:
        raise ValueError(
            f"{model.name} was trained on data_seed {trained}, which the eval sets {clash} use; pass another --seed"
        )
