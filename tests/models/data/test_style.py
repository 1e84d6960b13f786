import dataclasses

import numpy as np
import pytest

from models.data.style import FAMILIES, Style, sample_style
from models.labels import LANDSCAPE


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
