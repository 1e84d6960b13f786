"""The numpy metrics on synthetic data with known answers."""

import numpy as np
import pytest
from scipy import ndimage

from models.eval.metrics import (
    StreakMeter,
    TextureMeter,
    colour_stats,
    confusion_matrix,
    flat_images,
    fraction_in_range,
    frechet_distance,
    instance_boxes,
    nearest_centroid,
    rgb_to_lab,
    segmentation_scores,
    square_crop,
    texture_ratios,
)

# ----------------------------------------------------------------------------
# Segmentation scores.


def _stripes(h: int = 20, w: int = 30, n: int = 3) -> np.ndarray:
    return np.repeat(np.arange(w) * n // w, h).reshape(w, h).T.astype(np.uint8)  # [H,W], n vertical stripes


def test_perfect_prediction_scores_one() -> None:
    target = _stripes()
    scores = segmentation_scores(confusion_matrix(target, target, 3))
    assert scores["miou"] == 1.0
    assert scores["pixel_accuracy"] == 1.0
    assert scores["iou"] == [1.0, 1.0, 1.0]


def test_shifted_prediction_scores_lower_with_the_known_iou() -> None:
    target = _stripes(h=10, w=30, n=3)  # stripes 10 px wide
    pred = np.roll(target, 2, axis=1)  # 2 px shift; the wrap-around puts class 2 in columns 0-1
    scores = segmentation_scores(confusion_matrix(pred, target, 3))
    # class 0: pred cols 2-11, target cols 0-9 -> inter 8, union 12; class 1 the same; class 2: pred cols
    # 22-29 + 0-1 vs 20-29 -> inter 8, union 12.
    assert scores["iou"] == pytest.approx([8 / 12] * 3)
    assert scores["miou"] == pytest.approx(2 / 3)
    assert scores["pixel_accuracy"] == pytest.approx(24 / 30)


def test_absent_classes_do_not_count_and_false_positives_do() -> None:
    target = np.zeros((4, 4), np.uint8)
    pred = target.copy()
    pred[0, 0] = 2  # class 2 never occurs in the target: IoU 0; class 1 occurs nowhere: left out
    scores = segmentation_scores(confusion_matrix(pred, target, 3))
    assert scores["iou"][1] is None
    assert scores["iou"][2] == 0.0
    assert scores["miou"] == pytest.approx((15 / 16 + 0.0) / 2)


def test_confusion_matrix_rejects_mismatched_or_out_of_range_ids() -> None:
    with pytest.raises(ValueError, match="pixels"):
        confusion_matrix(np.zeros(4), np.zeros(5), 3)
    with pytest.raises(ValueError, match="< 3"):
        confusion_matrix(np.full(4, 3), np.zeros(4), 3)


# ----------------------------------------------------------------------------
# Fréchet distance.


def test_frechet_distance_of_identical_sets_is_zero() -> None:
    feats = np.random.default_rng(0).normal(size=(200, 8))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_grows_with_the_mean_shift() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 4)), rng.normal(size=(400, 4))
    base = frechet_distance(a, b)
    shift = np.zeros(4)
    shift[0] = 3.0
    shifted = frechet_distance(a, b + shift)
    # The mean term adds ‖Δμ‖² = 9 (plus the cross term with the sample means' small difference).
    assert shifted - base == pytest.approx(9.0 + 2 * 3.0 * (b[:, 0].mean() - a[:, 0].mean()), abs=1e-6)
    assert frechet_distance(a, b + 2 * shift) > shifted > base


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians() -> None:
    # Same covariance shape, scaled: FD = Σ (σa − σb)² exactly for diagonal covariances and equal means.
    rng = np.random.default_rng(2)
    z = rng.normal(size=(5000, 3))
    z = (z - z.mean(0)) / z.std(0, ddof=1)  # exactly zero mean, unit sample variance
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # exactly identity covariance
    a, b = z * np.array([1.0, 2.0, 3.0]), z * np.array([2.0, 2.0, 1.0])
    assert frechet_distance(a, b) == pytest.approx(1.0 + 0.0 + 4.0, rel=1e-6)


def test_frechet_distance_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((4, 3)))


# ----------------------------------------------------------------------------
# Texture.


def _textured(seed: int = 0, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = np.zeros((size, size), np.uint8)
    label[size // 2 :] = 1
    image = rng.integers(60, 200, (size, size, 3)).astype(np.uint8)
    return image[None], label[None]


def test_blur_lowers_the_high_frequency_energy_ratio() -> None:
    image, label = _textured()
    blurred = (
        ndimage.gaussian_filter(image.astype(np.float32), sigma=(0, 1.5, 1.5, 0)).round().astype(np.uint8)
    )
    ref, gen = TextureMeter(2), TextureMeter(2)
    ref.add(image, label)
    gen.add(blurred, label)
    ratios = texture_ratios(gen.variance(), ref.variance())
    assert (ratios < 0.2).all()
    same = TextureMeter(2)
    same.add(image, label)
    assert texture_ratios(same.variance(), ref.variance()) == pytest.approx([1.0, 1.0])


def test_vertical_planks_score_near_one_and_noise_near_zero() -> None:
    """Streak coherence: a class of vertical stripes (the same columns all the way down) correlates with itself
    eight rows below; per-pixel noise does not. The texture ratio cannot tell the two apart."""
    rng = np.random.default_rng(0)
    size = 64
    label = np.zeros((size, size), np.uint8)
    label[size // 2 :] = 1
    planks = np.tile(rng.integers(60, 200, (1, size, 1)), (size, 1, 3))  # every row the same
    noise = rng.integers(60, 200, (size, size, 3))
    image = np.where(label[..., None] == 0, planks, noise).astype(np.uint8)
    meter = StreakMeter(3)
    meter.add(image[None], label[None])
    coherence = meter.coherence()
    assert coherence[0] > 0.99 and abs(coherence[1]) < 0.1
    assert np.isnan(coherence[2])  # absent
    # Pairs never straddle two classes (the planks stay perfect although noise lies below them); too few: NaN.
    assert np.isnan(meter.coherence(min_pairs=10_000)[0])


def test_texture_ignores_class_borders() -> None:
    # Two flat regions: the border between them is a strong edge, but no interior pixel has any texture.
    label = np.zeros((1, 32, 32), np.uint8)
    label[:, 16:] = 1
    image = np.where(label[..., None] == 1, 250, 10).astype(np.uint8).repeat(3, -1)
    meter = TextureMeter(3)
    meter.add(image, label)
    var = meter.variance()
    assert var[0] == pytest.approx(0.0) and var[1] == pytest.approx(0.0)
    assert np.isnan(var[2])  # class 2 absent
    assert meter.count[0] == 32 * 14  # interior: 2 px away from the border (5×5 window) on one side


def test_fraction_in_range_counts_only_defined_ratios() -> None:
    ratios = np.array([0.5, 0.6, 1.0, 1.4, 1.5, np.nan])
    assert fraction_in_range(ratios) == pytest.approx(3 / 5)
    assert np.isnan(fraction_in_range(np.array([np.nan])))


# ----------------------------------------------------------------------------
# Style fidelity.


def test_lab_of_known_colours() -> None:
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], np.uint8))
    assert lab[0] == pytest.approx([100.0, 0.0, 0.0], abs=0.05)
    assert lab[1] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert lab[2] == pytest.approx([53.24, 80.09, 67.20], abs=0.1)


def test_nearest_centroid_is_perfect_on_separable_inputs() -> None:
    rng = np.random.default_rng(3)
    families = [(200, 120, 40), (40, 60, 160), (120, 120, 120), (30, 140, 50)]
    images, truth = [], []
    for f, colour in enumerate(families):
        for _ in range(5):
            noise = rng.integers(-10, 11, (16, 16, 3))
            images.append(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8))
            truth.append(f)
    stats = np.stack([colour_stats(im) for im in images])
    assert stats.shape == (20, 12)
    truth_arr = np.array(truth)
    centroids = np.stack([stats[truth_arr == f].mean(0) for f in range(4)])
    predicted = nearest_centroid(stats, centroids, stats.std(0))
    assert (predicted == truth_arr).mean() == 1.0
    # Swapping the centroids makes every prediction wrong.
    assert (nearest_centroid(stats, centroids[::-1], stats.std(0)) == truth_arr).mean() == 0.0


# ----------------------------------------------------------------------------
# Crops and the flat baseline.


def test_instance_boxes_and_square_crops() -> None:
    label = np.zeros((40, 40), np.uint8)
    instance = np.zeros((40, 40), np.int32)
    label[5:15, 10:14] = 8  # a tree 10×4
    instance[5:15, 10:14] = 1
    label[30:34, 30:38] = 13  # a house 4×8
    instance[30:34, 30:38] = 2
    boxes = instance_boxes(instance, label, [8, 13])
    assert [(c, r.start, r.stop, s.start, s.stop) for c, r, s in boxes] == [
        (8, 5, 15, 10, 14),
        (13, 30, 34, 30, 38),
    ]
    assert [c for c, _, _ in instance_boxes(instance, label, [13])] == [13]
    image = np.zeros((40, 40, 3), np.uint8)
    image[label == 8] = 255
    crop = square_crop(image, *boxes[0][1:], scale=1.0, out=20)
    assert crop.shape == (20, 20, 3)
    # a 10×10 window centred on the 10×4 tree: the middle column is the tree, the left edge is not
    assert crop[10, 10].min() > 200 and crop[10, 0].max() < 50


def test_flat_images_paint_each_class_with_its_mean() -> None:
    means = np.array([[10, 20, 30], [200, 100, 0]], np.uint8)
    labels = np.array([[[0, 1], [1, 0]]], np.uint8)
    flat = flat_images(labels, means)
    assert flat.shape == (1, 2, 2, 3) and flat.dtype == np.uint8
    assert flat[0, 0, 1].tolist() == [200, 100, 0] and flat[0, 1, 1].tolist() == [10, 20, 30]
