"""The architecture-agnostic trainer, driven through its CLI with small architectures registered here.

`toy` is a two-network GAN (G with EMA, D, two optimisers, noise from the global RNG) and `single` has one
network and one optimiser, like the segmenter. The SPADE arch has its own tests in tests/models/archs/.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from models import train
from models.archs import ARCHS, Arch, Batch, Recipe, get_arch, unwrap
from models.checkpoints import lineage_images_seen
from models.labels import LANDSCAPE, LabelSet
from models.training import loop
from models.training.config import ConfigError, apply_overrides
from models.training.data import SeededItems
from models.training.setup import state_misfit

N = len(LANDSCAPE)
BUILD_DATASET = train.build_dataset  # the real one, which the autouse fixture swaps for ToyPairs


class ToyPairs(torch.utils.data.Dataset):
    """Blocky label maps and per-class colours; deterministic per index, flips drawn from torch's RNG."""

    def __init__(self, length: int = 7, size: int = 16) -> None:
        self.length, self.size = length, size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        gen = torch.Generator().manual_seed(index)
        cells = torch.randint(0, N, (4, 4), generator=gen)
        label = cells.repeat_interleave(self.size // 4, 0).repeat_interleave(self.size // 4, 1)  # [H,W]
        colours = torch.linspace(-1, 1, N)[:, None] * torch.tensor([1.0, -0.5, 0.3])  # [N,3]
        image = colours[label].permute(2, 0, 1).contiguous()  # [3,H,W]
        if torch.rand(()) < 0.5:  # augmentation: must be reproduced exactly on resume
            label, image = label.flip(-1), image.flip(-1)
        return {"label": label, "instance": torch.zeros_like(label), "image": image, "style": -1}


def onehot(label: torch.Tensor) -> torch.Tensor:
    return F.one_hot(label, N).permute(0, 3, 1, 2).float()  # [B,N,H,W]


class ToyGAN(Recipe):
    def __init__(self, config: dict[str, Any], label_set: LabelSet, device: torch.device) -> None:
        super().__init__()
        width = config["width"]
        if width < 1:
            raise ValueError(f"width must be ≥ 1, got {width}")  # as a real network refuses its kwargs
        g = nn.Sequential(
            nn.Conv2d(N + 1, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1), nn.Tanh()
        )
        d = nn.Sequential(
            nn.Conv2d(N + 3, width, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, 1, 3, padding=1)
        )
        self.nets = {"G": g.to(device), "D": d.to(device)}
        self.optimizers = {
            "G": torch.optim.Adam(g.parameters(), config["lr_g"], betas=(0.0, 0.9)),
            "D": torch.optim.Adam(d.parameters(), config["lr_d"], betas=(0.0, 0.9)),
        }
        self.ema = ("G",)
        self.meta = {"perceptual": "none"}

    def step(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        seg, real = onehot(batch["label"]), batch["image"]
        noise = torch.randn_like(real[:, :1])  # global RNG: resume must restore it
        fake = nets["G"](torch.cat([seg, noise], 1))
        d_loss = F.relu(1 + nets["D"](torch.cat([seg, fake.detach()], 1))).mean()
        d_loss = d_loss + F.relu(1 - nets["D"](torch.cat([seg, real], 1))).mean()
        self.optimizers["D"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizers["D"].step()
        critic = unwrap(nets["D"]).requires_grad_(False)
        g_gan = -critic(torch.cat([seg, fake], 1)).mean()
        g_l1 = (fake - real).abs().mean()
        self.optimizers["G"].zero_grad(set_to_none=True)
        (g_gan + 10 * g_l1).backward()
        self.optimizers["G"].step()
        critic.requires_grad_(True)
        return {"D": d_loss.item(), "G_gan": g_gan.item(), "G_l1": g_l1.item()}

    def preview(self, nets: Mapping[str, nn.Module], batch: Batch) -> list[torch.Tensor]:
        noise = torch.randn(batch["image"][:, :1].shape, generator=torch.Generator().manual_seed(0))
        return [nets["G"](torch.cat([onehot(batch["label"]), noise], 1))]


class SingleNet(Recipe):
    """One network, one optimiser, no D and no EMA (the segmenter's shape)."""

    def __init__(self, config: dict[str, Any], label_set: LabelSet, device: torch.device) -> None:
        super().__init__()
        net = nn.Sequential(nn.Conv2d(3, 32, 1), nn.ReLU(), nn.Conv2d(32, len(label_set), 1)).to(device)
        self.nets = {"S": net}
        self.optimizers = {"S": torch.optim.Adam(net.parameters(), lr=config["lr"])}

    def step(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        loss = F.cross_entropy(nets["S"](batch["image"]), batch["label"])
        self.optimizers["S"].zero_grad()
        loss.backward()
        self.optimizers["S"].step()
        return {"ce": loss.item()}

    def preview(self, nets: Mapping[str, nn.Module], batch: Batch) -> list[torch.Tensor]:
        pred = nets["S"](batch["image"]).argmax(1)  # [B,H,W]
        palette = torch.tensor(LANDSCAPE.palette(), dtype=torch.float32) / 127.5 - 1  # [N,3]
        return [palette[pred].permute(0, 3, 1, 2)]


TOY_PRESET = {
    "size": 16,
    "batch": 2,
    "steps": 10,
    "num_workers": 0,
    "sample_count": 3,
    "log_every": 2,
    "sample_every": 5,
    "checkpoint_every": 4,
    "snapshot_every": 8,
    "width": 8,
    "lr_g": 1e-3,
    "lr_d": 4e-3,
}


@pytest.fixture(autouse=True)
def toy_archs(monkeypatch: pytest.MonkeyPatch, in_tmp: None) -> None:
    monkeypatch.setitem(ARCHS, "toy", Arch("toy", {"small": TOY_PRESET}, "small", ToyGAN, check=toy_check))
    monkeypatch.setitem(
        ARCHS, "single", Arch("single", {"one": {**TOY_PRESET, "lr": 0.03}}, "one", SingleNet)
    )
    monkeypatch.setattr(train, "build_dataset", lambda config: (ToyPairs(7, config["size"]), LANDSCAPE))


def toy_check(config: Mapping[str, Any]) -> None:
    if config["size"] % 4:  # ToyPairs draws 4×4 cells
        raise ValueError(f"size {config['size']} must be a multiple of 4")


def write_pairs(root: Path, n: int, size: int = 16) -> None:
    """A pairs folder of n pictures with colour-coded label maps (sky above grass), stems 000, 001, …"""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    label = np.zeros((size, size), np.uint8)
    label[size // 2 :] = LANDSCAPE["grass"].id
    for i in range(n):
        Image.fromarray(LANDSCAPE.ids_to_colors(label)).save(root / "images" / f"{i:03d}.png")
        Image.fromarray(LANDSCAPE.ids_to_colors(label)).save(root / "labels" / f"{i:03d}.png")


def assert_same_tensors(a: Any, b: Any, where: str = "") -> None:
    """Recursively equal: tensors bit-for-bit, everything else by ==."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs by {(a.float() - b.float()).abs().max()}"
    elif isinstance(a, Mapping):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


# ----------------------------------------------------------------------------


def test_overrides_are_typed_and_checked() -> None:
    base = {"steps": 10, "lr": 1e-4, "flag": False, "name": "x", "betas": [0.0, 0.9], "G": {"ngf": 16}}
    got = apply_overrides(
        base,
        [
            ("steps", "25"),
            ("lr", "3e-4"),
            ("flag", None),
            ("name", "y"),
            ("betas", "0.5,0.99"),
            ("G.ngf", "8"),
        ],
    )
    assert got == {"steps": 25, "lr": 3e-4, "flag": True, "name": "y", "betas": [0.5, 0.99], "G": {"ngf": 8}}
    assert apply_overrides(base, [("betas", "[0, 1]"), ("flag", "off")])["betas"] == [0.0, 1.0]
    assert base["steps"] == 10  # the input is not modified
    with pytest.raises(ConfigError, match="expected int"):
        apply_overrides(base, [("steps", "1.5")])
    with pytest.raises(ConfigError, match="expected bool"):
        apply_overrides(base, [("flag", "maybe")])
    with pytest.raises(ConfigError, match=r"unknown config key --stepz; did you mean --steps"):
        apply_overrides(base, [("stepz", "3")])
    with pytest.raises(ConfigError, match=r"did you mean --G\.ngf"):
        apply_overrides(base, [("G.ngff", "3")])
    with pytest.raises(ConfigError, match="is a group"):
        apply_overrides(base, [("G", "3")])


def test_parse_args_splits_trainer_flags_from_config_keys() -> None:
    flags, overrides = train.parse_args(
        ["--arch", "toy", "--dry-run", "--runs-dir=/tmp/r", "--lr-g=0.1", "--G.n-hidden", "8", "--steps=3"]
    )
    assert flags == {"arch": "toy", "dry_run": None, "runs_dir": "/tmp/r"}
    assert overrides == [("lr_g", "0.1"), ("G.n_hidden", "8"), ("steps", "3")]
    with pytest.raises(ConfigError, match="unexpected argument"):
        train.parse_args(["toy"])


def test_cli_errors_are_clear(capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(["--arch", "toy", "--stepps=3"]) == 2
    assert "unknown config key --stepps; did you mean --steps" in capsys.readouterr().err
    assert train.main(["--arch", "nope"]) == 2
    assert "unknown arch 'nope'" in capsys.readouterr().err
    assert train.main(["--arch", "toy", "--preset", "big"]) == 2
    assert "has no preset 'big'" in capsys.readouterr().err
    assert train.main(["--arch", "toy", "--batch=0"]) == 2
    assert "batch must be ≥ 1" in capsys.readouterr().err
    assert train.main(["--arch", "toy", "--precision=fp16"]) == 2
    assert "precision must be fp32, bf16 or auto, got 'fp16'" in capsys.readouterr().err
    assert train.main(["--arch", "toy", "--lr-decay-steps=-5"]) == 2
    assert "lr_decay_steps must be ≥ 0, got -5" in capsys.readouterr().err
    assert train.main(["--arch", "toy", "--size=18"]) == 2  # the arch's own check
    assert "arch 'toy': size 18 must be a multiple of 4" in capsys.readouterr().err
    assert not Path("runs").exists()


def test_refused_runs_leave_no_folder(capsys: pytest.CaptureFixture[str]) -> None:
    """Refusals found once the run has started (nets the config cannot build) remove its folder again; a
    dataset too small for the batch is refused up front, by --dry-run too."""
    assert train.main(["--arch", "toy", "--width=0"]) == 2
    assert "arch 'toy' cannot be built from this config: width must be ≥ 1" in capsys.readouterr().err
    for dry in ([], ["--dry-run"]):
        assert train.main(["--arch", "toy", "--batch=8", *dry]) == 2
        assert "dataset has 7 samples: fewer than the 8 each process needs" in capsys.readouterr().err
    assert not any(Path("runs").iterdir())  # the first refusal created the parent, and only that


def test_dry_run_prints_config_and_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(["--arch", "toy", "--width=4", "--dry-run"]) == 0
    out = capsys.readouterr().out
    config = json.loads(out[: out.index("dry run:")])
    assert config["arch"] == "toy" and config["preset"] == "small" and config["width"] == 4
    assert config["label_set"] == "landscape" and config["size"] == 16
    assert "parameters G 655, D 653" in out  # 15·4·9+4 + 4·3·9+3 and 17·4·9+4 + 4·9+1
    assert not Path("runs").exists()


def test_run_folder_log_samples_and_checkpoint(
    load: Callable[[Path], dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert train.main(["--arch", "toy"]) == 0
    run = Path("runs/00001-toy-small")
    printed = capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert json.loads(printed) == config and config["steps"] == 10
    names = sorted(p.name for p in run.iterdir())
    assert names == [
        "checkpoint-00000008.pt", "checkpoint-latest.pt", "config.json", "log.jsonl",
        "samples-00000005.png", "samples-00000010.png",
    ]  # fmt: skip
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 6, 8, 10]
    assert lines[-1]["images_seen"] == 20 and lines[-1]["images_per_s"] > 0
    assert set(lines[-1]["losses"]) == {"D", "G_gan", "G_l1"}
    grid = Image.open(run / "samples-00000010.png")
    assert grid.size == (16 * 3, 16 * 3)  # 3 rows × (label | G_ema | real)
    real = np.asarray(grid)[:16, 32:48]  # row 0, real column = item 0 (epoch 0) of the dataset
    expected = ((SeededItems(ToyPairs(7, 16), 0)[0, 0]["image"] + 1) * 127.5).round().permute(1, 2, 0)
    assert np.array_equal(real, expected.to(torch.uint8).numpy())

    ckpt = load(run / "checkpoint-latest.pt")
    assert set(ckpt) == {
        "format_version", "config", "step", "images_seen", "wall_time", "G", "G_ema", "D", "optimizers", "rng",
        "sampler", "label_set", "code_version", "torch_version", "perceptual",
    }  # fmt: skip
    assert ckpt["step"] == 10 and ckpt["images_seen"] == 20 and ckpt["config"] == config
    assert set(ckpt["optimizers"]) == {"G", "D"} and ckpt["label_set"] == "landscape"
    assert ckpt["sampler"] == {"epoch": 3, "batch": 1, "batches_per_epoch": 3, "world_size": 1}
    assert len(ckpt["rng"]) == 1 and set(ckpt["rng"][0]) == {"torch", "numpy", "python"}
    assert ckpt["perceptual"] == "none" and ckpt["wall_time"] > 0 and ckpt["code_version"]
    assert not torch.equal(ckpt["G"]["0.weight"], ckpt["G_ema"]["0.weight"])  # the EMA lags behind G

    assert train.main(["--arch", "toy", "--steps=1", "--snapshot-every=0"]) == 0  # numbering continues
    assert Path("runs/00002-toy-small/checkpoint-latest.pt").is_file()


def test_bf16_runs_the_step_under_autocast_and_keeps_fp32_weights(
    load: Callable[[Path], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[bool, torch.dtype]] = []
    step = ToyGAN.step

    def spy(self: ToyGAN, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        seen.append((torch.is_autocast_enabled("cpu"), nets["G"](torch.zeros(1, N + 1, 4, 4)).dtype))
        return step(self, nets, batch)

    monkeypatch.setattr(ToyGAN, "step", spy)
    assert train.main(["--arch", "toy", "--precision=bf16", "--steps=3"]) == 0
    assert train.main(["--arch", "toy", "--steps=1"]) == 0
    assert seen == [(True, torch.bfloat16)] * 3 + [(False, torch.float32)]
    ckpt = load(Path("runs/00001-toy-small/checkpoint-latest.pt"))
    assert ckpt["config"]["precision"] == "bf16"
    tensors = [*ckpt["G"].values(), *ckpt["G_ema"].values(), *ckpt["D"].values()]
    assert {t.dtype for t in tensors} == {torch.float32}


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_only_where_it_is_native_and_the_run_records_its_choice(
    native: bool,
    load: Callable[[Path], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[bool] = []
    step = ToyGAN.step

    def spy(self: ToyGAN, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        seen.append(torch.is_autocast_enabled("cpu"))
        return step(self, nets, batch)

    monkeypatch.setattr(ToyGAN, "step", spy)
    monkeypatch.setattr(loop, "native_bf16", lambda device: native)
    assert train.main(["--arch", "toy", "--precision=auto", "--steps=2"]) == 0
    assert seen == [native] * 2
    chosen = "bf16" if native else "fp32"
    assert load(Path("runs/00001-toy-small/checkpoint-latest.pt"))["config"]["precision"] == chosen
    assert json.loads(Path("runs/00001-toy-small/config.json").read_text())["precision"] == chosen
    assert "no native bfloat16" not in capsys.readouterr().err

    # Asked for by name where it is emulated, bf16 still runs, with a warning saying what it costs.
    assert train.main(["--arch", "toy", "--precision=bf16", "--steps=1"]) == 0
    warned = "cpu has no native bfloat16; --precision=bf16 will run many times slower than fp32"
    assert (warned in capsys.readouterr().err) is not native
    assert seen[-1] is True


def test_channels_last_runs_the_step_on_nhwc_weights_and_images_and_saves_the_same_values(
    load: Callable[[Path], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--channels_last: G's convolution weights and the real images reach the step in channels-last memory
    format (the EMA copy too); the checkpoint holds the values a run without it reaches, to float rounding."""
    seen: list[tuple[bool, bool, bool]] = []
    step = ToyGAN.step
    cl = torch.channels_last

    def spy(self: ToyGAN, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        weight = next(p for p in nets["G"].parameters() if p.dim() == 4)
        seen.append((weight.is_contiguous(memory_format=cl), batch["image"].is_contiguous(memory_format=cl),
                     batch["label"].dim() == 3))  # fmt: skip
        return step(self, nets, batch)

    monkeypatch.setattr(ToyGAN, "step", spy)
    assert train.main(["--arch", "toy", "--channels_last=true", "--steps=3", "--seed=5"]) == 0
    assert seen == [(True, True, True)] * 3
    assert train.main(["--arch", "toy", "--steps=3", "--seed=5"]) == 0
    assert seen[3:] == [(False, False, True)] * 3
    with_cl = load(Path("runs/00001-toy-small/checkpoint-latest.pt"))
    without = load(Path("runs/00002-toy-small/checkpoint-latest.pt"))
    assert with_cl["config"]["channels_last"] is True
    for net in ("G", "G_ema", "D"):
        for key, value in without[net].items():
            gap = float((with_cl[net][key] - value).abs().max())
            assert gap <= 5e-4, (
                net,
                key,
                gap,
            )  # seen: 6.9e-5 (Adam makes rounding-level gradient gaps lr-sized)


def test_learning_rates_decay_linearly_and_resume_on_schedule(
    load: Callable[[Path], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[float, float]] = []
    step = ToyGAN.step

    def spy(self: ToyGAN, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        seen.append((self.optimizers["G"].param_groups[0]["lr"], self.optimizers["D"].param_groups[0]["lr"]))
        return step(self, nets, batch)

    monkeypatch.setattr(ToyGAN, "step", spy)
    schedule = ["--lr-g=0.4", "--lr-d=0.8", "--lr-decay-start=2", "--lr-decay-steps=4", "--snapshot-every=0"]
    assert train.main(["--arch", "toy", "--steps=4", *schedule]) == 0
    assert train.main(["--resume", "runs/00001-toy-small", "--steps=7"]) == 0
    factors = [1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]  # steps 0–6; the resume starts at step 4
    assert seen == [pytest.approx((0.4 * f, 0.8 * f)) for f in factors]
    ckpt = load(Path("runs/00001-toy-small/checkpoint-latest.pt"))
    assert ckpt["optimizers"]["G"]["param_groups"][0]["initial_lr"] == pytest.approx(0.4)
    # A constant-rate run may start its decay phase on resume.
    assert train.main(["--arch", "toy", "--steps=2", "--lr-g=0.4", "--lr-d=0.8", "--snapshot-every=0"]) == 0
    seen.clear()
    assert (
        train.main(
            ["--resume", "runs/00002-toy-small", "--steps=5", "--lr-decay-start=2", "--lr-decay-steps=2"]
        )
        == 0
    )
    assert seen == [pytest.approx((0.4 * f, 0.8 * f)) for f in (1.0, 0.5, 0.0)]


def test_runs_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COLLAGE_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert train.main(["--arch", "toy", "--steps=1"]) == 0
    assert (tmp_path / "elsewhere/00001-toy-small/checkpoint-latest.pt").is_file()
    assert train.main(["--arch", "toy", "--steps=1", "--runs-dir", "mine"]) == 0
    assert Path("mine/00001-toy-small/config.json").is_file()


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_continues_exactly(load: Callable[[Path], dict[str, Any]], workers: int) -> None:
    """14 steps straight == 5 steps, stop, resume to 14 (mid-epoch: 3 batches per epoch), bit for bit."""
    common = [f"--num-workers={workers}", "--checkpoint-every=100", "--snapshot-every=0", "--log-every=1"]
    assert train.main(["--arch", "toy", "--steps=14", *common]) == 0
    assert train.main(["--arch", "toy", "--steps=5", *common]) == 0
    straight, resumed = Path("runs/00001-toy-small"), Path("runs/00002-toy-small")
    assert load(resumed / "checkpoint-latest.pt")["step"] == 5
    assert train.main(["--resume", str(resumed), "--steps=14"]) == 0

    a, b = load(straight / "checkpoint-latest.pt"), load(resumed / "checkpoint-latest.pt")
    assert b["step"] == 14 and b["config"]["steps"] == 14
    for key in ("G", "G_ema", "D", "optimizers", "rng", "sampler"):
        assert_same_tensors(a[key], b[key], key)
    losses = [
        [json.loads(line)["losses"] for line in (run / "log.jsonl").read_text().splitlines()]
        for run in (straight, resumed)
    ]
    assert len(losses[1]) == 14 and losses[0] == losses[1]
    assert json.loads((resumed / "config.json").read_text())["steps"] == 14


def test_init_from_records_what_the_chain_has_seen(load: Callable[[Path], dict[str, Any]]) -> None:
    """A model's budget is its whole --init_from chain's: 3 runs of 3, 2 and 4 steps of batch 2 saw 18 images."""
    assert train.main(["--arch", "toy", "--steps=3"]) == 0
    assert train.main(["--arch", "toy", "--steps=2", "--init_from", "runs/00001-toy-small"]) == 0
    assert train.main(["--arch", "toy", "--steps=4", "--init_from", "runs/00002-toy-small"]) == 0
    last = load(Path("runs/00003-toy-small/checkpoint-latest.pt"))
    assert last["images_seen"] == 8 and last["config"]["init_from"]["images_seen"] == 10
    assert lineage_images_seen(last) == 18


def test_resume_fills_config_keys_newer_than_the_checkpoint(load: Callable[[Path], dict[str, Any]]) -> None:
    assert train.main(["--arch", "toy", "--steps=2"]) == 0
    path = Path("runs/00001-toy-small/checkpoint-latest.pt")
    old = load(path)
    del old["config"]["precision"]  # as written before the key existed
    torch.save(old, path)
    assert train.main(["--resume", str(path.parent), "--steps=3"]) == 0
    assert load(path)["config"]["precision"] == "fp32"
    # A run may switch precision on resume (e.g. onto a CPU with fast bfloat16).
    assert train.main(["--resume", str(path.parent), "--steps=4", "--precision=bf16"]) == 0
    assert load(path)["step"] == 4 and load(path)["config"]["precision"] == "bf16"


def test_resume_refuses_config_changes(capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(["--arch", "toy", "--steps=1"]) == 0
    assert train.main(["--resume", "runs/00001-toy-small", "--lr-g=0.5"]) == 2
    assert "--resume may change only steps" in capsys.readouterr().err
    assert train.main(["--resume", "runs/00001-toy-small", "--arch", "toy"]) == 2
    assert train.main(["--resume", "runs/nothing"]) == 2
    assert "no checkpoint at runs/nothing/checkpoint-latest.pt" in capsys.readouterr().err
    assert train.main(["--resume", "runs/00001-toy-small", "--runs-dir", "elsewhere"]) == 2
    assert "--resume continues the run in its own folder; drop --runs-dir" in capsys.readouterr().err
    assert train.main(["--resume", "runs/00001-toy-small", "--steps=2"]) == 0
    assert train.main(["--resume", "runs/00001-toy-small", "--steps=1"]) == 2
    assert "--steps=1: the run is at step 2 already and cannot go back" in capsys.readouterr().err
    assert json.loads(Path("runs/00001-toy-small/config.json").read_text())["steps"] == 2


def test_unreadable_checkpoints_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(["--arch", "toy", "--steps=1"]) == 0
    whole = Path("runs/00001-toy-small/checkpoint-latest.pt").read_bytes()
    Path("truncated.pt").write_bytes(whole[: len(whole) // 2])
    Path("junk.pt").write_bytes(b"junk junk")
    torch.save(torch.zeros(2), "tensor.pt")
    capsys.readouterr()
    for name, reason in [
        ("truncated", ""),  # RuntimeError or OSError, depending on where the zip directory was cut
        ("junk", "KeyError: "),
        ("tensor", "it holds a Tensor"),
    ]:
        for flag in ("--resume", "--init_from"):
            argv = [flag, f"{name}.pt"] if flag == "--resume" else ["--arch", "toy", flag, f"{name}.pt"]
            assert train.main(argv) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"collage train: {name}.pt is not a readable collage checkpoint ({reason}")
            assert err.count("\n") == 1


def test_init_from_mismatch_is_summarised(capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(["--arch", "toy", "--steps=1"]) == 0
    capsys.readouterr()
    assert train.main(["--arch", "toy", "--width=16", "--init_from", "runs/00001-toy-small"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "collage train: --init_from: G does not fit this config's network: 3 reshaped: "
        "0.weight (source (8, 15, 3, 3), here (16, 15, 3, 3)), 0.bias (source (8,), here (16,)), "
        "2.weight (source (3, 8, 3, 3), here (3, 16, 3, 3))\n"
    )
    source = {f"w{i}": torch.zeros(1) for i in range(5)}  # a wider or deeper net: thousands of names
    assert state_misfit({"w0": torch.zeros(2), "x": torch.zeros(1)}, source) == (
        "1 missing from the source: x; 4 only in the source: w1, w2, w3, …; 1 reshaped: w0 (source (1,), here (2,))"
    )


def test_folder_data_is_stored_absolute_so_resume_works_from_anywhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(train, "build_dataset", BUILD_DATASET)
    write_pairs(tmp_path / "pairs", 4)
    assert train.main(["--arch", "toy", "--data=folder:pairs", "--steps=1"]) == 0
    run = tmp_path / "runs/00001-toy-small"
    assert json.loads((run / "config.json").read_text())["data"] == f"folder:{tmp_path / 'pairs'}"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert train.main(["--resume", str(run), "--steps=2"]) == 0


def test_dry_run_checks_the_pairs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(train, "build_dataset", BUILD_DATASET)
    write_pairs(Path("pairs"), 4)
    Image.fromarray(np.zeros((16, 15), np.uint8), "L").save("pairs/labels/002.png")
    assert train.main(["--arch", "toy", "--data=folder:pairs", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"pairs/labels/002.png is 15×16 but {Path.cwd()}/pairs/images/002.png is 16×16\n")
    assert not Path("runs").exists()


def test_a_bad_pair_mid_run_is_one_line_after_a_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    load: Callable[[Path], dict[str, Any]],
) -> None:
    """A label map the start-up check does not decode (pair 5 of 20) fails in a DataLoader worker: one line
    naming it, checkpoint-latest.pt at the last finished step, exit 2; fixed, the run resumes."""
    monkeypatch.setattr(train, "build_dataset", BUILD_DATASET)
    write_pairs(Path("pairs"), 20)
    good = Path("pairs/labels/005.png").read_bytes()
    blurred = np.asarray(Image.open("pairs/labels/005.png")).copy()
    blurred[8] = (118, 181, 203)  # the seam between sky and grass after a smoothing resize
    Image.fromarray(blurred).save("pairs/labels/005.png")
    argv = ["--arch", "toy", "--data=folder:pairs", "--num-workers=2", "--checkpoint-every=100"]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    run = "runs/00001-toy-small"
    last = err.rstrip("\n").rpartition("\n")[2]
    prefix = f"collage train: {Path.cwd()}/pairs/labels/005.png: unknown label colour (118, 181, 203) at (x=0, y=8)"
    assert last.startswith(prefix) and last.endswith(
        f"; fix or remove that pair, then: collage train --resume {run}"
    )
    step = load(Path(run) / "checkpoint-latest.pt")["step"]
    assert f"; step {step} saved in {run}/checkpoint-latest.pt;" in last and step < 10
    Path("pairs/labels/005.png").write_bytes(good)
    assert train.main(["--resume", run]) == 0
    assert load(Path(run) / "checkpoint-latest.pt")["step"] == 10


def test_signal_finishes_the_step_and_checkpoints(
    load: Callable[[Path], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT during step 3 -> checkpoint at step 3, exit code 130; resuming completes the run."""
    calls = {"n": 0}
    original = ToyGAN.step

    def step(self: ToyGAN, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, nets, batch)

    monkeypatch.setattr(ToyGAN, "step", step)
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup / a background job
    assert train.main(["--arch", "toy", "--checkpoint-every=100"]) == 130
    run = Path("runs/00001-toy-small")
    assert load(run / "checkpoint-latest.pt")["step"] == 3
    assert signal.getsignal(signal.SIGINT) is before  # the handler was restored
    assert train.main(["--resume", str(run)]) == 0
    assert load(run / "checkpoint-latest.pt")["step"] == 10


def test_single_network_arch_without_discriminator(load: Callable[[Path], dict[str, Any]]) -> None:
    assert train.main(["--arch", "single", "--steps=60", "--log-every=10"]) == 0
    run = Path("runs/00001-single-one")
    ckpt = load(run / "checkpoint-latest.pt")
    assert "S" in ckpt and "G" not in ckpt and "S_ema" not in ckpt and set(ckpt["optimizers"]) == {"S"}
    ce = [json.loads(line)["losses"]["ce"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert ce[-1] < 0.5 * ce[0]  # it learns: colours map one-to-one to labels
    assert Image.open(run / "samples-00000030.png").size == (48, 48)


def test_registry_imports_arch_modules_and_suggests_names() -> None:
    with pytest.raises(KeyError, match="unknown arch 'spad'.*did you mean 'spade'"):
        get_arch("spad")


def test_help_lists_architectures_and_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "spade: spade-fast, spade-paper, spade-tiny" in out  # default preset first
    assert "--resume RUN" in out and "--dry-run" in out
