import colorsys
import dataclasses
import hashlib

import numpy as np
import pytest

from models.data.style import (
    FAMILIES,
    GROUND,
    WATER_GAP,
    Style,
    recolor,
    sample_free_style,
    sample_style,
)
from models.labels import LANDSCAPE

GRASS, WATER = LANDSCAPE["grass"].id, LANDSCAPE["water"].id


def _colors(style: Style) -> list[tuple[float, float, float]]:
    out = [style.sun_color, style.ambient_color, style.sky_zenith, style.sky_horizon, style.haze_color]
    out += [c for pair in style.palette for c in pair] + list(style.foliage) + list(style.walls)
    return out


def test_required_families_exist() -> None:
    assert len(FAMILIES) >= 6
    assert {"day", "golden-hour", "overcast", "dusk", "winter", "autumn"} <= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_samples_valid_styles(family: str) -> None:
    style = sample_style(np.random.default_rng(0), family)
    assert style.family == family
    assert len(style.palette) == len(LANDSCAPE)
    assert -1.0 <= style.sun_azimuth <= 1.0 and -10 < style.sun_elevation < 90
    assert 0.0 <= style.haze_strength <= 1.0
    for color in _colors(style):
        assert len(color) == 3 and all(0.0 <= c <= 1.0 for c in color)
    with pytest.raises(dataclasses.FrozenInstanceError):
        style.family = "other"  # type: ignore[misc]


def test_family_character() -> None:
    rng = np.random.default_rng(1)
    by = {f: sample_style(rng, f) for f in FAMILIES}
    assert by["golden-hour"].sun_elevation < 15 < by["day"].sun_elevation  # low sun
    assert by["golden-hour"].sky_horizon[0] > by["golden-hour"].sky_horizon[2]  # warm horizon
    assert by["dusk"].sky_zenith[2] > by["dusk"].sky_zenith[1]  # purple-blue zenith
    assert by["dusk"].sky_horizon[0] > 0.8 > by["dusk"].sky_horizon[2] + 0.3  # orange horizon
    assert by["overcast"].sun_strength < 0.3 * by["day"].sun_strength
    assert np.ptp(by["overcast"].sky_zenith) < 0.15  # grey
    assert min(by["winter"].palette[LANDSCAPE["grass"].id][0]) > 0.8  # snowy meadows
    assert by["winter"].snow_cover > 0.5 and by["day"].snow_cover == 0
    autumn_leaf = np.mean(by["autumn"].foliage, axis=0)
    assert autumn_leaf[0] > autumn_leaf[1] > autumn_leaf[2]  # orange/red crowns
    day_leaf = np.mean(by["day"].foliage, axis=0)
    assert day_leaf[1] > day_leaf[0]  # green crowns
    assert max(by["night"].sky_zenith) < 0.15 and by["night"].stars > 0


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown style family 'noon'"):
        sample_style(np.random.default_rng(0), "noon")


def test_random_family_covers_all_and_is_deterministic() -> None:
    rng = np.random.default_rng(2)
    assert {sample_style(rng).family for _ in range(200)} == set(FAMILIES)
    assert sample_style(np.random.default_rng(9)) == sample_style(np.random.default_rng(9))


def test_styles_vary_within_a_family() -> None:
    rng = np.random.default_rng(3)
    a, b = sample_style(rng, "day"), sample_style(rng, "day")
    assert a != b
    assert a.sun_azimuth != b.sun_azimuth and a.palette != b.palette


# ---------------------------------------------------------------------------------------------------------
# The family draws stay what they were; free styles leave the families


# The fields Style had before free styles.
FAMILY_FIELDS = [f.name for f in dataclasses.fields(Style) if f.name != "free"]
# Recorded from the code before free styles existed: sha256 of the repr of every family field, and of the next
# draw (render_sample's render seed), for seeds 0..4 and every family plus a random one.
FAMILY_DRAWS = "4f4b14b628ca83ef89202fe811ca9d1a28acedcba55217cc4828a40b444afe7d"


def test_family_draws_are_those_of_the_code_before_free_styles() -> None:
    digest = hashlib.sha256()
    for seed in range(5):
        for family in (*FAMILIES, None):
            rng = np.random.default_rng(seed)
            style = sample_style(rng, family)
            assert not style.free
            digest.update(repr(tuple(getattr(style, name) for name in FAMILY_FIELDS)).encode())
            digest.update(repr(int(rng.integers(2**31))).encode())
    assert digest.hexdigest() == FAMILY_DRAWS
    day = sample_style(np.random.default_rng(0), "day")  # the same record, readable
    assert day.sky_zenith == (0.19074883018820038, 0.4385291999543003, 0.8307700527536269)
    assert day.palette[GRASS][0] == (0.41932864175080914, 0.6719613049155201, 0.20061610935377816)


def _free_styles(n: int = 300, seed: int = 0) -> list[Style]:
    rng = np.random.default_rng(seed)
    return [sample_free_style(rng, FAMILIES[i % len(FAMILIES)]) for i in range(n)]


def _family_styles(n: int = 300, seed: int = 0) -> list[Style]:
    rng = np.random.default_rng(seed)
    return [sample_style(rng, FAMILIES[i % len(FAMILIES)]) for i in range(n)]


def _hls(color: tuple[float, float, float]) -> tuple[float, float, float]:
    return colorsys.rgb_to_hls(*color)


def test_free_styles_are_in_range_and_start_from_their_family() -> None:
    for i, style in enumerate(_free_styles(70)):
        assert style.free and style.family == FAMILIES[i % len(FAMILIES)]
        assert len(style.palette) == len(LANDSCAPE)
        for color in [*_colors(style), style.cloud_shadow, style.conifer]:
            assert len(color) == 3 and all(0.0 <= c <= 1.0 for c in color)
        assert _hls(style.sky_horizon)[1] >= _hls(style.sky_zenith)[1]  # horizon at least as light as zenith
    free, base = (
        sample_free_style(np.random.default_rng(5), "dusk"),
        sample_style(np.random.default_rng(5), "dusk"),
    )
    assert free == sample_free_style(np.random.default_rng(5), "dusk")  # same generator state, same style
    # Light, grading, houses and the classes it leaves alone are the family draw's.
    for name in ("sun_azimuth", "sun_elevation", "sun_color", "walls", "roofs", "tint", "exposure", "window"):
        assert getattr(free, name) == getattr(base, name)
    for name in ("mountain", "snow", "cloud", "rock", "house"):
        assert free.palette[LANDSCAPE[name].id] == base.palette[LANDSCAPE[name].id]
    assert sample_free_style(np.random.default_rng(2)).family in FAMILIES  # a random family to start from


def test_recolouring_keeps_lightness_so_classes_keep_their_contrast() -> None:
    grass = (0.42, 0.64, 0.2)
    (h, lightness, s), (h2, l2, s2) = _hls(grass), _hls(recolor(grass, 0.5, 1.3))
    assert abs((h2 - h) % 1.0 - 0.5) < 1e-9 and abs(l2 - lightness) < 1e-9 and abs(s2 - 1.3 * s) < 1e-9
    assert max(recolor((0.9, 0.1, 0.1), 0.3, 5.0)) <= 1.0  # saturation clipped, channels in [0, 1]
    for seed, family in enumerate(FAMILIES):
        free = sample_free_style(np.random.default_rng(seed), family)
        base = sample_style(np.random.default_rng(seed), family)  # the draw it started from
        for name in (*GROUND, "water"):
            pairs = zip(free.palette[LANDSCAPE[name].id], base.palette[LANDSCAPE[name].id], strict=True)
            assert all(abs(_hls(new)[1] - _hls(old)[1]) < 1e-9 for new, old in pairs), (family, name)


def _spread(hues: np.ndarray) -> float:
    """Mean resultant length of hues (turns): 1 = all one hue, ≈ 0 = spread round the circle."""
    return float(abs(np.exp(2j * np.pi * hues).mean()))


def test_free_hues_spread_round_the_circle_and_grass_keeps_away_from_water() -> None:
    free, families = _free_styles(), _family_styles()
    picks = {
        "grass": lambda st: st.palette[GRASS][0],
        "water": lambda st: st.palette[WATER][0],
        "sky zenith": lambda st: st.sky_zenith,
    }
    # The seven families' hues cluster (measured: grass 0.72, water 0.998, zenith 0.96); free ones do not
    # (0.021, 0.041, 0.040; uniform hues give ≈ 0.05 at n = 300) and fill every 30° sector.
    floor = {"grass": 0.65, "water": 0.95, "sky zenith": 0.9}
    for name, pick in picks.items():
        family_hues = np.array([_hls(pick(st))[0] for st in families])
        free_hues = np.array([_hls(pick(st))[0] for st in free])
        assert _spread(family_hues) > floor[name], name
        assert _spread(free_hues) < 0.1, name
        assert len(set((free_hues * 12).astype(int))) == 12, name
    gaps = np.array([(_hls(st.palette[GRASS][0])[0] - _hls(st.palette[WATER][0])[0]) % 1.0 for st in free])
    assert WATER_GAP[0] - 1e-9 <= gaps.min() and gaps.max() <= WATER_GAP[1] + 1e-9  # ≥ 72° apart, both ways
