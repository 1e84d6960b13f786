"""What a process sets up before its first step: its place among torchrun's processes and its device, its RNG,
and the networks, built from the config and filled with a resumed run's state or another run's weights
(`--init_from`).

RNG states are kept `weights_only`-loadable (tensors, numbers, tuples) because they go into checkpoints.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from models.archs import Recipe, get_arch
from models.checkpoints import check_meta_keys, restore_training
from models.ema import make_ema
from models.labels import LabelSet
from models.training.config import ConfigError


@dataclass(frozen=True)
class DistEnv:
    """This process's place among torchrun's processes and its device; the defaults are a lone process."""

    rank: int = 0  # this process among all (torchrun's RANK)
    world: int = 1  # number of processes (WORLD_SIZE)
    local_world: int = 1  # processes on this node (LOCAL_WORLD_SIZE), for the thread count
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(kind: str, local_rank: int) -> torch.device:
    if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device=cuda but torch sees no GPU")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device_kind: str) -> DistEnv:
    """Join torchrun's process group when WORLD_SIZE > 1 (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_kind, local_rank)
    if world == 1:
        return DistEnv(device=device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return DistEnv(rank=dist.get_rank(), world=world, local_world=local_world, device=device)


def distribute(recipe: Recipe, env: DistEnv) -> dict[str, nn.Module]:
    """The recipe's networks as its step sees them: under torchrun every trainable one wrapped in DDP, whose
    gradients then average over the processes; `recipe.nets` keeps the bare networks (EMA, checkpoints)."""
    nets: dict[str, nn.Module] = dict(recipe.nets)
    if env.world > 1:
        for name, net in nets.items():
            if any(p.requires_grad for p in net.parameters()):
                nets[name] = nn.parallel.DistributedDataParallel(
                    net,
                    device_ids=[env.device.index] if env.device.type == "cuda" else None,
                    forward_sync_buffers=recipe.broadcast_buffers,
                )
    return nets


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state(device: torch.device) -> dict[str, Any]:
    # The global RandomState is MT19937, so legacy=True gives its tuple; numpy's stub also allows a dict.
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    _, keys, pos, has_gauss, cached = legacy
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def gather_rng_states(env: DistEnv) -> list[dict[str, Any]]:
    """Every process's RNG state, in rank order (a collective: all processes call it together)."""
    mine = get_rng_state(env.device)
    if env.world == 1:
        return [mine]
    gathered: list[Any] = [None] * env.world
    dist.all_gather_object(gathered, mine)
    return gathered


def build_recipe(config: dict[str, Any], label_set: LabelSet, device: torch.device) -> Recipe:
    """The arch's recipe; a network refusing its kwargs (ValueError) is reported as a config error."""
    try:
        return get_arch(config["arch"]).build(config, label_set, device)
    except ValueError as e:
        raise ConfigError(f"arch {config['arch']!r} cannot be built from this config: {e}") from e


def start_networks(
    config: dict[str, Any],
    label_set: LabelSet,
    env: DistEnv,
    checkpoint: Mapping[str, Any] | None,
    init: Mapping[str, Any] | None,
) -> tuple[Recipe, dict[str, nn.Module]]:
    """The recipe and its EMA copies as the run starts, this process's RNG set for its first step.

    The order matters for exactness: built identically on every process from the seed, then filled with
    `--init_from`'s weights or the resumed checkpoint's state, and only then each process's own noise stream."""
    seed_all(config["seed"])
    recipe = build_recipe(config, label_set, env.device)
    check_meta_keys(config["arch"], recipe)
    ema = {name: make_ema(recipe.nets[name]) for name in recipe.ema}
    if init is not None:
        load_init_weights(recipe, ema, init)
    if checkpoint is not None:
        restore_training(checkpoint, recipe, ema)
    saved_rngs = checkpoint["rng"] if checkpoint is not None else []
    if len(saved_rngs) == env.world:  # resumed by as many processes: each continues its own stream exactly
        set_rng_state(saved_rngs[env.rank], env.device)
    else:  # a new run, or one resumed by another number of processes: a stream per process and step
        step = int(checkpoint["step"]) if checkpoint is not None else 0
        seed_all(config["seed"] + 1_000_003 * (env.rank + 1) + step)
    return recipe, ema


def load_init_weights(recipe: Recipe, ema: Mapping[str, nn.Module], source: Mapping[str, Any]) -> None:
    """Copy `source`'s weights (and buffers) into every network of `recipe` and every EMA copy (--init_from).

    Strict: each network must exist in the source under its checkpoint key with exactly the same names and
    shapes, so a config change that alters a weight shape (widths, z_dim, E's input size) fails clearly. Only
    the recipe's `init_optional` networks may be absent (e.g. a segmentation discriminator added to a SPADE run),
    and only weights named with one of its `init_fresh` parts may be missing from a network (e.g. SPADE's noise
    convs, zero at init, added to a run without noise). The recipe's `adapt_init` sees each source network
    first.
    """
    targets = {**recipe.nets, **{f"{name}_ema": net for name, net in ema.items()}}
    optional = set(recipe.init_optional) | {f"{name}_ema" for name in recipe.init_optional}
    targets = {key: net for key, net in targets.items() if key in source or key not in optional}
    missing = [key for key in targets if key not in source]
    if missing:
        raise ConfigError(f"--init_from: the source checkpoint has no {', '.join(missing)}")
    for key, net in targets.items():
        state = net.state_dict()
        given = recipe.adapt_init(key, dict(source[key]))
        fresh = {k for k in state if k not in given and any(part in k for part in recipe.init_fresh)}
        misfit = state_misfit({k: v for k, v in state.items() if k not in fresh}, given)
        if misfit:
            raise ConfigError(f"--init_from: {key} does not fit this config's network: {misfit}")
        net.load_state_dict({**given, **{k: state[k] for k in fresh}})


def state_misfit(
    expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], shown: int = 3
) -> str:
    """'' when `given` has exactly the names and shapes of `expected`; else how many names are missing,
    unexpected or of another shape, with the first `shown` of each (a width change touches every layer, and
    torch's own message lists them all: thousands of characters)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    reshaped = [
        f"{k} (source {tuple(given[k].shape)}, here {tuple(v.shape)})"
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    groups = (
        ("missing from the source", missing),
        ("only in the source", unexpected),
        ("reshaped", reshaped),
    )
    return "; ".join(
        f"{len(names)} {what}: {', '.join(names[:shown])}{', …' if len(names) > shown else ''}"
        for what, names in groups
        if names
    )
