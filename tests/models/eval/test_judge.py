"""The committed judge (weights/judges/landscape.pt): `collage eval`'s default, so it must load and see."""

import numpy as np

from models.data.samples import render_sample
from models.eval.cli import JUDGE
from models.eval.data import EVAL_SEED
from models.eval.judge import Judge
from models.eval.metrics import confusion_matrix, segmentation_scores
from models.labels import LANDSCAPE


def test_committed_judge_labels_fresh_renders() -> None:
    """Four held-out 256² renders: the judge recovers most pixels (the full figure is in weights/README.md)."""
    judge = Judge(JUDGE)
    assert judge.info["weights"] == "S_ema" and judge.size == 256
    samples = [render_sample(EVAL_SEED, i, 256) for i in range(4)]
    images = np.stack([s[2] for s in samples])  # [4,256,256,3] uint8
    labels = np.stack([s[0] for s in samples])  # [4,256,256]
    pred, features = judge.segment(images)
    assert pred.shape == labels.shape and features.shape == (4, judge.net.feature_dim)
    scores = segmentation_scores(confusion_matrix(pred, labels, len(LANDSCAPE)))
    assert scores["pixel_accuracy"] >= 0.85, scores
