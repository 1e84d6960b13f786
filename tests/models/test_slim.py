"""A slim checkpoint: networks only, half precision, and a run continues from it with --init_from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from models import slim, train
from models.ema import make_ema
from models.labels import LANDSCAPE

pytestmark = pytest.mark.usefixtures("in_tmp")


def test_slim_keeps_the_networks_in_half_precision_and_init_from_reads_it(
    tiny_spade: list[str], load: Callable[[Path], dict[str, Any]]
) -> None:
    argv = [*tiny_spade, "--data-length=2", "--batch=1"]
    assert train.main([*argv, "--steps=3"]) == 0
    full_path = Path("runs/00001-spade-tiny/checkpoint-latest.pt")
    assert slim.main(["runs/00001-spade-tiny", "--out", "keep/init.pt"]) == 0
    full, small = load(full_path), load(Path("keep/init.pt"))

    assert not set(slim.DROPPED) & set(small)  # no optimisers, RNG or sampler position
    assert small["slim"] is True and "slim" not in full
    assert small["step"] == full["step"] == 3 and small["config"] == full["config"]
    assert Path("keep/init.pt").stat().st_size < 0.4 * full_path.stat().st_size
    for key in ("G", "G_ema", "D", "E"):
        for name, value in small[key].items():
            assert value.dtype == torch.float16 or not value.is_floating_point(), (key, name)
            ref = full[key][name].float()
            gap = float((value.float() - ref).abs().max())
            assert gap <= 1e-3 * max(float(ref.abs().max()), 1e-3), (key, name, gap)

    config = train.resolve_config("spade", "spade-tiny", [("size", "64")])
    config["label_set"] = "landscape"
    recipe = train.build_recipe(config, LANDSCAPE, torch.device("cpu"))
    ema = {"G": make_ema(recipe.nets["G"])}
    train.load_init_weights(recipe, ema, small)
    for key, net in [*recipe.nets.items(), ("G_ema", ema["G"])]:
        state = net.state_dict()
        assert all(state[k].dtype == full[key][k].dtype for k in state)  # back in the networks' precision
        assert max(float((state[k].float() - small[key][k].float()).abs().max()) for k in state) == 0.0

    assert train.main([*argv, "--steps=1", "--size=64", "--init-from", "keep/init.pt"]) == 0
    continued = load(Path("runs/00002-spade-tiny/checkpoint-latest.pt"))
    assert continued["config"]["init_from"] == {
        "path": "keep/init.pt",
        "step": 3,
        "size": 32,
        "images_seen": 3,
    }


def test_resume_refuses_a_slim_checkpoint_before_writing(capsys: pytest.CaptureFixture[str]) -> None:
    torch.save(
        slim.slim({"format_version": 1, "config": {"arch": "spade"}, "step": 3, "G": {"w": torch.ones(2)}}),
        Path("init.pt"),
    )
    assert train.main(["--resume", "init.pt"]) == 2
    assert (
        "init.pt is a slim checkpoint (no optimiser state): start a new run from it with --init_from"
        in capsys.readouterr().err
    )
    assert sorted(p.name for p in Path().iterdir()) == ["init.pt"]  # no config.json beside it


def test_slim_refuses_weights_float16_cannot_hold(capsys: pytest.CaptureFixture[str]) -> None:
    run = Path("runs/00001-spade-tiny")
    run.mkdir(parents=True)
    big = {"w": torch.tensor([1.0, -7e4]), "n": torch.tensor([3])}  # -7e4 is -inf in float16
    torch.save({"format_version": 1, "config": {}, "step": 1, "D": big}, run / "checkpoint-latest.pt")
    assert slim.main([str(run), "--out", "small.pt"]) == 2
    assert "D.w is not finite in float16" in capsys.readouterr().err
    assert not Path("small.pt").exists()
    assert slim.half({"w": torch.tensor([6.5e4, 1e-4])}, "G")["w"].tolist() == pytest.approx(
        [6.5e4, 1e-4], rel=5e-4
    )  # the top of the range still fits, with ~3 significant digits


def test_slim_refuses_what_is_not_a_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert slim.main(["runs/nothing", "--out", "x.pt"]) == 2
    assert "no checkpoint at runs/nothing/checkpoint-latest.pt" in capsys.readouterr().err
    assert not Path("x.pt").exists()
