"""Architecture registry: how each architecture builds its networks and takes one training step.

The trainer (`models/train.py`) knows nothing about any architecture. A module `models/archs/<name>.py` calls
`register(Arch(...))` at import time; `get_arch(name)` imports that module on first use, so adding an
architecture means adding one file here. An architecture gives:
- `presets`: named config fragments (net kwargs, loss weights, learning rates, and any trainer key such as
  `size` or `batch` it wants to change); the trainer merges one into its base config, then applies overrides;
- `build(config, label_set, device) -> Recipe`: its networks, optimisers and training step, bound to the
  resolved config. A GAN has G, D and maybe an encoder E with two optimisers; a segmenter has one network
  and one optimiser. The names in `Recipe.nets` are the checkpoint keys;
- optionally `check(config)`: the constraints its networks put on the config (sizes), checked up front;
- optionally `export(checkpoint, label_set) -> ExportSpec | ClassPackSpec`: the networks it serves, rebuilt
  from a checkpoint, each as an `ExportRole` (network, example inputs, outputs, dynamic axes, its block of
  model.json), so that `collage export` (`models/export.py`) exports any architecture through one path: an
  `ExportSpec` becomes a model folder, a `ClassPackSpec` (CollageGAN's class generators) a class pack to attach
  to one. Without it the architecture is not served (the segmenter is the evaluator's judge).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
    init_fresh: tuple[
        str, ...
    ] = ()  # name parts of weights an --init_from source may lack (they keep their init)

    def __init__(self) -> None:
        self.nets = {}
        self.optimizers = {}
        self.meta = {}

    def adapt_init(self, key: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """An --init_from source's weights for network `key`, made to fit this run's network where the
        architecture knows how (e.g. collage-base's D head across picture sizes); by default unchanged, and
        whatever still does not fit is refused by the trainer."""
        return state

    def step(self, nets: Mapping[str, nn.Module], batch: Batch) -> dict[str, float]:
        """One training iteration (every optimiser steps once); returns the loss terms to log."""
        raise NotImplementedError

    def preview(self, nets: Mapping[str, nn.Module], batch: Batch) -> list[torch.Tensor]:
        """Images [B,3,H,W] in [-1,1] to show between the label and real columns of the sample grid.

        `nets` holds the EMA copies where they exist, all in eval mode. Must not draw from the global RNG.
        """
        raise NotImplementedError


ExampleInputs = Callable[[int, tuple[int, int], int], dict[str, torch.Tensor]]
"""(batch, (H, W), seed) -> a network's inputs keyed by graph input name, in forward-argument order.

Deterministic per seed, with values that exercise the whole graph (several labels and instances, say): the
exporter traces on them, compares torch with onnxruntime on them, checks the 16-bit weights on them and counts
GMACs on them (batch 1). (H, W) is the role's size: the served size, or the role's own fixed size."""


@dataclass(frozen=True)
class ExportRole:
    """One network of a served model, exported as `<role>.onnx` (docs/contracts.md says what each role's graph
    takes and returns: "generator" a label map -> picture, "encoder" a picture -> style latent).

    Every input's axis 0 becomes a dynamic batch. A role at the served size (`size` None) has the H, W axes
    (2, 3) of its `spatial` inputs dynamic in multiples of `size_multiple` when the served size is one, and the
    exporter adds the size fields (dynamic_size, size_multiple, min_size, max_size) to its manifest block; a
    role with its own fixed `size` gets `size: [H, W]` there instead.
    """

    module: nn.Module  # the trained network; the exporter works on a copy (eval mode, spectral norm folded)
    example: ExampleInputs  # inputs to trace, check and count on
    outputs: tuple[str, ...]  # graph output names, in the order forward returns them
    # The role's block of model.json: input and output names and what they need (z_dim, noise_channels), e.g.
    # the generator's `inputs`. A field naming an input the exported graph dropped (unused) becomes null.
    fields: Mapping[str, Any]
    spatial: tuple[str, ...] = ()  # inputs [B,C,H,W] at the picture's H, W
    size_multiple: int = 0  # H, W the network takes are multiples of this; 0 = the exported size only
    size: tuple[int, int] | None = None  # the role's own fixed input (H, W); None = the served size


@dataclass(frozen=True)
class ExportSpec:
    """What one trained model serves: a generator and optionally a style encoder."""

    architecture: str  # `Arch.name`, recorded as model.json's `architecture`
    label_set: LabelSet  # the labels the generator was built for
    generator: ExportRole
    encoder: ExportRole | None = None
    # Where the weights came from (e.g. {"generator_weights": "G_ema"}); `collage export` puts it first in
    # model.json's training.config.
    provenance: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClassPackSpec:
    """What a CollageGAN class generator serves: not a model of its own but two graphs attached to a base model
    with the same label set (`collage attach`). `collage export` writes them as `<thing>_encoder.onnx` and
    `<thing>_decoder.onnx` beside `class_pack.json` (docs/contracts.md "Class generators"); the feature crop
    between the two is the caller's numpy slice."""

    label_set: LabelSet  # the labels the generator was trained on
    encoder: ExportRole  # (context, labels, mask, valid) -> (mu, logvar, phi_prime), at its own fixed size
    decoder: ExportRole  # (phi, z, noise) -> image clipped to [-1, 1], at its own fixed size
    # The pack entry's fields other than the files, training and metrics (`common.manifest.ClassGenerator`):
    # thing, class_id, label_set, context_size, target_size, phi_size, z_dim, noise_channels, removal, min_side.
    entry: Mapping[str, Any]
    provenance: Mapping[str, Any] = field(default_factory=dict)  # as ExportSpec.provenance

    @property
    def thing(self) -> str:
        return str(self.entry["thing"])


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
    # Checkpoint (as `models.checkpoints.read_checkpoint` returns it: resolved config + state dicts) and the label
    # set it was trained on -> the networks to serve, weights loaded: a model (ExportSpec) or a class pack
    # (ClassPackSpec). Raises ValueError for a checkpoint that lacks them. None: nothing of this architecture is
    # served.
    export: Callable[[Mapping[str, Any], LabelSet], ExportSpec | ClassPackSpec] | None = None
    # The run's picture dataset, label set and resolved config -> what this architecture trains on (CollageGAN's
    # class generators train on instance crops of the pictures). Raises ValueError for a config it cannot use.
    wrap_dataset: Callable[[Any, LabelSet, Mapping[str, Any]], Any] | None = None


def load_ema_weights(checkpoint: Mapping[str, Any], generator: nn.Module) -> str:
    """Load G's served weights from a checkpoint into `generator`: the EMA copy when there is one, else G.
    Returns the key used, for the export's provenance."""
    key = next((k for k in ("G_ema", "G") if k in checkpoint), None)
    if key is None:
        raise ValueError("checkpoint has neither 'G_ema' nor 'G'")
    generator.load_state_dict(checkpoint[key])
    return key


ARCHS: dict[str, Arch] = {}


def register(arch: Arch) -> Arch:
    if arch.default_preset not in arch.presets:
        raise ValueError(
            f"arch {arch.name!r}: default preset {arch.default_preset!r} is not one of its presets"
        )
    ARCHS[arch.name] = arch
    return arch


def available() -> list[str]:
    """Architecture names, from the modules in this package (registered or not yet imported); a module name's
    underscores are the architecture's hyphens (`collage_class.py` is `collage-class`)."""
    return sorted(
        m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")
    )


def get_arch(name: str) -> Arch:
    """The registered architecture `name`, importing `models.archs.<name with _ for ->` on first use."""
    if name not in ARCHS and name in available():
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    if name not in ARCHS:
        hint = difflib.get_close_matches(name, available(), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise KeyError(f"unknown arch {name!r}{extra}; available: {', '.join(available()) or 'none'}")
    return ARCHS[name]


def unwrap(net: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the network itself)."""
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
