"""Fixtures shared across the test tree."""

from __future__ import annotations

import importlib
import socket
from collections.abc import Callable
from pathlib import Path

import pytest


def export_tiny_spade(out: Path, name: str) -> None:
    """One untrained `spade-tiny` model (seed 0) exported by the real exporter to `out`, named `name`.

    Landscape labels, 32² native size, any multiple of 8 up to 1024, style encoder, two presets (`winter`,
    `dusk`).
    """
    import torch

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
    export_modules(
        export_spec(generator, encoder, LANDSCAPE),
        out_dir=out,
        name=name,
        image_size=(config["size"], config["size"]),
        styles=styles,
        training={"note": "untrained, for tests"},
        config=config,
    )


def export_untrained(out: Path, arch: str, preset: str) -> None:
    """An untrained `preset` of `arch` (torch seed 0) saved as a trainer checkpoint and exported by `collage
    export`, so the folder is exactly what a user's run would give (landscape labels, G_ema served)."""
    import torch

    from models.export import main as export_main
    from models.labels import LANDSCAPE

    module = importlib.import_module(f"models.archs.{arch.replace('-', '_')}")
    config = {"arch": arch, "preset": preset, "data": "procedural", "label_set": "landscape", "seed": 0}
    config |= module.get_preset(preset)
    torch.manual_seed(0)
    generator = module.build_generator(config, len(LANDSCAPE))
    run = out.parent / f"run-{out.name}"
    run.mkdir(parents=True)
    checkpoint = {
        "format_version": 1,
        "config": config,
        "step": 0,
        "G": generator.state_dict(),
        "G_ema": generator.state_dict(),
        "label_set": "landscape",
        "perceptual": "none",
    }
    torch.save(checkpoint, run / "checkpoint-latest.pt")
    assert export_main([str(run), "--out", str(out)]) == 0


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder with one untrained `spade-tiny` model exported by the real exporter, built once.

    Model `tiny-spade`: landscape labels, 32² native size, any multiple of 8 up to 1024, style encoder, two
    presets (`winter`, `dusk`).
    """
    # importorskip, not import: in a serving venv (no torch) with pytest added, the server tests that need this
    # model skip instead of erroring. Only a missing torch skips (pytest ≥ 9 skips on ModuleNotFoundError alone);
    # a broken install raising ImportError fails.
    pytest.importorskip("torch")
    weights = tmp_path_factory.mktemp("weights")
    export_tiny_spade(weights / "tiny-spade", "tiny-spade")
    return weights


@pytest.fixture(scope="session")
def tiny_collage_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder with one model, `tiny-collage`: the `tiny-spade` base (built as `tiny_weights` builds
    it) with untrained `collage-class-tiny` class generators for tree, rock and house attached, each exported
    as a class pack by the real exporter and attached by `collage attach`, built once.

    Class generators: context 32², box 16², φ′ 16², z_dim 8, 3 noise channels, removal blur, min_side 12
    (picture pixels). Seeded (torch seed 10, 11, 12 for tree, rock, house); their noise strengths are set to
    0.1 (untrained they are 0, and the noise input would change nothing), so seeds move pixels through both
    z and noise.
    """
    torch = pytest.importorskip("torch")
    from models.archs.collage_class import build_generator, export_spec, get_preset
    from models.attach import attach
    from models.export_pack import export_pack
    from models.labels import LANDSCAPE
    from models.nets.stylegan import NoiseInjection

    weights = tmp_path_factory.mktemp("collage-weights")
    export_tiny_spade(weights / "tiny-collage", "tiny-collage")
    packs = tmp_path_factory.mktemp("packs")
    for seed, thing in enumerate(("tree", "rock", "house"), start=10):
        torch.manual_seed(seed)
        config = get_preset("collage-class-tiny") | {"thing": thing}
        generator = build_generator(config, len(LANDSCAPE)).eval()
        with torch.no_grad():
            for module in generator.modules():
                if isinstance(module, NoiseInjection):
                    module.strength.fill_(0.1)
        spec = export_spec(generator, LANDSCAPE, config)
        export_pack(spec, out_dir=packs / thing, training={"note": "untrained, for tests"}, config=config)
    attach([packs / thing for thing in ("house", "tree", "rock")], weights / "tiny-collage")
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
