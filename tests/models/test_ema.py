"""EMA of network weights: warm-up schedule and the update rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from models.ema import ema_beta, make_ema, update_ema


def test_beta_warms_up_then_caps() -> None:
    assert ema_beta(0, 0.999) == pytest.approx(0.1)  # (1+0)/(10+0): step 1 keeps 90% of the new weights
    assert ema_beta(90, 0.999) == pytest.approx(0.91)
    assert ema_beta(10_000, 0.999) == 0.999
    assert ema_beta(10_000, 0.0) == 0.0  # decay 0: the EMA is the network


def test_update_lerps_parameters_and_copies_buffers() -> None:
    torch.manual_seed(0)
    net = spectral_norm(nn.Linear(3, 2))  # parameters: bias, original weight; buffers: _u, _v
    ema = make_ema(net)
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())
    old = [p.detach().clone() for p in ema.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net(torch.randn(4, 3))  # training-mode forward: one power iteration changes the u, v buffers
    update_ema(ema, net, beta=0.75)
    for p_ema, p_old, p in zip(ema.parameters(), old, net.parameters(), strict=True):
        assert torch.allclose(p_ema, 0.75 * p_old + 0.25 * p)
    for b_ema, b in zip(ema.buffers(), net.buffers(), strict=True):
        assert torch.equal(b_ema, b)
