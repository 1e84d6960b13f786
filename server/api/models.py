"""The served models: names, palettes, sizes, presets and capabilities."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from server.api.deps import RegistryDep

router = APIRouter(prefix="/models", tags=["models"])


class ModelSummary(BaseModel):
    name: str
    architecture: str
    image_size: list[int]  # [H, W] the model was trained at
    labels_count: int
    default: bool


class Label(BaseModel):
    id: int
    name: str
    color: tuple[int, int, int]
    is_thing: bool


class Capabilities(BaseModel):
    style_image: bool  # POST /styles works (the model has a style encoder)
    collage: bool  # the CollageGAN stage is available
    collage_classes: list[str]  # the thing classes it redraws (each has a class generator)
    z_dim: int
    noise: bool  # the generator takes per-pixel noise drawn from the style's seed: a new seed re-rolls it


class ModelInfo(ModelSummary):
    label_set: str
    labels: list[Label]
    background_label: int
    dynamic_size: bool  # any size that is a multiple of size_multiple within [min_size, max_size]
    size_multiple: int
    min_size: int
    max_size: int
    styles: list[str]  # preset style names
    capabilities: Capabilities
    runtime: str  # openvino | onnxruntime: what really runs the graphs (after any fallback)
    device: str  # OpenVINO device ("CPU") or onnxruntime provider ("CUDAExecutionProvider", …)
    precision: str  # f32 | bf16: the arithmetic the generator runs in
    metrics: dict[str, Any]  # the evaluation report numbers from the manifest


@router.get("", response_model=list[ModelSummary])
async def read_models(registry: RegistryDep) -> list[dict[str, Any]]:
    """Loaded models, the default one flagged."""
    return [m.summary(name == registry.default_name) for name, m in sorted(registry.models.items())]


@router.get("/{name}", response_model=ModelInfo)
async def read_model(name: Annotated[str, Path(max_length=100)], registry: RegistryDep) -> dict[str, Any]:
    """One model's public manifest: labels (the palette), sizes, presets, capabilities, runtime."""
    return registry.get(name).public(name == registry.default_name)
