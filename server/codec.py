"""Bytes in, arrays out (and back): label maps, reference images, rendered images, paint-socket frames.

Every decoder checks sizes before it allocates: image dimensions are read from the header and compared with
`max_pixels` before any pixel is decoded (decompression bombs), and zlib output is capped at the size the frame
header announced. Every failure is a `BadInput` with a stable code.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from common.colors import UnknownColorError, ids_from_colors
from server.errors import BadInput

# Our own max_pixels check is far stricter than Pillow's warning threshold; the warning would only add noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# name -> (paint-socket format byte, media type, Pillow format)
FORMATS: dict[str, tuple[int, str, str]] = {
    "jpeg": (0, "image/jpeg", "JPEG"),
    "webp": (1, "image/webp", "WEBP"),
    "png": (2, "image/png", "PNG"),
}
EXTENSIONS = {"jpeg": "jpg", "webp": "webp", "png": "png"}

# Paint socket binary frames (docs/protocol.md), little-endian.
LABEL_FRAME = 0x01
IMAGE_FRAME = 0x02
_LABEL_HEADER = struct.Struct("<BIHHB")  # type, seq, width, height, encoding
_IMAGE_HEADER = struct.Struct("<BIfB")  # type, seq, server ms, image format
ENCODING_RAW = 0
ENCODING_ZLIB = 1


@dataclass(frozen=True)
class LabelFrame:
    seq: int
    ids: np.ndarray  # H×W uint8 label ids


# ----------------------------------------------------------------------------
# zlib and paint-socket frames


def inflate(data: bytes, max_bytes: int) -> bytes:
    """zlib (RFC 1950) → bytes, refusing to produce more than `max_bytes` (a zip-bomb guard)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise BadInput("bad_frame", f"payload is not valid zlib data ({exc})") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise BadInput(
            "bad_frame", f"compressed payload inflates to more than the announced {max_bytes} bytes"
        )
    if not inflater.eof:
        raise BadInput("bad_frame", "compressed payload is truncated")
    return out


def parse_label_frame(data: bytes, max_pixels: int) -> LabelFrame:
    """Decode a client label-map frame: 10-byte header then raw or zlib-compressed uint8 ids."""
    if len(data) < _LABEL_HEADER.size:
        raise BadInput("bad_frame", f"binary frame is {len(data)} bytes, shorter than the 10-byte header")
    kind, seq, width, height, encoding = _LABEL_HEADER.unpack_from(data)
    if kind != LABEL_FRAME:
        raise BadInput("bad_frame", f"unknown binary message type 0x{kind:02x} (label maps are 0x01)")
    if width == 0 or height == 0:
        raise BadInput("bad_size", f"label map size {width}×{height} is empty")
    if width * height > max_pixels:
        raise BadInput("too_many_pixels", f"label map {width}×{height} exceeds the {max_pixels}-pixel limit")
    payload = data[_LABEL_HEADER.size :]
    n = width * height
    if encoding == ENCODING_ZLIB:
        payload = inflate(payload, n)
    elif encoding != ENCODING_RAW:
        raise BadInput("bad_frame", f"unknown payload encoding {encoding} (0 = raw, 1 = zlib)")
    if len(payload) != n:
        raise BadInput("bad_frame", f"payload holds {len(payload)} ids, expected {width}×{height} = {n}")
    return LabelFrame(seq=seq, ids=np.frombuffer(payload, dtype=np.uint8).reshape(height, width))


def image_frame(seq: int, server_ms: float, fmt: str, image: bytes) -> bytes:
    """Server → client frame: 10-byte header (type 0x02, seq, float32 ms, format byte) then the image."""
    return _IMAGE_HEADER.pack(IMAGE_FRAME, seq, server_ms, FORMATS[fmt][0]) + image


def parse_image_frame(data: bytes) -> tuple[int, float, str, bytes]:
    """Inverse of `image_frame` (for clients, tests and the benchmark)."""
    kind, seq, ms, code = _IMAGE_HEADER.unpack_from(data)
    if kind != IMAGE_FRAME:
        raise ValueError(f"not an image frame: type 0x{kind:02x}")
    fmt = next(name for name, (c, _, _) in FORMATS.items() if c == code)
    return seq, ms, fmt, data[_IMAGE_HEADER.size :]


# ----------------------------------------------------------------------------
# Label maps


def check_label_ids(ids: np.ndarray, num_labels: int) -> None:
    """Refuse ids ≥ num_labels, naming the first offending pixel (row-major)."""
    if ids.size and int(ids.max()) >= num_labels:
        y, x = (int(v) for v in np.argwhere(ids >= num_labels)[0])
        raise BadInput(
            "bad_label_id",
            f"label id {int(ids[y, x])} at (x={x}, y={y}) is not below the model's {num_labels} labels",
        )


def colors_to_ids(rgb: np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
    """H×W×3 uint8 colour-coded label image → H×W uint8 ids, via the manifest's label colours.

    The lookup is `common.colors`, the one the dataset loaders use, so a picture maps to the ids training saw.
    """
    try:
        return ids_from_colors(rgb, colors)
    except UnknownColorError as e:
        raise BadInput(
            "unknown_color", f"colour {e.color} at (x={e.x}, y={e.y}) is not one of the model's label colours"
        ) from None


def _open_image(data: bytes, max_pixels: int, formats: list[str], what: str) -> Image.Image:
    """Open and fully decode an image after checking its header dimensions against max_pixels."""
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError:
        raise BadInput("too_many_pixels", f"{what} exceeds the {max_pixels}-pixel limit") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        names = "/".join(formats)
        raise BadInput("bad_image", f"{what} is not a readable {names} file") from None
    width, height = image.size
    if width * height > max_pixels:
        raise BadInput("too_many_pixels", f"{what} is {width}×{height}, over the {max_pixels}-pixel limit")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError):
        raise BadInput("bad_image", f"{what} is truncated or corrupt") from None
    return image


def decode_label_png(data: bytes, colors: Sequence[Sequence[int]], max_pixels: int) -> np.ndarray:
    """PNG label map → H×W uint8 ids. Grey/palette/16-bit images hold ids; RGB(A) images hold label colours."""
    if not data.startswith(PNG_SIGNATURE):
        raise BadInput(
            "bad_image", "label maps must be PNG files (lossless), or raw ids with width and height"
        )
    image = _open_image(data, max_pixels, ["PNG"], "label PNG")
    mode = image.mode
    if mode in ("L", "P", "1"):
        return np.asarray(image, dtype=np.uint8)
    if mode in ("LA", "PA"):
        return np.asarray(image.getchannel(0), dtype=np.uint8)
    if mode.startswith("I"):
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 255):
            raise BadInput("bad_label_id", "16-bit label PNG holds values outside 0..255")
        return values.astype(np.uint8)
    if mode in ("RGB", "RGBA"):
        return colors_to_ids(np.asarray(image.convert("RGB")), colors)
    raise BadInput("bad_image", f"label PNG mode {mode!r} is neither ids (L, P) nor colours (RGB)")


def decode_raw_ids(data: bytes, width: int, height: int, max_pixels: int) -> np.ndarray:
    """Raw row-major uint8 ids of a width×height map."""
    if width < 1 or height < 1:
        raise BadInput("bad_size", "raw label maps need positive width and height")
    if width * height > max_pixels:
        raise BadInput("too_many_pixels", f"label map {width}×{height} exceeds the {max_pixels}-pixel limit")
    if len(data) != width * height:
        raise BadInput("bad_size", f"raw label map has {len(data)} bytes, expected {width}×{height}")
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width)


def encode_label_png(ids: np.ndarray) -> bytes:
    """H×W uint8 ids → greyscale PNG (how batch jobs keep their inputs and how clients may send maps)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


# ----------------------------------------------------------------------------
# Images


def decode_image_rgb(data: bytes, max_pixels: int) -> np.ndarray:
    """A reference photo (PNG, JPEG or WebP) → H×W×3 uint8, EXIF rotation applied."""
    image = _open_image(data, max_pixels, ["PNG", "JPEG", "WEBP"], "image")
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16"):  # 16-bit grey PNG, the only wide mode these formats decode to
        # convert("RGB") clips 0..65535 at 255 (nearly all white); keep the high byte, as Pillow does for 16-bit RGB
        grey = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def encode_image(rgb: np.ndarray, fmt: str, quality: int) -> bytes:
    """H×W×3 uint8 → JPEG/WebP/PNG bytes. Speed-leaning settings: this runs once per live frame."""
    image = Image.fromarray(rgb)
    buf = io.BytesIO()
    if fmt == "jpeg":
        image.save(buf, "JPEG", quality=quality)
    elif fmt == "webp":
        image.save(buf, "WEBP", quality=quality, method=2)
    elif fmt == "png":
        image.save(buf, "PNG", compress_level=1)
    else:
        raise BadInput("bad_format", f"unknown image format {fmt!r} (jpeg, webp or png)")
    return buf.getvalue()


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """Generator output [3,H,W] float in [-1,1] → H×W×3 uint8."""
    scaled = np.clip(image, -1.0, 1.0)  # a new array, so the in-place steps below leave `image` alone
    scaled += 1.0
    scaled *= 127.5
    scaled += 0.5  # round half up on the way to uint8, as before
    return np.ascontiguousarray(scaled.transpose(1, 2, 0)).astype(np.uint8)


def to_model_input(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H×W×3 uint8 photo → [1,3,H,W] float32 in [-1,1] at `size` (H, W): centre crop to the aspect, resize."""
    h, w = size
    image = ImageOps.fit(Image.fromarray(rgb), (w, h), method=Image.Resampling.BICUBIC)
    arr = np.asarray(image, dtype=np.float32) / 127.5 - 1.0  # [H,W,3]
    return arr.transpose(2, 0, 1)[None]
