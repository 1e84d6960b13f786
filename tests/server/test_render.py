"""REST render: deterministic per seed, all label-map encodings agree, every bad input is a JSON 4xx."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from server.api.deps import get_engine
from server.app import create_app
from server.config import Settings
from server.engine import Overloaded


def render(client: TestClient, labels: bytes, ctype: str = "image/png", **fields) -> object:  # noqa: ANN003
    return client.post(
        "/api/v1/render",
        files={"labels": ("labels", labels, ctype)},
        data={k: str(v) for k, v in fields.items()},
    )


def test_same_seed_gives_identical_bytes(client: TestClient, landscape, png_of) -> None:  # noqa: ANN001
    labels = png_of(landscape(32, 48))
    for fmt in ("png", "jpeg", "webp"):
        a, b = render(client, labels, seed=42, format=fmt), render(client, labels, seed=42, format=fmt)
        assert a.status_code == b.status_code == 200
        assert a.content == b.content and a.headers["content-type"] == f"image/{fmt}"
        assert Image.open(io.BytesIO(a.content)).size == (48, 32)
    assert render(client, labels, seed=43).content != render(client, labels, seed=42).content
    headers = render(client, labels, seed=42).headers
    assert headers["x-seed"] == "42" and headers["x-model"] == "tiny-spade"
    assert float(headers["x-render-ms"]) > 0 and float(headers["x-queue-ms"]) >= 0


def test_random_seed_is_reported_and_reproducible(client: TestClient, landscape, png_of) -> None:  # noqa: ANN001
    labels = png_of(landscape())
    first = render(client, labels)
    again = render(client, labels, seed=first.headers["x-seed"])
    assert first.content == again.content


def test_ids_colours_and_raw_bytes_render_the_same(client: TestClient, landscape, png_of) -> None:  # noqa: ANN001
    ids = landscape(40, 24)
    palette = np.array(
        [lb["color"] for lb in client.get("/api/v1/models/tiny-spade").json()["labels"]], np.uint8
    )
    as_ids = render(client, png_of(ids), seed=1)
    as_colours = render(client, png_of(palette[ids]), seed=1)
    as_raw = render(client, ids.tobytes(), "application/octet-stream", seed=1, width=24, height=40)
    assert as_ids.status_code == 200 and as_ids.content == as_colours.content == as_raw.content


def test_styles_change_the_picture(client: TestClient, landscape, png_of) -> None:  # noqa: ANN001
    labels = png_of(landscape())
    winter, dusk = render(client, labels, preset="winter"), render(client, labels, preset="dusk")
    assert winter.status_code == 200 and "x-seed" not in winter.headers
    a = np.asarray(Image.open(io.BytesIO(winter.content)), np.int16)
    b = np.asarray(Image.open(io.BytesIO(dusk.content)), np.int16)
    assert np.abs(a - b).mean() > 1.0


def bomb_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (3000, 3000)).save(buf, "PNG")  # 9 Mpx: over the 1 Mpx default
    return buf.getvalue()


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


GOOD = png_bytes(np.full((32, 32), 6, np.uint8))
BAD_INPUTS = [
    (
        "oversized upload",
        {"labels": png_bytes(np.random.default_rng(0).integers(0, 255, (200, 200), np.uint8))},
        413,
        "too_large",
    ),
    ("decompression bomb", {"labels": bomb_png()}, 413, "too_many_pixels"),
    ("not a PNG", {"labels": b"GIF89a-not-really"}, 400, "bad_image"),
    ("truncated PNG", {"labels": GOOD[:50]}, 400, "bad_image"),
    ("wrong size", {"labels": png_bytes(np.zeros((30, 32), np.uint8))}, 422, "bad_size"),
    ("label id >= N", {"labels": png_bytes(np.full((32, 32), 14, np.uint8))}, 422, "bad_label_id"),
    ("unknown colour", {"labels": png_bytes(np.full((32, 32, 3), 7, np.uint8))}, 422, "unknown_color"),
    ("raw ids without size", {"labels": bytes(1024)}, 400, "bad_image"),
    ("raw ids wrong length", {"labels": bytes(1000), "width": "32", "height": "32"}, 422, "bad_size"),
    ("unknown model", {"labels": GOOD, "model": "nope"}, 404, "unknown_model"),
    ("unknown style", {"labels": GOOD, "style_id": "0123456789abcdef0123"}, 404, "unknown_style"),
    ("malformed style id", {"labels": GOOD, "style_id": "../../etc/passwd"}, 404, "unknown_style"),
    ("unknown preset", {"labels": GOOD, "preset": "summer"}, 404, "unknown_preset"),
    ("two styles", {"labels": GOOD, "seed": "1", "preset": "winter"}, 422, "bad_style"),
    ("bad format", {"labels": GOOD, "format": "gif"}, 422, "bad_request"),
    ("negative seed", {"labels": GOOD, "seed": "-1"}, 422, "bad_request"),
    ("no file", {"seed": "1"}, 422, "bad_request"),
]


@pytest.fixture(scope="module")
def small_upload_client(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for all bad-input cases (20 kB upload limit): each case must leave it serving."""
    tmp = tmp_path_factory.mktemp("render")
    settings = Settings(
        weights_dir=tiny_weights, data_dir=tmp / "data", frontend_dir=tmp, max_upload_bytes=20_000
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(("case", "fields", "status", "code"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_get_json_errors(
    small_upload_client: TestClient, case: str, fields: dict, status: int, code: str
) -> None:
    client = small_upload_client
    fields = dict(fields)
    files = (
        {"labels": ("labels", fields.pop("labels"), "application/octet-stream")}
        if "labels" in fields
        else None
    )
    resp = client.post("/api/v1/render", files=files, data=fields)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code and len(body["error"]["message"]) > 10
    assert "Traceback" not in resp.text
    assert render(client, GOOD, seed=1).status_code == 200  # still serving


def test_wrong_method_and_path_are_json(client: TestClient) -> None:
    assert client.get("/api/v1/render").json()["error"]["code"] == "method_not_allowed"
    resp = client.get("/api/v1/nothing")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


def test_api_key_guards_rest(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key="sekrit")
    assert client.get("/api/v1/models").status_code == 401
    wrong = client.get("/api/v1/models", headers={"X-API-Key": "guess"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/models", headers={"X-API-Key": "sekrit"}).status_code == 200
    assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200


def test_overload_is_503_with_retry_after(client: TestClient) -> None:
    class Full:
        def validate(self, request: object) -> None:
            return None

        async def render(self, request: object, priority: str = "interactive") -> None:
            raise Overloaded(7)

    client.app.dependency_overrides[get_engine] = lambda: Full()  # type: ignore[attr-defined]
    resp = render(client, GOOD, seed=1)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "7"
    assert resp.json()["error"]["code"] == "overloaded"


def test_unexpected_errors_are_500_without_details(make_client: Callable[..., TestClient]) -> None:
    client = make_client(raise_server_exceptions=False)

    class Broken:
        async def render(self, request: object, priority: str = "interactive") -> None:
            raise RuntimeError("secret internals /etc/shadow")

    client.app.dependency_overrides[get_engine] = lambda: Broken()  # type: ignore[attr-defined]
    resp = render(client, GOOD, seed=1)
    assert resp.status_code == 500 and resp.json()["error"]["code"] == "internal"
    assert "secret" not in resp.text and "Traceback" not in resp.text
