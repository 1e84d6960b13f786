from collections.abc import Callable

import numpy as np
import pytest

from models.data import FAMILIES, render, sample_free_style, sample_layout, sample_style
from models.data.samples import (
    LARGE_SCALE,
    LARGE_STREAM,
    NO_MIX,
    Mix,
    is_free,
    is_large,
    is_painted,
    render_sample,
)
from models.labels import LANDSCAPE

N = 3000  # samples a share is measured on: binomial σ ≤ 0.009


Decide = Callable[[int, int, Mix], bool]


def _members(decide: Decide, mix: Mix, n: int = N) -> np.ndarray:
    return np.array([decide(4, i, mix) for i in range(n)])


def _window(seed: int, index: int, h: int, w: int) -> tuple[int, int]:
    """(top, left) of a large sample's crop, drawn as documented: a stream of its own, top first."""
    rng = np.random.default_rng([seed, index, LARGE_STREAM, 1])
    return int(rng.integers((LARGE_SCALE - 1) * h + 1)), int(rng.integers((LARGE_SCALE - 1) * w + 1))


# ---------------------------------------------------------------------------------------------------------
# Mix


def test_mix_refuses_a_share_outside_0_1_naming_it() -> None:
    for name, what in (("painted", "painted"), ("free", "free-style"), ("large", "large")):
        for bad in (1.5, -0.1, float("nan")):
            with pytest.raises(ValueError, match=rf"the {what} share must lie in \[0, 1\]"):
                Mix(**{name: bad})
        Mix(**{name: 1.0})  # the ends are shares too
    assert NO_MIX == Mix(0.0, 0.0, 0.0)


def test_the_suffix_names_every_share_and_leaves_out_zeros() -> None:
    assert Mix().suffix == ""  # a plain dataset's cache keeps its name
    assert Mix(painted=0.3).suffix == "-painted0.3"  # as painted caches were named
    assert Mix(free=0.25).suffix == "-free0.25"
    assert Mix(painted=0.3, free=0.25).suffix == "-painted0.3-free0.25"
    assert Mix(large=0.3).suffix == "-large0.3"
    assert Mix(0.5, 0.25, 0.3).suffix == "-painted0.5-free0.25-large0.3"
    assert Mix(painted=1).suffix == "-painted1.0"  # an int share names the float it is
    suffixes = {Mix(large=s).suffix for s in (0.0, 0.3, 0.30000000000000004, 1.0)}
    assert len(suffixes) == 4  # exact: two shares never share a cache


# ---------------------------------------------------------------------------------------------------------
# The shares


@pytest.mark.parametrize(
    ("decide", "field"), [(is_painted, "painted"), (is_free, "free"), (is_large, "large")]
)
def test_each_share_is_met_within_tolerance_only_grows_and_spreads_over_families(
    decide: Decide, field: str
) -> None:
    for share in (0.1, 0.3, 0.7):
        members = _members(decide, Mix(**{field: share}))
        assert abs(members.mean() - share) < 0.03
        # Spread over the style families alike (families cycle with the index).
        per_family = [members[f :: len(FAMILIES)].mean() for f in range(len(FAMILIES))]
        assert max(abs(p - share) for p in per_family) < 0.07, per_family
    low, high = (_members(decide, Mix(**{field: s})) for s in (0.2, 0.3))
    assert not (low & ~high).any()  # raising the share only turns plain samples into mixed ones
    assert not _members(decide, NO_MIX, 100).any()
    assert _members(decide, Mix(**{field: 1.0}), 100).all()


def test_the_shares_are_independent_of_each_other() -> None:
    mix = Mix(0.3, 0.3, 0.3)
    painted, free, large = (_members(decide, mix) for decide in (is_painted, is_free, is_large))
    for a, b in ((painted, free), (painted, large), (free, large)):
        assert abs((a & b).mean() - 0.3 * 0.3) < 0.02  # streams of their own
    # A share decides on its own field alone: the others' values do not move it.
    assert np.array_equal(large, _members(is_large, Mix(large=0.3)))


# ---------------------------------------------------------------------------------------------------------
# The samples


def test_no_mix_renders_the_samples_of_the_code_before_the_shares() -> None:
    for i in range(3):  # render_sample as it was: layout, family style, render seed, all from (seed, index)
        rng = np.random.default_rng([4, i])
        label, instance = sample_layout(rng, 32)
        image = render(label, instance, sample_style(rng, FAMILIES[i]), int(rng.integers(2**31)))
        got = render_sample(4, i, 32, NO_MIX)
        assert all(np.array_equal(a, b) for a, b in zip(got[:3], (label, instance, image), strict=True))
        assert got[3] == i
        large_share_left_out = Mix(large=0.5)
        if not is_large(4, i, large_share_left_out):
            assert all(
                np.array_equal(a, b)
                for a, b in zip(render_sample(4, i, 32, large_share_left_out), got, strict=True)
            )


def test_a_free_sample_recolours_its_family_and_has_no_family_index() -> None:
    for i in range(2):
        label, instance, image, family = render_sample(4, i, 32, Mix(free=1.0))
        assert family == -1
        rng = np.random.default_rng([4, i])
        sample_layout(rng, 32)  # the draws before the style
        style = sample_free_style(rng, FAMILIES[i % len(FAMILIES)])
        assert np.array_equal(image, render(label, instance, style, int(rng.integers(2**31))))


def test_a_large_sample_is_a_crop_of_the_sample_rendered_at_twice_the_size() -> None:
    h, w = 32, 48
    for i in range(4):
        label, instance, image, family = render_sample(4, i, (h, w), Mix(large=1.0))
        assert label.shape == instance.shape == (h, w) and image.shape == (h, w, 3)
        assert label.dtype == np.uint8 and image.dtype == np.uint8
        assert family == i % len(FAMILIES)
        things = np.isin(label, LANDSCAPE.thing_ids)
        assert np.array_equal(instance > 0, things)  # things carry an instance, stuff none
        # By hand, the calls render_sample makes: the layout, style and render seed drawn at 2× the size.
        rng = np.random.default_rng([4, i])
        big_label, big_instance = sample_layout(rng, (LARGE_SCALE * h, LARGE_SCALE * w))
        style = sample_style(rng, FAMILIES[i % len(FAMILIES)])
        big_image = render(big_label, big_instance, style, int(rng.integers(2**31)))
        top, left = _window(4, i, h, w)
        crop = np.s_[top : top + h, left : left + w]
        assert np.array_equal(label, big_label[crop])
        assert np.array_equal(instance, big_instance[crop])
        assert np.array_equal(image, big_image[crop])


def test_large_keeps_the_other_shares_decisions() -> None:
    for i in range(2):  # painted and free as at the 2× size, then cropped
        mix = Mix(painted=1.0, free=1.0)
        big = render_sample(4, i, 64, mix)
        got = render_sample(4, i, 32, Mix(painted=1.0, free=1.0, large=1.0))
        top, left = _window(4, i, 32, 32)
        assert all(
            np.array_equal(a, b[top : top + 32, left : left + 32])
            for a, b in zip(got[:3], big[:3], strict=True)
        )
        assert got[3] == big[3] == -1


def test_different_samples_take_different_windows_over_the_whole_render() -> None:
    windows = [_window(4, i, 256, 256) for i in range(200)]
    assert len(set(windows)) > 190  # 257² places: a repeat now and then, not a pattern
    tops, lefts = np.array(windows).T
    for along in (tops, lefts):  # the whole 2× render is cut from, edges included
        assert along.min() < 16 and along.max() > 240
    assert _window(5, 0, 256, 256) != _window(4, 0, 256, 256)  # the dataset seed moves it too
