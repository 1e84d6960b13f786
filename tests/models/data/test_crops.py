"""Class-generator samples from procedural landscapes: shapes, largest first, skipped instances, the preview."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.data.cli import main as data_main
from models.data.crops import instance_crops
from models.data.samples import render_sample
from models.labels import LANDSCAPE


def test_crops_of_a_painted_scene() -> None:
    label = np.zeros((64, 64), np.uint8)
    instance = np.zeros((64, 64), np.int32)
    label[30:50, 10:30], instance[30:50, 10:30] = 8, 1  # a 20² tree
    label[5:15, 40:60], instance[5:15, 40:60] = 8, 2  # a 10×20 tree, partly near the border
    label[60:64, 0:4], instance[60:64, 0:4] = 8, 3  # a 4² tree: too small
    label[20:40, 40:60], instance[20:40, 40:60] = 13, 4  # a house: another class
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    # both trees have a 20² square box: a 40² context and a 20² target, so nothing is resized here
    crops = list(instance_crops(label, instance, image, 8, "zeros", context_size=40, target_size=20))
    assert [c.instance_id for c in crops] == [1, 2]  # largest first; the 4² tree skipped
    big = crops[0]
    assert big.context.shape == (40, 40, 3) and big.target.shape == (20, 20, 3)
    assert big.labels.shape == big.mask.shape == big.valid.shape == (40, 40) and big.valid.all()
    # the mask fills the central half of the context, where the target comes from
    assert big.mask[10:30, 10:30].all() and big.mask.sum() == 400
    np.testing.assert_array_equal(big.target, image[30:50, 10:30])
    assert (big.context[big.mask] == 0).all()  # zeros removal
    np.testing.assert_array_equal(big.labels[big.mask], 8)
    near_border = crops[1]
    assert not near_border.valid.all()  # its context box leaves the picture: padded, and said so
    np.testing.assert_array_equal(near_border.context[~near_border.valid], 0)


def test_mostly_hidden_instances_are_skipped() -> None:
    label = np.zeros((64, 64), np.uint8)
    instance = np.zeros((64, 64), np.int32)
    label[10:40:6, 10:40], instance[10:40:6, 10:40] = 13, 1  # a house seen through a tree: 5 thin strips
    image = np.zeros((64, 64, 3), np.uint8)
    assert list(instance_crops(label, instance, image, 13, "blur")) == []
    assert len(list(instance_crops(label, instance, image, 13, "blur", min_fill=0.1))) == 1


def test_procedural_layouts_give_crops_of_every_thing_class() -> None:
    found = dict.fromkeys(LANDSCAPE.thing_ids, 0)
    for i in range(12):
        label, instance, image, _ = render_sample(0, i, 128)
        for class_id in found:
            found[class_id] += len(list(instance_crops(label, instance, image, class_id, "blur", 64, 32)))
    assert all(count > 0 for count in found.values()), found


def test_preview_crops_writes_a_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crops.png"
    assert data_main(["preview", "--crops", "tree", "--n", "3", "--size", "128", "--out", str(out)]) == 0
    grid = np.asarray(Image.open(out))
    assert grid.shape[1] > grid.shape[0] > 3 * 128  # three rows of four 128² tiles
    with pytest.raises(SystemExit, match="'sky' is not a thing class"):
        data_main(["preview", "--crops", "sky", "--out", str(out)])
