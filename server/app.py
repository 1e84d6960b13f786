"""The FastAPI application factory: settings in, a ready app out (models load in the lifespan).

`python -m server` is the way to serve it; `uvicorn server.app:app` (settings from the environment, built on first
use) and `uvicorn --factory server.app:create_app` work too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match, Mount
from starlette.types import Scope

from server.api import batches, health, models, paint, render, styles
from server.api.deps import require_api_key
from server.config import Settings
from server.db import database_url, open_database
from server.engine import Engine
from server.errors import ERROR_RESPONSES, install_error_handlers
from server.job_runner import JobRunner, RayTarget
from server.jobs import JobStore
from server.metrics import Metrics
from server.middleware import BodyLimit, HeadAsGet, RequestMetrics
from server.registry import Registry
from server.styles import StyleStore

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


_MEANWHILE = (
    "Serving /healthz, /docs and the frontend meanwhile; /readyz answers 503 until a model is loaded."
)


def no_model_help(settings: Settings, refused: int = 0) -> str:
    """What to log when no model loaded: the weights folder had no model folder, or every one was refused."""
    where = f"{settings.weights_dir.resolve()}/"
    if refused:
        folders = "1 model folder" if refused == 1 else f"{refused} model folders"
        return (
            f"No model loaded: {folders} found in {where} and all refused (the reasons are logged above and "
            f"listed under `failures` by /readyz). {_MEANWHILE}"
        )
    return (
        f"No model found in {where} — every model is a folder with model.json plus ONNX "
        "files. Get one by training and exporting it (`collage train --help`, then `collage export --help`), "
        "or copy an exported model folder there, or point COLLAGE_WEIGHTS_DIR at a folder of exported models. "
        f"{_MEANWHILE}"
    )


class FrontendMount(Mount):
    """The frontend at `/`, except under the top-level paths the app's own routes own (`/api`, `/healthz`…).

    A mount at `/` matches every path, so it used to answer `GET /api/v1/render` (a POST route) with the static
    files' 404; leaving those paths to the router gives the API's 405 and JSON 404s there.
    """

    def __init__(self, app: StaticFiles, reserved: set[str]) -> None:
        super().__init__("/", app=app, name="frontend")
        self.reserved = reserved  # first path segments of the app's routes, e.g. {"api", "healthz"}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"].split("/")[1] in self.reserved:
            return Match.NONE, {}
        return super().matches(scope)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    registry = await asyncio.to_thread(
        Registry.load, settings.weights_dir, settings.runtime_choice(), settings.default_model
    )
    if not registry.models:
        log.warning(no_model_help(settings, refused=len(registry.failures)))
    for name, model in registry.models.items():
        info = model.runtime
        app.state.metrics.model_runtime.labels(name, info.runtime, info.device, info.precision).set(1)
    engine = Engine(
        registry,
        app.state.metrics,
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        queue_limit=settings.queue_limit,
        max_batch_pixels=settings.max_batch_pixels,
    )
    database = await asyncio.to_thread(open_database, database_url(settings.database_url, settings.data_dir))
    await engine.start()
    store = JobStore(settings.data_dir / "jobs", database, settings.lease_seconds)
    on_ray = None
    if settings.ray_address:
        # COLLAGE_THREADS per actor; 0 = every core of the cluster's smallest node (server/ray_render.py).
        on_ray = RayTarget(settings.ray_address, settings.runtime_choice(), settings.max_pixels)
    jobs = JobRunner(store, engine, app.state.metrics, concurrency=settings.max_batch, ray=on_ray)
    await jobs.start()
    app.state.registry = registry
    app.state.engine = engine
    app.state.styles = StyleStore(settings.data_dir / "styles", database)
    app.state.jobs = jobs
    try:
        yield
    finally:
        await jobs.stop()
        await engine.stop()
        await asyncio.to_thread(store.close)
        database.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Nothing heavy happens here: models load when the lifespan starts."""
    settings = settings or Settings()
    app = FastAPI(
        title="Collage Studio",
        version="0.1.0",
        summary="GauGAN-style painting: label maps in, landscapes out (REST + a live paint websocket).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    install_error_handlers(app, app.state.metrics)

    api = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES)
    keyed = [Depends(require_api_key)]
    api.include_router(models.router, dependencies=keyed)
    api.include_router(render.router, dependencies=keyed)
    api.include_router(styles.router, dependencies=keyed)
    api.include_router(batches.router, dependencies=keyed)
    api.include_router(paint.router)  # checks the key itself: query parameter or first message
    app.include_router(api)
    app.include_router(health.router)

    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes, metrics=app.state.metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key"],
            expose_headers=["X-Render-Ms", "X-Queue-Ms", "X-Encode-Ms", "X-Seed", "X-Model", "Retry-After"],
        )
    app.add_middleware(HeadAsGet)  # the layers below see the GET it answers
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)  # outermost: counts HEAD as HEAD

    if settings.frontend_dir.is_dir():
        # Included routers carry no path of their own here, so the API's prefix and health paths are named.
        owned = [API_PREFIX, *(r.path for r in [*health.router.routes, *app.routes] if hasattr(r, "path"))]
        reserved = {path.split("/")[1] for path in owned if path.startswith("/")}
        app.router.routes.append(
            FrontendMount(StaticFiles(directory=settings.frontend_dir, html=True), reserved)
        )
    else:
        log.warning("frontend folder %s is missing; serving the API only", settings.frontend_dir)
    return app


def __getattr__(name: str) -> FastAPI:
    """`server.app:app`, for a plain `uvicorn server.app:app`: built from the environment on first use, so that
    importing this module (tests, `python -m server`) builds nothing."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = globals()["app"] = create_app()
    return app
