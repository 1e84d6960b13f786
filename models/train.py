"""`collage train`: one training loop for every architecture.

    collage train --arch spade --preset spade-fast --data procedural [--key=value …] [--dry-run]
    collage train --resume runs/00001-spade-fast [--steps=20000]
    collage train --arch spade --preset spade-fast --size=256 --init_from runs/00001-spade-fast
    torchrun --nproc_per_node=2 -m models.train --arch spade …

Config flow (nanoGPT/EDM): trainer defaults (BASE_CONFIG) ← the arch's preset ← `--key=value` overrides (typed
like the value they replace; nested keys as `--generator.ngf=32`). The resolved config is printed once, saved as
`config.json` in a numbered run folder (`runs/00001-spade-fast/`) and carried by every checkpoint, so resume
and export need no flags. The loop knows nothing about any architecture: `models/archs/<name>.py` registers how
to build its networks and take one step.

A run folder holds `config.json`, `log.jsonl` (one line per `log_every` steps), `samples-NNNNNNNN.png`
(label | the arch's preview columns | real, for a fixed batch), `checkpoint-latest.pt` and numbered snapshots
`checkpoint-NNNNNNNN.pt`. Checkpoints restore weights, EMA, optimisers, every RNG of every process and the data
position, so `--resume` continues exactly as if never stopped. Ctrl-C (SIGINT/SIGTERM) finishes the current
step, writes `checkpoint-latest.pt` and exits.

`--init_from RUN|CHECKPOINT` starts a new run (its own folder and config, e.g. another `--size`) from another
run's network weights: every network the arch defines and its EMA copy, loaded with strict names and shapes,
then step 0 with fresh optimisers, RNG and data order. This is progressive-size training: the shipped SPADE
model trained at 128² (`--size=128`), then fine-tuned at 256² (G and D take any size; E has its own fixed input
size). Optimiser states are not carried over: SPADE's Adam (betas 0, 0.9) has no momentum to keep and
re-estimates its second moments within a few dozen steps, and a fresh start keeps the new run independent of how
the source ended. The EMA warm-up restarts with the step count, so NAME_ema soon follows the fine-tuned network.
The source is recorded as `config["init_from"]` = {path, step, size}.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate
from tqdm import tqdm

from models.archs import Batch, Recipe, get_arch, unwrap
from models.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_KEYS,
    LATEST,
    CheckpointError,
    atomic_save,
    checkpoint_file,
    load_checkpoint,
)
from models.ema import ema_beta, make_ema, update_ema
from models.labels import LabelSet
from models.version import code_version

# Trainer defaults; an arch preset may override any of them and adds its own keys (nets, losses, optimisers).
BASE_CONFIG: dict[str, Any] = {
    "arch": "",  # architecture (a module in models/archs/)
    "preset": "",  # the arch's preset that filled in the rest
    "data": "procedural",  # procedural | folder:PATH | ade20k:PATH | cocostuff:PATH | cityscapes:PATH
    "label_set": "",  # set from the dataset: a name in models.labels.LABEL_SETS
    "data_length": 4096,  # procedural data: number of distinct samples
    "data_seed": 0,  # procedural data: dataset seed (sample i depends only on (data_seed, i))
    "data_cache": "",  # procedural data: render once into shards in this folder ("" = render on the fly)
    "data_augment": False,  # real data: random crops and left-right flips (seeded per epoch and index)
    "size": 128,  # training resolution, square (pixels)
    "batch": 4,  # total batch over all processes; each of N processes takes batch / N
    "steps": 20000,  # length of the run in steps; one step = every optimiser updates once on `batch` images
    "seed": 0,  # seeds weights, data order and noise; same seed + config -> same run
    "lr_decay_start": 0,  # step from which every optimiser's learning rate falls linearly … (SPADE's niter)
    "lr_decay_steps": 0,  # … to zero over this many steps (SPADE's niter_decay; 0 = constant learning rate)
    "ema_decay": 0.999,  # EMA of the served network(s) per step, warmed up as min(decay, (1+step)/(10+step))
    "checkpoint_every": 1000,  # steps between writes of checkpoint-latest.pt (also written at the end)
    "checkpoint_minutes": 10.0,  # … and whenever this many minutes passed since the last write (0 = off)
    "snapshot_every": 5000,  # steps between kept snapshots checkpoint-NNNNNNNN.pt (0 = none)
    "sample_every": 500,  # steps between sample grids samples-NNNNNNNN.png (0 = none; always at the end)
    "sample_count": 8,  # rows in the sample grid (a fixed batch: the first items of the dataset)
    "log_every": 50,  # steps between log.jsonl lines and progress-bar loss updates
    "num_workers": 2,  # DataLoader worker processes per training process (0 = load in the main process)
    "threads": 0,  # torch CPU threads per process (0 = CPU cores / processes on this node)
    "device": "auto",  # auto (cuda if available) | cpu | cuda
    "precision": "fp32",  # fp32 | bf16: the step under bfloat16 autocast (weights, optimisers, EMA stay fp32)
}

# Keys `--resume` may change: they set how long and how loudly the run goes on, not what it computes (precision
# only rounds it differently: a run may move to or from a CPU without fast bfloat16), and when its learning rate
# decays (SPADE decides the decay phase once the constant-rate phase has plateaued).
RESUMABLE_KEYS = (
    "steps",
    "checkpoint_every",
    "checkpoint_minutes",
    "snapshot_every",
    "sample_every",
    "sample_count",
    "log_every",
    "num_workers",
    "threads",
    "precision",
    "lr_decay_start",
    "lr_decay_steps",
)

USAGE = """\
usage: collage train --arch ARCH [--preset P] [--data SPEC] [--KEY=VALUE …] [--runs-dir DIR] [--dry-run]
       collage train --resume RUN_DIR|CHECKPOINT [--steps=N …] [--dry-run]
       collage train --arch ARCH … --init_from RUN_DIR|CHECKPOINT [--size=N …]

  --arch ARCH        architecture: {archs}
  --preset P         the arch's preset (default first): {presets}
  --data SPEC        procedural | folder:PATH | ade20k:PATH | cocostuff:PATH | cityscapes:PATH
  --KEY=VALUE        override any config key, typed like its current value (nested: --generator.ngf=32)
  --runs-dir DIR     parent of the numbered run folders (default $COLLAGE_RUNS_DIR or runs/)
  --resume RUN       continue RUN/checkpoint-latest.pt exactly; only these keys may change:
                     {resumable}
  --init_from RUN    start a new run (step 0, fresh optimisers) from RUN's network and EMA weights, e.g. to
                     fine-tune a 128² run at --size=256; the shapes must match this config's networks
  --dry-run          resolve and print the config and parameter counts; write nothing

Use --dry-run to list every config key of a preset with its value.
Distributed: torchrun --nproc_per_node=N -m models.train … (gloo on CPU, NCCL on GPU).
"""


class ConfigError(ValueError):
    """A bad command line or config value; main() prints it without a traceback."""


# ----------------------------------------------------------------------------
# Config: defaults ← preset ← overrides, with type checks.


def flat_keys(config: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every settable key, nested ones dotted (`generator.ngf`)."""
    keys = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            keys += flat_keys(value, f"{prefix}{key}.")
        else:
            keys.append(prefix + key)
    return keys


def parse_value(key: str, raw: str | None, current: Any) -> Any:
    """Parse `raw` as the type of `current` (bool, int, float, str or a list of those); ConfigError if it isn't."""
    kind = type(current)
    if raw is None:
        if kind is bool:
            return True
        raise ConfigError(f"--{key} needs a value (--{key}=VALUE)")
    try:
        if kind is bool:
            word = raw.strip().lower()
            if word in ("1", "true", "yes", "on"):
                return True
            if word in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is str:
            return raw
        if kind is list:
            items = (
                json.loads(raw) if raw.strip().startswith("[") else [s for s in raw.split(",") if s.strip()]
            )
            if not isinstance(items, list):
                raise ValueError
            if current:
                elem = current[0]
                items = [i if type(i) is type(elem) else parse_value(key, str(i), elem) for i in items]
            return items
    except (ValueError, json.JSONDecodeError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(
            f"--{key}={raw!r}: expected {kind.__name__} like the current value {current!r}"
        ) from None
    raise ConfigError(f"--{key}: values of type {kind.__name__} cannot be set from the command line")


def apply_overrides(config: dict[str, Any], overrides: list[tuple[str, str | None]]) -> dict[str, Any]:
    """A copy of `config` with each (dotted key, raw value) applied; unknown keys fail with a suggestion."""
    config = copy.deepcopy(config)
    known = flat_keys(config)
    for key, raw in overrides:
        *parents, leaf = key.split(".")
        node: Any = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            hint = difflib.get_close_matches(key, known, n=3)
            extra = f"; did you mean {', '.join('--' + h for h in hint)}?" if hint else ""
            raise ConfigError(f"unknown config key --{key}{extra} (--dry-run lists every key)")
        if isinstance(node[leaf], dict):
            raise ConfigError(
                f"--{key} is a group; set its keys, e.g. --{key}.{next(iter(node[leaf]), 'KEY')}=…"
            )
        node[leaf] = parse_value(key, raw, node[leaf])
    return config


def resolve_config(arch: str, preset: str | None, overrides: list[tuple[str, str | None]]) -> dict[str, Any]:
    """Trainer defaults ← the arch's preset ← overrides (before the dataset fills in `label_set`)."""
    try:
        spec = get_arch(arch)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    preset = preset or spec.default_preset
    if preset not in spec.presets:
        raise ConfigError(f"arch {arch!r} has no preset {preset!r}; presets: {', '.join(spec.presets)}")
    config = copy.deepcopy(BASE_CONFIG)
    config.update(copy.deepcopy(dict(spec.presets[preset])))
    config.update(arch=arch, preset=preset)
    config = apply_overrides(config, overrides)
    config["data"] = absolute_data(config["data"])
    check_config(config)
    return config


def absolute_data(spec: str) -> str:
    """`kind:PATH` with PATH made absolute, so `--resume` finds the data from any working directory (the data
    cannot change on resume); `procedural` unchanged."""
    kind, colon, path = spec.partition(":")
    return f"{kind}:{os.path.abspath(path)}" if colon and path else spec


def check_config(config: Mapping[str, Any]) -> None:
    for key in ("size", "batch", "steps", "log_every", "checkpoint_every", "sample_count"):
        if config[key] < 1:
            raise ConfigError(f"{key} must be ≥ 1, got {config[key]}")
    for key in (
        "snapshot_every", "sample_every", "num_workers", "threads", "checkpoint_minutes",
        "lr_decay_start", "lr_decay_steps",
    ):  # fmt: skip
        if config[key] < 0:
            raise ConfigError(f"{key} must be ≥ 0, got {config[key]}")
    if not 0.0 <= config["ema_decay"] < 1.0:
        raise ConfigError(f"ema_decay must be in [0, 1), got {config['ema_decay']}")
    if config["device"] not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {config['device']!r}")
    if config["precision"] not in ("fp32", "bf16"):
        raise ConfigError(f"precision must be fp32 or bf16, got {config['precision']!r}")
    check = get_arch(config["arch"]).check
    if check is not None:
        try:
            check(config)
        except ValueError as e:
            raise ConfigError(f"arch {config['arch']!r}: {e}") from None


# ----------------------------------------------------------------------------
# Processes, run folders, data order.


@dataclass(frozen=True)
class DistEnv:
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


def runs_root(cli_value: str | None) -> Path:
    return Path(cli_value or os.environ.get("COLLAGE_RUNS_DIR") or "runs")


def new_run_dir(root: Path, desc: str) -> Path:
    """root/NNNNN-desc with NNNNN one above the highest number already there."""
    root.mkdir(parents=True, exist_ok=True)
    while True:
        ids = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"^(\d{5,})-", p.name))]
        run_dir = root / f"{max(ids, default=0) + 1:05d}-{desc}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:  # another run took the number between listing and mkdir
            continue


class ResumableSampler(DistributedSampler):
    """DistributedSampler (a fresh shuffle per epoch, seeded by seed+epoch, split over ranks) that can start in
    the middle of an epoch, so a resumed run sees exactly the batches the uninterrupted one would have.

    Yields (epoch, index) so that `SeededItems` can seed each item's augmentation independently of workers."""

    def __init__(self, dataset: Dataset, world: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in itertools.islice(super().__iter__(), self.start, None))

    def __len__(self) -> int:
        return self.num_samples - self.start


def check_batches(batch: int, samples: int, world: int) -> None:
    """Refuse a batch the processes cannot share, or one the dataset cannot fill (each process draws
    ceil(samples / world) samples per epoch), before any run folder exists."""
    if batch % world:
        raise ConfigError(f"batch {batch} is not divisible by the {world} processes")
    if -(-samples // world) < batch // world:
        raise ConfigError(
            f"dataset has {samples} samples: fewer than the {batch // world} each process needs"
        )


def dataset_len(dataset: Dataset) -> int:
    """len(dataset): the datasets here are all map-style with a length, which torch's `Dataset` type omits."""
    return len(cast(Sized, dataset))


class SeededItems(Dataset):
    """Item (epoch, i) of `dataset`, drawn with torch's RNG seeded from (seed, epoch, i).

    Random augmentation then depends on neither the DataLoader worker that loads the item nor the global RNG,
    which is what makes a resumed run (whose workers start mid-epoch) exact."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return dataset_len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0]))
            return self.dataset[index]


# ----------------------------------------------------------------------------
# RNG state (kept weights_only-loadable: tensors, numbers, tuples).


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


# ----------------------------------------------------------------------------
# Checkpoints, logs, sample grids.


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after `step` (a run that died between logging and checkpointing)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(ln + "\n" for ln in lines))
    os.replace(tmp, path)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B,3,H,W] in [-1,1] -> [B,H,W,3] uint8."""
    return (
        ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5)
        .round()
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
        .numpy()
    )


def save_grid(path: Path, label_set: LabelSet, label: torch.Tensor, columns: list[torch.Tensor]) -> None:
    """One row per sample: label colours | columns… (ids outside the label set are drawn black)."""
    from PIL import Image

    lut = np.zeros((256, 3), np.uint8)
    lut[: len(label_set)] = np.array(label_set.palette(), np.uint8)[:256]
    ids = label.detach().cpu().numpy().clip(0, 255)  # [B,H,W]
    tiles = [lut[ids]] + [to_uint8(c) for c in columns]  # each [B,H,W,3]
    rows = np.concatenate(tiles, axis=2)  # [B,H,W·cols,3]
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(np.concatenate(list(rows), axis=0)).save(tmp)
    os.replace(tmp, path)


class StopSignal:
    """SIGINT/SIGTERM set a flag so the loop can finish its step and checkpoint; a second signal kills as usual."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def say(message: str) -> None:
    """A status line on stderr that does not break the progress bar (stdout carries only the config)."""
    tqdm.write(message, file=sys.stderr)


def build_recipe(config: dict[str, Any], label_set: LabelSet, device: torch.device) -> Recipe:
    """The arch's recipe; a network refusing its kwargs (ValueError) is reported as a config error."""
    try:
        return get_arch(config["arch"]).build(config, label_set, device)
    except ValueError as e:
        raise ConfigError(f"arch {config['arch']!r} cannot be built from this config: {e}") from e


def step_precision(device: torch.device, precision: str) -> torch.autocast:
    """The context a training step runs in: bfloat16 autocast for `bf16`, a no-op for `fp32`.

    Backward and the optimiser steps run inside it too, which is fine: gradients come back in each forward op's
    dtype and land on fp32 parameters. The cast cache is off because it lives until the context exits: a recipe
    that ran a net again after that net's optimiser step would otherwise get the stale bf16 copy of its weights.
    Losses cast their inputs to fp32 themselves (models/losses.py).
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)


def set_learning_rates(
    optimizers: Mapping[str, torch.optim.Optimizer], step: int, start: int, span: int
) -> None:
    """Scale every param group's learning rate for the step about to run: 1 until `start`, then linearly to 0
    over `span` steps (SPADE's niter/niter_decay schedule); `span` 0 leaves the rates alone.

    The base rate is kept in the group as `initial_lr` (torch's schedulers use the same key), so it survives a
    checkpoint inside the optimiser's state dict and a resumed run decays from the same base."""
    if span == 0:
        return
    factor = max(0.0, 1.0 - max(0, step - start) / span)
    for opt in optimizers.values():
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * factor


def count_params(nets: Mapping[str, nn.Module]) -> dict[str, int]:
    return {name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()}


def load_init_weights(recipe: Recipe, ema: Mapping[str, nn.Module], source: Mapping[str, Any]) -> None:
    """Copy `source`'s weights (and buffers) into every network of `recipe` and every EMA copy (--init_from).

    Strict: each network must exist in the source under its checkpoint key with exactly the same names and
    shapes, so a config change that alters a weight shape (widths, z_dim, E's input size) fails clearly. Only
    the recipe's `init_optional` networks may be absent (e.g. a segmentation discriminator added to a SPADE run).
    """
    targets = {**recipe.nets, **{f"{name}_ema": net for name, net in ema.items()}}
    optional = set(recipe.init_optional) | {f"{name}_ema" for name in recipe.init_optional}
    targets = {key: net for key, net in targets.items() if key in source or key not in optional}
    missing = [key for key in targets if key not in source]
    if missing:
        raise ConfigError(f"--init_from: the source checkpoint has no {', '.join(missing)}")
    for key, net in targets.items():
        misfit = state_misfit(net.state_dict(), source[key])
        if misfit:
            raise ConfigError(f"--init_from: {key} does not fit this config's network: {misfit}")
        net.load_state_dict(source[key])


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


# ----------------------------------------------------------------------------
# The loop.


def training_loop(
    config: dict[str, Any],  # resolved config (label_set filled in)
    run_dir: Path,  # where rank 0 writes logs, samples and checkpoints
    dataset: Dataset,  # map-style dataset of sample dicts (label, instance, image, style), deterministic per index
    label_set: LabelSet,  # the dataset's label set (sample-grid colours, network input channels)
    checkpoint: Mapping[str, Any] | None = None,  # resume from this checkpoint's state
    env: DistEnv | None = None,  # process group membership; single process when None
    init: Mapping[str, Any] | None = None,  # --init_from: take this checkpoint's network weights
) -> dict[str, Any]:
    """Train until config['steps']; returns a summary (step, wall_time, last logged losses, stopped early).

    A pair that cannot be loaded (models.data.datasets.BadSampleError) ends the run with a ConfigError naming
    its file, after writing checkpoint-latest.pt in a single-process run, so fixing the pair and resuming loses
    nothing."""
    from models.data.datasets import BadSampleError

    env = env or DistEnv()
    device = env.device
    threads = config["threads"] or max(1, (os.cpu_count() or 1) // env.local_world)
    torch.set_num_threads(threads)
    batch, world = config["batch"], env.world
    per_rank = batch // world  # check_batches made sure it divides and the dataset fills it

    # Networks: built identically on every rank from the seed, then each rank gets its own noise stream.
    seed_all(config["seed"])
    recipe = build_recipe(config, label_set, device)
    clash = set(recipe.meta) & (set(recipe.nets) | {f"{n}_ema" for n in recipe.ema} | set(CHECKPOINT_KEYS))
    if clash:
        raise RuntimeError(f"arch {config['arch']!r}: meta keys {sorted(clash)} collide with checkpoint keys")
    ema = {name: make_ema(recipe.nets[name]) for name in recipe.ema}
    step, wall_before = 0, 0.0
    if init is not None:
        load_init_weights(recipe, ema, init)
    if checkpoint is not None:
        for name, net in recipe.nets.items():
            net.load_state_dict(checkpoint[name])
        for name, net in ema.items():
            net.load_state_dict(checkpoint[f"{name}_ema"])
        for name, opt in recipe.optimizers.items():
            opt.load_state_dict(checkpoint["optimizers"][name])
        step, wall_before = int(checkpoint["step"]), float(checkpoint["wall_time"])
    if checkpoint is not None and len(checkpoint["rng"]) == world:
        set_rng_state(checkpoint["rng"][env.rank], device)
    else:
        if checkpoint is not None and env.is_main:
            say(f"resuming {len(checkpoint['rng'])}-process state with {world}: same weights, not bit-exact")
        seed_all(config["seed"] + 1_000_003 * (env.rank + 1) + step)
    nets: dict[str, nn.Module] = dict(recipe.nets)
    if world > 1:
        for name, net in nets.items():
            if any(p.requires_grad for p in net.parameters()):
                nets[name] = nn.parallel.DistributedDataParallel(
                    net,
                    device_ids=[device.index] if device.type == "cuda" else None,
                    forward_sync_buffers=recipe.broadcast_buffers,
                )

    # Data: a fixed order per (seed, epoch); the position is derived from the step.
    sampler = ResumableSampler(dataset, world, env.rank, config["seed"])
    batches_per_epoch = sampler.num_samples // per_rank
    items = SeededItems(dataset, config["seed"])
    loader = DataLoader(
        items,
        batch_size=per_rank,
        sampler=sampler,
        drop_last=True,
        num_workers=config["num_workers"],
        persistent_workers=config["num_workers"] > 0,
        pin_memory=device.type == "cuda",
        # Worker seeds come from this generator, not from the global RNG (whose state the checkpoint carries).
        generator=torch.Generator().manual_seed(config["seed"]),
    )

    def epoch_batches(epoch: int, start: int) -> Iterator[Batch]:
        sampler.set_position(epoch, start * per_rank)
        return iter(loader)

    fixed: Batch | None = None
    if env.is_main:
        n = min(config["sample_count"], dataset_len(dataset))
        try:
            fixed = {k: v.to(device) for k, v in default_collate([items[0, i] for i in range(n)]).items()}
        except BadSampleError as e:
            raise ConfigError(str(e)) from None
        sizes = ", ".join(f"{k} {v / 1e6:.3f} M" for k, v in count_params(recipe.nets).items())
        say(
            f"{run_dir}: {sizes} params; {world} process(es) × batch {per_rank} on {device}, {threads} threads"
        )

    version = code_version() if env.is_main else ""
    session_start = time.time()
    last_ckpt = time.time()

    def save(step: int, epoch: int, position: int, numbered: bool) -> None:
        rngs = [get_rng_state(device)]
        if world > 1:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if not env.is_main:
            return
        ckpt = {
            "format_version": CHECKPOINT_FORMAT,
            "config": config,
            "step": step,
            "images_seen": step * batch,
            "wall_time": wall_before + time.time() - session_start,
            **{name: unwrap(net).state_dict() for name, net in recipe.nets.items()},
            **{f"{name}_ema": net.state_dict() for name, net in ema.items()},
            "optimizers": {name: opt.state_dict() for name, opt in recipe.optimizers.items()},
            "rng": rngs,
            "sampler": {
                "epoch": epoch,
                "batch": position,
                "batches_per_epoch": batches_per_epoch,
                "world_size": world,
            },
            "label_set": label_set.name,
            "code_version": version,
            "torch_version": str(torch.__version__),
            **recipe.meta,
        }
        atomic_save(ckpt, run_dir / LATEST)
        if numbered:
            tmp = run_dir / f"checkpoint-{step:08d}.pt.tmp"
            shutil.copyfile(run_dir / LATEST, tmp)
            os.replace(tmp, run_dir / f"checkpoint-{step:08d}.pt")

    def sample(step: int) -> None:
        assert fixed is not None
        shown = {name: ema.get(name, unwrap(net)) for name, net in nets.items()}
        modes = {name: net.training for name, net in shown.items()}
        for net in shown.values():
            net.eval()  # eval: no spectral-norm power iteration, so sampling never changes training state
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            columns = recipe.preview(shown, fixed)
        for name, net in shown.items():
            net.train(modes[name])
        save_grid(run_dir / f"samples-{step:08d}.png", label_set, fixed["label"], [*columns, fixed["image"]])

    steps = config["steps"]
    if checkpoint is not None and env.is_main:
        if step >= steps:
            say(f"the run is at step {step} already; raise --steps to continue it")
        saved = checkpoint["sampler"]
        if saved["world_size"] == world and saved["batches_per_epoch"] != batches_per_epoch:
            say(
                f"the dataset changed size ({saved['batches_per_epoch']} -> {batches_per_epoch} batches per epoch)"
            )
    epoch, position = divmod(step, batches_per_epoch)
    batches: Iterator[Batch] | None = None
    sums: dict[str, float] = {}
    logged: dict[str, float] = {}
    window_start, window_steps = time.time(), 0
    log_file = run_dir / "log.jsonl"
    stopped = False
    bar = tqdm(total=steps, initial=step, unit="step", disable=not env.is_main, dynamic_ncols=True)

    def bad_sample(error: BadSampleError) -> ConfigError:
        """The error's own line (a DataLoader worker's arrives behind the worker's traceback), after saving the
        steps done. One process only: under torchrun the other ranks wait in a collective, which saving would
        join too, so there the last periodic checkpoint stands and torchrun stops them."""
        line = str(error).strip().rpartition("\n")[2]
        line = line.partition(f"{BadSampleError.__name__}: ")[2] or line
        saved = ""
        if world == 1:
            save(step, epoch, position, numbered=False)
            saved = f"; step {step} saved in {run_dir / LATEST}"
        bar.close()
        return ConfigError(f"{line}{saved}; fix or remove that pair, then: collage train --resume {run_dir}")

    with StopSignal() as stop:
        while step < steps and not stopped:
            if batches is None:
                batches = epoch_batches(epoch, position)
            try:
                data = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
            except BadSampleError as e:
                raise bad_sample(e) from None
            set_learning_rates(recipe.optimizers, step, config["lr_decay_start"], config["lr_decay_steps"])
            with step_precision(device, config["precision"]):
                losses = recipe.step(nets, data)
            step, position, window_steps = step + 1, position + 1, window_steps + 1
            if position == batches_per_epoch:
                epoch, position, batches = epoch + 1, 0, None
            beta = ema_beta(step, config["ema_decay"])
            for name, net in ema.items():
                update_ema(net, recipe.nets[name], beta)
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            bar.update(1)

            if step % config["log_every"] == 0 or step == steps:
                keys = sorted(sums)
                means = torch.tensor([sums[k] / window_steps for k in keys], dtype=torch.float64)
                if world > 1:
                    means = means.to(device)
                    dist.all_reduce(means)
                    means = means.cpu() / world
                now = time.time()
                logged = {k: float(v) for k, v in zip(keys, means, strict=True)}
                rate = window_steps * batch / max(now - window_start, 1e-9)
                if env.is_main:
                    bar.set_postfix({**{k: f"{v:.3g}" for k, v in logged.items()}, "img/s": f"{rate:.1f}"})
                    line = {
                        "step": step,
                        "images_seen": step * batch,
                        "epoch": epoch,
                        "wall_time": round(wall_before + now - session_start, 3),
                        "images_per_s": round(rate, 3),
                        "losses": logged,
                    }
                    with log_file.open("a") as f:
                        f.write(json.dumps(line) + "\n")
                sums, window_start, window_steps = {}, now, 0

            if env.is_main and (
                step == steps or (config["sample_every"] and step % config["sample_every"] == 0)
            ):
                sample(step)

            minutes = config["checkpoint_minutes"]
            flags = torch.tensor(
                [float(bool(minutes) and time.time() - last_ckpt > 60 * minutes), float(stop.raised)],
                device=device,
            )
            if world > 1:  # every rank must agree: saving gathers the RNG states of all of them
                dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            stopped, overdue = bool(flags[1]), bool(flags[0])
            numbered = bool(config["snapshot_every"]) and step % config["snapshot_every"] == 0
            if stopped or numbered or overdue or step % config["checkpoint_every"] == 0 or step == steps:
                save(step, epoch, position, numbered)
                last_ckpt = time.time()
    bar.close()
    if stopped and env.is_main:
        say(f"stopped at step {step}; continue with: collage train --resume {run_dir}")
    return {
        "step": step,
        "wall_time": wall_before + time.time() - session_start,
        "losses": logged,
        "stopped": stopped,
    }


# ----------------------------------------------------------------------------
# Command line.


def parse_args(argv: list[str]) -> tuple[dict[str, str | None], list[tuple[str, str | None]]]:
    """(trainer flags, config overrides) from `--name=value`, `--name value` or a bare `--flag`."""
    flags: dict[str, str | None] = {}
    overrides: list[tuple[str, str | None]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            flags["help"] = None
            i += 1
            continue
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"unexpected argument {arg!r}: options look like --key=value")
        name, eq, value = arg[2:].partition("=")
        raw: str | None = value if eq else None
        if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            raw, i = argv[i + 1], i + 1
        i += 1
        name = ".".join(part.replace("-", "_") for part in name.split("."))
        if name in ("arch", "preset", "resume", "init_from", "runs_dir", "dry_run"):
            flags[name] = raw
        else:
            overrides.append((name, raw))
    return flags, overrides


def build_dataset(config: dict[str, Any]) -> tuple[Dataset, LabelSet]:
    """The run's dataset and label set. Pairs on disk are checked first (every header, a few decoded), so a
    bad file fails here, in --dry-run too, rather than in a DataLoader worker hours into the run."""
    from models.data.datasets import PairsDataset, data_kind, make_dataset

    procedural = data_kind(config["data"]) == "procedural"
    extra: dict[str, Any] = (
        {
            "length": config["data_length"],
            "seed": config["data_seed"],
            "cache_dir": config["data_cache"] or None,
        }
        if procedural
        else {"augment": config["data_augment"]}
    )
    try:
        dataset, label_set = make_dataset(config["data"], config["size"], **extra)
        if isinstance(dataset, PairsDataset):
            dataset.check()
        return dataset, label_set
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(f"--data={config['data']}: {e}") from e


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except (ConfigError, CheckpointError) as e:
        print(f"collage train: {e}", file=sys.stderr)  # noqa: T201
        return 2


def _main(argv: list[str]) -> int:
    flags, overrides = parse_args(argv)
    if "help" in flags:
        from models.archs import available

        archs = [get_arch(name) for name in available()]
        presets = "; ".join(
            f"{a.name}: " + ", ".join(sorted(a.presets, key=lambda p: p != a.default_preset)) for a in archs
        )
        text = USAGE.format(
            archs=", ".join(available()), presets=presets, resumable=", ".join(RESUMABLE_KEYS)
        )
        print(text)  # noqa: T201
        return 0
    dry_run = "dry_run" in flags and parse_value("dry-run", flags["dry_run"], False)

    checkpoint = None
    resume = flags.get("resume")
    if resume is not None:
        if "arch" in flags or "preset" in flags:
            raise ConfigError("--resume continues the run's own config; drop --arch/--preset")
        if "runs_dir" in flags:
            raise ConfigError("--resume continues the run in its own folder; drop --runs-dir")
        checkpoint, run_dir = load_checkpoint(resume)
        # `collage slim` marks its files; a file without optimiser state was slimmed before the mark existed.
        if checkpoint.get("slim") or "optimizers" not in checkpoint:
            raise ConfigError(
                f"{resume} is a slim checkpoint (no optimiser state): "
                "start a new run from it with --init_from"
            )
        bad = [key for key, _ in overrides if key not in RESUMABLE_KEYS]
        if bad:
            raise ConfigError(f"--resume may change only {', '.join(RESUMABLE_KEYS)}; not {', '.join(bad)}")
        # Keys added to BASE_CONFIG after the checkpoint was written take their defaults, which keep the old
        # behaviour (e.g. precision fp32).
        config = apply_overrides({**BASE_CONFIG, **checkpoint["config"]}, overrides)
        check_config(config)
        if config["steps"] < checkpoint["step"]:
            raise ConfigError(
                f"--steps={config['steps']}: the run is at step {checkpoint['step']} already and cannot go back"
            )
    elif "resume" in flags:
        raise ConfigError("--resume needs a run folder or checkpoint")
    else:
        arch = flags.get("arch")
        if not arch:
            raise ConfigError("--arch is required (or --resume RUN_DIR); see --help")
        config = resolve_config(arch, flags.get("preset"), overrides)

    init = None
    if "init_from" in flags:
        if checkpoint is not None:
            raise ConfigError("--init_from starts a new run and --resume continues one; give only one")
        if not flags["init_from"]:
            raise ConfigError("--init_from needs a run folder or checkpoint")
        init, _ = load_checkpoint(flags["init_from"])
        source = init["config"]
        if source["arch"] != config["arch"]:
            raise ConfigError(
                f"--init_from: the source run is arch {source['arch']!r}, this run {config['arch']!r}"
            )
        config["init_from"] = {
            "path": str(checkpoint_file(flags["init_from"])),
            "step": int(init["step"]),
            "size": source["size"],
        }

    # A dry run joins no process group (under torchrun only RANK 0 of it prints) but checks the batch split
    # that WORLD_SIZE asks for.
    if dry_run:
        env = DistEnv(rank=int(os.environ.get("RANK", "0")), world=int(os.environ.get("WORLD_SIZE", "1")))
    else:
        env = init_distributed(config["device"])
    try:
        if env.world > 1 and not env.is_main:
            dist.barrier()  # let rank 0 fill a procedural cache alone, then read it
        dataset, label_set = build_dataset(config)
        if env.world > 1 and env.is_main:
            dist.barrier()
        if checkpoint is not None and label_set.name != config["label_set"]:
            raise ConfigError(
                f"run was trained on label set {config['label_set']!r}, data now gives {label_set.name!r}"
            )
        if init is not None and init["label_set"] != label_set.name:
            raise ConfigError(
                f"--init_from: the source run was trained on label set {init['label_set']!r}, "
                f"data now gives {label_set.name!r}"
            )
        config["label_set"] = label_set.name
        if init is not None:  # fail before a run folder exists when the source's networks do not fit
            probe = build_recipe(config, label_set, torch.device("cpu"))
            load_init_weights(probe, {name: make_ema(probe.nets[name]) for name in probe.ema}, init)
            del probe
        check_batches(config["batch"], dataset_len(dataset), env.world)
        if env.is_main:
            print(json.dumps(config, indent=2))  # noqa: T201
        if dry_run and env.is_main:
            recipe = build_recipe(config, label_set, torch.device("cpu"))
            sizes = ", ".join(f"{k} {v:,}" for k, v in count_params(recipe.nets).items())
            where = run_dir if checkpoint is not None else runs_root(flags.get("runs_dir")) / "NNNNN-…"
            print(f"dry run: {dataset_len(dataset)} samples; parameters {sizes}; would write to {where}")  # noqa: T201
        if dry_run:
            return 0
        if checkpoint is None:
            arch, preset = config["arch"], config["preset"]
            desc = preset if preset.startswith(arch) else f"{arch}-{preset}"  # spade-fast; toy-small
            run_dir = new_run_dir(runs_root(flags.get("runs_dir")), desc) if env.is_main else Path()
            if env.world > 1:
                shared = [str(run_dir)]
                dist.broadcast_object_list(shared, src=0)
                run_dir = Path(shared[0])
        if env.is_main:
            (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
            if checkpoint is not None:
                truncate_log(run_dir / "log.jsonl", int(checkpoint["step"]))
        try:
            summary = training_loop(config, run_dir, dataset, label_set, checkpoint, env, init)
        except ConfigError:  # refused before its first checkpoint (e.g. nets the config cannot build)
            if checkpoint is None and env.is_main and not (run_dir / LATEST).exists():
                shutil.rmtree(run_dir)  # a new run that never saved: leave no folder of only config.json
            raise
        return 130 if summary["stopped"] else 0
    finally:
        if env.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
