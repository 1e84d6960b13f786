from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from models.archs import get_arch
from models.archs.segmenter import PRESETS, class_weights, load_segmenter, random_flip
from models.checkpoints import CheckpointError
from models.labels import LANDSCAPE


def test_random_flip_moves_image_and_label_together() -> None:
    image = torch.arange(8.0).view(1, 1, 1, 8).expand(2, 3, 4, 8).clone()
    label = torch.arange(8).view(1, 1, 8).expand(2, 4, 8).clone()
    flipped_image, flipped_label = random_flip(image, label, p=1.0)
    assert torch.equal(flipped_image[:, 0], flipped_label.float())
    assert flipped_label[0, 0].tolist() == list(range(7, -1, -1))
    same_image, same_label = random_flip(image, label, p=0.0)
    assert torch.equal(same_image, image) and torch.equal(same_label, label)


def test_class_weights_follow_inverse_sqrt_frequency() -> None:
    label = torch.tensor([0] * 100 + [1] * 4)
    weights = class_weights(label, 3, power=0.5)
    # raw 1/10, 1/2, absent -> 0; normalised to mean 1 over the present classes
    assert weights.tolist() == pytest.approx([0.1 / 0.3, 0.5 / 0.3, 0.0])
    assert class_weights(label, 3, power=0.0).tolist() == pytest.approx([1.0, 1.0, 0.0])


def test_sizes_below_two_to_the_levels_are_refused(
    tiny_segmenter: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from models.train import main as train_main

    runs = ["--runs-dir", str(tmp_path / "runs")]
    assert train_main([*tiny_segmenter, *runs, "--size=3", "--dry-run"]) == 2
    assert (
        capsys.readouterr().err
        == "collage train: arch 'segmenter': size 3 must be at least 2^levels = 4 (S.levels=2)\n"
    )
    assert train_main([*tiny_segmenter, *runs, "--size=6", "--data-length=4", "--dry-run"]) == 0
    assert not (tmp_path / "runs").exists()


def _tiny_config() -> dict:
    from models.training.config import resolve_config

    config = resolve_config("segmenter", "segmenter-tiny", [])
    config["label_set"] = LANDSCAPE.name
    return config


def test_segmenter_loss_falls_on_a_few_procedural_samples(one_thread: None) -> None:
    from models.data.datasets import ProceduralLandscapes

    torch.manual_seed(0)
    config = _tiny_config()
    recipe = get_arch("segmenter").build(config, LANDSCAPE, torch.device("cpu"))
    data = ProceduralLandscapes(size=32, length=4, seed=0)
    batch = default_collate([data[i] for i in range(4)])
    losses = [recipe.step(recipe.nets, batch)["ce"] for _ in range(60)]
    # Under colour augmentation: about 2.5 -> 1.4–1.5 in 60 steps (seeds 0, 1, 2).
    assert sum(losses[-10:]) / 10 < 0.75 * sum(losses[:5]) / 5
    previews = recipe.preview({"S": recipe.nets["S"].eval()}, batch)
    assert [p.shape for p in previews] == [(4, 3, 32, 32)] * 3


def test_a_run_configured_before_resampling_still_steps(one_thread: None) -> None:
    """--resume keeps a run's own config: the first judge's runs have no resampling keys."""
    from models.augment import RESAMPLE
    from models.data.datasets import ProceduralLandscapes

    config = _tiny_config()
    config["augment"] = {k: v for k, v in config["augment"].items() if k not in RESAMPLE}
    recipe = get_arch("segmenter").build(config, LANDSCAPE, torch.device("cpu"))
    data = ProceduralLandscapes(size=32, length=2, seed=0)
    assert recipe.step(recipe.nets, default_collate([data[0], data[1]]))["ce"] > 0


def test_trained_checkpoint_loads_as_a_judge(tmp_path: Path, tiny_segmenter: list[str]) -> None:
    from models.train import main as train_main

    assert train_main([*tiny_segmenter, "--steps=2", "--runs-dir", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    net, size, info = load_segmenter(run)
    assert size == 32 and info["weights"] == "S_ema" and info["step"] == 2
    assert not net.training
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, len(LANDSCAPE), 32, 32)


def test_init_from_starts_from_an_earlier_judge(tmp_path: Path, tiny_segmenter: list[str]) -> None:
    """The trainer's generic --init_from: S and its EMA equal the source's right after loading."""
    from models.checkpoints import load_checkpoint
    from models.ema import make_ema
    from models.train import main as train_main
    from models.training.setup import build_recipe, load_init_weights

    quiet = ["--num_workers=0", "--sample_every=0", "--sample_count=1"]
    small = ["--arch", "segmenter", "--preset", "segmenter-small", "--size=32", "--batch=1", *quiet]
    assert train_main([*small, "--steps=1", "--runs-dir", str(tmp_path / "source")]) == 0
    (run,) = (tmp_path / "source").iterdir()
    source, _ = load_checkpoint(run)

    config = _tiny_config() | {"S": PRESETS["segmenter-256"]["S"]}  # segmenter-256's net at a test size
    recipe = build_recipe(config, LANDSCAPE, torch.device("cpu"))
    ema = {"S": make_ema(recipe.nets["S"])}
    load_init_weights(recipe, ema, source)
    for key, net in (("S", recipe.nets["S"]), ("S_ema", ema["S"])):
        for name, value in net.state_dict().items():
            assert torch.equal(value, source[key][name]), (key, name)
    assert not torch.equal(source["S"]["head.weight"], source["S_ema"]["head.weight"])  # two distinct copies

    # The command that fine-tunes the judge at 256²: refused shapes would fail here, before any run folder.
    assert (
        train_main(["--arch", "segmenter", "--preset", "segmenter-256", "--init_from", str(run), "--dry-run"])
        == 0
    )
    tiny = [*tiny_segmenter, "--runs-dir", str(tmp_path / "runs")]
    assert train_main([*tiny, "--init_from", str(run)]) == 2  # segmenter-tiny builds a smaller net
    assert not (tmp_path / "runs").exists()


def test_load_segmenter_refuses_other_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_segmenter(tmp_path / "missing.pt")
    path = tmp_path / "gan.pt"
    torch.save({"config": {"arch": "spade"}}, path)
    with pytest.raises(ValueError, match="not a segmenter"):
        load_segmenter(path)
    junk = tmp_path / "junk.pt"  # read by the checkpoints' own reader, which names the file and the reason
    junk.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=r"junk\.pt is not a readable collage checkpoint"):
        load_segmenter(junk)
