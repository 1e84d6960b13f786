"""The SPADE training recipe through the trainer: one step, a real learning test, exact resume, 2-process DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from models import train
from models.archs import get_arch
from models.archs import spade as spade_arch
from models.archs.spade import build_encoder, build_generator
from models.augment import recolour
from models.data.datasets import make_dataset
from models.ema import make_ema
from models.labels import LANDSCAPE
from models.losses import seg_g_loss
from models.training.config import ConfigError, resolve_config
from models.training.setup import build_recipe, load_init_weights, seed_all

pytestmark = pytest.mark.usefixtures("in_tmp")
REPO = Path(__file__).resolve().parents[3]


def max_diff(a: Any, b: Any) -> float:
    """Largest absolute difference between two nested structures of tensors (non-tensors must be equal)."""
    if isinstance(a, torch.Tensor):
        return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        return max((max_diff(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list | tuple):
        assert len(a) == len(b)
        return max((max_diff(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    assert a == b
    return 0.0


def test_one_step_trains_g_e_and_d() -> None:
    config = resolve_config("spade", "spade-tiny", [("data_length", "2")])
    config["label_set"] = "landscape"
    dataset, _ = make_dataset("procedural", 32, length=2)
    batch = {k: v for k, v in torch.utils.data.default_collate([dataset[0], dataset[1]]).items()}
    torch.manual_seed(0)
    recipe = get_arch("spade").build(config, LANDSCAPE, torch.device("cpu"))
    assert recipe.meta == {"perceptual": "substitute:l1-avgpool-4x-8x+d-feature-matching"}
    assert {k: type(o).__name__ for k, o in recipe.optimizers.items()} == {"G": "Adam", "D": "Adam"}
    assert (
        recipe.optimizers["G"].defaults["betas"] == (0.0, 0.9)
        and recipe.optimizers["D"].defaults["lr"] == 4e-4
    )
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in recipe.nets.items()}
    losses = recipe.step(recipe.nets, batch)
    assert set(losses) == {"G_gan", "G_feat", "G_perc", "G_kl", "D"}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert 0 < losses["D"] < 4 and losses["G_feat"] > 0 and losses["G_kl"] >= 0
    for name, net in recipe.nets.items():  # E learns through G's optimiser
        changed = [not torch.equal(p, q) for p, q in zip(before[name], net.parameters(), strict=True)]
        assert sum(changed) > 0.9 * len(changed), name
    assert all(p.requires_grad for p in recipe.nets["D"].parameters())  # unfrozen after the G step

    for net in recipe.nets.values():
        net.eval()
    state = torch.get_rng_state()
    with torch.no_grad():
        columns = recipe.preview(recipe.nets, batch)
    assert torch.equal(state, torch.get_rng_state())  # the preview never draws from the global RNG
    assert [tuple(c.shape) for c in columns] == [(2, 3, 32, 32)] * 2
    assert all(c.abs().max() <= 1 for c in columns) and not torch.equal(columns[0], columns[1])


def test_encoder_at_its_own_size_trains_on_a_larger_batch() -> None:
    """spade-tiny at 64² with its 32² encoder: E gets the real images resized to 32², every net learns."""
    config = resolve_config("spade", "spade-tiny", [("size", "64"), ("data_length", "2")])
    config["label_set"] = "landscape"
    dataset, _ = make_dataset("procedural", 64, length=2)
    batch = torch.utils.data.default_collate([dataset[0], dataset[1]])
    torch.manual_seed(0)
    recipe = get_arch("spade").build(config, LANDSCAPE, torch.device("cpu"))
    assert recipe.nets["E"].image_size == (32, 32)
    seen: list[torch.Tensor] = []
    recipe.nets["E"].register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in recipe.nets.items()}
    losses = recipe.step(recipe.nets, batch)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()) and 0 < losses["D"] < 4
    for name, net in recipe.nets.items():
        changed = [not torch.equal(p, q) for p, q in zip(before[name], net.parameters(), strict=True)]
        assert sum(changed) > 0.9 * len(changed), name
    (small,) = seen
    real = batch["image"]  # [2,3,64,64]
    assert small.shape == (2, 3, 32, 32)
    assert (small.mean((2, 3)) - real.mean((2, 3))).abs().max() < 0.01  # averaged, not subsampled
    assert (small - real[..., ::2, ::2]).abs().mean() > 0.02  # seen: 0.0545

    for net in recipe.nets.values():
        net.eval()
    with torch.no_grad():
        columns = recipe.preview(recipe.nets, batch)
    assert [tuple(c.shape) for c in columns] == [(2, 3, 64, 64)] * 2 and seen[-1].shape == (2, 3, 32, 32)


@pytest.mark.slow  # ~11 s of CPU, 20-40 s when the machine is shared
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_learns_to_reconstruct_a_single_pair(
    tiny_spade: list[str], load: Callable[[Path], dict[str, Any]], precision: str
) -> None:
    """200 steps on one 32² procedural pair: L1(G(label, E(image).μ), image) falls below a quarter."""
    argv = [*tiny_spade, "--data-length=1", "--batch=1", "--steps=200", "--log-every=50", "--lr-g=5e-4",
            "--generator.nhidden=16", f"--precision={precision}"]  # fmt: skip
    assert train.main(argv) == 0
    ckpt = load(Path("runs/00001-spade-tiny/checkpoint-latest.pt"))
    config = ckpt["config"]
    sample = make_dataset("procedural", 32, length=1)[0][0]
    label, instance = sample["label"][None, None], sample["instance"][None, None]  # [1,1,32,32]
    image = sample["image"][None]  # [1,3,32,32]

    def error(generator_key: str | None) -> float:
        seed_all(config["seed"])  # the trainer builds the networks right after this seeding
        generator, encoder = build_generator(config, len(LANDSCAPE)), build_encoder(config)
        if generator_key is not None:
            generator.load_state_dict(ckpt[generator_key])
            encoder.load_state_dict(ckpt["E"])
        generator.eval(), encoder.eval()
        with torch.no_grad():
            mu, _ = encoder(image)
            return float((generator(label, instance, mu) - image).abs().mean())

    initial, trained, ema = error(None), error("G"), error("G_ema")
    numbers = f"L1 initial {initial:.4f}, G {trained:.4f}, G_ema {ema:.4f}"  # fp32: 0.4706, 0.0886, 0.0831
    assert trained < 0.25 * initial, numbers
    assert ema < 0.25 * initial, numbers


def test_resume_equals_straight_run(tiny_spade: list[str], load: Callable[[Path], dict[str, Any]]) -> None:
    """40 steps straight == 20 steps, stop, --resume to 40 (batch 2, 3 batches per epoch: step 20 is mid-epoch)."""
    common = [*tiny_spade, "--data-length=6", "--batch=2", "--log-every=10"]
    assert train.main([*common, "--steps=40"]) == 0
    assert train.main([*common, "--steps=20"]) == 0
    assert train.main(["--resume", "runs/00002-spade-tiny", "--steps=40"]) == 0
    straight = load(Path("runs/00001-spade-tiny/checkpoint-latest.pt"))
    resumed = load(Path("runs/00002-spade-tiny/checkpoint-latest.pt"))
    assert straight["step"] == resumed["step"] == 40 and resumed["images_seen"] == 80
    diffs = {
        key: max_diff(straight[key], resumed[key]) for key in ("G", "G_ema", "D", "E", "optimizers", "rng")
    }
    assert max(diffs.values()) <= 1e-6, diffs  # seen: exactly 0 everywhere
    assert not torch.equal(straight["G"]["fc.weight"], load_initial_fc())  # it did train


def test_init_from_starts_a_new_run_at_another_size_with_the_weights(
    tiny_spade: list[str], load: Callable[[Path], dict[str, Any]]
) -> None:
    """A 32² run's G, G_ema, D and E start a 64² run (E stays 32²): exact weights, step 0, fresh optimisers."""
    assert train.main([*tiny_spade, "--data-length=2", "--batch=1", "--steps=3"]) == 0
    source = load(Path("runs/00001-spade-tiny/checkpoint-latest.pt"))

    config = resolve_config("spade", "spade-tiny", [("size", "64")])
    config["label_set"] = "landscape"
    recipe = build_recipe(config, LANDSCAPE, torch.device("cpu"))
    ema = {"G": make_ema(recipe.nets["G"])}
    load_init_weights(recipe, ema, source)
    for key, net in [*recipe.nets.items(), ("G_ema", ema["G"])]:
        assert max_diff(net.state_dict(), source[key]) == 0.0, key  # every weight and buffer, bit for bit

    argv = [
        *tiny_spade,
        "--data-length=2",
        "--batch=1",
        "--steps=2",
        "--size=64",
        "--init-from",
        "runs/00001-spade-tiny",
    ]
    assert train.main(argv) == 0
    run = Path("runs/00002-spade-tiny")
    ckpt = load(run / "checkpoint-latest.pt")
    origin = {"path": "runs/00001-spade-tiny/checkpoint-latest.pt", "step": 3, "size": 32, "images_seen": 3}
    assert ckpt["config"]["init_from"] == origin and ckpt["config"]["size"] == 64 and ckpt["step"] == 2
    assert json.loads((run / "config.json").read_text())["init_from"] == origin
    adam_steps = {float(s["step"]) for opt in ckpt["optimizers"].values() for s in opt["state"].values()}
    assert adam_steps == {2.0}  # fresh optimisers: 2 steps, not the source's 3 + 2

    def weights_gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        """Largest difference of the learnable weights (not spectral norm's power-iteration vectors)."""
        return max(float((a[k] - b[k]).abs().max()) for k in a if not k.endswith(("_u", "_v")))

    fresh = build_recipe(config, LANDSCAPE, torch.device("cpu")).nets
    for name in ("G", "D", "E"):  # two Adam steps (lr ≤ 4e-4) away from the source, far from a new init
        moved, unrelated = (
            weights_gap(ckpt[name], source[name]),
            weights_gap(fresh[name].state_dict(), source[name]),
        )
        assert moved < 2e-3 < 0.05 < unrelated, (name, moved, unrelated)  # seen: ≤ 9.5e-4 vs ≥ 0.17


def test_sizes_g_cannot_produce_are_refused_before_a_run_folder(
    tiny_spade: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """spade-tiny's G up-samples 3 times, so 60 would fail in its first forward pass; 40 is fine."""
    for dry in (["--dry-run"], []):
        assert train.main([*tiny_spade, "--size=60", "--steps=1", *dry]) == 2
        assert capsys.readouterr().err == (
            "collage train: arch 'spade': size 60 must be a multiple of 2^num_up = 8 (generator.num_up=3); "
            "e.g. --size=56 or --size=64\n"
        )
    assert not Path("runs").exists()
    assert train.main([*tiny_spade, "--size=40", "--data-length=4", "--dry-run"]) == 0


def test_init_from_refuses_what_does_not_fit(
    tiny_spade: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert train.main([*tiny_spade, "--data-length=2", "--batch=1", "--steps=1"]) == 0
    capsys.readouterr()
    small_e = [
        *tiny_spade,
        "--data-length=2",
        "--steps=1",
        "--encoder.image-size=16",
        "--init-from=runs/00001-spade-tiny",
    ]
    assert train.main(small_e) == 2  # a 16² encoder has a smaller linear head than the source's 32² one
    err = capsys.readouterr().err
    assert "--init_from: E does not fit this config's network" in err and "fc_mu.weight" in err
    assert train.main(["--resume", "runs/00001-spade-tiny", "--init-from", "runs/00001-spade-tiny"]) == 2
    assert "give only one" in capsys.readouterr().err
    assert train.main([*tiny_spade, "--init-from", "runs/nothing"]) == 2
    assert "no checkpoint at runs/nothing/checkpoint-latest.pt" in capsys.readouterr().err
    assert [p.name for p in Path("runs").iterdir()] == ["00001-spade-tiny"]  # refused runs leave no folder


def load_initial_fc() -> torch.Tensor:
    config = resolve_config("spade", "spade-tiny", [])
    seed_all(config["seed"])
    return build_generator(config, len(LANDSCAPE)).state_dict()["fc.weight"]


def test_two_processes_with_torchrun(
    tiny_spade: list[str], load: Callable[[Path], dict[str, Any]], tmp_path: Path
) -> None:
    """torchrun --nproc_per_node=2 (gloo): one run folder written by rank 0, a checkpoint with both ranks' RNG."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("COLLAGE_RUNS_DIR", None)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "models.train",
        *tiny_spade, "--data-length=4", "--batch=2", "--steps=2", "--log-every=1", "--sample-every=2",
        "--runs-dir", str(tmp_path / "runs"), "--dry-run=false",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert [r.name for r in runs] == ["00001-spade-tiny"]
    run = runs[0]
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint-latest.pt", "config.json", "log.jsonl", "samples-00000002.png",
    ]  # fmt: skip
    ckpt = load(run / "checkpoint-latest.pt")
    assert ckpt["step"] == 2 and ckpt["images_seen"] == 4
    assert ckpt["sampler"] == {"epoch": 1, "batch": 0, "batches_per_epoch": 2, "world_size": 2}
    assert len(ckpt["rng"]) == 2 and not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
    generator = build_generator(ckpt["config"], len(LANDSCAPE))
    generator.load_state_dict(ckpt["G_ema"])  # loads into a plain (non-DDP) generator
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2] and lines[-1]["images_seen"] == 4

    # A single process can continue the 2-process run (same weights; RNG streams cannot match exactly).
    assert train.main(["--resume", str(run), "--steps=3"]) == 0
    assert load(run / "checkpoint-latest.pt")["step"] == 3


def test_seg_preset_adds_a_segmentation_discriminator_that_g_listens_to(
    tiny_spade: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """spade-tiny-seg: S learns (its loss falls over 40 steps on one batch), G pays loss.seg × G_seg, and a plain
    spade-tiny run starts it with --init_from (S from scratch, the rest exactly the source's)."""
    config = resolve_config("spade", "spade-tiny-seg", [])
    config["label_set"] = "landscape"
    dataset, _ = make_dataset("procedural", 32, length=4)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(4)])
    torch.manual_seed(0)
    recipe = get_arch("spade").build(config, LANDSCAPE, torch.device("cpu"))
    assert set(recipe.optimizers) == {"G", "D", "S"} and recipe.init_optional == ("S",)
    s_losses = []
    for _ in range(40):
        losses = recipe.step(recipe.nets, batch)
        s_losses.append(losses["S"])
    assert set(losses) == {"G_gan", "G_feat", "G_perc", "G_kl", "G_seg", "D", "S"}
    assert s_losses[-1] < 0.8 * s_losses[0], s_losses  # seen: 5.6 -> 3.9
    assert all(p.requires_grad for p in recipe.nets["S"].parameters())  # unfrozen after the G step

    # G's gradient from S: zero with loss.seg = 0, present with 1.
    def g_grad(weight: float) -> float:
        recipe.weights["seg"] = weight
        g = recipe.nets["G"]
        for opt in recipe.optimizers.values():
            opt.param_groups[0]["lr"] = 0.0  # look at gradients, keep the weights
        torch.manual_seed(1)
        recipe.step(recipe.nets, batch)
        return sum(float(p.grad.abs().sum()) for p in g.parameters() if p.grad is not None)

    assert g_grad(0.0) < g_grad(1.0)

    # S sees recoloured images on both sides, and G is asked for the painted labels.
    seen: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []

    def recording_recolour(images: torch.Tensor, cfg: dict[str, float]) -> torch.Tensor:
        seen.append(images.detach().clone())
        return recolour(images, cfg)

    def recording_g_loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        targets.append(label)
        return seg_g_loss(logits, label)

    monkeypatch.setattr(spade_arch, "recolour", recording_recolour)
    monkeypatch.setattr(spade_arch, "seg_g_loss", recording_g_loss)
    recipe.step(recipe.nets, batch)
    assert [len(images) for images in seen] == [4, 8]  # G step: the fakes; S step: cat(real, fake)
    assert torch.equal(seen[1][:4], batch["image"]) and torch.equal(seen[1][4:], seen[0])
    assert len(targets) == 1 and torch.equal(targets[0], batch["label"])

    assert train.main([*tiny_spade, "--data-length=2", "--batch=1", "--steps=1"]) == 0
    source = torch.load("runs/00001-spade-tiny/checkpoint-latest.pt", weights_only=False)
    argv = [*tiny_spade, "--preset=spade-tiny-seg", "--data-length=2", "--batch=1", "--steps=1"]
    assert train.main([*argv, "--init-from=runs/00001-spade-tiny", "--dry-run"]) == 0
    seg = build_recipe(resolve_config("spade", "spade-tiny-seg", []), LANDSCAPE, torch.device("cpu"))
    load_init_weights(seg, {"G": make_ema(seg.nets["G"])}, source)
    assert max_diff(seg.nets["G"].state_dict(), source["G"]) == 0.0
    del source["D"]
    with pytest.raises(ConfigError, match="has no D"):  # only S may be missing
        load_init_weights(seg, {"G": make_ema(seg.nets["G"])}, source)


def test_noise_preset_starts_from_a_run_without_noise_and_learns_to_use_it(
    tiny_spade: list[str], load: Callable[[Path], dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    """spade-tiny-noise from a spade-tiny-seg run (--init_from): every weight the source has is copied, the
    noise convs start at zero (so G paints what the source's G paints, whatever the noise) with a learning rate
    of their own, and training moves them off zero; a source missing any other weight is still refused."""
    seg = [*tiny_spade, "--data-length=2", "--batch=1"]
    seg[seg.index("spade-tiny")] = "spade-tiny-seg"
    assert train.main([*seg, "--steps=1"]) == 0
    source = load(Path("runs/00001-spade-tiny-seg/checkpoint-latest.pt"))

    config = resolve_config("spade", "spade-tiny-noise", [])
    config["label_set"] = "landscape"
    recipe = build_recipe(config, LANDSCAPE, torch.device("cpu"))
    ema = {"G": make_ema(recipe.nets["G"])}
    load_init_weights(recipe, ema, source)
    g = recipe.nets["G"]
    noise_keys = [k for k in g.state_dict() if "mlp_noise" in k]
    assert noise_keys and all(not g.state_dict()[k].any() for k in noise_keys)
    rest, fast = recipe.optimizers["G"].param_groups  # the noise convs learn at NOISE_LR_MULT × G's rate
    assert len(fast["params"]) == len(noise_keys) and fast["lr"] == spade_arch.NOISE_LR_MULT * rest["lr"]
    plain = build_generator(source["config"], len(LANDSCAPE))
    plain.load_state_dict(source["G"])
    dataset, _ = make_dataset("procedural", 32, length=1)
    label, instance = dataset[0]["label"][None, None], dataset[0]["instance"][None, None]
    z = torch.randn(1, plain.z_dim)
    with torch.no_grad():
        assert torch.equal(
            g.eval()(label, instance, z, torch.randn(1, 4, 32, 32)), plain.eval()(label, instance, z)
        )

    noisy = [*seg, "--preset=spade-tiny-noise", "--steps=3", "--init-from=runs/00001-spade-tiny-seg"]
    assert train.main(noisy) == 0
    trained = load(Path("runs/00002-spade-tiny-noise/checkpoint-latest.pt"))["G"]
    assert min(float(trained[k].abs().max()) for k in noise_keys) > 0  # every noise conv learnt something

    broken = dict(source)
    broken["G"] = {k: v for k, v in source["G"].items() if not k.startswith("fc.")}
    with pytest.raises(
        ConfigError, match="G does not fit this config's network: 2 missing from the source: fc"
    ):
        load_init_weights(recipe, ema, broken)
