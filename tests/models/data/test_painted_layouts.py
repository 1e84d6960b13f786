"""The painted layout sampler: valid maps, instances as the studio derives them, determinism, and a mixture that
really paints each feature it lists (counted on the maps themselves, not on the sampler's choices)."""

from collections import Counter

import numpy as np
import pytest
from scipy import ndimage

from common.instances import instances_from_labels
from models.data import FAMILIES, render, sample_layout, sample_style
from models.data import painted_layouts as pl
from models.data.painted_layouts import sample_painted_layout
from models.labels import LANDSCAPE

SIZE = 64
MAPS = 400
ID = {label.name: label.id for label in LANDSCAPE.labels}
THINGS = LANDSCAPE.thing_ids
GROUND = [ID[n] for n in ("grass", "flowers", "hill", "snow", "sand", "dirt")]


@pytest.fixture(scope="module")
def maps() -> list[tuple[np.ndarray, np.ndarray]]:
    return [sample_painted_layout(np.random.default_rng(seed), SIZE) for seed in range(MAPS)]


def _above(labels: np.ndarray, upper: int, lower: int) -> bool:
    """Some column holds `upper` somewhere above `lower`."""
    seen = np.maximum.accumulate(labels == upper, axis=0)
    return bool((seen[:-1] & (labels[1:] == lower)).any())


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """Each 4-connected component of `mask`, cropped to its box."""
    found, _ = ndimage.label(mask)
    return [found[box] == i + 1 for i, box in enumerate(ndimage.find_objects(found)) if box is not None]


def _triangle_like(part: np.ndarray) -> bool:
    """A peak of at most 3 px over straight flanks: each side's edge within a pixel of a line from the peak down
    to the widest row (painted triangles; fractal ridges stray from any line)."""
    widths = part.sum(axis=1)
    bottom = int(widths.argmax())
    if bottom < 9 or widths[0] > 3:
        return False
    rows, top = np.arange(bottom + 1), part[: bottom + 1]
    left = top.argmax(axis=1)
    right = top.shape[1] - 1 - top[:, ::-1].argmax(axis=1)
    for edge in (left, right):
        fit = np.polyval(np.polyfit(rows, edge, 1), rows)
        if np.abs(edge - fit).max() > 1.5:
            return False
    return True


def _roofed(part: np.ndarray) -> bool:
    """A house whose top rows are much narrower than its walls: a roof."""
    widths = part.sum(axis=1)
    return part.shape[0] >= 4 and widths[0] <= 0.5 * widths.max() and widths[-1] == widths.max()


def _thin_and_long(part: np.ndarray, h: int, w: int) -> bool:
    """A brush stroke: at least 30 % of the height, on average under a fifth of the width wide."""
    return part.shape[0] >= 0.3 * h and part.sum() / part.shape[0] <= 0.2 * w


def features(labels: np.ndarray) -> set[str]:
    """What a map shows, read off its labels alone."""
    h, w = labels.shape
    classes = set(np.unique(labels).tolist())
    found = set()
    if len(classes) == 1:
        found.add("one class")
        found |= {"all sky"} if classes == {ID["sky"]} else set()
    if len(classes) == 2:
        found.add("two classes")
    if ID["sky"] not in classes and len(classes) > 2:
        found.add("no sky")
    bottom = Counter(labels[-1].tolist()).most_common(1)[0][0]
    if labels[0].tolist().count(ID["sky"]) > w / 2 and bottom in (ID["water"], ID["mountain"]):
        found.add("no ground (water or mountain to the bottom edge)")
    if bottom == ID["snow"]:
        found.add("snow meadow")
    water, snow = labels == ID["water"], labels == ID["snow"]
    if (water & ndimage.binary_dilation(snow)).any():
        found.add("winter water (water against snow)")
    if _above(labels, ID["water"], ID["sky"]):
        found.add("water above sky")
    if _above(labels, ID["grass"], ID["sky"]):
        found.add("grass above sky")
    peaks = np.isin(labels, [ID["mountain"], ID["snow"]])
    if any(_triangle_like(part) for part in _components(peaks)):
        found.add("triangle-like mountain")
    if (snow[:-1] & (labels[1:] == ID["mountain"])).any():
        found.add("snow cap")
    if any(_roofed(part) for part in _components(labels == ID["house"])):
        found.add("house with a roof")
    for name in ("tree", "house"):
        if any(part.all() and part.size >= 6 for part in _components(labels == ID[name])):
            found.add(f"rectangle {name}")
    if any(_thin_and_long(part, h, w) for part in _components(labels == ID["dirt"])):
        found.add("dirt path (stroke)")
    if any(_thin_and_long(part, h, w) and part[-1].any() for part in _components(water)):
        found.add("river (stroke)")
    for name in ("cloud", "flowers", "bush", "rock", "tree"):
        if ID[name] in classes:
            found.add(name)
    return found


# Each feature the issue lists, and the least number of the MAPS maps that must show it: about half of what the
# mixture gives at 64² (the maps are a function of their seeds, so the counts are exact, not noisy; the half
# leaves room to retune the weights).
FEATURE_MINIMUM = {
    "one class": 15,
    "all sky": 3,
    "two classes": 22,
    "no sky": 12,
    "no ground (water or mountain to the bottom edge)": 14,
    "snow meadow": 13,
    "winter water (water against snow)": 9,
    "water above sky": 11,
    "grass above sky": 5,
    "triangle-like mountain": 30,
    "snow cap": 60,
    "house with a roof": 40,
    "rectangle tree": 24,
    "rectangle house": 20,
    "dirt path (stroke)": 22,
    "river (stroke)": 22,
    "cloud": 94,
    "flowers": 85,
    "bush": 83,
    "rock": 76,
    "tree": 118,
}


def test_the_mixture_paints_every_listed_feature(maps: list[tuple[np.ndarray, np.ndarray]]) -> None:
    counts = Counter(f for labels, _ in maps for f in features(labels))
    short = {f: (counts[f], least) for f, least in FEATURE_MINIMUM.items() if counts[f] < least}
    assert not short, f"features painted too rarely (found, least) of {MAPS}: {short}"


def test_procedural_layouts_have_no_triangle_mountains_nor_odd_orders() -> None:
    """The detectors above tell the two samplers apart (else their counts would prove nothing)."""
    counts = Counter(
        f for seed in range(60) for f in features(sample_layout(np.random.default_rng(seed), SIZE)[0])
    )
    for odd in ("water above sky", "grass above sky", "one class", "no sky", "triangle-like mountain"):
        assert counts[odd] <= 2, odd


def test_maps_hold_landscape_ids_and_instances_exactly_on_things(
    maps: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    for labels, instances in maps:
        assert labels.dtype == np.uint8 and labels.shape == (SIZE, SIZE) and labels.flags.c_contiguous
        assert instances.dtype == np.int32 and instances.shape == (SIZE, SIZE)
        assert int(labels.max()) < len(LANDSCAPE)
        assert np.array_equal(instances > 0, np.isin(labels, THINGS))
        ids = np.unique(instances[instances > 0])
        assert np.array_equal(ids, np.arange(1, len(ids) + 1))  # 1..K
        for i in ids:
            assert len(np.unique(labels[instances == i])) == 1  # one class per instance
        # The studio's instances: touching things of a class are one, as the server derives them.
        assert np.array_equal(instances, instances_from_labels(labels, THINGS))


def test_same_seed_same_map_and_other_seeds_differ() -> None:
    a = sample_painted_layout(np.random.default_rng(11), (48, 80))
    b = sample_painted_layout(np.random.default_rng(11), (48, 80))
    assert a[0].shape == (48, 80)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    others = [sample_painted_layout(np.random.default_rng(s), (48, 80))[0] for s in range(12, 20)]
    assert not any(np.array_equal(a[0], o) for o in others)


@pytest.mark.parametrize("size", [16, (16, 40), (100, 20), 257])
def test_small_and_odd_sizes(size: int | tuple[int, int]) -> None:
    for seed in range(40):
        labels, instances = sample_painted_layout(np.random.default_rng(seed), size)
        shape = (size, size) if isinstance(size, int) else size
        assert labels.shape == instances.shape == shape


def test_too_small_size_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        sample_painted_layout(np.random.default_rng(0), (15, 64))


def test_every_mixture_table_is_a_set_of_shares() -> None:
    tables = {n: v for n, v in vars(pl).items() if n.isupper() and isinstance(v, dict) and n != "ID"}
    assert {"SCENES", "MOUNTAINS", "TREE_SHAPES", "ONE_CLASS"} <= set(tables)
    for name, table in tables.items():
        assert all(v > 0 for v in table.values()), name
        assert sum(table.values()) == pytest.approx(1.0), name


def test_painted_maps_render() -> None:
    """The renderer takes them as any map: a picture of the map's size, not a flat fill."""
    for seed in range(len(FAMILIES)):
        rng = np.random.default_rng(seed)
        labels, instances = sample_painted_layout(rng, 40)
        image = render(labels, instances, sample_style(rng, FAMILIES[seed]), seed)
        assert image.shape == (40, 40, 3) and image.dtype == np.uint8
