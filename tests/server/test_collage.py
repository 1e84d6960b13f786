"""The CollageGAN stage in the server, on `tiny-collage` (tiny-spade + untrained tree, rock and house class
generators): the registry loads class generators and refuses packs that do not fit, a `collage` request is
clamped to models that have them on every path, the paint socket composes and re-rolls one object, REST takes
per-instance seeds."""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from common.collage import Anchor, Planned, clipped_box, compose, plan, waves
from common.instances import instances_from_labels
from common.runtime import RuntimeChoice
from server.codec import parse_image_frame
from server.registry import LoadedModel, Registry

SKY, ROCK, GRASS, TREE, HOUSE = 0, 4, 6, 8, 13
SIZE = 128  # the tiny base renders any multiple of 8; at 128² the instances pass the packs' min_side of 12


def painted() -> np.ndarray:
    """128² landscape: a big tree, a house, a small tree and a rock (composited in that order), and a 4×4 tree
    too small for its generator."""
    ids = np.full((SIZE, SIZE), GRASS, np.uint8)
    ids[:40] = SKY
    ids[50:100, 8:40] = TREE  # 1600 px
    ids[60:90, 56:96] = HOUSE  # 1200 px
    ids[96:116, 100:114] = TREE  # 280 px
    ids[104:118, 40:54] = ROCK  # 196 px
    ids[10:14, 10:14] = TREE  # 16 px: skipped
    return ids


def planned(model: LoadedModel, ids: np.ndarray) -> list[Planned]:
    specs = {cid: g.spec for cid, g in model.class_generators.items()}
    return plan(ids, instances_from_labels(ids, model.thing_ids), specs)


def boxes_mask(items: list[Planned], shape: tuple[int, int]) -> np.ndarray:
    """True inside the square boxes (clipped to the picture) of `items`."""
    inside = np.zeros(shape, bool)
    for p in items:
        x0, y0, x1, y1 = clipped_box(p.square, *shape)
        inside[y0:y1, x0:x1] = True
    return inside


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.int16)


def configure(ws, **fields: Any) -> dict[str, Any]:  # noqa: ANN001
    ws.send_text(json.dumps({"type": "configure", **fields}))
    return ws.receive_json()  # type: ignore[no-any-return]


def frame(ws, label_frame, seq: int, ids: np.ndarray) -> np.ndarray:  # noqa: ANN001
    ws.send_bytes(label_frame(seq, ids))
    got, _, fmt, data = parse_image_frame(ws.receive_bytes())
    assert (got, fmt) == (seq, "png")
    return pixels(data)


@pytest.fixture
def weights(tiny_weights: Path, tiny_collage_weights: Path, tmp_path: Path) -> Path:
    """`tiny-spade` (no class generators) beside `tiny-collage`."""
    out = tmp_path / "weights"
    shutil.copytree(tiny_weights / "tiny-spade", out / "tiny-spade")
    shutil.copytree(tiny_collage_weights / "tiny-collage", out / "tiny-collage")
    return out


@pytest.fixture
def collage_client(make_client: Callable[..., TestClient], weights: Path) -> TestClient:
    return make_client(weights_dir=weights, default_model="tiny-collage")


def variant(weights: Path, name: str, edit: Callable[[dict[str, Any], Path], None]) -> None:
    """A copy of tiny-collage named `name`, its model.json edited by `edit(manifest, folder)`."""
    folder = weights / name
    shutil.copytree(weights / "tiny-collage", folder)
    manifest = json.loads((folder / "model.json").read_text())
    manifest["name"] = name
    edit(manifest, folder)
    (folder / "model.json").write_text(json.dumps(manifest))


def _generator(manifest: dict[str, Any], thing: str) -> dict[str, Any]:
    return next(cg for cg in manifest["class_generators"] if cg["thing"] == thing)


def test_the_registry_loads_class_generators_and_refuses_packs_that_do_not_fit(
    weights: Path, runtime_choice: RuntimeChoice
) -> None:
    def other_label_set(m: dict[str, Any], _: Path) -> None:
        _generator(m, "tree")["label_set"] = "ade20k"

    def stuff_class(m: dict[str, Any], _: Path) -> None:
        _generator(m, "tree")["class_id"] = GRASS

    def twice(m: dict[str, Any], _: Path) -> None:
        m["class_generators"].append(dict(_generator(m, "tree")))

    def bigger_context(m: dict[str, Any], _: Path) -> None:
        _generator(m, "rock").update(context_size=64, target_size=32)

    def swapped(m: dict[str, Any], _: Path) -> None:
        house = _generator(m, "house")
        house["encoder"] = dict(house["decoder"])

    def tampered(m: dict[str, Any], folder: Path) -> None:
        with (folder / _generator(m, "rock")["decoder"]["path"]).open("ab") as f:
            f.write(b"\0")

    for name, edit in [
        ("other-label-set", other_label_set),
        ("stuff-class", stuff_class),
        ("twice", twice),
        ("bigger-context", bigger_context),
        ("swapped", swapped),
        ("tampered", tampered),
    ]:
        variant(weights, name, edit)
    registry = Registry.load(weights, runtime_choice)
    assert sorted(registry.models) == ["tiny-collage", "tiny-spade"]
    failures = registry.failures
    assert failures["other-label-set"] == (
        "class generator 'tree' was trained on label set 'ade20k', the model's is 'landscape'"
    )
    assert failures["stuff-class"].startswith(
        "class generator 'tree' names class id 6, which is not the thing class 'tree' of the model's labels"
    )
    assert failures["twice"] == "class generator 'tree': two class generators for class id 8"
    assert (
        "class generator 'rock': encoder graph takes 32×32 contexts, model.json says 64×64"
        in (failures["bigger-context"])
    )
    assert failures["swapped"].startswith("class generator 'house': encoder graph lacks ['context'")
    assert "does not match its sha256" in failures["tampered"]

    model = registry.get("tiny-collage")
    info = model.public(default=False)["capabilities"]
    assert info["collage"] is True and info["collage_classes"] == ["rock", "tree", "house"]
    assert registry.get("tiny-spade").public(default=False)["capabilities"]["collage_classes"] == []
    assert all(g.encoder.info == model.runtime for g in model.class_generators.values())  # same runtime


def collage_count(client: TestClient) -> float:
    sample = client.app.state.metrics.registry.get_sample_value  # type: ignore[attr-defined]
    return sample("collage_render_stage_seconds_count", {"stage": "collage"}) or 0.0


def test_collage_requests_are_clamped_to_models_with_class_generators(
    make_client: Callable[..., TestClient],
    weights: Path,
    label_frame: Callable[..., bytes],
    png_of: Callable[[np.ndarray], bytes],
) -> None:
    """collage=true composes only on the model with class generators, on each path: the collage stage's
    timing count grows by one per path, for tiny-collage's request."""
    client = make_client(weights_dir=weights)
    ids = painted()
    answers = []
    for name in ("tiny-spade", "tiny-collage"):
        with client.websocket_connect("/api/v1/paint") as ws:
            answers.append(configure(ws, model=name, size=[SIZE, SIZE], collage=True)["collage"])
            ws.send_bytes(label_frame(1, ids))
            ws.receive_bytes()
    assert answers == [False, True]  # the effective value, as docs/protocol.md promises
    assert collage_count(client) == 1

    for name in ("tiny-spade", "tiny-collage"):
        form = {"model": name, "collage": "true", "seed": "1"}
        resp = client.post("/api/v1/render", data=form, files={"labels": ("l.png", png_of(ids), "image/png")})
        assert resp.status_code == 200, resp.text
        assert ("x-collage-ms" in resp.headers) is (name == "tiny-collage")
    assert collage_count(client) == 2

    for name in ("tiny-spade", "tiny-collage"):
        job = client.post(
            "/api/v1/batches", json={"model": name, "items": [{"labels": ids.tolist()}], "collage": True}
        )
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/batches/{job.json()['job_id']}").json()["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert collage_count(client) == 3


def test_paint_with_collage_redraws_the_boxes_and_nothing_else(
    collage_client: TestClient, label_frame: Callable[..., bytes]
) -> None:
    ids = painted()
    model = collage_client.app.state.registry.get("tiny-collage")  # type: ignore[attr-defined]
    items = planned(model, ids)
    assert [(p.thing, p.area) for p in items] == [
        ("tree", 1600),
        ("house", 1200),
        ("tree", 280),
        ("rock", 196),
    ]
    with collage_client.websocket_connect("/api/v1/paint") as ws:
        configure(ws, size=[SIZE, SIZE], style={"seed": 3}, format="png")
        plain = frame(ws, label_frame, 1, ids)
        assert configure(ws, collage=True)["collage"] is True
        composed = frame(ws, label_frame, 2, ids)
    inside = boxes_mask(items, ids.shape)
    assert np.array_equal(composed[~inside], plain[~inside])  # outside every square box: the base, exactly
    diff = np.abs(composed - plain).max(axis=2)
    for p in items:  # each object was redrawn
        x0, y0, x1, y1 = clipped_box(p.square, *ids.shape)
        assert diff[y0:y1, x0:x1].mean() > 5.0, p.thing


def test_a_reroll_changes_only_the_chosen_object_and_those_composited_after_it(
    collage_client: TestClient, label_frame: Callable[..., bytes]
) -> None:
    ids = painted()
    model = collage_client.app.state.registry.get("tiny-collage")  # type: ignore[attr-defined]
    items = planned(model, ids)
    house = items[1]
    with collage_client.websocket_connect("/api/v1/paint") as ws:
        configure(ws, size=[SIZE, SIZE], style={"seed": 3}, format="png", collage=True)
        before = frame(ws, label_frame, 1, ids)
        ws.send_text(json.dumps({"type": "reroll", "x": 70, "y": 75, "seed": 5}))
        assert ws.receive_json() == {
            "type": "rerolled",
            "x": 70,
            "y": 75,
            "seed": 5,
            "thing": "house",
            "box": list(clipped_box(house.square, SIZE, SIZE)),
        }
        seq, _, _, data = parse_image_frame(ws.receive_bytes())
        assert seq == 1  # the same frame, re-composed
        rerolled = pixels(data)
        again = frame(ws, label_frame, 2, ids)  # a new frame keeps the object's seed
        ws.send_text(json.dumps({"type": "reroll", "x": 70, "y": 75}))  # the server draws a seed
        answer = ws.receive_json()
        assert answer["type"] == "rerolled" and isinstance(answer["seed"], int) and answer["seed"] != 5
        assert parse_image_frame(ws.receive_bytes())[0] == 2
        ws.send_text(json.dumps({"type": "reroll", "x": 70, "y": 75, "seed": 5}))  # back to seed 5
        ws.receive_json()
        back = pixels(parse_image_frame(ws.receive_bytes())[3])
    changed = (rerolled != before).any(axis=2)
    may_change = boxes_mask(items[1:], ids.shape)  # the house and the smaller objects after it
    assert changed.any() and not changed[~may_change].any()
    x0, y0, x1, y1 = clipped_box(house.square, SIZE, SIZE)
    assert changed[y0:y1, x0:x1].mean() > 0.5
    assert np.array_equal(again, rerolled) and np.array_equal(back, rerolled)


def test_reroll_errors_leave_the_socket_open(
    collage_client: TestClient, label_frame: Callable[..., bytes]
) -> None:
    ids = painted()

    def reroll(ws, **fields: Any) -> str:  # noqa: ANN001
        ws.send_text(json.dumps({"type": "reroll", **fields}))
        reply = ws.receive_json()
        assert reply["type"] == "error" and reply["seq"] is None and reply["message"], reply
        return str(reply["code"])

    with collage_client.websocket_connect("/api/v1/paint") as ws:
        configure(ws, size=[SIZE, SIZE], format="png")
        assert reroll(ws, x=20, y=70) == "collage_off"  # collage is off until configured
        configure(ws, collage=True)
        assert reroll(ws, x=20, y=70) == "no_frame"
        frame(ws, label_frame, 1, ids)
        assert reroll(ws, x=5, y=5) == "no_instance"  # sky
        assert reroll(ws, x=11, y=11) == "no_instance"  # the 4×4 tree, too small to be composited
        assert reroll(ws, x=SIZE, y=0) == "bad_message"  # outside the configured map
        assert reroll(ws, x=20, y=70, seed="7") == "bad_message"
        assert reroll(ws, x=20) == "bad_message"
        assert reroll(ws, x=20, y=70, seed=-1) == "bad_message"
        configure(ws, size=[SIZE, 64])  # another size: the cached frame and the seeds are gone
        assert reroll(ws, x=20, y=30) == "no_frame"
        assert configure(ws, model="tiny-spade", collage=True)["collage"] is False
        assert reroll(ws, x=20, y=30) == "collage_off"
        configure(ws, model="tiny-collage", size=[SIZE, SIZE], collage=True)
        frame(ws, label_frame, 2, ids)
        ws.send_text(json.dumps({"type": "reroll", "x": 20, "y": 70, "seed": 1}))
        assert ws.receive_json()["thing"] == "tree"
        assert parse_image_frame(ws.receive_bytes())[0] == 2


def render(client: TestClient, png: bytes, **form: str) -> Any:
    fields = {"collage": "true", "seed": "1", "format": "png", **form}
    return client.post("/api/v1/render", data=fields, files={"labels": ("l.png", png, "image/png")})


def test_rest_instance_seeds_redraw_only_that_object(
    collage_client: TestClient, png_of: Callable[[np.ndarray], bytes]
) -> None:
    ids = painted()
    model = collage_client.app.state.registry.get("tiny-collage")  # type: ignore[attr-defined]
    rock = planned(model, ids)[-1]  # composited last: nothing after it can change
    png = png_of(ids)
    plain = render(collage_client, png)
    seeded = render(collage_client, png, instance_seeds=json.dumps([{"x": 45, "y": 110, "seed": 9}]))
    off_object = render(collage_client, png, instance_seeds=json.dumps([{"x": 5, "y": 5, "seed": 9}]))
    assert plain.status_code == seeded.status_code == 200, seeded.text
    assert off_object.content == plain.content  # an anchor on no object changes nothing
    changed = (pixels(seeded.content) != pixels(plain.content)).any(axis=2)
    x0, y0, x1, y1 = clipped_box(rock.square, SIZE, SIZE)
    inside = np.zeros_like(changed)
    inside[y0:y1, x0:x1] = True
    assert changed[inside].mean() > 0.3 and not changed[~inside].any()
    assert float(seeded.headers["x-collage-ms"]) > 0.0


@pytest.mark.parametrize(
    ("value", "status", "code"),
    [
        ("not json", 400, "bad_request"),
        ('{"x": 1, "y": 1, "seed": 1}', 422, "bad_instance_seeds"),  # not a list
        ('[{"x": 128, "y": 0, "seed": 1}]', 422, "bad_instance_seeds"),  # outside the 128² map
        ('[{"x": "1", "y": 0, "seed": 1}]', 422, "bad_instance_seeds"),
        ('[{"x": 1, "y": 0}]', 422, "bad_instance_seeds"),
        ('[{"x": 1, "y": 0, "seed": -2}]', 422, "bad_instance_seeds"),
        (json.dumps([{"x": 1, "y": 1, "seed": 1}] * 257), 422, "bad_instance_seeds"),
    ],
)
def test_rest_refuses_bad_instance_seeds(
    collage_client: TestClient, png_of: Callable[[np.ndarray], bytes], value: str, status: int, code: str
) -> None:
    resp = render(collage_client, png_of(painted()), instance_seeds=value)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


@pytest.fixture(scope="module")
def tiny_collage(tiny_collage_weights: Path) -> Registry:
    """The tiny class generators in f32 (bf16 would round differently per batch size)."""
    return Registry.load(tiny_collage_weights, RuntimeChoice(precision="f32", threads=1))


def test_real_class_generators_batched_equal_sequential(tiny_collage: Registry) -> None:
    model = tiny_collage.get("tiny-collage")
    assert model.collage_classes == ["rock", "tree", "house"]
    ids = np.full((128, 128), GRASS, np.uint8)
    ids[:32] = 0
    for k in range(4):  # four trees far apart: one wave, one batched call of 4
        ids[40 + 40 * (k // 2) : 60 + 40 * (k // 2), 10 + 64 * (k % 2) : 26 + 64 * (k % 2)] = TREE
    ids[110:124, 44:58] = ROCK
    inst = instances_from_labels(ids, model.thing_ids)
    z = np.zeros((1, model.z_dim), np.float32)
    base = model.run_generator(ids[None, None].astype(np.int64), inst[None, None].astype(np.int64), z)[0]
    anchors = [Anchor(15, 45, 7)]
    batched = compose(base, ids, inst, model.class_generators, anchors)
    sequential = compose(base, ids, inst, model.class_generators, anchors, batched=False)
    planned = plan(ids, inst, {c: g.spec for c, g in model.class_generators.items()})
    assert len(waves(planned)) == 1 and len(planned) == 5
    assert np.abs(batched.picture - sequential.picture).max() < 1e-5
    inside = np.zeros(ids.shape, bool)
    for x0, y0, x1, y1 in (p.box for p in batched.placed):
        inside[y0:y1, x0:x1] = True
    assert np.array_equal(batched.picture[:, ~inside], base[:, ~inside])
    assert np.abs(batched.picture - base)[:, inside].max() > 0.1
