"""The upload limit also holds for chunked bodies, which carry no Content-Length to refuse them up front.

httpx's ASGI transport is used instead of TestClient because it hands the app one chunk per `receive`, as a
server does; TestClient joins a streamed body into one message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import httpx
import numpy as np
import pytest

from server.app import create_app
from server.config import Settings

LIMIT = 1024  # the smallest max_upload_bytes settings allow
CHUNK = 256


async def chunks(body: bytes, pulled: list[int]) -> AsyncIterator[bytes]:
    """`body` in CHUNK-byte pieces, recording each piece the app pulls."""
    for start in range(0, len(body), CHUNK):
        pulled.append(start)
        yield body[start : start + CHUNK]


def batch_json() -> tuple[bytes, str]:
    """A valid batch of 8×8 maps, about 4 kB: accepted (202) were it not for the limit."""
    item = {"labels": np.full((8, 8), 6).tolist()}
    return json.dumps({"items": [item] * 20}).encode(), "application/json"


def render_form() -> tuple[bytes, str]:
    """A valid 64×64 raw-ids render form, about 4 kB: rendered (200) were it not for the limit."""
    request = httpx.Request(
        "POST",
        "http://test/",
        files={"labels": ("ids", bytes(64 * 64), "application/octet-stream")},
        data={"width": "64", "height": "64", "seed": "1"},
    )
    return request.read(), request.headers["content-type"]


@pytest.mark.parametrize(
    ("path", "make_body"),
    [("/api/v1/batches", batch_json), ("/api/v1/render", render_form)],
    ids=["json read by the endpoint", "multipart parsed by FastAPI"],
)
def test_chunked_upload_over_the_limit_is_413_and_the_app_keeps_serving(
    settings_for: Callable[..., Settings],
    png_of: Callable[[np.ndarray], bytes],
    landscape: Callable[..., np.ndarray],
    path: str,
    make_body: Callable[[], tuple[bytes, str]],
) -> None:
    app = create_app(settings_for(max_upload_bytes=LIMIT))
    body, content_type = make_body()
    assert len(body) > 3 * LIMIT
    pulled: list[int] = []

    async def main() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            over = await client.post(
                path, content=chunks(body, pulled), headers={"content-type": content_type}
            )
            normal = await client.post(
                "/api/v1/render", files={"labels": ("l.png", png_of(landscape()), "image/png")}
            )
            return over, normal

    over, normal = asyncio.run(main())
    assert "content-length" not in over.request.headers  # so only the streaming check can catch it
    assert over.status_code == 413 and over.headers["content-type"] == "application/json"
    assert over.json()["error"]["code"] == "too_large"
    assert len(pulled) == LIMIT // CHUNK + 1  # reading stopped at the first chunk over the limit
    assert normal.status_code == 200 and normal.headers["content-type"] == "image/png"
