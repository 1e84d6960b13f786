"""Multiply-accumulate counts of a network, from `torch.utils.flop_counter` (convs and matmuls).

Reported as GMACs (FLOPs / 2 / 1e9) because a generator's frame time on onnxruntime scales with it (for the
shipped 2.55-GMAC generator, 2 threads: ~15 ms per GMAC on an AMD EPYC, 27–42 ms per GMAC on an Intel Xeon).
Norms and activations are not counted.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from models.nets.spade import ConvEncoder, SPADEGenerator


def count_gmacs(module: nn.Module, *inputs: Any) -> float:
    """GMACs of one forward pass of `module` on `inputs` (no gradients, module mode unchanged)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*inputs)
    return counter.get_total_flops() / 2 / 1e9


def generator_gmacs(generator: SPADEGenerator, size: tuple[int, int] = (256, 256)) -> float:
    """GMACs per frame (batch 1) of a generator with the (label, instance, z) signature at `size`."""
    height, width = size
    device = _device(generator)
    label = torch.zeros(1, 1, height, width, dtype=torch.long, device=device)  # [1,1,H,W]
    instance = torch.zeros_like(label)
    z = torch.zeros(1, generator.z_dim, device=device)  # [1,z_dim]
    return count_gmacs(generator, label, instance, z)


def encoder_gmacs(encoder: ConvEncoder) -> float:
    """GMACs per image (batch 1) of an image encoder at its fixed `image_size`."""
    return count_gmacs(encoder, torch.zeros(1, 3, *encoder.image_size, device=_device(encoder)))


def _device(module: nn.Module) -> torch.device:
    """The module's device; works on the meta device too, which counts GMACs without computing anything."""
    return next(module.parameters()).device


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
