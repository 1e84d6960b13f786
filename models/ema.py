"""Exponential moving average of network weights (what we serve for GANs: OASIS, DP-GAN, StyleGAN2 do so too)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_beta(step: int, decay: float) -> float:
    """Decay for the update after `step` optimiser steps, warmed up as min(decay, (1+step)/(10+step)).

    Without the warm-up a 0.999 average would still be 37% initial weights after 1000 steps, so short runs
    would show mostly noise; with it the average covers about the last tenth of training until `decay` caps it.
    """
    return min(decay, (1.0 + step) / (10.0 + step))


def make_ema(net: nn.Module) -> nn.Module:
    """A frozen copy in eval mode (eval: spectral norm uses the stored u, v instead of iterating)."""
    return copy.deepcopy(net).eval().requires_grad_(False)


@torch.no_grad()
def update_ema(ema: nn.Module, net: nn.Module, beta: float) -> None:
    """ema ← beta·ema + (1−beta)·net for float parameters; buffers (spectral-norm u/v, norm stats) are copied."""
    for p_ema, p in zip(ema.parameters(), net.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), net.buffers(), strict=True):
        b_ema.copy_(b)
