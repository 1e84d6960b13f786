"""Server test fixtures: apps on the tiny exported model, label-map builders, a slowed engine, real uvicorn, and
the database: embedded SQLite, or with COLLAGE_TEST_DATABASE=postgresql a fresh PostgreSQL database per test."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from common.runtime import RuntimeChoice
from server.app import create_app
from server.config import Settings
from server.db import database_url, open_database
from server.engine import Engine, RenderRequest, RenderResult
from tests.postgres import INSTALL_HINT, PostgresServer, find_bin, skip_reason

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session. Not installed is a failure, not a skip: `make test` installs it."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    bin_dir = find_bin()
    if bin_dir is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    server = PostgresServer(bin_dir)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty database of the session's server."""
    return postgres_server.new_database()


@pytest.fixture(autouse=True)
def database_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """COLLAGE_TEST_DATABASE=postgresql runs every server test on a PostgreSQL database of its own, through the
    environment, so apps built here and servers started as subprocesses alike use it."""
    mode = os.environ.get("COLLAGE_TEST_DATABASE", "sqlite")
    if mode == "postgresql":
        monkeypatch.setenv("COLLAGE_DATABASE_URL", request.getfixturevalue("postgres_url"))
    elif mode == "sqlite":
        monkeypatch.delenv("COLLAGE_DATABASE_URL", raising=False)
    else:
        pytest.fail(f"COLLAGE_TEST_DATABASE={mode!r}: use sqlite (the default) or postgresql", pytrace=False)


@pytest.fixture
def database(tmp_path: Path, database_mode: None) -> Iterator[sa.Engine]:
    """The suite's database, migrated: SQLite at tmp_path/jobs/jobs.sqlite, or the test's PostgreSQL database."""
    engine = open_database(database_url(os.environ.get("COLLAGE_DATABASE_URL"), tmp_path))
    yield engine
    engine.dispose()


@pytest.fixture
def runtime_choice() -> RuntimeChoice:
    """The runtime the environment chooses (COLLAGE_RUNTIME=onnxruntime runs the suite on onnxruntime), 1 thread."""
    return replace(Settings().runtime_choice(), threads=1)


@pytest.fixture
def settings_for(tiny_weights: Path, tmp_path: Path) -> Callable[..., Settings]:
    """Settings on the tiny model with a fresh data dir; keyword overrides win."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "weights_dir": tiny_weights,
            "data_dir": tmp_path / "data",
            "frontend_dir": tmp_path / "frontend",
            "max_wait_ms": 1.0,
        }
        return Settings(**(values | overrides))

    return make


@pytest.fixture
def make_client(settings_for: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    """Started TestClients (lifespan run), closed at teardown."""
    with contextlib.ExitStack() as stack:

        def make(raise_server_exceptions: bool = True, **overrides: Any) -> TestClient:
            app = create_app(settings_for(**overrides))
            client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
            return stack.enter_context(client)

        yield make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def landscape() -> Callable[..., np.ndarray]:
    """A painted-looking H×W map: sky, mountain, grass, water, two trees and a house (ids < 14)."""

    def make(height: int = 32, width: int = 32) -> np.ndarray:
        ids = np.zeros((height, width), np.uint8)  # sky
        ids[height // 3 :, :] = 2  # mountain
        ids[height // 2 :, :] = 6  # grass
        ids[3 * height // 4 :, : width // 2] = 12  # water
        ids[height // 2 : height // 2 + 4, 2:5] = 8  # tree 1
        ids[height // 2 : height // 2 + 4, 8:11] = 8  # tree 2
        ids[height // 2 : height // 2 + 3, width - 6 : width - 2] = 13  # house
        return ids

    return make


@pytest.fixture
def png_of() -> Callable[[np.ndarray], bytes]:
    def encode(array: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, "PNG")
        return buf.getvalue()

    return encode


@pytest.fixture
def label_frame() -> Callable[..., bytes]:
    """Client → server paint frame (docs/protocol.md): header + zlib or raw ids."""

    def make(seq: int, ids: np.ndarray, compress: bool = True) -> bytes:
        h, w = ids.shape
        payload = zlib.compress(ids.tobytes()) if compress else ids.tobytes()
        return struct.pack("<BIHHB", 1, seq, w, h, 1 if compress else 0) + payload

    return make


class SlowEngine:
    """Wraps the real engine: every render first sleeps `delay` s and is counted (dependency override)."""

    def __init__(self, engine: Engine, delay: float) -> None:
        self.engine = engine
        self.delay = delay
        self.renders: list[int] = []  # label-map checksums, in render order

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    async def render(self, request: RenderRequest, priority: str = "interactive") -> RenderResult:
        self.renders.append(int(request.labels.sum()))
        await asyncio.sleep(self.delay)
        return await self.engine.render(request, priority)  # type: ignore[arg-type]


@pytest.fixture
def slow_engine() -> Callable[[TestClient, float], SlowEngine]:
    """Install a SlowEngine on a started client's app through `dependency_overrides`."""
    from server.api.deps import get_engine

    def install(client: TestClient, delay: float) -> SlowEngine:
        slow = SlowEngine(client.app.state.engine, delay)  # type: ignore[attr-defined]
        client.app.dependency_overrides[get_engine] = lambda: slow  # type: ignore[attr-defined]
        return slow

    return install


class ServerProcess:
    """`python -m server` on 127.0.0.1 and `port` (a free one), with COLLAGE_* settings from `env`; `command`
    names another module to run with `-m` and its arguments before --host/--port (e.g. plain uvicorn)."""

    def __init__(
        self, env: dict[str, str], port: int, log_path: Path, command: tuple[str, ...] = ("server",)
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *command, "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not come up:\n{log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@pytest.fixture
def server_process(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(env: dict[str, str], command: tuple[str, ...] = ("server",)) -> ServerProcess:
        proc = ServerProcess(env, free_port(), tmp_path / f"server-{len(started)}.log", command)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
