"""The live paint websocket (docs/protocol.md): label maps in, pictures out, latest-wins.

Per connection: a receive loop decodes and validates every message at once (errors go back immediately, tagged
with their seq) and puts valid label maps into a one-frame pending slot; a render loop takes the slot, renders
through the shared engine and answers. A map arriving while another renders replaces the pending one (counted
as dropped), so the client always gets the newest picture and never an answer older than one it already has.

With collage on, a `reroll` anchors a new seed on the object under a pixel for the rest of the session and
re-composes the last frame from its cached base picture (the base generator does not run again), so only that
object and the smaller ones composited after it can change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import from_json
from starlette.websockets import WebSocketDisconnect, WebSocketState

from common.collage import Anchor, clipped_box, instance_at
from common.instances import instances_from_labels
from server.api.deps import EngineDep, MetricsDep, RegistryDep, SettingsDep, StylesDep, key_matches
from server.codec import LabelFrame, check_label_ids, image_frame, parse_label_frame
from server.config import Settings
from server.engine import Engine, Overloaded, RenderRequest, RenderResult
from server.errors import BadInput
from server.metrics import Metrics
from server.registry import Registry
from server.styles import MAX_SEED, StyleStore, resolve_style

log = logging.getLogger(__name__)
router = APIRouter(tags=["paint"])

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_BIG = 1009  # RFC 6455 "message too big", as uvicorn closes when its ws_max_size is exceeded
MAX_ANCHORS = 256  # re-roll seeds a session keeps (the oldest go first); one per object is kept anyway
# Messages are validated strictly from the JSON text: a number must be a JSON number ("7" is no seed), and
# pydantic's parser bounds nesting depth where json.loads raises RecursionError.
_STRICT = ConfigDict(extra="forbid", strict=True)


class StyleSpec(BaseModel):
    model_config = _STRICT
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    style_id: str | None = Field(None, max_length=64)
    preset: str | None = Field(None, max_length=100)

    @model_validator(mode="after")
    def _exactly_one(self) -> StyleSpec:
        if sum(v is not None for v in (self.seed, self.style_id, self.preset)) != 1:
            raise ValueError("style needs exactly one of seed, style_id, preset")
        return self


class Configure(BaseModel):
    model_config = _STRICT
    type: Literal["configure"]
    model: str | None = Field(None, max_length=100)
    size: tuple[Annotated[int, Field(ge=1, le=65535)], Annotated[int, Field(ge=1, le=65535)]] | None = None
    style: StyleSpec | None = None
    collage: bool | None = None
    format: Literal["jpeg", "webp", "png"] | None = None
    quality: int | None = Field(None, ge=1, le=100)
    api_key: str | None = None


class Ping(BaseModel):
    model_config = _STRICT
    type: Literal["ping"]
    t: float | None = Field(None, allow_inf_nan=False)  # echoed back: NaN would make the pong invalid JSON
    api_key: str | None = None


class Auth(BaseModel):
    model_config = _STRICT
    type: Literal["auth"]
    api_key: str


class Reroll(BaseModel):
    model_config = _STRICT
    type: Literal["reroll"]
    x: int = Field(ge=0, le=65535)  # a pixel of the configured map size
    y: int = Field(ge=0, le=65535)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)  # None: the server draws one


_MESSAGE: TypeAdapter[Configure | Ping | Auth | Reroll] = TypeAdapter(
    Annotated[Configure | Ping | Auth | Reroll, Field(discriminator="type")]
)


@dataclass(frozen=True)
class PaintConfig:
    """The effective configuration; frames are rendered with the config in force when they arrived."""

    model: str | None
    size: tuple[int, int]  # (width, height) of the maps the client sends
    style: dict[str, Any]  # {"seed": n} | {"style_id": s} | {"preset": p}
    z: np.ndarray | None
    collage: bool
    format: str
    quality: int

    def public(self, z_dim: int) -> dict[str, Any]:
        return {
            "type": "configured",
            "model": self.model,
            "size": list(self.size),
            "style": self.style,
            "collage": self.collage,
            "format": self.format,
            "quality": self.quality,
            "z_dim": z_dim,
        }


@dataclass(frozen=True)
class LastFrame:
    """The newest frame rendered, kept so a re-roll can re-compose it without running the base generator."""

    seq: int
    labels: np.ndarray  # H×W uint8
    base: np.ndarray  # [3,H,W] float32: the base generator's picture, before the collage stage
    config: PaintConfig  # what it was rendered with


class PaintSession:
    """One websocket connection's state and its two loops."""

    def __init__(
        self,
        ws: WebSocket,
        engine: Engine,
        registry: Registry,
        styles: StyleStore,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.ws = ws
        self.engine = engine
        self.registry = registry
        self.styles = styles
        self.settings = settings
        self.metrics = metrics
        self.send_lock = asyncio.Lock()
        self.last_seq = -1  # newest seq accepted
        self.pending: tuple[LabelFrame, PaintConfig, float] | None = None
        self.wake = asyncio.Event()
        self.config = self._default_config()
        self.anchors: list[Anchor] = []  # re-roll seeds, applied to every frame of the session
        self.last: LastFrame | None = None  # cached only for models with class generators
        self.reroll_received: float | None = None  # a re-roll waiting for the render loop

    def _default_config(self) -> PaintConfig:
        model = self.registry.models.get(self.registry.default_name or "")
        if model is None:
            return PaintConfig(None, (0, 0), {"seed": 0}, None, False, "jpeg", 90)
        h, w = model.manifest.image_size
        return PaintConfig(
            model.name,
            (w, h),
            {"seed": 0},
            resolve_style(model, self.styles, 0, None, None),
            False,
            "jpeg",
            90,
        )

    # ------------------------------------------------------------------ sending

    async def send_json(self, payload: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(payload))

    async def send_error(self, code: str, message: str, seq: int | None = None) -> None:
        self.metrics.rejected.labels(code).inc()
        await self.send_json({"type": "error", "code": code, "message": message, "seq": seq})

    # ------------------------------------------------------------------ receiving

    async def run(self) -> None:
        given = self.ws.query_params.get("api_key") or self.ws.headers.get("x-api-key")
        authed = key_matches(self.settings, given)
        if given is not None and not authed:
            await self._refuse()
            return
        renderer = asyncio.create_task(self._render_loop())
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text, data = message.get("text"), message.get("bytes")
                if _too_big(text, data, self.settings.ws_max_bytes):
                    await self._refuse_too_big()
                    return
                if not authed:
                    authed = text is not None and key_matches(self.settings, _api_key_of(text))
                    if not authed:
                        await self._refuse()
                        return
                if text is not None:
                    await self._on_text(text)
                elif data is not None:
                    await self._on_frame(data)
        finally:
            renderer.cancel()
            await asyncio.gather(renderer, return_exceptions=True)

    async def _refuse(self) -> None:
        await self.send_error(
            "unauthorized", "missing or wrong API key (api_key query parameter or first message)"
        )
        await self.ws.close(code=CLOSE_UNAUTHORIZED, reason="unauthorized")

    async def _refuse_too_big(self) -> None:
        """Close with 1009 before anything reads the message: the limit `python -m server` gives uvicorn, kept
        by the app itself under any server (plain `uvicorn server.app:app` allows 16 MiB)."""
        self.metrics.rejected.labels("too_large").inc()
        limit = self.settings.ws_max_bytes
        await self.ws.close(code=CLOSE_TOO_BIG, reason=f"message too big: the limit is {limit} bytes")

    async def _on_text(self, text: str) -> None:
        try:
            message = _MESSAGE.validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            await self.send_error("bad_message", f"{where}: {first['msg']}" if where else first["msg"])
            return
        if isinstance(message, Ping):
            await self.send_json({"type": "pong", "t": message.t})
        elif isinstance(message, Configure):
            await self._configure(message)
        elif isinstance(message, Reroll):
            await self._reroll(message)

    async def _configure(self, msg: Configure) -> None:
        old = self.config
        try:
            model = self.registry.get(msg.model if msg.model is not None else old.model)
            size = msg.size
            if size is None:
                h, w = model.manifest.image_size
                size = old.size if model.name == old.model else (w, h)
            model.check_size(size[1], size[0])
            if size[0] * size[1] > self.settings.max_pixels:
                raise BadInput(
                    "too_many_pixels",
                    f"size {size[0]}×{size[1]} exceeds the {self.settings.max_pixels}-pixel limit",
                )
            style = msg.style.model_dump(exclude_none=True) if msg.style is not None else old.style
            z = await asyncio.to_thread(  # a style may need the database
                resolve_style,
                model,
                self.styles,
                style.get("seed"),
                style.get("style_id"),
                style.get("preset"),
            )
        except BadInput as exc:
            await self.send_error(exc.code, exc.message)
            return
        collage = (msg.collage if msg.collage is not None else old.collage) and model.has_collage
        self.config = replace(
            old,
            model=model.name,
            size=(size[0], size[1]),
            style=style,
            z=z,
            collage=collage,
            format=msg.format or old.format,
            quality=msg.quality or old.quality,
        )
        if (model.name, self.config.size) != (old.model, old.size):  # seeds of objects that no longer exist
            self.anchors, self.last, self.reroll_received = [], None, None
        await self.send_json(self.config.public(model.z_dim))

    async def _reroll(self, msg: Reroll) -> None:
        """Anchor a new seed on the composited object under (x, y) and re-compose the last frame with it."""
        config, last = self.config, self.last
        w, h = config.size
        if msg.x >= w or msg.y >= h:
            await self.send_error("bad_message", f"pixel ({msg.x}, {msg.y}) is outside the {w}×{h} map")
            return
        model = self.registry.models.get(config.model or "")
        if model is None or not (config.collage and model.has_collage):
            await self.send_error(
                "collage_off",
                "re-roll needs collage on (configure collage: true) and a model with class generators",
            )
            return
        if last is None:
            await self.send_error("no_frame", "nothing to re-roll yet: send a label map first")
            return
        specs = {cid: g.spec for cid, g in model.class_generators.items()}
        thing_ids, labels = model.thing_ids, last.labels
        hit = await asyncio.to_thread(  # as the engine finds them: components of the thing classes
            lambda: instance_at(labels, instances_from_labels(labels, thing_ids), specs, msg.x, msg.y)
        )
        if hit is None:
            await self.send_error(
                "no_instance",
                f"no composited object at ({msg.x}, {msg.y}) (objects: {', '.join(model.collage_classes)})",
            )
            return
        seed = msg.seed if msg.seed is not None else secrets.randbelow(2**31)
        kept = [a for a in self.anchors if not hit.contains(a.x, a.y)]  # this object's older seeds
        self.anchors = [*kept[-(MAX_ANCHORS - 1) :], Anchor(msg.x, msg.y, seed)]
        await self.send_json(
            {
                "type": "rerolled",
                "x": msg.x,
                "y": msg.y,
                "seed": seed,
                "thing": hit.thing,
                "box": list(clipped_box(hit.square, h, w)),
            }
        )
        self.reroll_received = time.perf_counter()
        self.wake.set()

    async def _on_frame(self, data: bytes) -> None:
        received = time.perf_counter()
        seq = int.from_bytes(data[1:5], "little") if len(data) >= 5 else None
        try:
            frame = parse_label_frame(data, self.settings.max_pixels)
            if frame.seq <= self.last_seq:
                raise BadInput("bad_seq", f"seq {frame.seq} is not above the previous {self.last_seq}")
            config = self.config
            model = self.registry.get(config.model)
            h, w = frame.ids.shape
            if (w, h) != config.size:
                raise BadInput(
                    "bad_size", f"map is {w}×{h}, configured size is {config.size[0]}×{config.size[1]}"
                )
            check_label_ids(frame.ids, model.num_labels)
        except BadInput as exc:
            await self.send_error(exc.code, exc.message, seq)
            return
        self.last_seq = frame.seq
        if self.pending is not None:
            self.metrics.frames_dropped.inc()
        self.pending = (frame, config, received)
        self.wake.set()

    # ------------------------------------------------------------------ rendering

    async def _render_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.pending is not None:
                frame, config, received = self.pending
                self.pending = None
                self.reroll_received = None  # this frame renders with the new seed anyway
                await self._render_frame(frame, config, received)
            elif self.reroll_received is not None and self.last is not None:
                received, self.reroll_received = self.reroll_received, None
                await self._render_reroll(self.last, received)

    async def _render_frame(self, frame: LabelFrame, config: PaintConfig, received: float) -> None:
        assert config.model is not None and config.z is not None
        model = self.registry.models.get(config.model)
        request = RenderRequest(
            config.model,
            frame.ids,
            config.z,
            config.format,
            config.quality,
            config.collage,
            source="paint",
            seed=config.style.get("seed", 0),  # the noise seed; 0 with a preset or uploaded style
            anchors=tuple(self.anchors),
            keep_base=model is not None and model.has_collage,
        )
        result = await self._render(request, frame.seq, received)
        current = self.config
        if (
            result is not None
            and result.base is not None
            and (config.model, config.size)
            == (
                current.model,
                current.size,
            )
        ):
            self.last = LastFrame(frame.seq, frame.ids, result.base, config)

    async def _render_reroll(self, last: LastFrame, received: float) -> None:
        """The last frame again, its cached base picture re-composed with the session's seeds (same seq)."""
        config = last.config
        assert config.model is not None and config.z is not None
        request = RenderRequest(
            config.model,
            last.labels,
            config.z,
            config.format,
            config.quality,
            collage=True,
            source="paint",
            anchors=tuple(self.anchors),
            base=last.base,
        )
        await self._render(request, last.seq, received)

    async def _render(self, request: RenderRequest, seq: int, received: float) -> RenderResult | None:
        """Render and answer with an image frame for `seq`, or with an error tagged with it."""
        try:
            result = await self.engine.render(request)
        except BadInput as exc:
            await self.send_error(exc.code, exc.message, seq)
            return None
        except Overloaded as exc:
            await self.send_error("overloaded", str(exc), seq)
            return None
        except Exception:
            log.exception("paint render failed")
            await self.send_error("internal", "rendering failed; see the server log", seq)
            return None
        # One render loop and strictly increasing seqs in the slot: answers never go back in seq.
        server_ms = (time.perf_counter() - received) * 1000.0
        async with self.send_lock:
            await self.ws.send_bytes(image_frame(seq, server_ms, request.fmt, result.data))
        return result


def _too_big(text: str | None, data: bytes | None, limit: int) -> bool:
    """The message is over `limit` bytes (text counted as UTF-8, encoded only when its length leaves a doubt)."""
    if data is not None:
        return len(data) > limit
    if text is None:
        return False
    return len(text) > limit or (4 * len(text) > limit and len(text.encode()) > limit)


def _api_key_of(text: str) -> str | None:
    try:
        payload = from_json(text)  # any message may carry the key; depth-bounded like _MESSAGE
    except ValueError:
        return None
    key = payload.get("api_key") if isinstance(payload, dict) else None
    return key if isinstance(key, str) else None


@router.websocket("/paint")
async def paint(
    websocket: WebSocket,
    engine: EngineDep,
    registry: RegistryDep,
    styles: StylesDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> None:
    """Live painting; see docs/protocol.md for every message."""
    await websocket.accept()
    metrics.paint_connections.inc()
    try:
        await PaintSession(websocket, engine, registry, styles, settings, metrics).run()
    except WebSocketDisconnect:
        pass
    finally:
        metrics.paint_connections.dec()
        if (
            websocket.application_state == WebSocketState.CONNECTED
            and websocket.client_state == WebSocketState.CONNECTED
        ):
            await websocket.close()
