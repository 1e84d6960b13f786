"""Fixtures shared across the test tree."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder with one untrained `spade-tiny` model exported by the real exporter, built once.

    Model `tiny-spade`: landscape labels, 32² native size, any multiple of 8 up to 1024, style encoder, two
    presets (`winter`, `dusk`).
    """
    # importorskip, not import: in a serving venv (no torch) with pytest added, the server tests that need this
    # model skip instead of erroring. Only a missing torch skips (pytest ≥ 9 skips on ModuleNotFoundError alone);
    # a broken install raising ImportError fails.
    torch = pytest.importorskip("torch")
    from models.archs.spade import build_encoder, build_generator, export_spec, get_preset
    from models.export import export_modules
    from models.labels import LANDSCAPE

    torch.manual_seed(0)
    config = get_preset("spade-tiny")
    generator = build_generator(config, len(LANDSCAPE)).eval()
    encoder = build_encoder(config).eval()
    z_dim = config["generator"]["z_dim"]
    rng = torch.Generator().manual_seed(1)
    styles = {name: 2.0 * torch.randn(z_dim, generator=rng) for name in ("winter", "dusk")}
    weights = tmp_path_factory.mktemp("weights")
    export_modules(
        export_spec(generator, encoder, LANDSCAPE),
        out_dir=weights / "tiny-spade",
        name="tiny-spade",
        image_size=(config["size"], config["size"]),
        styles=styles,
        training={"note": "untrained, for tests"},
        config=config,
    )
    return weights


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Picks a port on 127.0.0.1 that nothing listens on, for the server subprocesses the tests start.

    A fixture because the tests folders are not packages (importlib mode), so a plain function here could not
    be imported by the server, browser and docker tests.
    """

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    return pick


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last: pytest-playwright keeps an asyncio loop running in the main thread for the
    rest of the session, and tests that call asyncio.run() after it would fail."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
