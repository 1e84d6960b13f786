"""SetMeter with a stub judge: which instances become crops, the per-class crop cap, the confusion counts."""

import numpy as np
import pytest

import models.eval.meter as meter
from models.eval.meter import MIN_CROP_SIDE, SetMeter

TREE, ROCK, SKY = 1, 2, 3  # thing classes 1 and 2; 3 is stuff (never cropped); 0 background
THINGS = (TREE, ROCK)
SIZE = 48


class StubJudge:
    """Stands in for `Judge`: `segment` returns a fixed prediction, `features` the brightest value of each
    crop, which names the instance it shows (each instance is painted in its own grey level)."""

    def __init__(self, pred: np.ndarray | None = None) -> None:
        self.pred = pred
        self.crop_batches: list[int] = []  # crops per `features` call: what the real judge would compute

    def segment(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pred = np.zeros(images.shape[:3], np.uint8) if self.pred is None else self.pred
        return pred, images.mean(axis=(1, 2), dtype=np.float32)  # [B,3] features

    def features(self, crops: np.ndarray) -> np.ndarray:
        self.crop_batches.append(len(crops))
        return crops.max(axis=(1, 2, 3)).astype(np.float32)[:, None]  # [K,1]


def scene(boxes: list[tuple[int, int, int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image from (class, top, left, height, width) boxes: instance i+1 painted grey level 10·(i+1)."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    label = np.zeros((SIZE, SIZE), np.int64)
    instance = np.zeros((SIZE, SIZE), np.int64)
    for index, (cls, top, left, height, width) in enumerate(boxes, start=1):
        box = np.s_[top : top + height, left : left + width]
        image[box], label[box], instance[box] = 10 * index, cls, index
    return image, label, instance


def batch(*scenes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, labels, instances = zip(*scenes, strict=True)
    return np.stack(images), np.stack(labels), np.stack(instances)


def grey_levels(m: SetMeter, cls: int) -> list[float]:
    return sorted(m.crop_features(cls)[:, 0].tolist())


def test_instances_shorter_than_min_crop_side_are_skipped() -> None:
    assert MIN_CROP_SIDE == 8  # the boxes below sit either side of it
    image = scene(
        [
            (TREE, 2, 2, 7, 7),  # grey 10: longer side 7, skipped
            (TREE, 2, 20, 8, 8),  # grey 20: 8, kept
            (TREE, 20, 2, 2, 8),  # grey 30: a 2×8 sliver, kept (the longer side counts)
            (ROCK, 20, 20, 7, 2),  # grey 40: longer side 7, skipped
            (ROCK, 34, 2, 12, 12),  # grey 50: kept
            (SKY, 34, 30, 12, 12),  # grey 60: not a thing class
        ]
    )
    judge, m = StubJudge(), SetMeter(4, THINGS)
    m.add(judge, *batch(image))
    assert judge.crop_batches == [3]  # skipped instances never reach the judge
    assert grey_levels(m, TREE) == [20.0, 30.0]
    assert grey_levels(m, ROCK) == [50.0]


def test_crops_stop_at_max_crops_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meter, "MAX_CROPS", 3)
    two_trees_one_rock = scene([(TREE, 2, 2, 10, 10), (TREE, 2, 20, 10, 10), (ROCK, 20, 2, 10, 10)])
    judge, m = StubJudge(), SetMeter(4, THINGS)
    m.add(judge, *batch(two_trees_one_rock, two_trees_one_rock))  # 4 trees in one call: capped within it
    assert [len(m.crop_features(TREE)), len(m.crop_features(ROCK))] == [3, 2]
    m.add(judge, *batch(two_trees_one_rock))  # trees are full across calls; rocks still fill up
    assert [len(m.crop_features(TREE)), len(m.crop_features(ROCK))] == [3, 3]
    m.add(judge, *batch(two_trees_one_rock))  # both full: nothing is sent to the judge
    assert [len(m.crop_features(TREE)), len(m.crop_features(ROCK))] == [3, 3]
    assert judge.crop_batches == [5, 1]


def test_crop_features_without_crops_is_empty() -> None:
    judge, m = StubJudge(), SetMeter(4, THINGS)
    m.add(judge, *batch(scene([(SKY, 0, 0, 20, 20)])))
    assert judge.crop_batches == []
    assert m.crop_features(TREE).shape == (0, 1)


def test_confusion_counts_and_features_accumulate_over_batches() -> None:
    labels = np.array([[[0, 1], [1, 2]]])  # [1,2,2]
    pred = np.array([[[0, 1], [2, 2]]], np.uint8)  # one class-1 pixel predicted as 2
    images = np.full((1, 2, 2, 3), 7, np.uint8)
    m = SetMeter(3, ())
    for _ in range(2):
        m.add(StubJudge(pred), images, labels, np.zeros_like(labels))
    # rows: target class, columns: predicted class
    assert m.conf.tolist() == [[2, 0, 0], [0, 2, 2], [0, 0, 2]]
    assert m.all_features().tolist() == [[7.0] * 3, [7.0] * 3]
