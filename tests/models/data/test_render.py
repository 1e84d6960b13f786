import dataclasses

import numpy as np
import pytest

from common.instances import instances_from_labels
from models.data import FAMILIES, Style, render, sample_layout, sample_style
from models.data.render_maps import checked_maps
from models.data.style import RGB
from models.labels import LANDSCAPE

L = {label.name: label.id for label in LANDSCAPE.labels}
THINGS = LANDSCAPE.thing_ids


def _style(family: str = "day", seed: int = 0, **changes: object) -> Style:
    return dataclasses.replace(sample_style(np.random.default_rng(seed), family), **changes)


def _luma(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) @ np.array([0.3, 0.59, 0.11])


def _blobs(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A hand-painted-looking map: random ellipses of random classes over a random background."""
    label = np.full((h, w), rng.integers(len(LANDSCAPE)), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(25):
        cy, cx, ry, rx = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, h / 3), rng.uniform(2, w / 3)
        label[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = rng.integers(len(LANDSCAPE))
    return label


def test_render_is_deterministic_per_seed() -> None:
    rng = np.random.default_rng(0)
    label, instance = sample_layout(rng, (72, 96))
    style = sample_style(rng)
    img = render(label, instance, style, seed=1)
    assert img.dtype == np.uint8 and img.shape == (72, 96, 3)
    assert img.tobytes() == render(label, instance, style, seed=1).tobytes()
    assert not np.array_equal(img, render(label, instance, style, seed=2))
    assert float(img.std()) > 10  # a picture, not a flat fill


def test_bad_inputs_are_refused_clearly() -> None:
    style = _style()
    label = np.zeros((32, 32), dtype=np.uint8)
    with pytest.raises(ValueError, match="label id 14 is not a landscape id"):
        render(np.full((32, 32), 14), None, style, 0)
    with pytest.raises(ValueError, match="H×W"):
        render(np.zeros((32, 32, 3), dtype=np.uint8), None, style, 0)
    with pytest.raises(ValueError, match="integer ids"):
        render(label.astype(np.float32), None, style, 0)
    with pytest.raises(ValueError, match="instance map must be integer ids shaped like the label map"):
        render(label, np.zeros((16, 16), dtype=np.int32), style, 0)


def test_hand_painted_maps_render_with_and_without_instances() -> None:
    rng = np.random.default_rng(4)
    for k in range(4):
        label = _blobs(rng, 80, 120)
        style = sample_style(rng, FAMILIES[k])
        derived = render(label, None, style, seed=k)
        assert derived.shape == (80, 120, 3)
        # No instance map ≡ the connected components of the thing classes.
        assert (
            derived.tobytes() == render(label, instances_from_labels(label, THINGS), style, seed=k).tobytes()
        )
        # Instance ids missing on some thing pixels are filled in with the connected components of those pixels,
        # kept apart from the given instances (a clash of ids would merge a filled-in tree with a given one).
        partial = instances_from_labels(label, THINGS)
        partial[:, :60] = 0
        thing = np.isin(label, LANDSCAPE.thing_ids)
        missing, given = thing & (partial == 0), thing & (partial > 0)
        assert missing.any() and given.any()
        filled = checked_maps(label, partial)[1]
        assert (filled[thing] > 0).all() and (filled[~thing] == 0).all()
        assert np.intersect1d(filled[missing], filled[given]).size == 0
        components = instances_from_labels(np.where(missing, label, 0), THINGS)[missing]
        pairs = np.unique(np.stack([filled[missing], components]), axis=1)  # one-to-one: the same partition
        assert pairs.shape[1] == np.unique(filled[missing]).size == np.unique(components).size
        # Ids on stuff are ignored: the picture is byte-identical with or without them.
        tagged = np.where(thing, partial, 99)
        assert render(label, tagged, style, k).tobytes() == render(label, partial, style, k).tobytes()


def test_odd_instance_ids_are_renumbered() -> None:
    """One id spanning a tree and a rock, and ids near 2**40, render like clean per-class instances."""
    label = np.full((64, 64), L["grass"], dtype=np.uint8)
    label[:16] = L["sky"]
    label[20:40, 10:30] = L["tree"]
    label[40:50, 10:30] = L["rock"]
    label[30:50, 40:60] = L["house"]
    odd = np.zeros((64, 64), dtype=np.int64)
    odd[20:50, 10:30] = 7  # tree and rock share an id
    odd[30:50, 40:60] = 2**40
    style = _style("day")
    img = render(label, odd, style, seed=0)
    assert img.tobytes() == render(label, None, style, seed=0).tobytes()
    assert _luma(img)[40:50, 10:30].min() > 20  # the rock part is painted, not left black


def _recoloured(style: Style, fill: str, colour: RGB) -> Style:
    """`style` with the colours a `fill` region is painted from set to `colour`: the sky its gradient, trees their
    foliage, every other class its palette entry."""
    if fill == "sky":
        return dataclasses.replace(style, sky_zenith=colour, sky_horizon=colour)
    if fill == "tree":
        return dataclasses.replace(style, foliage=(colour,) * len(style.foliage), conifer=colour)
    palette = list(style.palette)
    palette[L[fill]] = (colour, colour)
    return dataclasses.replace(style, palette=tuple(palette))


@pytest.mark.parametrize("fill", ["sky", "grass", "water", "tree", "snow"])
def test_single_class_maps_render(fill: str) -> None:
    """A one-class map renders as a textured picture painted from that class's colours and no other's."""
    label = np.full((40, 40), L[fill], dtype=np.uint8)
    style = _style("dusk")
    img = render(label, None, style, 0)
    assert img.shape == (40, 40, 3)
    # Textured, not a flat fill: std 8.7 (tree) … 34 (water) here; a flat colour with vignette and grain gives < 3.
    assert float(img.std()) > 5

    # The class's own colours drive the picture: painting them red rather than blue makes it redder (by 29 for
    # water, which mostly mirrors the sky, ≥ 98 for the others) ...
    def redness(colour: RGB) -> float:
        pic = render(label, None, _recoloured(style, fill, colour), 0).astype(np.float64)
        return float((pic[..., 0] - pic[..., 2]).mean())

    assert redness((0.9, 0.1, 0.1)) > redness((0.1, 0.1, 0.9)) + 15
    # ... while no other class's palette entry plays a part.
    grey = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    others_grey = tuple(pair if i == L[fill] else grey for i, pair in enumerate(style.palette))
    assert render(label, None, dataclasses.replace(style, palette=others_grey), 0).tobytes() == img.tobytes()


def _lake_scene() -> np.ndarray:
    """Sky over a mountain on the left half only, then a lake, then dirt."""
    label = np.full((160, 128), L["sky"], dtype=np.uint8)
    label[30:70, :64] = L["mountain"]
    label[70:120] = L["water"]
    label[120:] = L["dirt"]
    return label


def test_water_mirrors_what_stands_above_it() -> None:
    label = _lake_scene()
    for family in ("day", "overcast", "winter"):
        img = render(label, None, _style(family), seed=0).astype(np.float64)
        luma = _luma(img)
        # The mountain's reflection darkens the left half of the lake; the right half mirrors the bright sky.
        assert luma[75:110, 8:56].mean() < luma[75:110, 72:120].mean() - 15
        # Per column, lake brightness follows the brightness of the scene mirrored above it.
        mirrored = luma[40:70, 4:124].mean(axis=0)
        water = luma[72:102, 4:124].mean(axis=0)
        assert np.corrcoef(mirrored, water)[0, 1] > 0.8
        # And the water is closer in colour to the scene above than to the ground below.
        water_mean = img[75:115].reshape(-1, 3).mean(axis=0)
        above = img[30:70].reshape(-1, 3).mean(axis=0)
        below = img[124:].reshape(-1, 3).mean(axis=0)
        assert np.linalg.norm(water_mean - above) < np.linalg.norm(water_mean - below)


def test_water_in_sampled_landscapes_looks_like_the_scene_above() -> None:
    """Sampled lakes, rivers and seas: water is nearer in mean colour to the upright scenery mirrored above it
    (within twice the water's height above its top, meadow and sand excluded: they lie flat and reflect nothing)
    than to the shore just below it."""
    flat = [L[name] for name in ("water", "grass", "flowers", "sand", "dirt")]
    closer, tried, seed = 0, 0, 0
    while tried < 12:
        rng = np.random.default_rng(seed)
        seed += 1
        label, instance = sample_layout(rng, 96)
        water = label == L["water"]
        if water.mean() < 0.03:
            continue
        img = render(label, instance, sample_style(rng), seed).astype(np.float64)
        rows = np.arange(96)[:, None]
        top = np.where(water, rows, 96).min(axis=0)  # first and last water row per column
        bottom = np.where(water, rows, -1).max(axis=0)
        height = np.clip(bottom - top + 1, 0, None)
        has_water = water.any(axis=0)[None, :]
        above = (rows < top) & (rows >= top - 2 * height) & ~np.isin(label, flat) & has_water
        below = (rows > bottom) & (rows <= bottom + 8) & ~water & has_water
        if not above.any() or not below.any():
            continue
        tried += 1
        w, a, b = img[water].mean(axis=0), img[above].mean(axis=0), img[below].mean(axis=0)
        closer += np.linalg.norm(w - a) < np.linalg.norm(w - b)
    assert closer >= 10


def test_haze_grows_towards_the_horizon() -> None:
    label = np.full((200, 160), L["grass"], dtype=np.uint8)
    label[:50] = L["sky"]
    img = render(label, None, _style("day", haze_strength=0.8), seed=0).astype(np.float64)
    horizon_sky = img[44:50].reshape(-1, 3).mean(axis=0)
    far = img[52:60].reshape(-1, 3).mean(axis=0)
    near = img[190:].reshape(-1, 3).mean(axis=0)
    assert np.linalg.norm(far - horizon_sky) < 0.5 * np.linalg.norm(near - horizon_sky)
    # Without haze the far ground keeps its own colour.
    clear = render(label, None, _style("day", haze_strength=0.0), seed=0).astype(np.float64)
    clear_far = clear[52:60].reshape(-1, 3).mean(axis=0)
    assert np.linalg.norm(clear_far - horizon_sky) > np.linalg.norm(far - horizon_sky)


def test_class_borders_are_soft_but_regions_stay_distinct() -> None:
    label = np.full((96, 96), L["snow"], dtype=np.uint8)
    label[:, 48:] = L["dirt"]
    for y in range(48, 96):  # a 1-px staircase on the lower half: snow left of column y, dirt from y on
        label[y, :y] = L["snow"]
        label[y, y:] = L["dirt"]
    luma = _luma(render(label, None, _style("day"), seed=0))
    left, right = luma[:48, 36:44].mean(), luma[:48, 52:60].mean()
    step = left - right
    assert step > 60  # snow stays bright, dirt dark: regions remain recognisable
    # Both pixels at the border are intermediate between the two sides.
    margin = 0.05 * step  # bright snow sits in the highlight shoulder, which compresses differences
    for col in (47, 48):
        assert right + margin < luma[:48, col].mean() < left - margin
    # Along the staircase, the snow pixel just left of each step is blended too.
    stair = np.array([luma[y, y - 1] for y in range(50, 94)])
    inside = np.array([luma[y, y - 6] for y in range(50, 94)])
    assert stair.mean() < inside.mean() - margin


def test_trees_have_trunks_below_their_crowns() -> None:
    label = np.full((120, 100), L["grass"], dtype=np.uint8)
    label[:20] = L["sky"]
    yy, xx = np.mgrid[0:120, 0:100]
    crown = (yy >= 30) & (yy < 90) & (np.abs(xx - 50) < (yy - 30) * 0.45 + 1)
    trunk = (yy >= 90) & (yy < 108) & (np.abs(xx - 50) <= 2)
    label[crown | trunk] = L["tree"]
    img = render(label, None, _style("day"), seed=0).astype(np.float64)
    redness = img[..., 0] - img[..., 1]
    assert redness[trunk].mean() > redness[crown].mean() + 15  # brown trunk, green crown
    # A round painted blob gets a trunk peeking out at its bottom.
    blob = np.full((120, 100), L["grass"], dtype=np.uint8)
    blob[:20] = L["sky"]
    blob[(yy - 60) ** 2 + (xx - 50) ** 2 < 30**2] = L["tree"]
    img = render(blob, None, _style("day"), seed=0).astype(np.float64)
    bottom = (blob == L["tree"]) & (yy > 82) & (np.abs(xx - 50) <= 2)
    top = (blob == L["tree"]) & (yy < 60)
    assert (img[..., 0] - img[..., 1])[bottom].mean() > (img[..., 0] - img[..., 1])[top].mean() + 15


def test_houses_have_a_roof_and_windows() -> None:
    label = np.full((120, 120), L["grass"], dtype=np.uint8)
    label[:30] = L["sky"]
    yy, xx = np.mgrid[0:120, 0:120]
    walls = (yy >= 60) & (yy < 100) & (np.abs(xx - 60) <= 30)
    roof = (yy >= 35) & (yy < 60) & (np.abs(xx - 60) <= 34 * (yy - 35) / 25)
    label[walls | roof] = L["house"]
    img = render(label, None, _style("day"), seed=3).astype(np.float64)
    roof_mean = img[roof & (yy < 55)].mean(axis=0)
    wall_mean = img[walls & (yy > 70)].mean(axis=0)
    assert np.linalg.norm(roof_mean - wall_mean) > 30
    wall_luma = _luma(img)[walls & (yy > 66) & (yy < 80)]
    assert (wall_luma < 0.6 * np.median(wall_luma)).mean() > 0.03  # dark window panes in the wall
    # At night the windows glow: the brightest wall pixels are warm and bright.
    night = render(label, None, _style("night"), seed=3).astype(np.float64)
    lit = night[walls][_luma(night)[walls] > 120]
    assert len(lit) > 10 and (lit[:, 0] > lit[:, 2]).all()


@pytest.mark.parametrize("azimuth", [-1.0, 1.0])
def test_clouds_are_lit_from_the_sun_side(azimuth: float) -> None:
    label = np.full((120, 160), L["sky"], dtype=np.uint8)
    yy, xx = np.mgrid[0:120, 0:160]
    label[((yy - 40) / 18) ** 2 + ((xx - 80) / 40) ** 2 < 1] = L["cloud"]
    label[80:] = L["grass"]
    img = render(label, None, _style("day", sun_azimuth=azimuth, sun_elevation=40.0), seed=0)
    luma = _luma(img)
    cloud = label == L["cloud"]
    left, right = luma[cloud & (xx < 70)].mean(), luma[cloud & (xx > 90)].mean()
    assert (right - left) * azimuth > 5


def test_snow_caps_are_bright_and_mountain_flanks_are_shaded() -> None:
    label = np.full((120, 160), L["sky"], dtype=np.uint8)
    yy, xx = np.mgrid[0:120, 0:160]
    mountain = (yy >= 20 + np.abs(xx - 80) * 0.9) & (yy < 80)
    label[mountain] = L["mountain"]
    label[mountain & (yy < 40)] = L["snow"]
    label[80:] = L["grass"]
    img = render(label, None, _style("day", sun_azimuth=-1.0, sun_elevation=30.0, haze_strength=0.0), seed=0)
    luma = _luma(img)
    assert luma[label == L["snow"]].mean() > luma[label == L["mountain"]].mean() + 40
    rock = label == L["mountain"]
    sunny, shady = luma[rock & (xx < 70)].mean(), luma[rock & (xx > 90)].mean()
    assert sunny > shady + 8  # the flank facing the sun (left) is lit


def test_families_are_told_apart_by_colour_statistics() -> None:
    """Nearest-centroid on per-channel mean/std colour, leave-one-out over random layouts: families separate."""
    feats, fams = [], []
    for f, family in enumerate(FAMILIES):
        for i in range(12):
            rng = np.random.default_rng(100 * f + i)
            label, instance = sample_layout(rng, 48)
            img = render(label, instance, sample_style(rng, family), i).reshape(-1, 3) / 255.0
            feats.append(np.concatenate([img.mean(axis=0), img.std(axis=0)]))
            fams.append(f)
    x, y = np.array(feats), np.array(fams)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    correct = 0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        centres = np.array([x[keep & (y == f)].mean(axis=0) for f in range(len(FAMILIES))])
        correct += int(np.argmin(((centres - x[i]) ** 2).sum(axis=1)) == y[i])
    assert correct / len(y) >= 0.8


def test_bushes_carry_berries_unless_snowed_on_and_other_classes_keep_their_pixels() -> None:
    """Bushes (textured from their own generator, Scene.own_rng) are dotted with berry-red clumps in a green
    style and snow-topped instead in winter; the grass around them is painted from the picture's shared noise,
    which the bush painter does not consume, so it is the same as on a map where that bush is grass."""
    label = np.full((128, 128), L["grass"], np.uint8)
    label[:40] = L["sky"]
    label[70:110, 20:100] = L["bush"]
    day, winter = _style("day"), _style("winter")
    red = lambda img: (img[..., 0] > 1.6 * img[..., 1]) & (img[..., 0] > 1.6 * img[..., 2])  # noqa: E731
    bush = label == L["bush"]
    assert red(render(label, None, day, 3))[bush].mean() > 0.01
    assert red(render(label, None, winter, 3))[bush].mean() < 0.001
    no_bush = np.where(bush, L["grass"], label).astype(np.uint8)
    far = np.zeros_like(bush)
    far[:60] = True  # away from the bush's contact shadow and edge blend
    assert np.array_equal(render(label, None, day, 3)[far], render(no_bush, None, day, 3)[far])
