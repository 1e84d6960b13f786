"""The paint websocket: round trip, latest-wins under a slowed engine, every error keeps the socket open."""

from __future__ import annotations

import io
import json
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from server.codec import parse_image_frame


def configure(ws, **fields) -> dict:  # noqa: ANN001
    ws.send_text(json.dumps({"type": "configure", **fields}))
    return ws.receive_json()


def test_round_trip_answers_the_seq_with_an_image_of_the_requested_size(
    client: TestClient, landscape, label_frame
) -> None:  # noqa: ANN001
    with client.websocket_connect("/api/v1/paint") as ws:
        reply = configure(ws, size=[64, 48], style={"seed": 5}, format="jpeg", quality=80)
        assert reply == {
            "type": "configured",
            "model": "tiny-spade",
            "size": [64, 48],
            "style": {"seed": 5},
            "collage": False,  # the tiny model has no class generators
            "format": "jpeg",
            "quality": 80,
            "z_dim": 8,
        }
        ws.send_bytes(label_frame(7, landscape(48, 64)))
        seq, server_ms, fmt, data = parse_image_frame(ws.receive_bytes())
        image = Image.open(io.BytesIO(data))
        assert (seq, fmt, image.format, image.size) == (7, "jpeg", "JPEG", (64, 48))
        assert 0.0 < server_ms < 5000.0

        configure(ws, format="png")  # other fields keep their values
        ws.send_bytes(label_frame(8, landscape(48, 64), compress=False))
        seq, _, fmt, data = parse_image_frame(ws.receive_bytes())
        assert (seq, fmt, Image.open(io.BytesIO(data)).size) == (8, "png", (64, 48))

        ws.send_text(json.dumps({"type": "ping", "t": 123.5}))
        assert ws.receive_json() == {"type": "pong", "t": 123.5}


def test_same_seed_same_picture_across_connections(client: TestClient, landscape, label_frame) -> None:  # noqa: ANN001
    images = []
    for _ in range(2):
        with client.websocket_connect("/api/v1/paint") as ws:
            configure(ws, style={"seed": 11}, format="png")
            ws.send_bytes(label_frame(1, landscape()))
            images.append(parse_image_frame(ws.receive_bytes())[3])
    assert images[0] == images[1]


def test_latest_wins_with_a_slow_engine(client: TestClient, slow_engine, landscape, label_frame) -> None:  # noqa: ANN001
    slow = slow_engine(client, 0.3)
    maps = []
    for seq in range(1, 21):
        ids = landscape()
        ids[0, :seq] = 1  # every map differs: seq cloud pixels in the first row
        maps.append(ids)
    with client.websocket_connect("/api/v1/paint") as ws:
        configure(ws, format="png")
        for seq, ids in enumerate(maps, start=1):
            ws.send_bytes(label_frame(seq, ids))
        answered = []
        while not answered or answered[-1] != 20:
            answered.append(parse_image_frame(ws.receive_bytes())[0])
    assert answered == sorted(set(answered))  # strictly increasing
    assert answered[-1] == 20 and answered[0] == 1
    assert len(slow.renders) == len(answered) <= 4  # far fewer renders than the 20 maps sent
    assert slow.renders[-1] == int(maps[-1].sum())  # the last render used the newest map
    metrics = client.get("/metrics").text
    dropped = float(re.search(r"^collage_frames_dropped_total (\S+)$", metrics, re.M).group(1))
    assert dropped == 20 - len(answered)


def frame_header(seq: int, w: int, h: int, enc: int, kind: int = 1) -> bytes:
    return struct.pack("<BIHHB", kind, seq, w, h, enc)


BAD_TEXT = [
    ("not json", "bad_message"),
    ("[1, 2]", "bad_message"),
    ('{"type": "dance"}', "bad_message"),
    ('{"type": "configure", "colour": "red"}', "bad_message"),
    ('{"type": "configure", "size": [32]}', "bad_message"),
    ('{"type": "configure", "quality": 0}', "bad_message"),
    ('{"type": "configure", "style": {"seed": 1, "preset": "winter"}}', "bad_message"),
    ('{"type": "configure", "model": "nope"}', "unknown_model"),
    ('{"type": "configure", "style": {"preset": "summer"}}', "unknown_preset"),
    ('{"type": "configure", "style": {"style_id": "0123456789abcdef0123"}}', "unknown_style"),
    ('{"type": "configure", "size": [30, 32]}', "bad_size"),
    ('{"type": "configure", "size": [2048, 2048]}', "bad_size"),
    ("[" * 1000 + "]" * 1000, "bad_message"),  # json.loads would raise RecursionError
    ('{"type": "ping", "t": NaN}', "bad_message"),  # the pong would not be JSON
    ('{"type": "ping", "t": "123"}', "bad_message"),
    ('{"type": "configure", "style": {"seed": "7"}}', "bad_message"),  # seeds are JSON integers
    ('{"type": "configure", "style": {"seed": true}}', "bad_message"),
]


def test_bad_messages_get_errors_and_the_socket_stays_open(
    client: TestClient, landscape, label_frame
) -> None:  # noqa: ANN001
    ids = landscape()
    bad_frames: list[tuple[bytes, str, int | None]] = [
        (b"\x01\x02", "bad_frame", None),
        (frame_header(3, 32, 32, 0, kind=9) + ids.tobytes(), "bad_frame", 3),
        (frame_header(4, 32, 32, 1) + b"garbage", "bad_frame", 4),
        (frame_header(5, 32, 32, 1) + zlib.compress(bytes(5_000_000)), "bad_frame", 5),  # zlib bomb
        (frame_header(6, 32, 32, 0) + ids.tobytes()[:-1], "bad_frame", 6),
        (label_frame(7, landscape(40, 40)), "bad_size", 7),  # not the configured 32×32
        (label_frame(8, np.full((32, 32), 14, np.uint8)), "bad_label_id", 8),
        (frame_header(9, 2000, 2000, 1) + zlib.compress(bytes(16)), "too_many_pixels", 9),
    ]
    with client.websocket_connect("/api/v1/paint") as ws:
        for text, code in BAD_TEXT:
            ws.send_text(text)
            reply = ws.receive_json()
            assert (reply["type"], reply["code"], reply["seq"]) == ("error", code, None), text
            assert reply["message"] and "Traceback" not in reply["message"]
        for data, code, seq in bad_frames:
            ws.send_bytes(data)
            reply = ws.receive_json()
            assert (reply["type"], reply["code"], reply["seq"]) == ("error", code, seq)
        ws.send_bytes(label_frame(20, ids))
        assert parse_image_frame(ws.receive_bytes())[0] == 20
        ws.send_bytes(label_frame(20, ids))  # a seq must grow
        assert ws.receive_json()["code"] == "bad_seq"
        ws.send_bytes(label_frame(21, ids))  # still serving after all of that
        assert parse_image_frame(ws.receive_bytes())[0] == 21
        # the refused configures left the configuration untouched
        assert configure(ws)["size"] == [32, 32]


@pytest.mark.parametrize("how", ["query", "first message", "configure field"])
def test_api_key_accepted(make_client: Callable[..., TestClient], landscape, label_frame, how: str) -> None:  # noqa: ANN001
    client = make_client(api_key="sekrit")
    url = "/api/v1/paint" + ("?api_key=sekrit" if how == "query" else "")
    with client.websocket_connect(url) as ws:
        if how == "first message":
            ws.send_text(json.dumps({"type": "auth", "api_key": "sekrit"}))
        if how == "configure field":
            assert configure(ws, api_key="sekrit", format="png")["type"] == "configured"
        ws.send_bytes(label_frame(1, landscape()))
        assert parse_image_frame(ws.receive_bytes())[0] == 1


@pytest.mark.parametrize(
    "how", ["no key", "wrong query key", "wrong first message", "unparsable first message"]
)
def test_api_key_refused_with_4401(
    make_client: Callable[..., TestClient], landscape, label_frame, how: str
) -> None:  # noqa: ANN001
    client = make_client(api_key="sekrit")
    url = "/api/v1/paint" + ("?api_key=guess" if how == "wrong query key" else "")
    with client.websocket_connect(url) as ws:
        if how == "no key":
            ws.send_bytes(label_frame(1, landscape()))
        elif how == "wrong first message":
            ws.send_text(json.dumps({"type": "auth", "api_key": "guess"}))
        elif how == "unparsable first message":
            ws.send_text("[" * 1000 + "]" * 1000)
        reply = ws.receive_json()
        assert (reply["type"], reply["code"]) == ("error", "unauthorized")
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_bytes()
        assert info.value.code == 4401
    assert client.get("/healthz").status_code == 200


def test_an_overloaded_frame_is_refused_and_counted_once(
    make_client: Callable[..., TestClient], landscape, label_frame, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    client = make_client(queue_limit=1, max_batch=1, max_wait_ms=0)
    engine = client.app.state.engine  # type: ignore[attr-defined]
    model = client.app.state.registry.get("tiny-spade")  # type: ignore[attr-defined]
    started, release = threading.Event(), threading.Event()
    run = model.run_generator

    def hold(*args: np.ndarray | None) -> np.ndarray:  # holds the inference thread
        started.set()
        release.wait(10)
        return run(*args)

    monkeypatch.setattr(model, "run_generator", hold)
    with (
        client.websocket_connect("/api/v1/paint") as a,
        client.websocket_connect("/api/v1/paint") as b,
        client.websocket_connect("/api/v1/paint") as c,
    ):
        a.send_bytes(label_frame(1, landscape()))
        assert started.wait(10)  # a's frame holds the inference thread
        b.send_bytes(label_frame(1, landscape()))
        deadline = time.monotonic() + 10
        while engine.queue_depth() < 1:  # b's frame fills the queue of one
            assert time.monotonic() < deadline
            time.sleep(0.01)
        c.send_bytes(label_frame(1, landscape()))
        reply = c.receive_json()
        assert (reply["code"], reply["seq"]) == ("overloaded", 1)
        release.set()
        assert parse_image_frame(a.receive_bytes())[0] == parse_image_frame(b.receive_bytes())[0] == 1
    rejected = client.app.state.metrics.registry.get_sample_value  # type: ignore[attr-defined]
    assert rejected("collage_rejected_total", {"code": "overloaded"}) == 1


def test_no_model_loaded(make_client: Callable[..., TestClient], tmp_path, landscape, label_frame) -> None:  # noqa: ANN001
    client = make_client(weights_dir=tmp_path / "empty")
    with client.websocket_connect("/api/v1/paint") as ws:
        ws.send_bytes(label_frame(1, landscape()))
        reply = ws.receive_json()
        assert (reply["code"], reply["seq"]) == ("unknown_model", 1)
        assert "no model is loaded" in reply["message"]


def test_an_oversized_message_is_refused_by_the_app_under_plain_uvicorn(
    server_process, tiny_weights: Path, tmp_path: Path, landscape, label_frame
) -> None:  # noqa: ANN001
    """Plain `uvicorn server.app:app` lets 16 MiB messages through to the app (`python -m server` has uvicorn
    stop them): the paint handler itself closes with 1009 on a message over the limit (1,049,600 bytes with the
    default 1 Mpx) before reading it, text or binary; a raw 1024² map just under the limit is still read."""
    env = {"COLLAGE_WEIGHTS_DIR": str(tiny_weights), "COLLAGE_DATA_DIR": str(tmp_path / "data")}
    proc = server_process(env, ("uvicorn", "server.app:app", "--log-level", "warning"))
    url = f"ws://127.0.0.1:{proc.port}/api/v1/paint"
    big = 2 * 1024 * 1024 + 7  # between 1 MiB and uvicorn's 16 MiB default
    oversized = [
        struct.pack("<BIHHB", 1, 1, 1024, 1024, 0) + bytes(big),  # a raw map header, 2 MiB of ids
        json.dumps({"type": "ping", "t": 1, "pad": "x" * big}),  # decoding would say bad_message
        "€" * (big // 4),  # 0.5 M characters, under the limit, but 1.5 MiB of UTF-8
    ]
    for message in oversized:
        with connect(url, max_size=None) as ws:
            ws.send(message)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=30)  # no error message comes first: nothing decoded it
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
            assert info.value.rcvd.reason == "message too big: the limit is 1049600 bytes"
    with connect(url, max_size=None) as ws:  # a raw map of the largest size, ids all out of range
        ws.send(json.dumps({"type": "configure", "size": [1024, 1024]}))
        assert json.loads(ws.recv(timeout=30))["size"] == [1024, 1024]
        ws.send(label_frame(1, np.full((1024, 1024), 200, np.uint8), compress=False))
        reply = json.loads(ws.recv(timeout=30))
        assert (reply["code"], reply["seq"]) == ("bad_label_id", 1)
    metrics = httpx.get(proc.url + "/metrics").text
    assert 'collage_rejected_total{code="too_large"} 3.0' in metrics


def test_a_rest_render_overtakes_backlogged_painters_who_are_all_served(
    make_client: Callable[..., TestClient], landscape, label_frame, png_of, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """20 paint sockets each have a frame waiting (the engine's batches of 4 would take 5 turns) while the
    inference thread is held; a REST render sent after them runs in the very next generator call, and every
    socket still gets its picture."""
    client = make_client(max_batch=4, max_wait_ms=0)
    engine = client.app.state.engine  # type: ignore[attr-defined]
    depth = client.app.state.metrics.registry.get_sample_value  # type: ignore[attr-defined]
    model = client.app.state.registry.get("tiny-spade")  # type: ignore[attr-defined]
    started, release = threading.Event(), threading.Event()
    calls: list[tuple[int, ...]] = []  # each generator call's map sides: 32 = a paint frame, 48 = REST
    run = model.run_generator

    def hold(label: np.ndarray, *args: np.ndarray | None) -> np.ndarray:
        calls.append(tuple(int(m.shape[-1]) for m in label))
        started.set()
        release.wait(10)
        return run(label, *args)

    monkeypatch.setattr(model, "run_generator", hold)
    sockets = [client.websocket_connect("/api/v1/paint") for _ in range(21)]
    connected = [ws.__enter__() for ws in sockets]
    try:
        connected[0].send_bytes(label_frame(1, landscape()))
        assert started.wait(10)  # the first painter's frame holds the inference thread
        for ws in connected[1:]:
            ws.send_bytes(label_frame(1, landscape()))
        deadline = time.monotonic() + 10
        while engine.queue_depth() < 20:  # 20 painters backlogged
            assert time.monotonic() < deadline
            time.sleep(0.01)
        answer: list[object] = []
        labels = png_of(landscape(48, 48))
        rest = threading.Thread(
            target=lambda: answer.append(
                client.post(
                    "/api/v1/render", files={"labels": ("l", labels, "image/png")}, data={"seed": "3"}
                )
            )
        )
        rest.start()
        while engine.queue_depth() < 21:  # the REST render waits too
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert depth("collage_queue_depth", {"lane": "rest"}) == 1
        release.set()
        rest.join(30)
        assert answer and answer[0].status_code == 200  # type: ignore[attr-defined]
        assert [parse_image_frame(ws.receive_bytes())[0] for ws in connected] == [1] * 21  # all served
    finally:
        release.set()
        for ws in reversed(sockets):
            ws.__exit__(None, None, None)
    assert calls[0] == (32,) and calls[1] == (48,)  # the REST render went right after the held frame
    assert sorted(size for call in calls[2:] for size in call) == [32] * 20  # then the 20 waiting frames
