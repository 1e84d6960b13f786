"""Single-picture render: a label map in, an image out, with timing headers."""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from common.collage import Anchor
from server.api.deps import EngineDep, RegistryDep, SettingsDep, StylesDep
from server.codec import PNG_SIGNATURE, decode_label_png, decode_raw_ids
from server.engine import Engine, Overloaded, RenderRequest
from server.errors import ApiError, BadInput
from server.registry import LoadedModel
from server.styles import MAX_SEED, resolve_style

router = APIRouter(tags=["render"])

ImageFormat = Literal["jpeg", "webp", "png"]
MAX_INSTANCE_SEEDS = 256


class InstanceSeed(BaseModel):
    """A seed for the composited object under pixel (x, y)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    x: int = Field(ge=0, le=65535)
    y: int = Field(ge=0, le=65535)
    seed: int = Field(ge=0, le=MAX_SEED)


_INSTANCE_SEEDS = TypeAdapter(list[InstanceSeed])


def parse_instance_seeds(text: str | None, height: int, width: int) -> tuple[Anchor, ...]:
    """The `instance_seeds` form field (a JSON list of {x, y, seed}) → anchors inside the height×width map;
    unreadable JSON is a 400, a list that is not valid for this map a 422 `bad_instance_seeds`."""
    if text is None:
        return ()
    try:
        seeds = _INSTANCE_SEEDS.validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise ApiError(400, "bad_request", f"instance_seeds is not JSON: {first['msg']}") from None
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(
            422, "bad_instance_seeds", f"instance_seeds{'.' + where if where else ''}: {first['msg']}"
        ) from None
    if len(seeds) > MAX_INSTANCE_SEEDS:
        raise ApiError(
            422, "bad_instance_seeds", f"at most {MAX_INSTANCE_SEEDS} instance seeds, got {len(seeds)}"
        )
    for i, s in enumerate(seeds):
        if s.x >= width or s.y >= height:
            raise ApiError(
                422,
                "bad_instance_seeds",
                f"instance_seeds.{i}: pixel ({s.x}, {s.y}) is outside the {width}×{height} map",
            )
    return tuple(Anchor(s.x, s.y, s.seed) for s in seeds)


def decode_labels(
    data: bytes, model: LoadedModel, max_pixels: int, width: int | None = None, height: int | None = None
) -> np.ndarray:
    """PNG (ids or colours) or raw ids with width/height → H×W uint8 ids (not yet checked against the model)."""
    if data.startswith(PNG_SIGNATURE):
        return decode_label_png(data, model.colors, max_pixels)
    if width is None or height is None:
        raise BadInput("bad_image", "labels must be a PNG, or raw uint8 ids with width and height fields")
    return decode_raw_ids(data, width, height, max_pixels)


async def render_or_503(engine: Engine, request: RenderRequest) -> tuple[bytes, dict[str, str]]:
    """Render through the shared engine; a full queue becomes 503 with Retry-After."""
    try:
        result = await engine.render(request)
    except Overloaded as exc:
        raise ApiError(503, "overloaded", str(exc), {"Retry-After": str(exc.retry_after)}) from None
    headers = {
        "X-Render-Ms": f"{result.infer_ms:.2f}",
        "X-Queue-Ms": f"{result.queue_ms:.2f}",
        "X-Encode-Ms": f"{result.encode_ms:.2f}",
        "X-Batch-Size": str(result.batch_size),
        "X-Model": request.model,
    }
    if request.collage:
        headers["X-Collage-Ms"] = f"{result.collage_ms:.2f}"  # this request's part of X-Render-Ms
    return result.data, headers


_IMAGE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
        "description": "the rendered picture",
    },
}


@router.post("/render", response_class=Response, responses=_IMAGE_RESPONSES)
async def create_render(
    engine: EngineDep,
    registry: RegistryDep,
    styles: StylesDep,
    settings: SettingsDep,
    labels: Annotated[
        UploadFile, File(description="PNG of ids (L/P) or label colours (RGB), or raw uint8 ids")
    ],
    model: Annotated[
        str | None, Form(max_length=100, description="model name; default model if omitted")
    ] = None,
    width: Annotated[int | None, Form(ge=1, le=65535, description="width of raw ids")] = None,
    height: Annotated[int | None, Form(ge=1, le=65535, description="height of raw ids")] = None,
    seed: Annotated[int | None, Form(ge=0, le=MAX_SEED, description="random style seed")] = None,
    style_id: Annotated[str | None, Form(max_length=64, description="uploaded style (POST /styles)")] = None,
    preset: Annotated[str | None, Form(max_length=100, description="the model's preset style name")] = None,
    collage: Annotated[bool, Form(description="run the CollageGAN stage when the model has it")] = False,
    instance_seeds: Annotated[
        str | None,
        Form(
            max_length=65536,
            description='JSON list of {"x", "y", "seed"}: a seed for the composited object under each pixel',
        ),
    ] = None,
    format: Annotated[ImageFormat, Form(description="image format of the answer")] = "png",
    quality: Annotated[int, Form(ge=1, le=100, description="JPEG/WebP quality")] = 90,
) -> Response:
    """Render one label map. Style: one of seed / style_id / preset; none → a random seed (see X-Seed). The seed
    also draws the noise of a model with a noise input (docs/contracts.md)."""
    m = registry.get(model)
    ids = await asyncio.to_thread(decode_labels, await labels.read(), m, settings.max_pixels, width, height)
    if seed is None and style_id is None and preset is None:
        seed = secrets.randbelow(2**31)
    z = await asyncio.to_thread(
        resolve_style, m, styles, seed, style_id, preset
    )  # a style may need the database
    anchors = parse_instance_seeds(instance_seeds, *ids.shape)
    noise_seed = seed if seed is not None else 0  # a preset or uploaded style renders with noise seed 0
    request = RenderRequest(
        m.name,
        ids,
        z,
        format,
        quality,
        collage and m.has_collage,
        source="rest",
        seed=noise_seed,
        anchors=anchors,
    )
    data, headers = await render_or_503(engine, request)
    if seed is not None:
        headers["X-Seed"] = str(seed)
    return Response(data, media_type=f"image/{format}", headers=headers)
