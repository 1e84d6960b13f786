"""Architecture registry: how each architecture builds its networks and takes one training step.

The trainer (`models/train.py`) knows nothing about any architecture. A module `models/archs/<name>.py` calls
`register(Arch(...))` at import time; `get_arch(name)` imports that module on first use, so adding an
architecture means adding one file here. An architecture gives:
- `presets`: named config fragments (net kwargs, loss weights, learning rates, and any trainer key such as
  `size` or `batch` it wants to change); the trainer merges one into its base config, then applies overrides;
- `build(config, label_set, device) -> Recipe`: its networks, optimisers and training step, bound to the
  resolved config. A GAN has G, D and maybe an encoder E with two optimisers; a segmenter has one network
  and one optimiser. The names in `Recipe.nets` are the checkpoint keys;
- optionally `check(config)`: the constraints its networks put on the config (sizes), checked up front.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from models.labels import LabelSet

Batch = dict[str, torch.Tensor]  # label [B,H,W] int64, instance [B,H,W] int64, image [B,3,H,W], style [B]


class Recipe:
    """An architecture's training recipe bound to one resolved config.

    Subclasses call `super().__init__()`, fill `nets` and `optimizers`, and implement `step` and `preview`. `step` receives the
    networks as the trainer runs them: wrapped in DistributedDataParallel under torchrun. A network that only
    judges in a step (D in the generator step) must be called through `unwrap()` with its parameters frozen,
    so DDP neither waits for its gradients nor syncs them twice.
    """

    nets: dict[str, nn.Module]  # checkpoint key -> network, e.g. {"G": …, "D": …, "E": …} or {"S": …}
    optimizers: dict[str, torch.optim.Optimizer]  # checkpoint key -> optimiser
    ema: tuple[str, ...] = ()  # networks that get an exponential moving average, saved as NAME_ema
    broadcast_buffers: bool = False  # DDP buffer sync from rank 0 before every forward: off for spectral-norm
    #                                   GANs (in-place buffer writes between forwards), on for BatchNorm nets
    meta: dict[str, Any]  # extra top-level checkpoint entries (e.g. {"perceptual": "vgg19"})
    init_optional: tuple[str, ...] = ()  # networks an --init_from source may lack (they keep their init)

    def __init__(self) -> None:
        self.nets = {}
        self.optimizers = {}
        self.meta = {}

    def step(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        """One training iteration (every optimiser steps once); returns the loss terms to log."""
        raise NotImplementedError

    def preview(self, nets: Mapping[str, nn.Module], batch: Batch) -> list[torch.Tensor]:
        """Images [B,3,H,W] in [-1,1] to show between the label and real columns of the sample grid.

        `nets` holds the EMA copies where they exist, all in eval mode. Must not draw from the global RNG.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class Arch:
    name: str  # the value of `--arch`
    presets: Mapping[
        str, Mapping[str, Any]
    ]  # preset name -> config fragment merged over the trainer's defaults
    default_preset: str  # used when `--preset` is not given
    build: Callable[[dict[str, Any], LabelSet, torch.device], Recipe]  # resolved config -> recipe on device
    # Raises ValueError for a resolved config its networks cannot train on (e.g. a size G cannot produce), so the
    # trainer refuses it before any run folder exists rather than failing inside the first forward pass.
    check: Callable[[Mapping[str, Any]], None] | None = None


ARCHS: dict[str, Arch] = {}


def register(arch: Arch) -> Arch:
    if arch.default_preset not in arch.presets:
        raise ValueError(
            f"arch {arch.name!r}: default preset {arch.default_preset!r} is not one of its presets"
        )
    ARCHS[arch.name] = arch
    return arch


def available() -> list[str]:
    """Architecture modules in this package (registered or not yet imported)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get_arch(name: str) -> Arch:
    """The registered architecture `name`, importing `models.archs.<name>` on first use."""
    if name not in ARCHS and name in available():
        importlib.import_module(f"{__name__}.{name}")
    if name not in ARCHS:
        hint = difflib.get_close_matches(name, available(), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise KeyError(f"unknown arch {name!r}{extra}; available: {', '.join(available()) or 'none'}")
    return ARCHS[name]


def unwrap(net: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the network itself)."""
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
