import numpy as np
import pytest
from scipy import ndimage

from models.data.layout import sample_layout
from models.labels import LANDSCAPE

L = {label.name: label.id for label in LANDSCAPE.labels}
THINGS = np.array(LANDSCAPE.thing_ids)
# What a shore may be made of: ground and what stands on it (mountain, sky and cloud are not).
LAND = np.array([L[name] for name in "grass flowers sand dirt snow hill bush tree rock house".split()])


@pytest.fixture(scope="module")
def layouts() -> list[tuple[np.ndarray, np.ndarray]]:
    return [sample_layout(np.random.default_rng(seed), 128) for seed in range(40)]


def test_ids_are_valid_landscape_ids(layouts: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for label, instance in layouts:
        assert label.dtype == np.uint8 and label.shape == (128, 128)
        assert instance.dtype == np.int32 and instance.shape == (128, 128)
        assert int(label.max()) < len(LANDSCAPE)


def test_instances_cover_exactly_the_thing_pixels_one_class_each(
    layouts: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    for label, instance in layouts:
        things = np.isin(label, THINGS)
        assert (instance[~things] == 0).all()
        assert (instance[things] > 0).all()
        ids = np.unique(instance[things])
        np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1))  # compact 1..K
        for i in ids:
            assert np.unique(label[instance == i]).size == 1


def test_compositions_vary(layouts: list[tuple[np.ndarray, np.ndarray]]) -> None:
    def share(pred) -> float:  # noqa: ANN001
        return float(np.mean([pred(lab, inst) for lab, inst in layouts]))

    assert 0.35 < share(lambda lab, _: (lab == L["water"]).any()) < 0.95  # some with water, some without
    assert share(lambda lab, _: np.isin(lab[0], (L["sky"], L["cloud"])).mean() > 0.5) > 0.9  # sky at the top
    assert share(lambda lab, _: (lab == L["cloud"]).any()) > 0.5
    assert share(lambda lab, _: (lab == L["mountain"]).any()) > 0.6
    assert share(lambda lab, _: (lab == L["snow"]).any()) > 0.4
    assert share(lambda lab, _: (lab == L["grass"]).any()) > 0.8
    assert share(lambda lab, _: (lab == L["flowers"]).any() or (lab == L["dirt"]).any()) > 0.5
    assert share(lambda lab, _: (lab == L["sand"]).any()) > 0.2
    assert share(lambda lab, inst: np.unique(inst[lab == L["tree"]]).size >= 3) > 0.7  # several trees
    assert share(lambda lab, _: (lab == L["house"]).any()) > 0.3
    assert share(lambda lab, _: (lab == L["rock"]).any()) > 0.4
    # Trees come in varied sizes: the largest instance is much bigger than the smallest.
    areas = [np.bincount(inst[lab == L["tree"]]) for lab, inst in layouts]
    spreads = [a[a > 0].max() / a[a > 0].min() for a in areas if (a > 0).sum() >= 3]
    assert np.median(spreads) > 5


def test_water_lies_below_the_sky_and_has_shores(layouts: list[tuple[np.ndarray, np.ndarray]]) -> None:
    rows = np.arange(128)[:, None]
    with_water = lower_shores = beaches = 0
    for label, _ in layouts:
        water = label == L["water"]
        if not water.any():
            continue
        with_water += 1
        # In every column all sky and cloud lie above all water: no lake hangs in the sky.
        lowest_sky = np.where(np.isin(label, (L["sky"], L["cloud"])), rows, -1).max(axis=0)
        assert (lowest_sky < np.where(water, rows, 128).min(axis=0)).all()
        # Where water ends inside the picture, land lies below it.
        below = water[:-1] & ~water[1:]
        assert np.isin(label[1:][below], LAND).all()
        lower_shores += bool(below.any())
        ring = ndimage.binary_dilation(water) & ~water  # the pixels touching the water
        beaches += bool((label[ring] == L["sand"]).any())
    assert with_water >= 10  # 25 of the 40
    # Only a river running straight off the bottom edge has no lower shore (1 of 290 over 400 seeds; none here).
    assert lower_shores >= 0.9 * with_water
    # Seas always get a beach, lakes often a sand rim, rivers sometimes sandy banks: 20 of 25 here (75 % over 400
    # seeds). Without sea beaches it would be 12 of 25, without lake rims 11 of 25.
    assert beaches >= 0.6 * with_water


def test_same_seed_same_layout_different_seeds_differ() -> None:
    a = sample_layout(np.random.default_rng(7), (64, 96))
    b = sample_layout(np.random.default_rng(7), (64, 96))
    c = sample_layout(np.random.default_rng(8), (64, 96))
    assert a[0].shape == (64, 96)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("size", [16, 33, (40, 120), (200, 48)])
def test_small_and_odd_sizes(size: int | tuple[int, int]) -> None:
    for seed in range(5):
        label, instance = sample_layout(np.random.default_rng(seed), size)
        expected = (size, size) if isinstance(size, int) else size
        assert label.shape == instance.shape == expected
        assert int(label.max()) < len(LANDSCAPE)


def test_too_small_size_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        sample_layout(np.random.default_rng(0), 8)
