"""Decoders refuse bad bytes with a BadInput code before allocating; encoders round-trip."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from server.codec import (
    check_label_ids,
    colors_to_ids,
    decode_image_rgb,
    decode_label_png,
    decode_raw_ids,
    encode_image,
    image_frame,
    inflate,
    parse_image_frame,
    parse_label_frame,
    to_model_input,
    to_uint8_rgb,
)
from server.errors import BadInput

COLORS = [(120, 178, 230), (236, 238, 245), (130, 110, 120), (255, 255, 255)]  # ids 0..3


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def code_of(fn, *args) -> str:  # noqa: ANN001
    with pytest.raises(BadInput) as info:
        fn(*args)
    return info.value.code


def frame(seq: int, w: int, h: int, encoding: int, payload: bytes, kind: int = 1) -> bytes:
    return struct.pack("<BIHHB", kind, seq, w, h, encoding) + payload


def test_label_frame_round_trips_raw_and_zlib() -> None:
    ids = np.arange(48, dtype=np.uint8).reshape(6, 8) % 14
    for encoding, payload in ((0, ids.tobytes()), (1, zlib.compress(ids.tobytes()))):
        got = parse_label_frame(frame(4_000_000_000, 8, 6, encoding, payload), max_pixels=1000)
        assert got.seq == 4_000_000_000
        np.testing.assert_array_equal(got.ids, ids)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x01\x00", "bad_frame"),  # shorter than the header
        (frame(1, 4, 4, 0, bytes(16), kind=7), "bad_frame"),  # unknown message type
        (frame(1, 4, 4, 3, bytes(16)), "bad_frame"),  # unknown encoding
        (frame(1, 4, 4, 0, bytes(15)), "bad_frame"),  # payload one byte short
        (frame(1, 4, 4, 1, b"not zlib at all"), "bad_frame"),
        (frame(1, 4, 4, 1, zlib.compress(bytes(16))[:-3]), "bad_frame"),  # truncated stream
        (frame(1, 4, 4, 1, zlib.compress(bytes(10_000_000))), "bad_frame"),  # zlib bomb: 10 MB for 16 ids
        (frame(1, 0, 4, 0, b""), "bad_size"),
        (frame(1, 2000, 2000, 1, zlib.compress(bytes(16))), "too_many_pixels"),
    ],
)
def test_bad_label_frames_are_refused(data: bytes, code: str) -> None:
    assert code_of(parse_label_frame, data, 1_000_000) == code


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 3), st.integers(0, 2**32 - 1))
def test_label_frame_parser_never_crashes(noise: bytes, mode: int, seq: int) -> None:
    """Arbitrary bytes parse or raise BadInput, nothing else; a frame that parses matches its header.

    Modes: bare noise; noise behind a raw or zlib 8×2 header; noise as the exact raw payload of a 1×len header,
    so that parsing succeeds often enough for the checks after it to run (random noise almost never does).
    """
    if mode == 0:
        data = noise
    elif mode < 3:
        data = struct.pack("<BIHHB", 1, seq, 8, 2, mode - 1) + noise
    else:
        data = struct.pack("<BIHHB", 1, seq, len(noise), 1, 0) + noise
    try:
        got = parse_label_frame(data, max_pixels=4096)
    except BadInput:
        return
    _, header_seq, width, height, encoding = struct.unpack_from("<BIHHB", data)  # a parsed frame has a header
    assert (got.seq, got.ids.shape, got.ids.dtype) == (header_seq, (height, width), np.uint8)
    if encoding == 0:
        assert got.ids.tobytes() == data[10:]


def test_inflate_caps_output() -> None:
    assert inflate(zlib.compress(b"a" * 100), 100) == b"a" * 100
    assert code_of(inflate, zlib.compress(b"a" * 101), 100) == "bad_frame"


def test_image_frame_round_trip() -> None:
    data = image_frame(9, 12.5, "webp", b"IMG")
    assert data[0] == 0x02 and len(data) == 13
    assert parse_image_frame(data) == (9, 12.5, "webp", b"IMG")


def test_label_png_ids_palette_and_colours() -> None:
    ids = np.array([[0, 1], [2, 3]], np.uint8)
    np.testing.assert_array_equal(decode_label_png(png(Image.fromarray(ids)), COLORS, 100), ids)
    pal = Image.fromarray(ids).convert("P")  # palette indices are the ids
    pal.putdata(ids.reshape(-1).tolist())
    np.testing.assert_array_equal(decode_label_png(png(pal), COLORS, 100), ids)
    rgb = np.array([[COLORS[i] for i in row] for row in ids], np.uint8)
    np.testing.assert_array_equal(decode_label_png(png(Image.fromarray(rgb)), COLORS, 100), ids)
    sixteen = Image.fromarray(ids.astype(np.uint16))
    np.testing.assert_array_equal(decode_label_png(png(sixteen), COLORS, 100), ids)


def test_label_png_refusals() -> None:
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[1, 2] = (1, 2, 3)
    rgb[:1] = COLORS[0]
    rgb[1, :2] = COLORS[1]
    with pytest.raises(BadInput, match=r"colour \(1, 2, 3\) at \(x=2, y=1\)"):
        decode_label_png(png(Image.fromarray(rgb)), COLORS, 100)
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, "JPEG")
    assert code_of(decode_label_png, jpeg.getvalue(), COLORS, 100) == "bad_image"
    good = png(Image.fromarray(np.zeros((8, 8), np.uint8)))
    assert code_of(decode_label_png, good[:40], COLORS, 100) == "bad_image"  # truncated
    assert code_of(decode_label_png, good[:8] + b"garbage" * 10, COLORS, 100) == "bad_image"
    wide = Image.fromarray(np.full((1, 300), 999, np.uint16))
    assert code_of(decode_label_png, png(wide), COLORS, 1000) == "bad_label_id"


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = png(Image.new("L", (3000, 3000)))  # 9 Mpx of zeros: a few KB on the wire
    assert len(bomb) < 20_000
    assert code_of(decode_label_png, bomb, COLORS, 1_000_000) == "too_many_pixels"
    assert code_of(decode_image_rgb, bomb, 1_000_000) == "too_many_pixels"


def test_16_bit_grey_references_are_scaled_not_clipped() -> None:
    grey = np.array([[0, 256, 32768, 65535]], np.uint16)
    rgb = decode_image_rgb(png(Image.fromarray(grey)), 100)
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    assert rgb[0].tolist() == [[0, 0, 0], [1, 1, 1], [128, 128, 128], [255, 255, 255]]


def test_raw_ids_and_label_checks() -> None:
    ids = decode_raw_ids(bytes([0, 1, 2, 3, 4, 5]), 3, 2, 100)
    assert ids.shape == (2, 3) and ids[1, 2] == 5
    assert code_of(decode_raw_ids, bytes(5), 3, 2, 100) == "bad_size"
    assert code_of(decode_raw_ids, bytes(200), 20, 10, 100) == "too_many_pixels"
    with pytest.raises(BadInput, match=r"label id 14 at \(x=2, y=1\)"):
        check_label_ids(np.array([[0, 1, 2], [3, 4, 14]], np.uint8), 14)
    check_label_ids(np.full((2, 2), 13, np.uint8), 14)


def test_colors_to_ids_vectorised() -> None:
    ids = np.random.default_rng(0).integers(0, 4, (16, 16)).astype(np.uint8)
    rgb = np.array(COLORS, np.uint8)[ids]
    np.testing.assert_array_equal(colors_to_ids(rgb, COLORS), ids)


@pytest.mark.parametrize(("fmt", "pil"), [("jpeg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")])
def test_encode_image_formats(fmt: str, pil: str) -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (24, 40, 3)).astype(np.uint8)
    image = Image.open(io.BytesIO(encode_image(rgb, fmt, 80)))
    assert image.format == pil and image.size == (40, 24)
    if fmt == "png":
        np.testing.assert_array_equal(np.asarray(image), rgb)
    assert code_of(encode_image, rgb, "gif", 80) == "bad_format"


def test_model_io_conversions() -> None:
    out = np.stack([np.full((2, 3), -1.0), np.zeros((2, 3)), np.full((2, 3), 2.0)]).astype(np.float32)
    rgb = to_uint8_rgb(out)  # [3,H,W] in [-1,1] -> H×W×3
    assert rgb.shape == (2, 3, 3) and rgb[0, 0].tolist() == [0, 128, 255]
    photo = np.zeros((60, 90, 3), np.uint8)
    photo[:, 45:] = 255
    x = to_model_input(photo, (32, 32))  # centre crop keeps both halves
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0
