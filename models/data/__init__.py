"""Procedural landscapes: the project's embedded dataset (layouts, painted layouts, styles and the renderer)."""

from models.data.layout import sample_layout
from models.data.painted_layouts import sample_painted_layout
from models.data.render import render
from models.data.style import FAMILIES, Style, sample_free_style, sample_style

__all__ = [
    "FAMILIES",
    "Style",
    "render",
    "sample_free_style",
    "sample_layout",
    "sample_painted_layout",
    "sample_style",
]
