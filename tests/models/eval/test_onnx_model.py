"""The exported-model runner's latent and pixel conventions (the server's contract)."""

import numpy as np

from models.eval.onnx_model import seeded_z, to_uint8


def test_seeded_z_follows_the_contract() -> None:
    from server.styles import seeded_z as server_seeded_z

    z = seeded_z([3, 2**63 - 1], 5)
    assert z.dtype == np.float32 and z.shape == (2, 5)
    assert np.array_equal(z[0], server_seeded_z(3, 5)) and np.array_equal(z[1], server_seeded_z(2**63 - 1, 5))


def test_to_uint8_rounds_like_the_server() -> None:
    from server.codec import to_uint8_rgb  # tests may import both sides of the contract

    # 4,000,001 values across [-1, 1] (rint and +0.5 disagree on 16 of them) and out-of-range ones (clipping).
    x = np.concatenate([np.linspace(-1, 1, 4_000_001, dtype=np.float32), np.float32([-2, -1.5, 1.5, 2])])
    image = np.stack([x, -x, x])[:, None, :]  # [3,1,N]
    assert np.array_equal(to_uint8(image[None])[0], to_uint8_rgb(image))
    assert to_uint8(image[None])[0, 0, -4:, 0].tolist() == [0, 0, 255, 255]
