"""Export of `collage-class`: `collage export` of a run writes a class pack (encoder and decoder graphs +
class_pack.json) whose graphs take and return what docs/contracts.md says, match torch, clip the image to
[-1, 1], and — the numpy feature crop between the two graphs equals the torch crop — compose to the torch
ClassGenerator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch.utils.data import default_collate

from common.manifest import PACK_NAME, ClassPack
from models.archs.collage_class import PERCEPTUAL, build_generator, export_spec, get_preset
from models.data.crops import ProceduralCrops
from models.export import PARITY_TOL, main
from models.labels import LANDSCAPE, get_label_set
from models.nets.collage import ClassGenerator
from models.nets.stylegan import NoiseInjection

S, T, P, Z, NOISE = 32, 16, 16, 8, 3  # collage-class-tiny: context, box, φ′ side, z_dim, noise channels


def run_config() -> dict[str, Any]:
    """What `collage train --arch collage-class --preset collage-class-tiny --thing house` resolves (the keys
    the exporter reads)."""
    run = {"arch": "collage-class", "preset": "collage-class-tiny", "data": "procedural", "seed": 0}
    return run | get_preset("collage-class-tiny") | {"thing": "house", "label_set": "landscape"}


def live_noise(generator: ClassGenerator) -> ClassGenerator:
    """Noise strengths (0 at init) set to 0.1, so the noise input matters in the graphs compared."""
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, NoiseInjection):
                module.strength.fill_(0.1)
    return generator


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A collage-class-tiny checkpoint in the trainer's format (G and a different G_ema), exported with the
    CLI to a class pack folder."""
    tmp = tmp_path_factory.mktemp("pack")
    config = run_config()
    torch.manual_seed(0)
    generator = build_generator(config, len(LANDSCAPE))
    generator_ema = live_noise(build_generator(config, len(LANDSCAPE)))  # the exporter must pick G_ema
    run = tmp / "00001-collage-class-tiny"
    run.mkdir()
    checkpoint = {
        "format_version": 1,
        "config": config,
        "step": 3,
        "images_seen": 12,
        "wall_time": 1.5,
        "G": generator.state_dict(),
        "G_ema": generator_ema.state_dict(),
        "label_set": "landscape",
        "perceptual": PERCEPTUAL,
    }
    torch.save(checkpoint, run / "checkpoint-latest.pt")
    out = tmp / "packs" / "house"
    assert main([str(run), "--out", str(out)]) == 0
    pack = json.loads((out / PACK_NAME).read_text())
    return {"out": out, "pack": pack, "run": run, "G": generator_ema.eval()}


def sessions(out: Path) -> tuple[ort.InferenceSession, ort.InferenceSession]:
    return tuple(  # type: ignore[return-value]
        ort.InferenceSession(str(out / f"house_{part}.onnx"), providers=["CPUExecutionProvider"])
        for part in ("encoder", "decoder")
    )


def test_pack_validates_and_records_its_export(exported: dict[str, Any]) -> None:
    out, pack = exported["out"], exported["pack"]
    ClassPack.model_validate(pack)
    assert pack["label_set"] == "landscape" and len(pack["class_generators"]) == 1
    entry = pack["class_generators"][0]
    assert {k: v for k, v in entry.items() if k not in ("encoder", "decoder", "training", "metrics")} == {
        "thing": "house",
        "class_id": LANDSCAPE["house"].id,
        "label_set": "landscape",
        "context_size": S,
        "target_size": T,
        "phi_size": P,
        "z_dim": Z,
        "noise_channels": NOISE,
        "removal": "blur",
        "min_side": 12,
    }
    assert sorted(p.name for p in out.iterdir()) == [PACK_NAME, "house_decoder.onnx", "house_encoder.onnx"]
    for part in ("encoder", "decoder"):
        ref = entry[part]
        data = (out / ref["path"]).read_bytes()
        assert ref == {
            "path": f"house_{part}.onnx",
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "storage": "int16",
        }
    training = entry["training"]
    assert (training["step"], training["images_seen"], training["wall_time_s"]) == (3, 12, 1.5)
    assert training["run"] == "00001-collage-class-tiny" and training["perceptual"] == PERCEPTUAL
    assert training["config"]["generator_weights"] == "G_ema" and training["config"]["thing"] == "house"
    report = training["export"]
    parity = report["parity_max_abs_diff"]
    print(f"parity encoder {parity['encoder']:.2e} decoder {parity['decoder']:.2e}")  # noqa: T201
    assert parity["encoder"] <= PARITY_TOL and parity["decoder"] <= PARITY_TOL
    assert report["int16_at_rest"]["encoder"]["max_abs_diff"] <= 2e-3
    generator = exported["G"]
    assert report["params"] == {
        "encoder": sum(p.numel() for p in generator.encoder.parameters()),
        "decoder": sum(p.numel() for p in generator.decoder.parameters()),
    }
    assert report["gmacs"]["encoder"] > 0 and report["gmacs"]["decoder"] > 0


def test_graphs_take_and_return_the_contracts_names_and_shapes(exported: dict[str, Any]) -> None:
    encoder, decoder = sessions(exported["out"])
    io = lambda args: [(a.name, a.type, a.shape) for a in args]  # noqa: E731
    assert io(encoder.get_inputs()) == [
        ("context", "tensor(float)", ["batch", 3, S, S]),
        ("labels", "tensor(int64)", ["batch", 1, S, S]),
        ("mask", "tensor(float)", ["batch", 1, S, S]),
        ("valid", "tensor(float)", ["batch", 1, S, S]),
    ]
    assert io(encoder.get_outputs()) == [
        ("mu", "tensor(float)", ["batch", Z]),
        ("logvar", "tensor(float)", ["batch", Z]),
        ("phi_prime", "tensor(float)", ["batch", 16, P, P]),
    ]
    assert io(decoder.get_inputs()) == [
        ("phi", "tensor(float)", ["batch", 16, P // 2, P // 2]),
        ("z", "tensor(float)", ["batch", Z]),
        ("noise", "tensor(float)", ["batch", NOISE, T, T]),
    ]
    assert io(decoder.get_outputs()) == [("image", "tensor(float)", ["batch", 3, T, T])]


def test_the_numpy_feature_crop_equals_the_torch_crop(exported: dict[str, Any]) -> None:
    """Real house crops through the two ONNX graphs, φ cut from φ′ by the server's numpy slice, equal the torch
    ClassGenerator's forward (its own crop) with z = μ and with z = μ + σ·ε, the same noise."""
    crops = ProceduralCrops("house", length=3, seed=0, size=128, context_size=S, target_size=T)
    batch = default_collate([crops[i] for i in range(3)])
    feed = {
        "context": batch["context"].numpy(),
        "labels": batch["labels"][:, None].numpy(),
        "mask": batch["mask"].numpy(),
        "valid": batch["valid"].numpy(),
    }
    rng = np.random.default_rng(4)
    noise = rng.standard_normal((3, NOISE, T, T)).astype(np.float32)
    eps = rng.standard_normal((3, Z)).astype(np.float32)
    encoder, decoder = sessions(exported["out"])
    generator = exported["G"]

    mu, logvar, phi_prime = encoder.run(["mu", "logvar", "phi_prime"], feed)
    phi = phi_prime[:, :, P // 4 : 3 * P // 4, P // 4 : 3 * P // 4]  # the server's crop
    torch_in = [torch.from_numpy(v) for v in feed.values()]
    with torch.no_grad():
        expected_enc = generator.encoder(*torch_in)
        expected_mu = generator(*torch_in, torch.from_numpy(noise))[0].clamp(-1, 1).numpy()
        expected_eps = generator(*torch_in, torch.from_numpy(noise), torch.from_numpy(eps))[0].clamp(-1, 1)
    enc_diff = max(
        float(np.abs(a - b.numpy()).max()) for a, b in zip((mu, logvar, phi_prime), expected_enc, strict=True)
    )
    assert enc_diff <= PARITY_TOL

    (image_mu,) = decoder.run(["image"], {"phi": phi, "z": mu, "noise": noise})
    z = (mu + np.exp(0.5 * logvar) * eps).astype(np.float32)
    (image_eps,) = decoder.run(["image"], {"phi": np.ascontiguousarray(phi), "z": z, "noise": noise})
    diffs = float(np.abs(image_mu - expected_mu).max()), float(np.abs(image_eps - expected_eps.numpy()).max())
    print(f"encoder {enc_diff:.2e}; composed z=mu {diffs[0]:.2e}, z=mu+sigma*eps {diffs[1]:.2e}")  # noqa: T201
    assert image_mu.shape == (3, 3, T, T) and max(diffs) <= PARITY_TOL
    assert np.abs(image_mu - image_eps).max() > 1e-2  # z matters, so the comparison says something
    (other_noise,) = decoder.run(
        ["image"], {"phi": phi, "z": mu, "noise": rng.standard_normal(noise.shape, dtype=np.float32)}
    )
    assert np.abs(image_mu - other_noise).max() > 1e-2  # and so does the noise


def test_decoder_output_is_clipped(exported: dict[str, Any]) -> None:
    """Features far out of range saturate the image: the graph clips it to [-1, 1], torch's decoder does not."""
    _, decoder = sessions(exported["out"])
    rng = np.random.default_rng(5)
    feed = {
        "phi": 50 * rng.standard_normal((2, 16, P // 2, P // 2)).astype(np.float32),
        "z": 50 * rng.standard_normal((2, Z)).astype(np.float32),
        "noise": rng.standard_normal((2, NOISE, T, T)).astype(np.float32),
    }
    (image,) = decoder.run(["image"], feed)
    with torch.no_grad():
        raw = exported["G"].decoder(*(torch.from_numpy(v) for v in feed.values())).numpy()
    assert np.abs(raw).max() > 1.5  # the unclipped decoder leaves the range here
    assert image.min() >= -1.0 and image.max() <= 1.0 and (np.abs(image) == 1.0).any()
    np.testing.assert_allclose(image, raw.clip(-1, 1), atol=PARITY_TOL * np.abs(raw).max())


def test_max_side_is_recorded_in_the_pack_and_checked_against_min_side(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(exported["run"]), "--out", str(tmp_path / "limited"), "--max-side", "64"]) == 0
    entry = ClassPack.model_validate_json((tmp_path / "limited" / PACK_NAME).read_text()).class_generators[0]
    assert (entry.min_side, entry.max_side) == (12, 64)
    default = ClassPack.model_validate(exported["pack"]).class_generators[0]
    assert default.max_side is None  # no limit unless asked
    assert main([str(exported["run"]), "--out", str(tmp_path / "inverted"), "--max-side", "11"]) == 2
    assert "--max-side 11: below the generator's min_side 12" in capsys.readouterr().err
    assert not (tmp_path / "inverted").exists()


def test_class_packs_refuse_a_size_and_other_labels(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(exported["run"]), "--out", str(tmp_path / "sized"), "--size", "64"]) == 2
    assert "--size 64: a class generator's graphs keep the sizes it trained at" in capsys.readouterr().err
    assert not (tmp_path / "sized").exists()
    with pytest.raises(ValueError, match="label_nc=14 but 'cityscapes'"):
        export_spec(exported["G"], get_label_set("cityscapes"), run_config())
    with pytest.raises(ValueError, match="'sky' is not a thing class"):
        export_spec(exported["G"], LANDSCAPE, run_config() | {"thing": "sky"})
