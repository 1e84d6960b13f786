"""The exported-model runner's latent and pixel conventions (the server's contract)."""

import numpy as np

from models.eval.onnx_model import seeded_z, to_uint8


def test_seeded_z_follows_the_contract() -> None:
    z = seeded_z([3, 4], 5)
    assert z.dtype == np.float32 and z.shape == (2, 5)
    assert np.array_equal(z[0], np.random.default_rng(3).standard_normal(5, dtype=np.float32))


def test_to_uint8_rounds_like_the_server() -> None:
    x = np.array([-1.0, 0.0, 1.0, 2.0], np.float32).reshape(1, 1, 1, 4).repeat(3, 1)  # [1,3,1,4]
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 128, 255, 255]
