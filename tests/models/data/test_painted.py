"""`models.data.painted`: person-painted label maps with an exact number of instances, each big enough."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from common.instances import instances_from_labels
from models.data.painted import THINGS, painted_map, thing_mix
from models.labels import LANDSCAPE


@pytest.mark.parametrize(("size", "count"), [(128, 5), (256, 1), (256, 20)])
def test_one_instance_per_thing_each_at_least_min_side(size: int, count: int) -> None:
    for seed in range(5):
        kinds = thing_mix(count, ["tree", "house", "rock"], seed)
        ids = painted_map(size, kinds, seed, min_side=12)
        assert ids.shape == (size, size) and ids.dtype == np.uint8
        instances = instances_from_labels(ids, LANDSCAPE.thing_ids)
        boxes = ndimage.find_objects(instances)
        assert len(boxes) == count
        assert all(max(ys.stop - ys.start, xs.stop - xs.start) >= 12 for ys, xs in boxes)
        classes = [int(ids[instances == i][0]) for i in range(1, count + 1)]
        assert sorted(classes) == sorted(THINGS[k] for k in kinds)
        assert np.array_equal(ids, painted_map(size, kinds, seed, min_side=12))  # from the seed alone


def test_the_mix_starts_with_one_of_each_kind() -> None:
    assert thing_mix(2, ["tree", "house", "rock"], 0) == ["tree", "house"]
    mix = thing_mix(40, ["tree", "rock"], 0)
    assert mix[:2] == ["tree", "rock"] and set(mix) == {"tree", "rock"}
    with pytest.raises(ValueError, match="cannot paint"):
        thing_mix(1, ["bush"], 0)


def test_too_many_things_for_the_map_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot place 60 things"):
        painted_map(64, ["house"] * 60, 0, min_side=12)
