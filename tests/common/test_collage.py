"""common/collage.py: the composition stage's geometry on synthetic masks, with numpy stand-ins for the class
generator graphs (exact arithmetic, so batched and sequential composition can be compared bit for bit), and the
real tiny class generators for the batching equality on a runtime."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pytest

import common.collage as collage
from common.collage import (
    Anchor,
    ClassGraphs,
    Planned,
    _chunks,
    blend_alpha,
    compose,
    dilation_radius,
    plan,
    seeds_for,
    waves,
)
from common.crops import Box
from common.instances import instances_from_labels
from common.manifest import ClassGenerator, FileRef
from common.runtime import RuntimeInfo

TREE, ROCK, HOUSE, GRASS = 8, 4, 13, 6
THING_IDS = [ROCK, TREE, HOUSE]


class FakeGraph:
    """A `Graph` computed by a numpy function; records the batch size of every call."""

    info = RuntimeInfo("onnxruntime", "CPUExecutionProvider", "f32")

    def __init__(
        self, fn: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]], inputs: list[str]
    ) -> None:
        self.fn, self.inputs, self.batches = fn, {n: () for n in inputs}, []  # type: ignore[var-annotated]
        self.outputs = ["mu", "logvar", "phi_prime", "image"]

    def run(self, outputs: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        self.batches.append(len(next(iter(feeds.values()))))
        result = self.fn(feeds)
        return [result[name] for name in outputs]


def fake_spec(thing: str, class_id: int, min_side: int = 6, z_dim: int = 4) -> ClassGenerator:
    ref = FileRef(path=f"{thing}.onnx", sha256="0" * 64, bytes=0)
    return ClassGenerator(
        thing=thing, class_id=class_id, label_set="landscape", encoder=ref, decoder=ref, context_size=32,
        target_size=16, phi_size=32, z_dim=z_dim, noise_channels=1, removal="blur", min_side=min_side,
    )  # fmt: skip


def fake_generator(thing: str, class_id: int, min_side: int = 6) -> ClassGraphs:
    """Encoder: μ = the context's mean per item, log σ² = 0, φ′ = the context itself (P = S). Decoder: the
    central half of the context (φ, the square box) shifted by z's mean and the noise's, clipped: it depends
    on the current picture, the latent and the noise, and is exact arithmetic, the same in any batch."""

    def encode(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        ctx = feeds["context"]
        mu = np.repeat(ctx.mean(axis=(1, 2, 3))[:, None], 4, axis=1).astype(np.float32)
        return {"mu": mu, "logvar": np.zeros_like(mu), "phi_prime": ctx}

    def decode(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        shift = feeds["z"].mean(axis=1)[:, None, None, None] + 0.3 * feeds["noise"][:, :1]
        return {"image": np.clip(-feeds["phi"] + shift, -1.0, 1.0).astype(np.float32)}

    spec = fake_spec(thing, class_id, min_side)
    return ClassGraphs(spec, FakeGraph(encode, ["context"]), FakeGraph(decode, ["phi"]))  # type: ignore[arg-type]


def scene(h: int = 96, w: int = 128) -> np.ndarray:
    """Grass with trees, a house and a rock of different sizes, one tree cut by the picture's right edge and a
    tiny tree (4×4, below min_side 6)."""
    ids = np.zeros((h, w), np.uint8)
    ids[h // 3 :] = GRASS
    ids[40:80, 4:34] = TREE  # 1200 px
    ids[50:70, 40:70] = HOUSE  # 600 px
    ids[60:75, 76:91] = TREE  # 225 px
    ids[30:50, 118:128] = TREE  # 200 px, its square box leaves the picture
    ids[85:93, 60:70] = ROCK  # 80 px
    ids[5:9, 5:9] = TREE  # 16 px, skipped
    return ids


def base_picture(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (3, *shape)).astype(np.float32)


def fakes(min_side: int = 6) -> dict[int, ClassGraphs]:
    return {
        cid: fake_generator(t, cid, min_side) for cid, t in ((TREE, "tree"), (HOUSE, "house"), (ROCK, "rock"))
    }


def inside_boxes(boxes: Sequence[tuple[int, int, int, int]], shape: tuple[int, int]) -> np.ndarray:
    union = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        union[y0:y1, x0:x1] = True
    return union


def test_plan_is_largest_first_and_skips_instances_below_min_side() -> None:
    ids = scene()
    ids[20:22, 60:72] = (
        TREE  # a 2×12 branch: short on one side only, so kept (skipped only when short on both)
    )
    planned = plan(ids, instances_from_labels(ids, THING_IDS), {c: g.spec for c, g in fakes().items()})
    assert [(p.thing, p.area) for p in planned] == [
        ("tree", 1200), ("house", 600), ("tree", 225), ("tree", 200), ("rock", 80), ("tree", 24),
    ]  # fmt: skip
    assert all(p.area >= 24 for p in planned)  # the 4×4 tree is gone
    edge = planned[3]
    assert edge.tight == Box(30, 118, 50, 128) and edge.square == Box(
        30, 113, 50, 133
    )  # square leaves the picture
    # ties: the lower instance id first, whatever the class
    ties = np.full((40, 40), GRASS, np.uint8)
    ties[2:12, 2:12], ties[20:30, 20:30] = HOUSE, TREE
    planned = plan(ties, instances_from_labels(ties, THING_IDS), {c: g.spec for c, g in fakes().items()})
    assert [p.thing for p in planned] == ["tree", "house"]  # trees are numbered before houses in thing order
    # the instance ids given over REST count, by class: one id on two classes is two instances
    given = np.zeros((40, 40), np.int32)
    given[2:12, 2:12] = given[20:30, 20:30] = 7
    planned = plan(ties, given, {c: g.spec for c, g in fakes().items()})
    assert sorted((p.thing, p.instance_id, p.area) for p in planned) == [("house", 7, 100), ("tree", 7, 100)]
    given[2:12, 2:12], given[20:30, 20:30] = -5, 2_000_000_000  # any int32 ids, renumbered internally
    planned = plan(ties, given, {c: g.spec for c, g in fakes().items()})
    assert sorted((p.thing, p.instance_id) for p in planned) == [("house", -5), ("tree", 2_000_000_000)]


def test_plan_leaves_instances_above_max_side_to_the_base() -> None:
    ids = scene()
    specs = {c: g.spec for c, g in fakes().items()}
    specs[TREE] = specs[TREE].model_copy(update={"max_side": 20})
    planned = plan(ids, instances_from_labels(ids, THING_IDS), specs)
    # the 40×30 tree is longer than 20 px and stays as the base drew it; the 15×15 and 20×10 trees, the house
    # (no max_side on its generator) and the rock are composed
    assert [(p.thing, p.area) for p in planned] == [
        ("house", 600),
        ("tree", 225),
        ("tree", 200),
        ("rock", 80),
    ]


def test_alpha_is_in_unit_interval_one_on_the_object_and_zero_beyond_the_feather() -> None:
    for side in (12, 40, 200):
        mask = np.zeros((side, side), bool)
        mask[side // 4 : 3 * side // 4, side // 3 : 2 * side // 3] = True
        alpha = blend_alpha(mask)
        r = dilation_radius(side)
        assert alpha.dtype == np.float32 and alpha.shape == mask.shape
        assert alpha.min() >= 0.0 and alpha.max() <= 1.0 and (alpha[mask] == 1.0).all()
        column = alpha[:, side // 2]  # down the middle, from the mask's lower edge outwards
        edge = 3 * side // 4  # first row below the mask
        assert column[edge + r // 2] > 0.5  # inside the dilated band: mostly the generator's pixels
        assert (column[edge + r + 2 * r + 1 :] == 0.0).all()  # beyond dilation + the blur's reach (4σ = 2r)
    assert [dilation_radius(s) for s in (12, 50, 100, 200, 400)] == [2, 2, 3, 6, 12]  # 3% of the side, ≥ 2 px


def test_pixels_outside_every_square_box_are_bit_identical_to_the_base() -> None:
    ids = scene()
    base = base_picture(ids.shape)
    done = compose(base, ids, instances_from_labels(ids, THING_IDS), fakes())
    assert [p.order for p in done.placed] == list(range(5)) and done.placed[3].box == (113, 30, 128, 50)
    inside = inside_boxes([p.box for p in done.placed], ids.shape)
    assert np.array_equal(done.picture[:, ~inside], base[:, ~inside])  # bit-identical, not merely close
    changed = (done.picture != base).any(axis=0)
    assert changed[inside].mean() > 0.5  # and the boxes did change
    assert done.picture.min() >= -1.0 and done.picture.max() <= 1.0
    for p in done.placed:  # every instance's own pixels changed
        x0, y0, x1, y1 = p.box
        assert changed[y0:y1, x0:x1].any(), p


def test_waves_never_hold_a_context_that_overlaps_a_box_in_the_same_wave() -> None:
    rng = np.random.default_rng(3)
    ids = np.full((160, 160), GRASS, np.uint8)
    for _ in range(40):  # scattered, often touching, trees and rocks
        y, x, s = rng.integers(0, 150), rng.integers(0, 150), rng.integers(3, 14)
        ids[y : y + s, x : x + rng.integers(3, 14)] = TREE if rng.random() < 0.6 else ROCK
    planned = plan(ids, instances_from_labels(ids, THING_IDS), {c: g.spec for c, g in fakes(3).items()})
    groups = waves(planned)
    assert [i for wave in groups for i in wave] == list(range(len(planned)))  # consecutive, in order
    assert len(planned) > 15 and 1 < len(groups) < len(planned)  # batching does happen
    for wave in groups:
        for k, j in enumerate(wave):
            for i in wave[:k]:
                a, b = planned[j].context, planned[i].square
                assert not (a.y0 < b.y1 and b.y0 < a.y1 and a.x0 < b.x1 and b.x0 < a.x1), (i, j)


def test_a_small_instance_in_a_big_ones_context_starts_a_new_wave() -> None:
    big = Planned(1, TREE, "tree", 400, Box(10, 10, 30, 30), np.ones((20, 20), bool), Box(10, 10, 30, 30),
                  Box(0, 0, 40, 40))  # fmt: skip
    far = replace(big, instance_id=2, area=300, square=Box(10, 100, 30, 120), context=Box(0, 90, 40, 130))
    near = replace(big, instance_id=3, area=100, square=Box(31, 31, 37, 37), context=Box(28, 28, 40, 40))
    assert waves([big, far, near]) == [[0, 1], [2]]  # near's context holds big's box: it must see that paste


def test_wave_batching_equals_strictly_sequential_composition(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the overlap rule, one call per class per wave gives the very picture one-at-a-time gives; without
    it (all in one wave) a small tree's context would miss the big tree pasted next to it."""
    ids = scene()
    ids[42:50, 36:39] = TREE  # a small tree right beside the big one: in its context box
    inst = instances_from_labels(ids, THING_IDS)
    base, gens = base_picture(ids.shape, 1), fakes()
    batched = compose(base, ids, inst, gens)
    sequential = compose(base, ids, inst, gens, batched=False)
    assert np.abs(batched.picture - sequential.picture).max() == 0.0
    assert max(gens[TREE].encoder.batches) >= 2  # trees really were batched  # type: ignore[attr-defined]
    count = len(plan(ids, inst, {c: g.spec for c, g in gens.items()}))
    monkeypatch.setattr(collage, "waves", lambda _: [list(range(count))])  # without the overlap rule
    one_wave = compose(base, ids, inst, gens)
    assert np.abs(one_wave.picture - sequential.picture).max() > 0.01  # the rule matters


def test_anchored_seeds_draw_eps_and_noise_from_their_streams() -> None:
    ids = scene()
    inst = instances_from_labels(ids, THING_IDS)
    gens = fakes()
    seen: list[np.ndarray] = []
    decode = gens[HOUSE].decoder.fn  # type: ignore[attr-defined]
    gens[HOUSE].decoder.fn = lambda feeds: (seen.append(feeds["z"]), decode(feeds))[1]  # type: ignore[attr-defined]
    base = base_picture(ids.shape)
    plain = compose(base, ids, inst, gens)
    anchored = compose(base, ids, inst, gens, [Anchor(50, 55, 99), Anchor(0, 0, 5)])  # a house pixel, the sky
    assert [p.seed for p in anchored.placed] == [None, 99, None, None, None]
    mu = seen[0]  # z = μ without a seed
    eps = np.random.default_rng([99, 3]).standard_normal(4, dtype=np.float32)
    np.testing.assert_allclose(seen[1], mu + eps, rtol=0, atol=1e-6)  # σ = 1: log σ² = 0
    # only the house's box and the boxes composited after it may change
    later = inside_boxes([p.box for p in plain.placed[1:]], ids.shape)
    diff = (anchored.picture != plain.picture).any(axis=0)
    assert diff.any() and not diff[~later].any()
    x0, y0, x1, y1 = plain.placed[1].box
    assert diff[y0:y1, x0:x1].mean() > 0.5


def test_a_later_anchor_wins_and_anchors_off_instances_are_ignored() -> None:
    ids = scene()
    planned = plan(ids, instances_from_labels(ids, THING_IDS), {c: g.spec for c, g in fakes().items()})
    anchors = [
        Anchor(10, 50, 1),
        Anchor(20, 60, 2),
        Anchor(100, 10, 3),
        Anchor(6, 6, 4),
    ]  # tree, tree, sky, tiny
    assert seeds_for(planned, anchors) == [2, None, None, None, None]


def test_chunks_are_powers_of_two_up_to_eight() -> None:
    sizes = {n: [b - a for a, b in _chunks(n)] for n in (1, 3, 8, 13, 20)}
    assert sizes == {1: [1], 3: [2, 1], 8: [8], 13: [8, 4, 1], 20: [8, 8, 4]}
