"""`collage eval` end to end on a tiny exported model with a tiny (untrained) judge, and its runtime flags."""

import json
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace

import pytest

from common.runtime import RuntimeChoice, resolve_precision, resolve_runtime
from models.labels import LANDSCAPE

needs_openvino = pytest.mark.skipif(find_spec("openvino") is None, reason="OpenVINO is not installed")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from models.archs.spade import build_encoder, build_generator, export_spec, get_preset
    from models.export import export_modules

    torch.manual_seed(0)
    config = get_preset("spade-tiny") | {"size": 64}
    out = tmp_path_factory.mktemp("weights") / "tiny"
    export_modules(
        export_spec(build_generator(config, len(LANDSCAPE)), build_encoder(config), LANDSCAPE),
        out_dir=out,
        name="tiny",
        image_size=(64, 64),
        training={"config": {"data_seed": 0}},
    )
    return out


SMALL = ["--n", "4", "--size", "64", "--workers", "1", "--mean-samples", "2", "--centroid-layouts", "2"]


@pytest.mark.slow  # exporting the tiny model with the dynamo exporter takes ~15–25 s on 2 cores
def test_collage_eval_end_to_end(tiny_model: Path, tiny_judge: Path, tmp_path: Path, capsys) -> None:
    from common.checksums import sha256_file
    from models.eval.cli import main

    before = json.loads((tiny_model / "model.json").read_text())
    out = tmp_path / "eval.json"
    argv = [str(tiny_model), "--segmenter", str(tiny_judge), *SMALL, "--style-refs", "1", "--out", str(out)]
    assert main([*argv, "--compare", str(tiny_model)]) == 0
    report = json.loads(out.read_text())
    assert set(report) >= {"model", "compare", "references", "acceptance", "info", "flat_class_means"}
    model = report["model"]
    assert model["z_modes"] == ["encoded", "random"]
    for mode in model["z_modes"]:
        assert 0.0 <= model[mode]["miou"] <= 1.0 and 0.0 <= model[mode]["pixel_accuracy"] <= 1.0
        assert model[mode]["fd_seg"] >= 0.0
        assert set(model[mode]["crop_fd_seg"]) == {"tree", "rock", "house"}
        assert set(model[mode]["texture"]["ratio"]) == {label.name for label in LANDSCAPE.labels}
    assert set(report["references"]) == {"reference", "flat"}
    assert model["style"]["families"] >= 6 and len(model["style"]["per_family"]) == model["style"]["families"]
    assert 0.0 <= model["style"]["accuracy"] <= 1.0 and model["latency_ms"] > 0
    # The compared folder is the same model on the same data: identical numbers, under a label of its own.
    assert report["compare"][0]["encoded"]["fd_seg"] == pytest.approx(model["encoded"]["fd_seg"])
    assert model["name"] != report["compare"][0]["name"]
    assert report["compare"][0]["latency_ms"] > 0  # measured taking turns with the model's
    assert list(report["fd_seg_compare"]) == [report["compare"][0]["name"]]
    assert report["info"]["n"] == 4
    assert report["info"]["segmenter"]["sha256"] == sha256_file(
        tiny_judge
    )  # which judge, once it is retrained
    # The latency (and, with bf16, the scores) are only meaningful beside the CPU and runtime that measured them:
    # by default what the server would choose here.
    runtime = resolve_runtime("auto")
    ran = report["info"]["runtime"]
    assert report["info"]["cpu"] and ran == {
        "runtime": runtime,
        "device": "CPU" if runtime == "openvino" else "CPUExecutionProvider",
        "precision": resolve_precision(runtime, "auto"),
        "version": import_module(runtime).__version__,
        "requested": {"runtime": "auto", "precision": "auto"},
    }
    assert all(isinstance(v, bool) for v in report["acceptance"].values())

    after = json.loads((tiny_model / "model.json").read_text())
    metrics = after["metrics"]
    assert metrics["miou"] == pytest.approx(model["encoded"]["miou"], abs=1e-4)
    assert metrics["fd_seg_flat"] == pytest.approx(report["references"]["flat"]["fd_seg"], abs=1e-4)
    assert metrics["eval"]["n"] == 4 and metrics["eval_z"] == "encoded"
    # No class generators: no CollageGAN stage, and no stale stage figures in model.json.
    assert report["collage"] is None and metrics["collage"] is None
    assert report["info"]["collage"] == "not evaluated: the model has no class generators"
    assert {k: v for k, v in after.items() if k != "metrics"} == {
        k: v for k, v in before.items() if k != "metrics"
    }
    assert sha256_file(tiny_model / "generator.onnx") == after["files"]["generator"]["sha256"]
    out = capsys.readouterr().out
    assert "FD-seg" in out and f"latency on {report['info']['cpu']}" in out
    assert f"{runtime} {ran['version']} on {ran['device']} in {ran['precision']}" in out
    # A size the generator cannot run at is refused before any work.
    assert main([str(tiny_model), "--segmenter", str(tiny_judge), "--n", "4", "--size", "60"]) == 2
    assert "multiple of 8" in capsys.readouterr().err


@pytest.mark.slow  # the tiny model's export (shared with the test above) and two small evaluations
@needs_openvino
def test_onnxruntime_and_openvino_f32_score_alike(tiny_model: Path, tmp_path: Path, capsys) -> None:
    """The same folder on the same layouts scores the same on either runtime in f32: the runtime changes
    pixels by ~1e-5 at most, which rounding to uint8 and the judge's argmax almost never see. Judged by the
    committed judge: the untrained tiny one labels every pixel alike, whatever the image."""
    from models.eval.cli import JUDGE, main

    cache = ["--cache-dir", str(tmp_path / "cache")]  # the second run reuses the first one's renders
    reports = {}
    for runtime in ("onnxruntime", "openvino"):
        out = tmp_path / f"{runtime}.json"
        argv = [str(tiny_model), "--segmenter", str(JUDGE), *SMALL, "--style-refs", "1", *cache]
        assert main([*argv, "--runtime", runtime, "--precision", "f32", "--no-merge", "--out", str(out)]) == 0
        reports[runtime] = json.loads(out.read_text())
        assert reports[runtime]["info"]["runtime"]["runtime"] == runtime
        assert reports[runtime]["info"]["runtime"]["precision"] == "f32"
    capsys.readouterr()
    ort, ov = reports["onnxruntime"]["model"], reports["openvino"]["model"]
    for mode in ("encoded", "random"):
        assert ov[mode]["miou"] == pytest.approx(ort[mode]["miou"], abs=1e-3)
        assert ov[mode]["pixel_accuracy"] == pytest.approx(ort[mode]["pixel_accuracy"], abs=1e-3)


@pytest.mark.slow  # the tiny model's export (tests/conftest.py, ~15–25 s) and two small evaluations
def test_collage_eval_reports_procedural_and_painted_layouts_apart(
    tiny_weights: Path, tiny_judge: Path, tmp_path: Path, capsys
) -> None:
    import shutil

    from models.eval.cli import main

    model = tmp_path / "model"  # a copy: the evaluation writes into model.json
    shutil.copytree(tiny_weights / "tiny-spade", model)
    cache = tmp_path / "cache"
    small = ["--n", "3", "--size", "32", "--workers", "1", "--mean-samples", "2", "--centroid-layouts", "2"]
    argv = [
        str(model),
        "--segmenter",
        str(tiny_judge),
        *small,
        "--style-refs",
        "1",
        "--cache-dir",
        str(cache),
    ]
    out = tmp_path / "both.json"
    assert main([*argv, "--layouts", "both", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["info"]["layouts"] == ["procedural", "painted"]
    painted = report["painted"]
    for section in (report, painted):  # procedural numbers at the top level, as before; painted in a section
        assert set(section) >= {"model", "compare", "references", "collage", "acceptance"}
        result = section["model"]
        assert result["z_modes"] == ["encoded", "random"]
        for mode in result["z_modes"]:
            assert 0.0 <= result[mode]["miou"] <= 1.0 and result[mode]["fd_seg"] >= 0.0
            assert set(result[mode]["crop_fd_seg"]) == {"tree", "rock", "house"}
            assert set(result[mode]["texture"]["ratio"]) == {label.name for label in LANDSCAPE.labels}
        assert result["style"]["families"] >= 6 and result["latency_ms"] > 0
        assert set(section["references"]) == {"reference", "flat"}
        assert all(isinstance(v, bool) for v in section["acceptance"].values())
    assert painted["model"]["latency_ms"] == report["model"]["latency_ms"]  # measured once
    assert painted["references"]["flat"]["fd_seg"] != report["references"]["flat"]["fd_seg"]  # other sets
    # The painted sets come from seeds of their own, cached like the procedural ones (every sample painted).
    seeds = report["info"]["seeds"]
    folders = [p.name for p in cache.iterdir()]
    for name in ("painted_eval", "painted_heldout"):
        assert sum(f"-seed{seeds[name]}-painted1.0-" in f for f in folders) == 1
    for name in ("eval", "heldout"):
        assert sum(f"-seed{seeds[name]}-" in f and "painted" not in f for f in folders) == 1
    metrics = json.loads((model / "model.json").read_text())["metrics"]
    assert metrics["miou"] == pytest.approx(report["model"]["encoded"]["miou"], abs=1e-4)
    assert metrics["painted"]["miou"] == pytest.approx(painted["model"]["encoded"]["miou"], abs=1e-4)
    assert metrics["painted"]["eval"]["layouts"] == ["procedural", "painted"]
    printed = capsys.readouterr().out
    assert (
        "== procedural layouts (3 held-out) ==" in printed and "== painted layouts (3 held-out) ==" in printed
    )
    # Each block its own checks (the out-of-family style check only in the procedural one).
    checks = len(report["acceptance"]) + len(painted["acceptance"])
    assert printed.count("PASS  ") + printed.count("FAIL  ") == checks
    assert set(report["acceptance"]) - set(painted["acceptance"]) == {"free_style_delta_e<=0.5*best_preset"}

    # Painted layouts alone: no procedural numbers anywhere, the same painted ones (read from the cache).
    alone = tmp_path / "painted.json"
    assert main([*argv, "--layouts", "painted", "--no-merge", "--out", str(alone)]) == 0
    only = json.loads(alone.read_text())
    assert "model" not in only and only["info"]["layouts"] == ["painted"]
    assert only["painted"]["model"]["encoded"]["miou"] == pytest.approx(painted["model"]["encoded"]["miou"])
    assert "== painted layouts" in capsys.readouterr().out


def test_the_runtime_flags_reach_every_model(model_folder: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """--runtime / --precision become the RuntimeChoice the main and the compared folders are opened with."""
    import models.eval.cli as cli

    opened: list[RuntimeChoice] = []
    real = cli.ExportedModel

    def recording(folder: Path, choice: RuntimeChoice) -> object:
        opened.append(choice)
        return real(folder, choice)

    monkeypatch.setattr(cli, "ExportedModel", recording)
    missing = str(tmp_path / "no-judge.pt")  # stops the run right after the models are opened
    argv = [str(model_folder), "--compare", str(model_folder), "--segmenter", missing]
    assert cli.main([*argv, "--runtime", "onnxruntime", "--precision", "f32"]) == 2
    assert opened == [RuntimeChoice("onnxruntime", "f32", threads=2)] * 2
    opened.clear()
    assert cli.main(argv) == 2  # the server's default
    assert opened == [RuntimeChoice("auto", "auto", threads=2)] * 2
    capsys.readouterr()


def test_an_impossible_runtime_choice_is_refused_in_one_line(model_folder: Path, capsys) -> None:
    from models.eval.cli import main

    assert main([str(model_folder), "--runtime", "onnxruntime", "--precision", "bf16"]) == 2
    assert capsys.readouterr().err == (
        "collage eval: precision bf16 needs the OpenVINO runtime; onnxruntime runs f32\n"
    )
    with pytest.raises(SystemExit) as exit_info:  # argparse's own refusal of a name it does not know
        main([str(model_folder), "--runtime", "tensorflow"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tensorflow'" in capsys.readouterr().err


def test_distinct_names_add_the_folder_only_where_names_clash() -> None:
    from models.eval.cli import distinct_names

    def model(name: str, folder: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, folder=Path(folder))

    shipped, run, other = model("spade", "weights/spade"), model("spade", "runs/x"), model("oasis", "w/oasis")
    assert distinct_names([shipped, other]) == ["spade", "oasis"]
    assert distinct_names([run, shipped, other]) == ["spade (runs/x)", "spade (weights/spade)", "oasis"]
    assert distinct_names([shipped, shipped]) == ["spade (weights/spade) #1", "spade (weights/spade) #2"]


def test_distinct_names_show_folders_outside_the_working_directory_by_name(
    tmp_path: Path, monkeypatch
) -> None:
    from models.eval.cli import distinct_names

    monkeypatch.chdir(tmp_path)
    outside = SimpleNamespace(name="spade", folder=tmp_path.parent / "elsewhere" / "served4")
    assert distinct_names([SimpleNamespace(name="spade", folder=Path("weights/spade")), outside]) == [
        "spade (weights/spade)",
        "spade (served4)",
    ]


def test_collage_eval_refuses_bad_input(tiny_judge: Path, tmp_path: Path, capsys) -> None:
    from models.eval.cli import main

    assert main([str(tmp_path), "--segmenter", str(tiny_judge)]) == 2
    assert "no model.json" in capsys.readouterr().err
    not_a_checkpoint = tmp_path / "notes.txt"
    not_a_checkpoint.write_text("hello")
    assert main(["--segmenter", str(not_a_checkpoint), *SMALL]) == 2
    assert "notes.txt is not a readable collage checkpoint" in capsys.readouterr().err
    assert main(["--segmenter", str(tiny_judge), *SMALL, "--style-refs", "0"]) == 2
    assert "--style-refs must be ≥ 1" in capsys.readouterr().err


def test_collage_eval_without_a_model_scores_only_the_judge(tiny_judge: Path, tmp_path: Path, capsys) -> None:
    from models.eval.cli import main

    out = tmp_path / "judge.json"
    assert main(["--segmenter", str(tiny_judge), *SMALL, "--style-refs", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["model"] is None and report["compare"] == []
    assert set(report["acceptance"]) == {"judge_reference_miou>=0.75", "flat_miou<=0.8*reference"}
    assert set(report["references"]["reference"]["iou"]) == {label.name for label in LANDSCAPE.labels}
    assert "IoU sky" in capsys.readouterr().out
    # Without --size the judge is scored at its own training size.
    small = [a for a in SMALL if a not in ("--size", "64")]
    assert main(["--segmenter", str(tiny_judge), *small, "--style-refs", "1", "--out", str(out)]) == 0
    info = json.loads(out.read_text())["info"]
    assert info["size"] == info["segmenter"]["size"] == 32  # segmenter-tiny's size
