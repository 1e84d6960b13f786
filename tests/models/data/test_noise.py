import numpy as np
import pytest

from models.data.noise import fbm, fbm1d, interp_matrix, ridged


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_interp_matrix_rows_have_unit_norm_and_local_support() -> None:
    m = interp_matrix(np.linspace(0.0, 7.9, 50))
    assert m.shape[0] == 50
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, rtol=1e-5)
    assert ((m > 0).sum(axis=1) <= 4).all()  # cubic B-spline: four lattice values per sample


def test_interp_matrix_rejects_bad_coordinates() -> None:
    with pytest.raises(ValueError, match="≥ 0"):
        interp_matrix(np.array([-1.0, 2.0]))
    with pytest.raises(ValueError, match="1-D"):
        interp_matrix(np.zeros((2, 2)))


def test_fbm_has_unit_variance_and_zero_mean() -> None:
    field = fbm(np.random.default_rng(0), (256, 256), 8.0, 4)
    assert field.dtype == np.float32 and field.shape == (256, 256)
    assert abs(float(field.mean())) < 0.1
    assert 0.85 < float(field.std()) < 1.15


def test_fbm_is_deterministic_per_seed() -> None:
    a = fbm(np.random.default_rng(3), (40, 50), 6.0)
    b = fbm(np.random.default_rng(3), (40, 50), 6.0)
    c = fbm(np.random.default_rng(4), (40, 50), 6.0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cell_size_controls_smoothness() -> None:
    rng = np.random.default_rng(1)
    coarse, fine = fbm(rng, (128, 128), 32.0, 1), fbm(rng, (128, 128), 2.0, 1)
    assert _corr(coarse[:, 1:], coarse[:, :-1]) > 0.98
    assert _corr(fine[:, 1:], fine[:, :-1]) < 0.9


def test_anisotropic_cells_stretch_the_noise() -> None:
    field = fbm(np.random.default_rng(2), (128, 128), (2.0, 24.0), 1)  # (cell_y, cell_x): horizontal streaks
    along_x = _corr(field[:, 1:], field[:, :-1])
    along_y = _corr(field[1:], field[:-1])
    assert along_x > 0.95 and along_y < along_x - 0.1


def test_uneven_rows_squeeze_the_texture() -> None:
    # Rows 0..63 sample coordinates 10 px apart, rows 64..127 one px apart: only the latter stay correlated.
    ys = np.concatenate([np.arange(64) * 10.0, 640.0 + np.arange(64)])
    field = fbm(np.random.default_rng(5), (128, 64), 6.0, 1, ys=ys)
    assert _corr(field[65:], field[64:-1]) > 0.9
    assert _corr(field[1:64], field[:63]) < 0.5
    with pytest.raises(ValueError, match="ys/xs"):
        fbm(np.random.default_rng(5), (128, 64), 6.0, ys=ys[:10])


def test_fbm1d_and_ridged() -> None:
    line = fbm1d(np.random.default_rng(0), 500, 20.0, 4)
    assert line.shape == (500,) and 0.7 < float(line.std()) < 1.3
    np.testing.assert_array_equal(line, fbm1d(np.random.default_rng(0), 500, 20.0, 4))
    r = ridged(line)
    assert float(r.min()) >= 0.0 and float(r.max()) <= 1.0
    assert float(r[np.argmin(np.abs(line))]) > 0.99  # crests where the noise crosses zero
