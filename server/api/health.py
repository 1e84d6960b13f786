"""Liveness, readiness and Prometheus metrics (outside /api/v1 and never behind the API key)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from server.api.deps import EngineDep, MetricsDep, RegistryDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class ModelRuntime(BaseModel):
    runtime: str  # openvino | onnxruntime
    device: str
    precision: str  # f32 | bf16


class Readiness(BaseModel):
    status: str  # ready | no_models
    models: list[str]
    runtimes: dict[str, ModelRuntime]  # model name -> what runs it
    failures: dict[str, str]  # model folder -> why it was refused
    queue_depth: int


@router.get("/healthz", response_model=Health)
async def read_health() -> Health:
    """Live: the process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def read_readiness(registry: RegistryDep, engine: EngineDep) -> JSONResponse:
    """Ready when at least one model is loaded; says what runs each model, lists refused folders and why."""
    body = Readiness(
        status="ready" if registry.models else "no_models",
        models=sorted(registry.models),
        runtimes={name: ModelRuntime(**asdict(m.runtime)) for name, m in registry.models.items()},
        failures=registry.failures,
        queue_depth=engine.queue_depth(),
    )
    return JSONResponse(body.model_dump(), status_code=200 if registry.models else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def read_metrics(metrics: MetricsDep) -> Response:
    """Prometheus text format."""
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
