"""The app as a whole: no torch, health and readiness, frontend, metrics, CORS, OpenAPI, settings."""

from __future__ import annotations

import json
import logging
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from common.checksums import sha256_file
from common.runtime import resolve_runtime
from server.config import Settings

NO_TORCH = """
import json, sys
from fastapi.testclient import TestClient
from server.app import create_app
from server.config import Settings
app = create_app(Settings(weights_dir=sys.argv[1], data_dir=sys.argv[2]))
with TestClient(app) as client:
    assert client.get("/readyz").status_code == 200
    ids = bytes(32 * 32)
    r = client.post("/api/v1/render", files={"labels": ("l", ids, "application/octet-stream")},
                    data={"width": "32", "height": "32", "seed": "1"})
    assert r.status_code == 200, r.text
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "models", "onnx", "onnxscript"))
print(json.dumps(heavy))
"""


def test_server_never_imports_torch_or_models(tiny_weights: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(tiny_weights), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_health_readiness_and_failures(
    make_client: Callable[..., TestClient], tiny_weights: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights / "tiny-spade", weights / "tiny-spade")
    broken = weights / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{ not json")
    client = make_client(weights_dir=weights)
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["models"] == ["tiny-spade"]
    runtime = ready["runtimes"]["tiny-spade"]
    assert runtime["runtime"] == resolve_runtime(Settings().runtime)
    assert runtime["precision"] in ("f32", "bf16") and runtime["device"] in ("CPU", "CPUExecutionProvider")
    assert (
        f'collage_model_runtime{{device="{runtime["device"]}",model="tiny-spade",'
        f'precision="{runtime["precision"]}",runtime="{runtime["runtime"]}"}} 1.0'
    ) in client.get("/metrics").text
    assert "model.json is invalid" in ready["failures"]["broken"]

    empty = make_client(weights_dir=tmp_path / "none")
    assert empty.get("/healthz").status_code == 200
    resp = empty.get("/readyz")
    assert resp.status_code == 503 and resp.json()["status"] == "no_models"
    assert empty.get("/api/v1/models").json() == []
    assert empty.get("/docs").status_code == 200


def test_readyz_names_no_absolute_path(
    make_client: Callable[..., TestClient],
    tiny_weights: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken folder whose generator keeps its weights outside it (external data at ../../elsewhere): both
    runtimes refuse it, naming the absolute path the reference resolves to. /readyz shows the model folder's name
    and the file's, never a path; the server log keeps the full paths."""
    onnx = pytest.importorskip("onnx")
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights / "tiny-spade", weights / "tiny-spade")
    broken = weights / "broken"
    shutil.copytree(tiny_weights / "tiny-spade", broken)
    graph = onnx.load(broken / "generator.onnx")
    onnx.save(
        graph, broken / "generator.onnx", save_as_external_data=True, location="w.bin", size_threshold=1024
    )
    graph = onnx.load(broken / "generator.onnx", load_external_data=False)
    for tensor in graph.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../../elsewhere/weights.bin"
    onnx.save(graph, broken / "generator.onnx")
    manifest = json.loads((broken / "model.json").read_text())
    manifest["name"] = "broken"
    manifest["files"]["generator"] |= {
        "sha256": sha256_file(broken / "generator.onnx"),
        "bytes": (broken / "generator.onnx").stat().st_size,
    }
    (broken / "model.json").write_text(json.dumps(manifest))

    with caplog.at_level(logging.INFO):
        client = make_client(weights_dir=weights)
        resp = client.get("/readyz")
    assert resp.json()["models"] == ["tiny-spade"]
    reason = resp.json()["failures"]["broken"]
    assert "generator.onnx" in reason and "weights.bin" in reason, reason
    assert str(tmp_path) not in resp.text and not re.search(r"(^|[\s\"'(=])/\w", reason), reason
    logged = caplog.text
    assert (
        str(broken.resolve()) in logged and str((tmp_path / "elsewhere" / "weights.bin").resolve()) in logged
    )


def test_no_model_messages_tell_an_empty_folder_from_refused_ones(
    make_client: Callable[..., TestClient], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    weights = tmp_path / "weights"
    for name in ("a", "b"):
        (weights / name).mkdir(parents=True)
        (weights / name / "model.json").write_text("{ not json")
    with caplog.at_level(logging.WARNING, logger="server.app"):
        make_client(weights_dir=weights)
    refused = [r.getMessage() for r in caplog.records if r.name == "server.app"]
    assert any(
        f"No model loaded: 2 model folders found in {weights.resolve()}/ and all refused" in m
        for m in refused
    )
    assert not any("No model found" in m for m in refused)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="server.app"):
        make_client(weights_dir=tmp_path / "empty")
    empty = [r.getMessage() for r in caplog.records if r.name == "server.app"]
    assert any("No model found in" in m and "collage export" in m for m in empty)
    assert not any("refused" in m for m in empty)


def test_models_listing(client: TestClient) -> None:
    assert client.get("/api/v1/models").json() == [
        {
            "name": "tiny-spade",
            "architecture": "spade",
            "image_size": [32, 32],
            "labels_count": 14,
            "default": True,
        }
    ]
    info = client.get("/api/v1/models/tiny-spade").json()
    assert info["labels"][0] == {"id": 0, "name": "sky", "color": [120, 178, 230], "is_thing": False}
    assert (info["size_multiple"], info["min_size"], info["max_size"]) == (8, 8, 1024)
    assert info["runtime"] == resolve_runtime(Settings().runtime) and info["styles"] == ["winter", "dusk"]
    assert client.get("/api/v1/models/nope").json()["error"]["code"] == "unknown_model"


def test_frontend_is_served_at_root(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    (tmp_path / "frontend").mkdir()
    (tmp_path / "frontend" / "index.html").write_text("<!doctype html><title>Collage Studio</title>")
    (tmp_path / "frontend" / "main.js").write_text("export const x = 1;")
    client = make_client()
    assert "Collage Studio" in client.get("/").text
    assert client.get("/main.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/api/v1/models").status_code == 200  # routes win over the static mount


def test_metrics_count_requests_and_renders(client: TestClient) -> None:
    client.post(
        "/api/v1/render",
        files={"labels": ("l", bytes(32 * 32), "application/octet-stream")},
        data={"width": "32", "height": "32", "seed": "1"},
    )
    client.get("/api/v1/models/nope")
    text = client.get("/metrics").text
    assert 'collage_http_requests_total{method="POST",route="/api/v1/render",status="200"} 1.0' in text
    assert 'collage_http_requests_total{method="GET",route="/api/v1/models/{name}",status="404"} 1.0' in text
    assert 'collage_renders_total{source="rest"} 1.0' in text
    assert "collage_batch_size_bucket" in text and 'collage_queue_depth{lane="rest"}' in text
    assert "collage_frames_dropped_total 0.0" in text


def test_metrics_report_the_replicas_peak_and_current_memory(client: TestClient) -> None:
    """Peak RSS per replica (getrusage, the same process here) and the current RSS, for load reports."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    text = client.get("/metrics").text
    peak = float(re.search(r"^collage_process_peak_rss_bytes (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    now = float(re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert peak >= before > 0 and 0 < now <= peak


def test_api_paths_are_not_the_frontends(make_client: Callable[..., TestClient]) -> None:
    """The frontend is mounted at `/`; under the API's paths a wrong method is a 405, an unknown path a JSON 404."""
    client = make_client(frontend_dir=Path(__file__).resolve().parents[2] / "frontend")
    wrong = client.get("/api/v1/render")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")
    assert "POST" in wrong.headers["allow"]
    unknown = client.get("/api/v1/nowhere")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    assert client.post("/healthz").status_code == 405
    # HEAD wherever GET works (curl -I, health checks): GET's status and headers, no body.
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/models", "/"):
        head, get = client.head(path), client.get(path)
        assert (head.status_code, head.content) == (get.status_code, b""), path
        assert head.headers["content-type"] == get.headers["content-type"]
    assert client.head("/api/v1/render").status_code == 405  # POST only
    text = client.get("/metrics").text
    assert 'collage_http_requests_total{method="HEAD",route="/healthz",status="200"} 1.0' in text
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()  # the frontend itself is still served
    assert client.get("/main.js").status_code == 200


def test_every_rest_refusal_is_counted_once_by_its_code(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_upload_bytes=2048)
    raw = {"labels": ("l", bytes(32 * 32), "application/octet-stream")}
    assert client.get("/api/v1/models/nope").status_code == 404  # BadInput
    assert client.post("/api/v1/render", files=raw).status_code == 400  # raw ids without a size: bad_image
    assert client.post("/api/v1/render", data={"seed": "1"}).status_code == 422  # no file: validation
    assert client.post("/api/v1/batches", content=bytes(4096)).status_code == 413  # BodyLimit, up front
    assert client.get("/nowhere").status_code == 404  # Starlette's HTTPException
    counted = client.app.state.metrics.registry.get_sample_value  # type: ignore[attr-defined]
    codes = ("unknown_model", "bad_image", "bad_request", "too_large", "not_found")
    assert [counted("collage_rejected_total", {"code": code}) for code in codes] == [1, 1, 1, 1, 1]


def test_cors_allow_list(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_origins="http://paint.example, http://other.example")
    preflight = {"Origin": "http://paint.example", "Access-Control-Request-Method": "POST"}
    ok = client.options("/api/v1/render", headers=preflight)
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://paint.example"
    refused = client.options("/api/v1/render", headers=preflight | {"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in refused.headers


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/v1/models",
        "/api/v1/models/{name}",
        "/api/v1/render",
        "/api/v1/styles",
        "/api/v1/styles/{style_id}",
        "/api/v1/batches",
        "/api/v1/batches/{job_id}",
        "/api/v1/batches/{job_id}/results",
        "/healthz",
        "/readyz",
    ):
        assert path in spec["paths"], path
    body = spec["paths"]["/api/v1/batches"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert "$ref" not in json.dumps(body)


def test_settings_from_environment(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("COLLAGE_PROVIDERS", "cuda,cpu")
    monkeypatch.setenv("COLLAGE_CORS_ORIGINS", '["http://a.example"]')
    monkeypatch.setenv("COLLAGE_MAX_BATCH", "3")
    monkeypatch.setenv("COLLAGE_API_KEY", "s3cr3t-key")
    settings = Settings()
    assert settings.providers == ["cuda", "cpu"] and settings.cors_origins == ["http://a.example"]
    assert settings.max_batch == 3 and "s3cr3t" not in repr(settings)
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "s3cr3t-key"


def test_python_m_server_without_models_explains_how_to_get_one(server_process, tmp_path: Path) -> None:  # noqa: ANN001
    proc = server_process(
        {"COLLAGE_WEIGHTS_DIR": str(tmp_path / "empty"), "COLLAGE_DATA_DIR": str(tmp_path / "d")}
    )
    assert httpx.get(proc.url + "/readyz").status_code == 503
    assert httpx.get(proc.url + "/healthz").status_code == 200
    proc.stop()
    log = proc.log_path.read_text()
    assert "No model found in" in log and "collage export" in log and "COLLAGE_WEIGHTS_DIR" in log
