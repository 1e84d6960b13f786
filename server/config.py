"""Server settings: one typed object read from `COLLAGE_*` environment variables (and `.env`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from common.runtime import DEFAULT_MAX_COMPILED, RuntimeChoice

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything an operator may tune. List values accept JSON or a comma-separated string."""

    model_config = SettingsConfigDict(
        env_prefix="COLLAGE_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    weights_dir: Path = Field(
        default=Path("weights"), description="folder of model folders (each with model.json)"
    )
    data_dir: Path = Field(
        default=Path("data"),
        description="batch job files live here (replicas share it), and the embedded SQLite database by default",
    )
    database_url: str | None = Field(
        default=None,
        description="database of styles and batch jobs; unset = SQLite at <data_dir>/jobs/jobs.sqlite, "
        "postgresql://user:password@host/db for replicas sharing one (needs the scale extra)",
    )
    ray_address: str | None = Field(
        default=None,
        description="a Ray cluster (HOST:PORT of its head) that renders the REST batch jobs; unset = this "
        "replica's own engine (needs the scale extra; every node must see the weights folder at the same path)",
    )
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a replica's hold on the batch job it runs, renewed every third of it; after a crash another "
        "replica (or the restarted one) resumes the job once it runs out",
    )
    frontend_dir: Path = Field(default=REPO_ROOT / "frontend", description="static browser app served at /")
    default_model: str | None = Field(
        default="landscape-spade",
        description="model used when a request names none; the first one loaded when it is absent",
    )
    runtime: Literal["auto", "openvino", "onnxruntime"] = Field(
        default="auto",
        description="inference runtime; auto = OpenVINO where installed (the cpu extra), else onnxruntime",
    )
    precision: Literal["auto", "f32", "bf16"] = Field(
        default="auto",
        description="arithmetic on OpenVINO; auto = bf16 where the CPU runs it natively (AVX512-BF16, AMX)",
    )
    compiled_cache: int = Field(
        default=DEFAULT_MAX_COMPILED,
        ge=1,
        description="OpenVINO compiled shapes kept per graph (per size: batch 1, and one for larger batches); "
        "the least recently used go first",
    )
    providers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="onnxruntime providers in order; empty = CUDA when available, then CPU",
    )
    threads: int = Field(
        default=0,
        ge=0,
        description="inference threads; 0 = the runtime's default "
        "(for batch jobs on Ray: every core of the cluster's smallest node, per actor)",
    )
    max_batch: int = Field(default=8, ge=1, description="most requests the engine runs in one generator call")
    max_batch_pixels: int = Field(
        default=8 * 512 * 512,
        ge=1,
        description="most label-map pixels in one generator call (memory); a larger single map runs alone",
    )
    max_wait_ms: float = Field(
        default=2.0, ge=0, description="how long a batch waits for more requests of its kind"
    )
    queue_limit: int = Field(
        default=64,
        ge=1,
        description="requests waiting in each engine lane (paint frames, REST renders) before overloaded/503",
    )
    max_queued_jobs: int = Field(
        default=16, ge=1, description="unfinished batch jobs before POST /batches answers 429"
    )
    max_upload_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, description="largest request body")
    max_pixels: int = Field(
        default=1024 * 1024, ge=256, description="largest label map or image (decompression bombs)"
    )
    max_batch_items: int = Field(default=500, ge=1, description="most label maps in one batch job")
    api_key: SecretStr | None = Field(
        default=None, description="when set, /api/v1 requires it (X-API-Key header)"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="CORS allow-list")

    @property
    def ws_max_bytes(self) -> int:
        """Largest paint websocket message, text or binary: one raw label map of max_pixels plus its header, and
        never below 1 MiB. The paint handler enforces it whatever server runs the app; `python -m server` also
        has uvicorn refuse larger messages before reading them."""
        return max(1 << 20, self.max_pixels + 1024)

    def runtime_choice(self) -> RuntimeChoice:
        """How the registry opens every model's graphs."""
        return RuntimeChoice(
            self.runtime, self.precision, self.threads, tuple(self.providers), self.compiled_cache
        )

    @field_validator("providers", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """Accept `a,b` as well as `["a","b"]` from the environment."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value
