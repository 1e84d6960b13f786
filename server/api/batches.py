"""Batch jobs: many label maps in, a job id out; progress, a results zip, cancel. Jobs survive restarts."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import secrets
import zipfile
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.api.deps import EngineDep, JobsDep, RegistryDep, SettingsDep, StylesDep
from server.api.render import decode_labels
from server.engine import Engine, RenderRequest
from server.errors import ApiError, BadInput
from server.jobs import JobItem
from server.registry import LoadedModel
from server.styles import MAX_SEED, StyleStore, resolve_style

router = APIRouter(prefix="/batches", tags=["batches"])

JobId = Annotated[str, Path(max_length=64, description="id returned by POST /batches")]
# Strict: `true`, `1.0` and `"1"` are not ids, and the range check keeps huge ints away from numpy (OverflowError).
LabelId = Annotated[int, Field(strict=True, ge=0, le=255)]


class BatchItemIn(BaseModel):
    """One label map: a base64 PNG or a nested list of ids; style: at most one of seed / style_id / preset."""

    model_config = ConfigDict(extra="forbid", strict=True)  # JSON types as sent: `"7"` is not a seed
    labels_png_b64: str | None = None
    labels: list[list[LabelId]] | None = None
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    style_id: str | None = Field(None, max_length=64)
    preset: str | None = Field(None, max_length=100)


class BatchCreate(BaseModel):
    """A batch job as JSON. Items without a style get seed = `seed` + their index (random `seed` if omitted)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    model: str | None = Field(None, max_length=100)
    items: list[BatchItemIn] = Field(min_length=1)
    format: Literal["jpeg", "webp", "png"] = "png"
    quality: int = Field(90, ge=1, le=100)
    collage: bool = False
    seed: int | None = Field(None, ge=0, le=MAX_SEED - 1_000_000)


class BatchArchiveForm(BaseModel):
    """The multipart form fields that go with a zip of label PNGs (one style for all items)."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, max_length=100)
    format: Literal["jpeg", "webp", "png"] = "png"
    quality: int = Field(90, ge=1, le=100)
    collage: bool = False
    seed: int | None = Field(None, ge=0, le=MAX_SEED - 1_000_000)
    style_id: str | None = Field(None, max_length=64)
    preset: str | None = Field(None, max_length=100)


class BatchStatus(BaseModel):
    job_id: str
    status: Literal["queued", "running", "done", "cancelled", "failed"]
    model: str
    format: str
    total: int
    done: int
    failed: int
    created: float
    updated: float
    error: str | None


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Pydantic schema with `$defs` → self-contained schema (openapi_extra cannot carry `$defs`)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


_ARCHIVE_SCHEMA = _inline_refs(BatchArchiveForm.model_json_schema())
_ARCHIVE_SCHEMA["properties"]["archive"] = {
    "type": "string",
    "format": "binary",
    "description": "zip of label PNGs, rendered in name order",
}
_ARCHIVE_SCHEMA["required"] = ["archive"]
_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inline_refs(BatchCreate.model_json_schema())},
            "multipart/form-data": {"schema": _ARCHIVE_SCHEMA},
        },
    }
}


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def _json_body_error(exc: ValidationError) -> Exception:
    """A refused JSON body. A bad cell of `labels` is `bad_label_id`, like an id out of range in a PNG."""
    match exc.errors()[0]["loc"]:
        case ("items", int(idx), "labels", int(y), int(x)):
            message = f"item {idx}: label id at (x={x}, y={y}) is not an integer in 0..255"
            return BadInput("bad_label_id", message)
    return ApiError(422, "bad_request", _validation_message(exc))


def _ids_from_json(item: BatchItemIn, model: LoadedModel, max_pixels: int) -> np.ndarray:
    if (item.labels_png_b64 is None) == (item.labels is None):
        raise BadInput("bad_request", "give exactly one of labels_png_b64 and labels")
    if item.labels_png_b64 is not None:
        try:
            data = base64.b64decode(item.labels_png_b64, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput("bad_image", "labels_png_b64 is not valid base64") from None
        return decode_labels(data, model, max_pixels)
    rows = item.labels or []
    height, width = len(rows), len(rows[0]) if rows else 0
    if height * width == 0 or any(len(r) != width for r in rows):
        raise BadInput("bad_size", "labels must be a non-empty rectangular list of rows")
    if height * width > max_pixels:
        raise BadInput("too_many_pixels", f"label map {width}×{height} exceeds the {max_pixels}-pixel limit")
    return np.asarray(rows, dtype=np.uint8)  # every id is an int in 0..255 (LabelId)


def _archive_entries(data: bytes, max_items: int, max_bytes: int) -> list[bytes]:
    """Label PNGs from a zip, in name order, refusing zip bombs by declared and actual size."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        raise BadInput("bad_archive", "archive is not a readable zip file") from None
    entries = [i for i in archive.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    entries.sort(key=lambda i: i.filename)
    if not entries:
        raise BadInput("bad_archive", "archive holds no files")
    if len(entries) > max_items:
        raise BadInput("too_many_items", f"archive holds {len(entries)} files; the limit is {max_items}")
    total, out = 0, []
    for info in entries:
        if not info.filename.lower().endswith(".png"):
            raise BadInput("bad_archive", f"archive entry {info.filename!r} is not a .png label map")
        total += info.file_size
        if total > max_bytes:
            raise BadInput("too_large", f"archive inflates to more than {max_bytes} bytes")
        try:
            with archive.open(info) as f:
                content = f.read(max_bytes + 1)
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError):
            raise BadInput("bad_archive", f"archive entry {info.filename!r} cannot be read") from None
        if len(content) > info.file_size:
            raise BadInput("bad_archive", f"archive entry {info.filename!r} is larger than it declares")
        out.append(content)
    return out


async def _read_request(request: Request, max_items: int, max_bytes: int) -> tuple[Any, list[Any]]:
    """(options, raw items) from a JSON body or a multipart zip upload."""
    ctype = request.headers.get("content-type", "").lower()  # media types are case-insensitive
    if ctype.startswith("application/json"):
        try:
            body = BatchCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            raise _json_body_error(exc) from None
        if len(body.items) > max_items:
            raise BadInput("too_many_items", f"{len(body.items)} items; the limit is {max_items} per job")
        return body, list(body.items)
    if ctype.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=20) as form:
            archive = form.get("archive")
            if archive is None or isinstance(archive, str):
                raise ApiError(422, "bad_request", "multipart batches need an `archive` zip file field")
            fields = {k: v for k, v in form.items() if k != "archive" and isinstance(v, str)}
            try:
                options = BatchArchiveForm.model_validate(fields)
            except ValidationError as exc:
                raise ApiError(422, "bad_request", _validation_message(exc)) from None
            styles = [name for name in ("seed", "style_id", "preset") if getattr(options, name) is not None]
            if len(styles) > 1:  # refused as on /render: the seed would otherwise be silently ignored
                raise BadInput("bad_style", f"give at most one of seed, style_id, preset (got {styles})")
            data = await archive.read()
        return options, await asyncio.to_thread(_archive_entries, data, max_items, max_bytes)
    raise ApiError(415, "unsupported_media_type", "send application/json or multipart/form-data with a zip")


def _prepare_items(
    options: BatchCreate | BatchArchiveForm,
    raw_items: list[Any],
    model: LoadedModel,
    engine: Engine,
    styles: StyleStore,
    max_pixels: int,
) -> list[JobItem]:
    """Decode and validate every item (off the event loop); the first bad one refuses the whole job."""
    base_seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
    items: list[JobItem] = []
    for idx, raw in enumerate(raw_items):
        try:
            if isinstance(raw, BatchItemIn):
                ids = _ids_from_json(raw, model, max_pixels)
                seed, style_id, preset = raw.seed, raw.style_id, raw.preset
            else:
                ids = decode_labels(raw, model, max_pixels)
                assert isinstance(options, BatchArchiveForm)
                seed, style_id, preset = None, options.style_id, options.preset
            if seed is None and style_id is None and preset is None:
                seed = base_seed + idx
            z = resolve_style(model, styles, seed, style_id, preset)
            engine.validate(RenderRequest(model.name, ids, z, options.format, options.quality))
        except BadInput as exc:
            raise BadInput(exc.code, f"item {idx}: {exc.message}") from None
        style = f"seed {seed}" if seed is not None else f"preset {preset}" if preset else f"style {style_id}"
        items.append(JobItem(ids, z, seed, style))
    return items


@router.post("", status_code=202, response_model=BatchStatus, openapi_extra=_REQUEST_BODY)
async def create_batch(
    request: Request,
    engine: EngineDep,
    registry: RegistryDep,
    styles: StylesDep,
    settings: SettingsDep,
    jobs: JobsDep,
) -> JSONResponse:
    """Queue a batch job (JSON items, or a multipart zip of label PNGs). Every item is validated up front."""
    if await asyncio.to_thread(jobs.store.count_unfinished) >= settings.max_queued_jobs:
        raise ApiError(
            429, "too_many_jobs", "too many unfinished batch jobs; retry later", {"Retry-After": "10"}
        )
    options, raw_items = await _read_request(request, settings.max_batch_items, settings.max_upload_bytes)
    model = registry.get(options.model)
    items = await asyncio.to_thread(
        _prepare_items, options, raw_items, model, engine, styles, settings.max_pixels
    )
    collage = options.collage and model.has_collage
    job_id = await asyncio.to_thread(
        jobs.store.create, model.name, options.format, options.quality, collage, items
    )
    jobs.wake()
    status = await asyncio.to_thread(jobs.store.status, job_id)
    return JSONResponse(status, status_code=202, headers={"Location": f"/api/v1/batches/{job_id}"})


@router.get("/{job_id}", response_model=BatchStatus)
async def read_batch(job_id: JobId, jobs: JobsDep) -> dict[str, Any]:
    """Progress: status, total, done, failed."""
    return await asyncio.to_thread(jobs.store.status, job_id)


@router.get(
    "/{job_id}/results",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "results and results.json"}},
)
async def read_batch_results(job_id: JobId, jobs: JobsDep) -> FileResponse:
    """A zip of the finished job's images plus results.json (seed, style and status of every item)."""
    path = await asyncio.to_thread(jobs.store.results_zip, job_id)
    return FileResponse(path, media_type="application/zip", filename=f"{job_id}.zip")


@router.delete("/{job_id}", response_model=BatchStatus)
async def delete_batch(job_id: JobId, jobs: JobsDep) -> dict[str, Any]:
    """Cancel a queued or running job; results finished so far stay downloadable."""
    return await asyncio.to_thread(jobs.cancel, job_id)
