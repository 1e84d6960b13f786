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


def count_gmacs(module: nn.Module, *inputs: Any) -> float:
    """GMACs of one forward pass of `module` on `inputs` (no gradients, module mode unchanged).

    The count depends on the inputs' shapes only, so the exporter counts on a role's batch-1 example inputs;
    on the meta device (module and inputs) it counts without computing anything."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*inputs)
    return counter.get_total_flops() / 2 / 1e9


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
