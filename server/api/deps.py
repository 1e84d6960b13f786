"""Dependencies: everything a route needs comes from `app.state` through a `...Dep` alias, so tests can swap
any of them with `app.dependency_overrides[get_engine] = ...`."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header
from starlette.requests import HTTPConnection

from server.config import Settings
from server.engine import Engine
from server.errors import ApiError
from server.job_runner import JobRunner
from server.metrics import Metrics
from server.registry import Registry
from server.styles import StyleStore


def get_settings(conn: HTTPConnection) -> Settings:
    return conn.app.state.settings


def get_metrics(conn: HTTPConnection) -> Metrics:
    return conn.app.state.metrics


def get_registry(conn: HTTPConnection) -> Registry:
    return conn.app.state.registry


def get_engine(conn: HTTPConnection) -> Engine:
    return conn.app.state.engine


def get_styles(conn: HTTPConnection) -> StyleStore:
    return conn.app.state.styles


def get_jobs(conn: HTTPConnection) -> JobRunner:
    return conn.app.state.jobs


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
EngineDep = Annotated[Engine, Depends(get_engine)]
StylesDep = Annotated[StyleStore, Depends(get_styles)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]


def key_matches(settings: Settings, given: str | None) -> bool:
    """Constant-time API key check; always true when the server has no key."""
    if settings.api_key is None:
        return True
    return given is not None and secrets.compare_digest(
        given.encode(), settings.api_key.get_secret_value().encode()
    )


async def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="required when the server has a key")] = None,
) -> None:
    if not key_matches(settings, x_api_key):
        raise ApiError(401, "unauthorized", "missing or wrong API key (send it in the X-API-Key header)")
