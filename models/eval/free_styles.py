"""Out-of-family styles in `collage eval` (issue 22): does an encoded reference carry its own colours, or only
those of the nearest of the seven families?

References: `--free-refs` (default FREE_REFS in `models/eval/data.py`) held-out procedural layouts, each
rendered in a free style (`models.data.sample_free_style`: a family style whose sky, water and ground are
turned round the hue circle), dataset seed `eval_seeds(S)["free_refs"]`, read through the shard cache like
the eval sets. Each reference is encoded as the encoded-z path encodes (`ExportedModel.encode`, resized to the
encoder's size) and painted on its own layout; the same layout is painted with every preset of model.json's
`styles`.

Error of a picture: CIE76 ΔE (Euclidean distance in Lab) between the mean Lab colour of each class in the
picture and in the reference, averaged over the classes present in the layout with equal weights. Equal
weights, not pixel weights: a recoloured meadow or lake should count as much as the sky that fills half the
picture, and a preset that gets only the sky right should not pass. The check compares the mean error of the
encoded pictures with the mean over references of the best preset's error for each reference.

The base generator alone is judged (the collage stage redraws things, not the style), for the main model only
(`--compare` folders are not).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from models.eval.data import EvalOptions, eval_seeds, load_renders
from models.eval.metrics import rgb_to_lab
from models.eval.onnx_model import ExportedModel

ACCEPT_REFS = 100  # the acceptance point is measured on at least this many references
RATIO_MAX = 0.5  # encoded error ≤ this × the best preset's
CHECK = f"free_style_delta_e<={RATIO_MAX}*best_preset"


def class_lab_means(image: np.ndarray, label: np.ndarray) -> np.ndarray:
    """uint8 [H,W,3] and ids [H,W] → mean Lab colour [K,3] of each class present, by ascending id."""
    ids = np.unique(label, return_inverse=True)[1].ravel()
    lab = rgb_to_lab(image).reshape(-1, 3)
    counts = np.bincount(ids)
    return np.stack([np.bincount(ids, lab[:, c]) for c in range(3)], 1) / counts[:, None]


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over classes of the CIE76 distance between two `class_lab_means` of one layout."""
    return float(np.linalg.norm(a - b, axis=1).mean())


def _errors(pictures: np.ndarray, labels: np.ndarray, targets: list[np.ndarray]) -> list[float]:
    """ΔE of each picture [B,H,W,3] against the `class_lab_means` of its reference (same layout)."""
    return [delta_e(class_lab_means(p, lab), t) for p, lab, t in zip(pictures, labels, targets, strict=True)]


def skip_reason(model: ExportedModel) -> str | None:
    """Why the model cannot be scored on free styles (no encoder or no presets), None when it can."""
    if model.encoder is None:
        return "not evaluated: the model has no style encoder"
    if not model.manifest.styles:
        return "not evaluated: model.json lists no preset styles"
    return None


def free_references(opts: EvalOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples 0..opts.free_refs-1 of the free-style reference set: (labels, instances, renders)."""
    seed = eval_seeds(opts.seed)["free_refs"]
    with tempfile.TemporaryDirectory(prefix="collage-eval-") as tmp:
        cache = opts.cache_dir or Path(tmp)
        labels, instances, renders, _ = load_renders(
            seed, opts.free_refs, opts.size, cache, opts.workers, free=1.0
        )
    return labels, instances, renders


def free_style_section(model: ExportedModel, opts: EvalOptions) -> dict[str, Any]:
    """eval.json's `free_styles`: ΔE of the encoded pictures and of the best preset per reference, the ratio of
    their means, the share of references the encoded style beats every preset on, and the check."""
    reason = skip_reason(model)
    if reason is not None:
        return {"skipped": reason, "acceptance": {CHECK: {"pass": False, "figures": reason}}}
    labels, instances, refs = free_references(opts)
    count = len(refs)
    names = [style.name for style in model.manifest.styles]
    presets = np.array([style.z for style in model.manifest.styles], np.float32)  # [P,z_dim]
    encoded, preset_err = np.empty(count), np.empty((count, len(names)))
    for start in tqdm(range(0, count, opts.batch), desc=f"{model.name}: free styles", unit="batch"):
        window = slice(start, min(count, start + opts.batch))
        ids, inst = labels[window], instances[window]
        targets = [class_lab_means(r, lab) for r, lab in zip(refs[window], ids, strict=True)]
        zs = [model.encode(refs[window]), *(np.repeat(z[None], len(ids), 0) for z in presets)]
        errors = np.array([_errors(model.generate(ids, inst, z), ids, targets) for z in zs])  # [1+P,b]
        encoded[window], preset_err[window] = errors[0], errors[1:].T
    best = preset_err.min(1)
    wins = np.bincount(preset_err.argmin(1), minlength=len(names))
    section: dict[str, Any] = {
        "references": count,
        "presets": names,
        "delta_e": "CIE76, per-class mean Lab vs the reference's, classes of the layout weighted equally",
        "encoded": float(encoded.mean()),
        "best_preset": float(best.mean()),
        "encoded_median": float(np.median(encoded)),
        "best_preset_median": float(np.median(best)),
        "ratio": float(encoded.mean() / best.mean()) if best.mean() > 0 else None,
        "encoded_better": float((encoded < best).mean()),
        "best_preset_counts": dict(zip(names, wins.tolist(), strict=True)),
    }
    section["acceptance"] = free_checks(section)
    return section


def free_checks(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's point → {CHECK: {pass, figures}}: on at least ACCEPT_REFS references, the mean encoded
    error ≤ RATIO_MAX × the mean of the best preset's (inclusive)."""
    enough = section["references"] >= ACCEPT_REFS
    ok = bool(enough and section["encoded"] <= RATIO_MAX * section["best_preset"])
    return {CHECK: {"pass": ok, "figures": _figures(section)}}


def _ratio(section: dict[str, Any]) -> str:
    return "–" if section["ratio"] is None else f"{section['ratio']:.2f}×"


def _figures(section: dict[str, Any]) -> str:
    """The numbers the check was decided on, printed beside it."""
    few = "" if section["references"] >= ACCEPT_REFS else f"; the issue asks ≥ {ACCEPT_REFS}"
    return (
        f"ΔE encoded {section['encoded']:.2f} vs best preset {section['best_preset']:.2f}: {_ratio(section)} "
        f"on {section['references']} references{few}"
    )


def free_table(section: dict[str, Any]) -> str:
    """The console lines: the two mean errors, their ratio and how often the encoded style wins."""
    if "skipped" in section:
        return f"Out-of-family styles: {section['skipped']}"
    return "\n".join(
        [
            f"Out-of-family styles ({section['references']} free-style references, presets "
            f"{', '.join(section['presets'])}): mean per-class ΔE76 to the reference on its layout",
            f"  encoded {section['encoded']:.2f} (median {section['encoded_median']:.2f})   best preset "
            f"{section['best_preset']:.2f} (median {section['best_preset_median']:.2f})   ratio of means "
            f"{_ratio(section)}   encoded better on {100 * section['encoded_better']:.0f}% of references",
        ]
    )


def free_for_manifest(section: dict[str, Any]) -> dict[str, Any] | None:
    """The compact numbers merged into model.json's `metrics.free_styles` (None when not evaluated)."""
    if "skipped" in section:
        return None
    keys = ("encoded", "best_preset", "ratio", "encoded_better")
    return {"references": section["references"]} | {
        k: None if section[k] is None else round(section[k], 4) for k in keys
    }
