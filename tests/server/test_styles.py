"""Style upload → id → render with it; ids survive a restart; bad uploads are refused."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from server.codec import decode_image_rgb, parse_image_frame, to_model_input


def photo(seed: int, fmt: str = "JPEG", width: int = 60, height: int = 40) -> bytes:
    """A smooth 'photo': a random colour gradient, 60×40 unless told."""
    rng = np.random.default_rng(seed)
    top, bottom = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
    t = np.linspace(0, 1, height)[:, None, None]
    pixels = (top * (1 - t) + bottom * t).repeat(width, axis=1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


def upload(client: TestClient, data: bytes, **fields: str) -> object:
    return client.post(
        "/api/v1/styles", files={"image": ("ref", data, "application/octet-stream")}, data=fields
    )


def render(client: TestClient, labels: bytes, **fields: str) -> bytes:
    resp = client.post("/api/v1/render", files={"labels": ("l.png", labels, "image/png")}, data=fields)
    assert resp.status_code == 200, resp.text
    return resp.content


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)), np.int16)


def test_upload_then_render_with_the_style(
    make_client: Callable[..., TestClient], landscape, png_of, label_frame
) -> None:  # noqa: ANN001
    client = make_client()
    sunset, snow = upload(client, photo(1)), upload(client, photo(2, "PNG"))
    assert sunset.status_code == snow.status_code == 201
    a, b = sunset.json(), snow.json()
    assert a["model"] == "tiny-spade" and len(a["z"]) == 8 and a["style_id"] != b["style_id"]
    assert sunset.headers["location"] == f"/api/v1/styles/{a['style_id']}"
    assert upload(client, photo(1)).json()["style_id"] == a["style_id"]  # same photo, same id
    assert client.get(f"/api/v1/styles/{a['style_id']}").json()["z"] == a["z"]

    labels = png_of(landscape())
    with_a = render(client, labels, style_id=a["style_id"])
    assert render(client, labels, style_id=a["style_id"]) == with_a  # deterministic
    with_b = render(client, labels, style_id=b["style_id"])
    assert np.abs(pixels(with_a) - pixels(with_b)).mean() > 1.0  # another style, another picture

    with client.websocket_connect("/api/v1/paint") as ws:  # the paint socket takes the same id
        ws.send_text(json.dumps({"type": "configure", "style": {"style_id": a["style_id"]}, "format": "png"}))
        assert ws.receive_json()["style"] == {"style_id": a["style_id"]}
        ws.send_bytes(label_frame(1, landscape()))
        assert parse_image_frame(ws.receive_bytes())[3] == with_a

    # a new process on the same data dir still knows the style
    restarted = make_client()
    assert restarted.get(f"/api/v1/styles/{a['style_id']}").json()["z"] == a["z"]
    assert render(restarted, labels, style_id=a["style_id"]) == with_a


def test_bad_style_uploads(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_pixels=10_000)
    cases = [
        (upload(client, b"definitely not an image"), 400, "bad_image"),
        (upload(client, photo(1)[:100]), 400, "bad_image"),
        (upload(client, photo(1), model="nope"), 404, "unknown_model"),
        (client.post("/api/v1/styles"), 422, "bad_request"),
        (client.get("/api/v1/styles/0123456789abcdef0123"), 404, "unknown_style"),
        (client.get("/api/v1/styles/not-an-id"), 404, "unknown_style"),
    ]
    big = io.BytesIO()
    Image.new("RGB", (200, 200)).save(big, "PNG")  # 40 kpx > 10 kpx limit
    cases.append((upload(client, big.getvalue()), 413, "too_many_pixels"))
    for resp, status, code in cases:
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code)
    assert upload(client, photo(3)).status_code == 201


@pytest.fixture(scope="module")
def small_encoder_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny-spade` exported with a 16² encoder beside its 32² generator (encoder_inputs.size = [16, 16])."""
    torch = pytest.importorskip("torch")
    from models.archs.spade import build_encoder, build_generator, export_spec, get_preset
    from models.export import export_modules
    from models.labels import LANDSCAPE

    torch.manual_seed(0)
    config = get_preset("spade-tiny")
    config["encoder"]["image_size"] = 16
    weights = tmp_path_factory.mktemp("weights-small-encoder")
    export_modules(
        export_spec(build_generator(config, len(LANDSCAPE)).eval(), build_encoder(config).eval(), LANDSCAPE),
        out_dir=weights / "tiny-spade",
        name="tiny-spade",
        image_size=(32, 32),
        config=config,
    )
    return weights


def test_references_of_any_size_are_resized_to_the_encoder_size(
    make_client: Callable[..., TestClient], small_encoder_weights: Path, landscape, png_of
) -> None:  # noqa: ANN001
    client = make_client(weights_dir=small_encoder_weights)
    model = client.app.state.registry.get(None)  # type: ignore[attr-defined]
    assert model.manifest.image_size == (32, 32) and model.encoder_size == (16, 16)
    with pytest.raises(Exception, match="(?i)dimension|shape"):  # the graph itself takes only 16² images
        model.run_encoder(np.zeros((1, 3, 32, 32), np.float32))
    latents = []
    for seed, (width, height) in enumerate([(60, 40), (7, 300), (16, 16), (640, 480)]):
        data = photo(seed, "PNG", width, height)
        resp = upload(client, data)
        assert resp.status_code == 201, resp.text
        expected = model.run_encoder(to_model_input(decode_image_rgb(data, 10**7), (16, 16)))[0]
        np.testing.assert_allclose(resp.json()["z"], expected, atol=1e-6)
        latents.append(resp.json())
    assert len({tuple(s["z"]) for s in latents}) == 4  # four photos, four styles
    labels = png_of(landscape())
    assert render(client, labels, style_id=latents[0]["style_id"]) != render(
        client, labels, style_id=latents[1]["style_id"]
    )
