"""`instances_from_labels`, one implementation for the server (painted maps) and training (datasets, renderer)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pytest

from common.instances import instances_from_labels
from models.data.layout import sample_layout
from models.labels import LANDSCAPE

L = {label.name: label.id for label in LANDSCAPE.labels}
THINGS = LANDSCAPE.thing_ids  # tree, rock, house

# sha256 over 20 procedural layouts (seeds 0..19, 96×128): of their label maps, and of the instance maps that
# models/data/layout.py's instances_from_labels (the training side's copy until bdb30b8) made of them. The old
# server copy (server/engine.py) gave the same maps on these layouts.
LAYOUTS_SHA256 = "7f8480dba6df7433fabb157f81b8a2d1f92efbd84bbe95ae21681031db2d2162"
FORMER_INSTANCES_SHA256 = "5c9c3df587e9b98571905c760b8510d86a6db618fe0ef91f4b150d122082d3a0"


def sha256_of(arrays: Iterable[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def test_each_4_connected_component_of_a_thing_class_is_one_instance() -> None:
    label = np.zeros((10, 12), dtype=np.uint8)  # sky
    label[1:3, 1:3] = L["tree"]
    label[1:3, 5:7] = L["tree"]  # a second, separate tree
    label[3:5, 3:5] = L["tree"]  # touches the first only diagonally: its own component (4-connectivity)
    label[6:9, 1:4] = L["rock"]
    label[6:9, 4:6] = L["house"]  # touches the rock: still a separate instance (different class)
    label[6:9, 8:11] = L["grass"]  # stuff
    inst = instances_from_labels(label, THINGS)
    assert inst.dtype == np.int32 and inst.shape == label.shape
    assert (inst[~np.isin(label, THINGS)] == 0).all()
    # Numbered class by class in thing_ids order (rock 4, tree 8, house 13), raster order within a class.
    assert [inst[6, 1], inst[1, 1], inst[1, 5], inst[3, 3], inst[6, 4]] == [1, 2, 3, 4, 5]
    for i in range(1, 6):
        assert np.unique(label[inst == i]).size == 1
    assert (instances_from_labels(label, []) == 0).all()  # a label set without things
    with pytest.raises(ValueError, match="H×W"):
        instances_from_labels(np.zeros((2, 3, 4), dtype=np.uint8), THINGS)


def test_procedural_layouts_get_the_instances_the_training_side_gave_them() -> None:
    labels = [sample_layout(np.random.default_rng(seed), (96, 128))[0] for seed in range(20)]
    assert sha256_of(labels) == LAYOUTS_SHA256, (
        "sample_layout draws other layouts now: recompute both digests, the instances one with "
        "`git show bdb30b8:models/data/layout.py`'s instances_from_labels"
    )
    instances = [instances_from_labels(label, THINGS) for label in labels]
    assert sum(int(inst.max()) for inst in instances) > 20  # the layouts hold things to number
    assert sha256_of(instances) == FORMER_INSTANCES_SHA256
