"""Reference image → style latent (the VAE encoder's μ), stored under an id that survives restarts."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from server.api.deps import EngineDep, RegistryDep, SettingsDep, StylesDep
from server.codec import decode_image_rgb, to_model_input
from server.errors import BadInput

router = APIRouter(prefix="/styles", tags=["styles"])


class StylePublic(BaseModel):
    style_id: str
    model: str
    z: list[float]
    created: float


@router.post("", response_model=StylePublic, status_code=201)
async def create_style(
    engine: EngineDep,
    registry: RegistryDep,
    styles: StylesDep,
    settings: SettingsDep,
    image: Annotated[UploadFile, File(description="reference photo: PNG, JPEG or WebP")],
    model: Annotated[str | None, Form(max_length=100, description="model whose encoder to use")] = None,
) -> JSONResponse:
    """Encode a reference image with the model's style encoder; use the id as `style_id` when rendering."""
    m = registry.get(model)
    if m.encoder is None:
        raise BadInput("no_encoder", f"model {m.name} has no style encoder; use a seed or a preset")
    pixels = await asyncio.to_thread(decode_image_rgb, await image.read(), settings.max_pixels)
    model_input = await asyncio.to_thread(to_model_input, pixels, m.encoder_size)  # any size → the encoder's
    z = await engine.encode_style(m, model_input)
    record = await asyncio.to_thread(styles.put, m.name, z, pixels)
    return JSONResponse(
        record.public(), status_code=201, headers={"Location": f"/api/v1/styles/{record.style_id}"}
    )


@router.get("/{style_id}", response_model=StylePublic)
async def read_style(style_id: Annotated[str, Path(max_length=64)], styles: StylesDep) -> dict[str, object]:
    """A stored style and its latent."""
    return (await asyncio.to_thread(styles.get, style_id)).public()
