"""Render styles: light, sky, haze and palette of one landscape picture, sampled from named families.

A family (day, golden-hour, overcast, dusk, winter, autumn, night) fixes the mood — sun height and colour, sky
gradient, haze, how the classes are coloured — and every sample jitters it (sun direction, hues, haze, exposure),
so a family is a cloud of styles rather than one preset. The families are kept far apart in mean/std colour so the
style encoder and the style-fidelity evaluation have something unambiguous to learn and to measure.

Seven clouds are all a style encoder trained on them can tell apart: a photo with an orange sky over purple hills
lands on the nearest family. `sample_free_style` fills the space between and beyond them: a family style whose sky
gradient is drawn afresh and whose sky, water and ground are rotated round the hue circle (`recolor`). The family
draws stay exactly what they were for the same generator (held-out sets and committed figures depend on them).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from models.labels import LANDSCAPE

RGB = tuple[float, float, float]  # display colour, channels in [0, 1]

FAMILIES: tuple[str, ...] = ("day", "golden-hour", "overcast", "dusk", "winter", "autumn", "night")


@dataclass(frozen=True)
class Style:
    family: str  # one of FAMILIES
    sun_azimuth: float  # −1 … 1: sun towards the left … right image edge; sets the lit side of everything
    sun_elevation: float  # degrees above the horizon (negative: just set); low sun → long warm light, glow
    sun_color: RGB  # direct light colour
    sun_strength: float  # direct light relative to sky light (overcast ≈ 0.12, clear day ≈ 0.85)
    ambient_color: RGB  # sky light reaching the shadows
    sky_zenith: RGB  # sky colour at the top of the image
    sky_horizon: RGB  # sky colour at the horizon
    sun_glow: float  # strength of the glow around the sun in the sky and the haze
    haze_color: RGB  # colour distant things fade into
    haze_strength: float  # 0 … 1: how far the farthest ground fades into the haze
    cloud_light: RGB  # sun-facing side of clouds
    cloud_shadow: RGB  # underside / far side of clouds
    palette: tuple[tuple[RGB, RGB], ...]  # per landscape id: (main, secondary) albedo, mixed by texture noise
    foliage: tuple[RGB, ...]  # broadleaf crown colours, one picked per tree
    conifer: RGB  # needle trees
    trunk: RGB
    flowers: tuple[RGB, ...]  # flower dot colours
    walls: tuple[RGB, ...]  # house wall colours, one picked per house
    roofs: tuple[RGB, ...]
    window: RGB  # window glass; bright (≥ 0.5 in a channel) means lit rooms that glow
    snow_cover: float  # 0 … 1: snow on tree crowns, rocks and roofs
    stars: float  # 0 … 1: star density in the night sky (> 0 also turns the sun disc into the moon)
    tint: RGB  # final grading: white balance multiplier (warm autumn, cool winter)
    saturation: float  # 1 = unchanged
    contrast: float
    exposure: float
    free: bool = False  # recoloured by sample_free_style: `family` is then only the family it started from


# Day albedos per landscape class: (main, secondary). Families override some of them.
_PALETTE: dict[str, tuple[RGB, RGB]] = {
    "sky": ((0.4, 0.6, 0.9), (0.7, 0.8, 0.95)),
    "cloud": ((0.97, 0.97, 0.98), (0.8, 0.82, 0.86)),
    "mountain": ((0.44, 0.42, 0.44), (0.3, 0.28, 0.27)),
    "snow": ((0.9, 0.92, 0.96), (0.76, 0.81, 0.9)),
    "rock": ((0.55, 0.53, 0.5), (0.38, 0.36, 0.33)),
    "hill": ((0.36, 0.5, 0.2), (0.24, 0.38, 0.16)),
    "grass": ((0.42, 0.64, 0.2), (0.3, 0.5, 0.13)),
    "flowers": ((0.42, 0.62, 0.22), (0.3, 0.5, 0.14)),
    "tree": ((0.26, 0.46, 0.14), (0.15, 0.3, 0.1)),
    "bush": ((0.24, 0.44, 0.17), (0.15, 0.3, 0.12)),
    "sand": ((0.88, 0.8, 0.6), (0.76, 0.66, 0.47)),
    "dirt": ((0.52, 0.4, 0.27), (0.4, 0.3, 0.2)),
    "water": ((0.1, 0.26, 0.36), (0.2, 0.42, 0.48)),
    "house": ((0.85, 0.82, 0.76), (0.5, 0.2, 0.14)),
}

_COMMON: dict[str, Any] = dict(
    sun_azimuth=(-1.0, 1.0),
    foliage=((0.28, 0.5, 0.14), (0.22, 0.42, 0.12), (0.34, 0.54, 0.18), (0.2, 0.38, 0.16)),
    conifer=(0.12, 0.28, 0.16),
    trunk=(0.3, 0.22, 0.15),
    flowers=((0.98, 0.88, 0.2), (0.98, 0.98, 0.96), (0.9, 0.3, 0.6), (0.62, 0.42, 0.92), (0.95, 0.3, 0.2)),
    walls=((0.92, 0.9, 0.84), (0.88, 0.78, 0.58), (0.66, 0.26, 0.2), (0.72, 0.72, 0.74), (0.92, 0.86, 0.6)),
    roofs=((0.58, 0.2, 0.13), (0.3, 0.29, 0.32), (0.42, 0.26, 0.16), (0.22, 0.27, 0.33)),
    window=(0.12, 0.16, 0.2),
    snow_cover=0.0,
    stars=0.0,
    tint=(1.0, 1.0, 1.0),
    saturation=1.0,
    contrast=1.0,
    exposure=1.0,
)

# Each family: Style fields (a (lo, hi) pair for a scalar means "uniform in that range") plus palette overrides.
_FAMILY: dict[str, dict[str, Any]] = {
    "day": dict(
        sun_elevation=(30.0, 65.0), sun_color=(1.0, 0.97, 0.9), sun_strength=0.85, ambient_color=(0.5, 0.58, 0.72),
        sky_zenith=(0.2, 0.45, 0.88), sky_horizon=(0.68, 0.82, 0.96), sun_glow=0.25,
        haze_color=(0.72, 0.82, 0.95), haze_strength=(0.3, 0.55),
        cloud_light=(1.0, 1.0, 1.0), cloud_shadow=(0.66, 0.7, 0.78),
    ),
    "golden-hour": dict(
        sun_azimuth=(-0.8, 0.8), sun_elevation=(3.0, 12.0), sun_color=(1.0, 0.66, 0.3), sun_strength=1.0,
        ambient_color=(0.42, 0.36, 0.42), sky_zenith=(0.36, 0.48, 0.72), sky_horizon=(1.0, 0.72, 0.36),
        sun_glow=0.9, haze_color=(1.0, 0.74, 0.45), haze_strength=(0.45, 0.7),
        cloud_light=(1.0, 0.8, 0.5), cloud_shadow=(0.55, 0.42, 0.45), saturation=1.1, tint=(1.08, 0.97, 0.82),
        palette={"grass": ((0.5, 0.62, 0.2), (0.36, 0.48, 0.14))},
    ),
    "overcast": dict(
        sun_elevation=(25.0, 50.0), sun_color=(0.9, 0.9, 0.9), sun_strength=0.12, ambient_color=(0.8, 0.81, 0.83),
        sky_zenith=(0.56, 0.58, 0.61), sky_horizon=(0.76, 0.77, 0.78), sun_glow=0.0,
        haze_color=(0.74, 0.75, 0.76), haze_strength=(0.5, 0.75),
        cloud_light=(0.8, 0.8, 0.82), cloud_shadow=(0.48, 0.49, 0.52), saturation=0.55, contrast=0.85,
    ),
    "dusk": dict(
        sun_azimuth=(-0.7, 0.7), sun_elevation=(-3.0, 2.0), sun_color=(1.0, 0.42, 0.3), sun_strength=0.5,
        ambient_color=(0.3, 0.24, 0.42), sky_zenith=(0.14, 0.12, 0.34), sky_horizon=(0.98, 0.46, 0.32),
        sun_glow=1.0, haze_color=(0.62, 0.38, 0.5), haze_strength=(0.45, 0.7),
        cloud_light=(1.0, 0.55, 0.4), cloud_shadow=(0.3, 0.2, 0.36), window=(1.0, 0.75, 0.35), exposure=0.75,
    ),
    "winter": dict(
        sun_elevation=(12.0, 30.0), sun_color=(1.0, 0.97, 0.95), sun_strength=0.6, ambient_color=(0.62, 0.7, 0.86),
        sky_zenith=(0.42, 0.6, 0.86), sky_horizon=(0.86, 0.9, 0.97), sun_glow=0.2,
        haze_color=(0.84, 0.88, 0.96), haze_strength=(0.35, 0.6),
        cloud_light=(1.0, 1.0, 1.0), cloud_shadow=(0.7, 0.75, 0.84),
        foliage=((0.48, 0.42, 0.34), (0.54, 0.48, 0.4), (0.42, 0.36, 0.3)), conifer=(0.1, 0.22, 0.16),
        roofs=((0.9, 0.92, 0.96),), flowers=((0.36, 0.28, 0.2), (0.48, 0.4, 0.3)), snow_cover=1.0,
        saturation=0.85, tint=(0.94, 1.0, 1.08),
        palette={
            "grass": ((0.87, 0.9, 0.96), (0.74, 0.8, 0.9)),
            "flowers": ((0.87, 0.9, 0.96), (0.74, 0.8, 0.9)),
            "hill": ((0.87, 0.9, 0.96), (0.74, 0.8, 0.9)),
            "bush": ((0.4, 0.36, 0.34), (0.3, 0.27, 0.26)),
            "dirt": ((0.55, 0.5, 0.48), (0.42, 0.38, 0.36)),
            "water": ((0.22, 0.32, 0.42), (0.5, 0.6, 0.7)),
            "mountain": ((0.5, 0.52, 0.58), (0.36, 0.38, 0.44)),
        },
    ),
    "autumn": dict(
        sun_elevation=(18.0, 38.0), sun_color=(1.0, 0.86, 0.64), sun_strength=0.85, ambient_color=(0.5, 0.52, 0.6),
        sky_zenith=(0.16, 0.36, 0.78), sky_horizon=(0.78, 0.8, 0.84), sun_glow=0.3,
        haze_color=(0.86, 0.8, 0.7), haze_strength=(0.3, 0.55),
        cloud_light=(1.0, 0.98, 0.94), cloud_shadow=(0.66, 0.66, 0.72),
        foliage=((0.86, 0.45, 0.08), (0.8, 0.22, 0.08), (0.92, 0.7, 0.12), (0.62, 0.18, 0.08), (0.75, 0.55, 0.1)),
        flowers=((0.62, 0.42, 0.86), (0.96, 0.95, 0.9), (0.86, 0.3, 0.52)), saturation=1.2, tint=(1.03, 0.99, 0.96),
        palette={
            "grass": ((0.66, 0.56, 0.24), (0.54, 0.42, 0.16)),
            "flowers": ((0.66, 0.56, 0.24), (0.54, 0.42, 0.16)),
            "hill": ((0.62, 0.4, 0.16), (0.46, 0.28, 0.12)),
            "bush": ((0.66, 0.24, 0.1), (0.5, 0.18, 0.08)),
        },
    ),
    "night": dict(
        sun_elevation=(20.0, 50.0), sun_color=(0.6, 0.7, 0.95), sun_strength=0.45, ambient_color=(0.13, 0.17, 0.3),
        sky_zenith=(0.01, 0.02, 0.07), sky_horizon=(0.07, 0.11, 0.22), sun_glow=0.3,
        haze_color=(0.08, 0.11, 0.2), haze_strength=(0.4, 0.7),
        cloud_light=(0.36, 0.4, 0.52), cloud_shadow=(0.06, 0.07, 0.12),
        window=(1.0, 0.8, 0.4), stars=(0.4, 1.0), saturation=0.7, tint=(0.9, 0.96, 1.12),
    ),
}  # fmt: skip


def _jitter(rng: np.random.Generator, color: RGB, hue: float, brightness: float) -> RGB:
    """Small per-channel change (hue) times a shared one (brightness), clipped to [0, 1]."""
    scale = rng.normal(1.0, hue, 3) * rng.normal(1.0, brightness)
    r, g, b = (float(v) for v in np.clip(np.asarray(color) * scale, 0.0, 1.0))
    return r, g, b


def sample_style(rng: np.random.Generator, family: str | None = None) -> Style:
    """A random style of `family` (or of a uniformly chosen family): the family centre, jittered."""
    if family is None:
        family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    if family not in _FAMILY:
        raise ValueError(f"unknown style family {family!r}; choose one of {', '.join(FAMILIES)}")
    spec = {**_COMMON, **_FAMILY[family]}
    palette = {**_PALETTE, **spec.pop("palette", {})}

    def color(c: RGB, hue: float = 0.025, brightness: float = 0.05) -> RGB:
        return _jitter(rng, c, hue, brightness)

    fields: dict[str, Any] = {"family": family}
    for name in ("sun_azimuth", "sun_elevation", "haze_strength", "stars"):
        value = spec[name]
        fields[name] = float(rng.uniform(*value)) if isinstance(value, tuple) else float(value)
    for name in ("sun_color", "ambient_color", "sky_horizon", "haze_color", "cloud_light"):
        fields[name] = color(spec[name])
    fields["sky_zenith"] = color(spec["sky_zenith"], 0.04, 0.08)
    fields["cloud_shadow"] = color(spec["cloud_shadow"], 0.03, 0.08)
    fields["conifer"], fields["trunk"] = color(spec["conifer"]), color(spec["trunk"])
    fields["window"] = spec["window"]
    fields["tint"] = _jitter(rng, spec["tint"], 0.01, 0.0)
    for name in ("foliage", "flowers", "walls", "roofs"):
        fields[name] = tuple(color(c, 0.04, 0.05) for c in spec[name])
    fields["palette"] = tuple((color(a), color(b)) for a, b in (palette[lb.name] for lb in LANDSCAPE.labels))
    fields["sun_strength"] = float(spec["sun_strength"] * rng.uniform(0.85, 1.15))
    fields["sun_glow"] = float(spec["sun_glow"] * rng.uniform(0.8, 1.2))
    fields["snow_cover"] = float(spec["snow_cover"])
    fields["saturation"] = float(spec["saturation"] * rng.uniform(0.9, 1.1))
    fields["contrast"] = float(spec["contrast"] * rng.uniform(0.93, 1.07))
    fields["exposure"] = float(spec["exposure"] * rng.uniform(0.92, 1.08))
    return Style(**fields)


# ---------------------------------------------------------------------------------------------------------
# Free styles: a family style recoloured, so the style space is continuous rather than seven clouds
# ---------------------------------------------------------------------------------------------------------

GROUND: tuple[str, ...] = ("hill", "grass", "flowers", "tree", "bush", "sand", "dirt")  # turned by one angle
SKY_SATURATION = (0.05, 0.9)  # HLS saturation of a free sky's zenith and horizon: near grey … vivid
HORIZON_TURN = 0.15  # a free horizon's hue strays this far (turns) from the family's zenith–horizon contrast
WATER_GAP = (0.2, 0.8)  # turns from water's hue to grass's, both ways ≥ 72°: a lake never melts into a meadow
RECOLOR_SATURATION = (0.5, 1.6)  # log-uniform range of the saturation factor of the ground and of the water


def _hue(color: RGB) -> float:
    return colorsys.rgb_to_hls(*color)[0]


def _from_hls(hue: float, lightness: float, saturation: float) -> RGB:
    """HLS → RGB, the hue taken round the circle and the channels clipped to [0, 1] against rounding."""
    rgb = colorsys.hls_to_rgb(hue % 1.0, lightness, min(1.0, saturation))
    r, g, b = (min(1.0, max(0.0, v)) for v in rgb)
    return r, g, b


def recolor(color: RGB, turn: float, saturation: float = 1.0) -> RGB:
    """`color` with its hue turned by `turn` (a fraction of the circle) and its saturation scaled, in HLS.

    HLS keeps the lightness, so a recoloured class keeps its place in the picture's light and dark (snow stays
    bright, water under a dark sky dark): the renderer's shading and the classes' contrast survive the new hue.
    """
    h, lightness, s = colorsys.rgb_to_hls(*color)
    return _from_hls(h + turn, lightness, s * saturation)


def _free_sky(rng: np.random.Generator, base: Style) -> tuple[RGB, RGB, float, float]:
    """(zenith, horizon, zenith turn, horizon turn): a sky gradient of free hues and saturations.

    Both hues turn with one angle drawn round the whole circle, and the horizon strays up to HORIZON_TURN more,
    so a family's contrast (golden hour's blue over orange) survives as any pair of hues, and new ones appear.
    Lightness stays the family's, jittered, with the horizon at least as light as the zenith as in every family
    (a clear sky brightens towards the horizon): drawn freely it would put a night sky over a sunlit meadow."""
    turn, stray = float(rng.random()), float(rng.uniform(-HORIZON_TURN, HORIZON_TURN))
    zenith_sat, horizon_sat = (float(v) for v in rng.uniform(*SKY_SATURATION, 2))
    (zh, zl, _), (hh, hl, _) = colorsys.rgb_to_hls(*base.sky_zenith), colorsys.rgb_to_hls(*base.sky_horizon)
    zl = float(np.clip(zl * rng.uniform(0.8, 1.2), 0.02, 0.9))
    hl = float(np.clip(hl * rng.uniform(0.85, 1.15), zl + 0.04, 0.95))
    zenith, horizon = _from_hls(zh + turn, zl, zenith_sat), _from_hls(hh + turn + stray, hl, horizon_sat)
    return zenith, horizon, turn, turn + stray


def sample_free_style(rng: np.random.Generator, family: str | None = None) -> Style:
    """A style off the families: `sample_style(rng, family)` with a free sky and its colours turned round the
    hue circle. `family` stays the family it started from (its light, haze and grading), `free` is True.

    Two angles, not one per class: the sky with its water, ambient light and cloud shadows turns by one (water
    mirrors the sky, and a lake of another hue than the sky above it looks painted); the ground (GROUND's
    albedos, tree crowns, conifers) turns by another. One angle for the whole ground keeps the offsets the
    family palette set between its classes (sand is lighter and yellower than grass, bushes darker), so they
    stay apart; the ground's angle is drawn so that grass, the largest ground class and the one at most shores,
    lands WATER_GAP away from the water on the circle (two free angles would put them on one hue now and then).
    Sand may come near the water's hue but stays far lighter. Mountains, rock, snow, clouds, houses, trunks and
    flower dots keep the family's colours: greys, whites and man-made colours, which a hue turn would hardly
    change or make absurd. Every colour stays in [0, 1]; the same generator state gives the same style.
    """
    base = sample_style(rng, family)
    zenith, horizon, sky_turn, horizon_turn = _free_sky(rng, base)
    low, high = (float(np.log(v)) for v in RECOLOR_SATURATION)
    water_sat, ground_sat = (float(v) for v in np.exp(rng.uniform(low, high, 2)))
    palette = dict(zip((lb.name for lb in LANDSCAPE.labels), base.palette, strict=True))
    grass_hue = _hue(palette["water"][0]) + sky_turn + float(rng.uniform(*WATER_GAP))
    ground_turn = grass_hue - _hue(palette["grass"][0])

    def sky(c: RGB) -> RGB:
        return recolor(c, sky_turn)

    def ground(c: RGB) -> RGB:
        return recolor(c, ground_turn, ground_sat)

    def water(c: RGB) -> RGB:
        return recolor(c, sky_turn, water_sat)

    for name, shift in [(name, ground) for name in GROUND] + [("sky", sky), ("water", water)]:
        palette[name] = (shift(palette[name][0]), shift(palette[name][1]))
    return replace(
        base,
        sky_zenith=zenith,
        sky_horizon=horizon,
        ambient_color=sky(base.ambient_color),
        haze_color=recolor(base.haze_color, horizon_turn),
        cloud_shadow=sky(base.cloud_shadow),
        palette=tuple(palette[lb.name] for lb in LANDSCAPE.labels),
        foliage=tuple(ground(c) for c in base.foliage),
        conifer=ground(base.conifer),
        free=True,
    )
