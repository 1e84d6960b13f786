from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.data import FAMILIES, samples
from models.data import datasets as ds
from models.data.samples import Mix
from models.labels import ADE20K, CITYSCAPES, COCO_STUFF, LANDSCAPE


def _same_sample(a: dict, b: dict) -> bool:
    return a["style"] == b["style"] and all(torch.equal(a[k], b[k]) for k in ("label", "instance", "image"))


def test_procedural_sample_types_and_ranges() -> None:
    data = ds.ProceduralLandscapes(48, length=len(FAMILIES), seed=3)
    assert len(data) == len(FAMILIES)
    styles = []
    for sample in data:
        assert set(sample) == {"label", "instance", "image", "style"}
        assert sample["label"].dtype == torch.int64 and sample["label"].shape == (48, 48)
        assert sample["instance"].dtype == torch.int64 and sample["instance"].shape == (48, 48)
        assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, 48, 48)
        assert 0 <= int(sample["label"].min()) and int(sample["label"].max()) < len(LANDSCAPE)
        assert -1.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
        assert float(sample["image"].std()) > 0.05  # a picture, not a flat fill
        things = torch.isin(sample["label"], torch.tensor(LANDSCAPE.thing_ids))
        assert not bool(((sample["instance"] > 0) & ~things).any())  # instances only on thing pixels
        styles.append(sample["style"])
    assert sorted(styles) == list(range(len(FAMILIES)))  # families cycle with the index


def test_procedural_is_deterministic_per_seed_and_index() -> None:
    a, b = ds.ProceduralLandscapes(32, 3, seed=5), ds.ProceduralLandscapes(32, 3, seed=5)
    assert _same_sample(a[2], b[2])
    assert _same_sample(a[-1], b[2])
    assert not torch.equal(a[0]["image"], a[1]["image"])
    assert not torch.equal(a[0]["image"], ds.ProceduralLandscapes(32, 3, seed=6)[0]["image"])
    with pytest.raises(IndexError):
        a[3]


def test_cache_matches_direct_rendering_and_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ds, "SHARD_SIZE", 2)  # 5 samples → shards of 2, 2 and a partial 1
    cached = ds.ProceduralLandscapes(32, 5, seed=2, cache_dir=tmp_path)
    assert cached.folder is not None
    assert sorted(p.name for p in cached.folder.iterdir()) == ["shard-00000", "shard-00001", "shard-00002"]
    direct = [ds.ProceduralLandscapes(32, 6, seed=2)[i] for i in range(6)]
    for i in range(5):
        assert _same_sample(cached[i], direct[i])

    def fail(*args: object) -> None:
        raise AssertionError("rendered although the cache holds the sample")

    real_render = ds.render_sample
    monkeypatch.setattr(ds, "render_sample", fail)
    again = ds.ProceduralLandscapes(32, 5, seed=2, cache_dir=tmp_path)  # nothing to render
    assert _same_sample(again[4], direct[4])
    monkeypatch.setattr(ds, "render_sample", real_render)
    longer = ds.ProceduralLandscapes(32, 6, seed=2, cache_dir=tmp_path)  # completes the partial shard
    assert _same_sample(longer[5], direct[5])
    assert _same_sample(longer[4], direct[4])


def test_cache_filled_by_parallel_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ds, "SHARD_SIZE", 1)
    folder = ds.prepare_cache(tmp_path, (24, 32), 3, seed=7, workers=2)
    assert sorted(p.name for p in folder.iterdir()) == ["shard-00000", "shard-00001", "shard-00002"]
    cached, direct = (
        ds.ProceduralLandscapes((24, 32), 3, 7, tmp_path),
        ds.ProceduralLandscapes((24, 32), 3, 7),
    )
    assert cached[2]["image"].shape == (3, 24, 32)
    assert all(_same_sample(cached[i], direct[i]) for i in range(3))


# ---------------------------------------------------------------------------------------------------------
# Shares mixed in (`--data_painted`, `--data_free_styles`, `--data_large`; which samples: test_samples.py)


def test_a_mixed_dataset_keeps_its_plain_samples_and_mixes_the_others() -> None:
    from models.data import sample_painted_layout

    plain = ds.ProceduralLandscapes(32, 12, seed=4)
    for field in ("painted", "free", "large"):
        mix = Mix(**{field: 0.5})
        mixed = ds.ProceduralLandscapes(32, 12, seed=4, mix=mix)
        kinds = [getattr(samples, f"is_{field}")(4, i, mix) for i in range(12)]
        assert any(kinds) and not all(kinds)
        for i, kind in enumerate(kinds):
            assert _same_sample(mixed[i], plain[i]) != kind
            assert mixed[i]["label"].shape == (32, 32)
            if kind and field == "painted":  # the painted layout of the sample's own generator, same family
                label, _ = sample_painted_layout(np.random.default_rng([4, i]), 32)
                assert np.array_equal(mixed[i]["label"].numpy(), label)
                assert mixed[i]["style"] == i % len(FAMILIES)
            if field == "free":  # the same layout either way; a free style has no family index
                assert torch.equal(mixed[i]["label"], plain[i]["label"])
                assert mixed[i]["style"] == (-1 if kind else i % len(FAMILIES))


def test_the_cache_folder_names_the_mix_and_old_names_keep_their_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fingerprint = ds._renderer_fingerprint()
    for mix, middle in (
        (Mix(), ""),
        (Mix(painted=0.3), "-painted0.3"),
        (Mix(free=0.25), "-free0.25"),
        (Mix(painted=0.3, free=0.25), "-painted0.3-free0.25"),
        (Mix(large=0.3), "-large0.3"),
        (Mix(0.5, 0.25, 0.3), "-painted0.5-free0.25-large0.3"),
    ):
        assert (
            ds.cache_folder(tmp_path, 32, 0, mix)
            == tmp_path / f"procedural-32x32-seed0{middle}-{fingerprint}"
        )
    monkeypatch.setattr(ds, "SHARD_SIZE", 2)
    for mix in (Mix(painted=0.5), Mix(free=0.5), Mix(large=0.5)):
        cached = ds.ProceduralLandscapes(32, 3, seed=4, cache_dir=tmp_path, mix=mix)
        assert cached.folder == ds.cache_folder(tmp_path, 32, 4, mix)
        direct = ds.ProceduralLandscapes(32, 3, seed=4, mix=mix)
        assert all(_same_sample(cached[i], direct[i]) for i in range(3))  # free styles' -1 survives too
    plain = ds.ProceduralLandscapes(32, 3, seed=4, cache_dir=tmp_path)  # its own folder, not a mixed one's
    assert plain.folder == ds.cache_folder(tmp_path, 32, 4)
    assert all(_same_sample(plain[i], ds.ProceduralLandscapes(32, 3, seed=4)[i]) for i in range(3))


@pytest.mark.parametrize(
    ("key", "field", "what"),
    [
        ("data_painted", "painted", "painted layouts"),
        ("data_free_styles", "free", "free styles"),
        ("data_large", "large", "large crops"),
    ],
)
def test_the_trainers_share_keys_reach_the_dataset(tmp_path: Path, key: str, field: str, what: str) -> None:
    from models.training.config import BASE_CONFIG, ConfigError
    from models.training.data import build_dataset

    assert BASE_CONFIG[key] == 0.0  # existing runs read what they read before
    config = {**BASE_CONFIG, "arch": "spade", "data_length": 4, "size": 32, key: 0.25}
    dataset, _ = build_dataset(config)
    assert isinstance(dataset, ds.ProceduralLandscapes) and dataset.mix == Mix(**{field: 0.25})
    old_run = {k: v for k, v in config.items() if k != key}  # a config from before the key
    dataset, _ = build_dataset(old_run)
    assert isinstance(dataset, ds.ProceduralLandscapes) and dataset.mix == Mix()
    with pytest.raises(ConfigError, match=f"{what} mix into procedural data only"):
        build_dataset(config | {"data": f"folder:{tmp_path}"})
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match=r"share must lie in \[0, 1\]"):
            build_dataset(config | {key: bad})


def _write(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def _stripes(h: int, w: int, ids: list[int]) -> np.ndarray:
    """H×W label map with len(ids) vertical stripes of equal width."""
    return np.array(ids, np.uint8)[np.arange(w) * len(ids) // w][None, :].repeat(h, axis=0)


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_folder_loader_colour_labels_resize_and_crop(tmp_path: Path) -> None:
    label = _stripes(32, 48, [0, 12, 8, 6])  # sky, water, tree, grass stripes of 12 columns
    _write(tmp_path / "images" / "a.jpg", _photo(32, 48))
    _write(tmp_path / "labels" / "a.png", LANDSCAPE.ids_to_colors(label))  # colour-coded (RGB)
    data, label_set = ds.make_dataset(f"folder:{tmp_path}", 16)
    assert label_set is LANDSCAPE and len(data) == 1
    sample = data[0]
    assert sample["image"].shape == (3, 16, 16) and sample["style"] == -1
    # 32×48 → scaled ×0.5 to 16×24 → centre crop starts at column 4; output column x samples column 9 + 2x.
    expected = label[0, 9 + 2 * np.arange(16)]
    assert sample["label"][0].tolist() == expected.tolist()
    assert (sample["label"] == sample["label"][0]).all()
    # No instances/ folder: instances are the connected components of thing classes (the tree stripe).
    tree = sample["label"] == LANDSCAPE["tree"].id
    assert set(sample["instance"][tree].tolist()) == {1} and int(sample["instance"][~tree].max()) == 0


def test_folder_loader_augment_flips_and_crops_consistently(tmp_path: Path) -> None:
    label = _stripes(16, 32, [0, 6, 12, 8])
    _write(tmp_path / "images" / "a.png", LANDSCAPE.ids_to_colors(label))  # image = label colours
    _write(tmp_path / "labels" / "a.png", label, "L")
    data, _ = ds.make_dataset(f"folder:{tmp_path}", 16, augment=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(12):
        sample = data[0]
        colors = ((sample["image"] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        assert np.array_equal(
            colors, LANDSCAPE.ids_to_colors(sample["label"].numpy())
        )  # image and label agree
        seen.add(tuple(sample["label"][0].tolist()))
    assert len(seen) > 2  # different crops and flips


def test_folder_loader_errors(tmp_path: Path) -> None:
    """Each bad pair is a BadSampleError naming its file, which the trainer reports as one line."""
    _write(tmp_path / "images" / "a.png", _photo(8, 8))
    with pytest.raises(FileNotFoundError, match=r"labels/a\.png for image"):
        ds.make_dataset(f"folder:{tmp_path}", 8)
    bad = LANDSCAPE.ids_to_colors(np.zeros((8, 8), np.uint8))
    bad[5, 2] = (1, 2, 3)
    _write(tmp_path / "labels" / "a.png", bad)
    data, _ = ds.make_dataset(f"folder:{tmp_path}", 8)
    with pytest.raises(ds.BadSampleError, match=r"a\.png: unknown label colour \(1, 2, 3\) at \(x=2, y=5\)"):
        data[0]
    _write(tmp_path / "labels" / "a.png", np.full((8, 8), 14, np.uint8), "L")
    with pytest.raises(ds.BadSampleError, match=r"id 14 at \(x=0, y=0\) is not a landscape label"):
        data[0]
    _write(tmp_path / "labels" / "a.png", np.zeros((8, 9), np.uint8), "L")
    with pytest.raises(ds.BadSampleError, match="is 9×8 but"):
        data[0]
    # Transparent pixels hide an arbitrary colour, in a label map or a picture.
    rgba = np.dstack([LANDSCAPE.ids_to_colors(np.zeros((8, 8), np.uint8)), np.full((8, 8), 255, np.uint8)])
    rgba[0, 0, 3] = 0
    _write(tmp_path / "labels" / "a.png", rgba)
    with pytest.raises(ds.BadSampleError, match=r"labels/a\.png: has transparent pixels"):
        data[0]
    _write(tmp_path / "labels" / "a.png", np.zeros((8, 8), np.uint8), "L")
    _write(tmp_path / "images" / "a.png", rgba)
    with pytest.raises(ds.BadSampleError, match=r"images/a\.png: has transparent pixels"):
        data[0]
    (tmp_path / "images" / "a.png").write_bytes(b"not a picture")
    with pytest.raises(ds.BadSampleError, match=r"images/a\.png: cannot identify image file"):
        data[0]


def test_check_reads_every_header_and_decodes_a_few(tmp_path: Path) -> None:
    """check() finds a size or mode mismatch in any pair from headers alone, and a bad colour in a decoded one."""
    label = LANDSCAPE.ids_to_colors(_stripes(8, 8, [0, 6]))
    for i in range(6):
        _write(tmp_path / "images" / f"{i}.png", _photo(8, 8, i))
        _write(tmp_path / "labels" / f"{i}.png", label)
    data, _ = ds.make_dataset(f"folder:{tmp_path}", 8)
    data.check()
    _write(tmp_path / "labels" / "4.png", LANDSCAPE.ids_to_colors(_stripes(8, 9, [0, 6])))
    with pytest.raises(ds.BadSampleError, match=r"labels/4\.png is 9×8 but .*images/4\.png is 8×8"):
        data.check(decoded=1)  # pair 4 is never decoded: its header tells
    _write(tmp_path / "labels" / "4.png", np.zeros((8, 8, 2), np.uint8), "LA")
    with pytest.raises(
        ds.BadSampleError, match=r"labels/4\.png: label map mode 'LA'; want L, P, I;16, I, RGB"
    ):
        data.check(decoded=1)
    _write(tmp_path / "labels" / "4.png", label)
    blurred = label.copy()
    blurred[3, 3] = (118, 181, 203)  # a resize that blends colours
    _write(tmp_path / "labels" / "3.png", blurred)
    data.check(decoded=1)  # headers cannot tell, pair 3 is not decoded
    with pytest.raises(
        ds.BadSampleError, match=r"labels/3\.png: unknown label colour .* not nearest-neighbour"
    ):
        data.check(decoded=2)  # pairs 0 and 3


def test_meta_json_errors_name_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "images" / "a.png", _photo(8, 8))
    _write(tmp_path / "labels" / "a.png", np.zeros((8, 8), np.uint8), "L")
    meta = tmp_path / "meta.json"
    for text, error in [
        (
            '{"label_set": "landscapes"}',
            r"meta\.json: unknown label set 'landscapes'; known: landscape, ade20k",
        ),
        ('{"label_set":\n', r"meta\.json: not valid JSON \(Expecting value: line 2 column 1"),
        ('["landscape"]', r"meta\.json: expected a JSON object"),
        ('{"styles": ["dusk"]}', r"meta\.json: styles must map image stems to family names"),
    ]:
        meta.write_text(text)
        with pytest.raises(ValueError, match=error):
            ds.make_dataset(f"folder:{tmp_path}", 8)
    meta.write_text('{"label_set": "COCO-Stuff", "styles": {"a": "dusk"}}')
    data, label_set = ds.make_dataset(f"folder:{tmp_path}", 8)
    assert label_set is COCO_STUFF and data[0]["style"] == FAMILIES.index("dusk")


def test_ade20k_loader(tmp_path: Path) -> None:
    root = tmp_path / "ADEChallengeData2016"
    label = _stripes(32, 32, [0, ADE20K["sky"].id, ADE20K["car"].id, 150])
    for split in ("training", "validation"):
        _write(root / "images" / split / f"ADE_{split}_00000001.jpg", _photo(32, 32))
        _write(root / "annotations" / split / f"ADE_{split}_00000001.png", label, "L")
    data, label_set = ds.make_dataset(f"ade20k:{tmp_path}", 16, split="val")
    assert label_set is ADE20K and len(data) == 1
    sample = data[0]
    assert sample["label"][0].tolist() == label[0, 1::2].tolist()  # 32 → 16: column x samples 2x + 1
    assert ADE20K["car"].is_thing and set(
        sample["instance"][sample["label"] == ADE20K["car"].id].tolist()
    ) == {1}
    with pytest.raises(ValueError, match="ADE20K has no split 'test'"):
        ds.make_dataset(f"ade20k:{root}", 16, split="test")


def test_cocostuff_loader_maps_255_to_unlabeled(tmp_path: Path) -> None:
    label = _stripes(24, 24, [0, 123, 255])  # person, grass, unlabeled
    _write(tmp_path / "images" / "train2017" / "000000000009.jpg", _photo(24, 24))
    _write(tmp_path / "stuffthingmaps_trainval2017" / "train2017" / "000000000009.png", label, "L")
    data, label_set = ds.make_dataset(f"cocostuff:{tmp_path}", 24)
    assert label_set is COCO_STUFF
    row = data[0]["label"][0].tolist()
    assert row == [0] * 8 + [123] * 8 + [182] * 8
    assert COCO_STUFF[row[-1]].name == "unlabeled" and COCO_STUFF[123].name == "grass"


def test_cityscapes_loader_renumbers_instances(tmp_path: Path) -> None:
    car, person, road = CITYSCAPES["car"].id, CITYSCAPES["person"].id, CITYSCAPES["road"].id
    label = _stripes(16, 32, [road, car, car, person])
    raw = np.where(label == car, car * 1000, label.astype(np.int32))
    raw[:, 16:24] = car * 1000 + 7  # second car
    raw[:, 24:] = person  # crowd: person without instance ids
    stem = "aachen_000000_000019"
    _write(tmp_path / "leftImg8bit" / "train" / "aachen" / f"{stem}_leftImg8bit.png", _photo(16, 32))
    gt = tmp_path / "gtFine" / "train" / "aachen"
    _write(gt / f"{stem}_gtFine_labelIds.png", label, "L")
    _write(gt / f"{stem}_gtFine_instanceIds.png", raw.astype(np.uint16))
    data, label_set = ds.make_dataset(f"cityscapes:{tmp_path}", (16, 32))
    assert label_set is CITYSCAPES
    sample = data[0]
    assert sample["label"].shape == (16, 32) and sample["label"][0].tolist() == label[0].tolist()
    assert sample["instance"][0].tolist() == [0] * 8 + [1] * 8 + [2] * 8 + [0] * 8


def test_make_dataset_specs(tmp_path: Path) -> None:
    train, label_set = ds.make_dataset("procedural", 32, length=2, seed=1)
    val, _ = ds.make_dataset("procedural", 32, length=2, seed=1, split="val")
    assert label_set is LANDSCAPE and len(train) == 2
    assert not torch.equal(train[0]["image"], val[0]["image"])
    with pytest.raises(ValueError, match="unknown data spec 'pascal:x'.*cityscapes:PATH"):
        ds.make_dataset("pascal:x", 32)
    with pytest.raises(ValueError, match="unknown data spec 'folder'"):
        ds.make_dataset("folder", 32)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ds.make_dataset(f"ade20k:{tmp_path / 'missing'}", 32)
    with pytest.raises(FileNotFoundError, match="no images found"):
        (tmp_path / "images").mkdir()
        ds.make_dataset(f"folder:{tmp_path}", 32)
