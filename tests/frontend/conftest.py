"""Browser-test fixtures: a real server subprocess serving tiny exported models, and Debian chromium.

The server runs as `python -m server` on 127.0.0.1 and a free port, exactly as a user starts it, so the tests
cover the static file serving, the REST API and the paint websocket the page really talks to. Chromium is the
Debian package (`make chromium`); `playwright install` is never used because it downloads browsers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
REPO = Path(__file__).resolve().parents[2]
API_KEY = "studio-test-key"


class ServerProcess:
    """`python -m server` in a subprocess that can be stopped and started again on the same port."""

    def __init__(
        self, weights_dir: Path, data_dir: Path, port: int, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.weights_dir = weights_dir
        self.data_dir = data_dir
        self.port = port
        self.log_path = log_path
        self.env = env or {}  # more COLLAGE_* settings, e.g. an API key
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        env = {
            **os.environ,
            "COLLAGE_WEIGHTS_DIR": str(self.weights_dir),
            "COLLAGE_DATA_DIR": str(self.data_dir),
            "COLLAGE_THREADS": "1",
            **self.env,
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return json.load(response)


@pytest.fixture(scope="session")
def browser_weights(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two served models so the model selector appears: `tiny-spade` and `tiny-spade-wide`.

    The second is the same exported graphs under another name with a 48×32 native size (the generator accepts
    any multiple of 8), which is enough to check that switching models rebuilds the canvas and the stream.
    """
    weights = tmp_path_factory.mktemp("browser-weights")
    shutil.copytree(tiny_weights / "tiny-spade", weights / "tiny-spade")
    wide = weights / "tiny-spade-wide"
    shutil.copytree(tiny_weights / "tiny-spade", wide)
    manifest = json.loads((wide / "model.json").read_text())
    manifest["name"] = "tiny-spade-wide"
    manifest["image_size"] = [32, 48]
    (wide / "model.json").write_text(json.dumps(manifest))
    return weights


def start_server(
    weights: Path, tmp_path_factory: pytest.TempPathFactory, port: int, env: dict[str, str] | None = None
) -> ServerProcess:
    root = tmp_path_factory.mktemp("server")
    server = ServerProcess(weights, root / "data", port, root / "server.log", env)
    server.start()
    return server


@pytest.fixture(scope="module")
def live_server(
    browser_weights: Path, tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[ServerProcess]:
    """One server shared by a test module (starting one costs a few seconds)."""
    server = start_server(browser_weights, tmp_path_factory, free_port())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def collage_server(
    tiny_collage_weights: Path, tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[ServerProcess]:
    """A server whose one model, `tiny-collage`, has class generators for tree, rock and house."""
    server = start_server(tiny_collage_weights, tmp_path_factory, free_port())
    yield server
    server.stop()


@pytest.fixture
def own_server(
    browser_weights: Path, tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[ServerProcess]:
    """A server only this test uses, free to be stopped and restarted."""
    server = start_server(browser_weights, tmp_path_factory, free_port())
    yield server
    server.stop()


@pytest.fixture
def keyed_server(
    browser_weights: Path, tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[ServerProcess]:
    """A server that wants the API key `API_KEY` on /api/v1, as an operator would run a shared one."""
    server = start_server(browser_weights, tmp_path_factory, free_port(), {"COLLAGE_API_KEY": API_KEY})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Launch the Debian chromium instead of a downloaded Playwright browser."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; install it with `make chromium` (make test does)")
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": ["--disable-gpu", "--disable-background-networking", "--disable-component-update"],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1280, "height": 760}, "accept_downloads": True}
