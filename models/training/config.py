"""The config of a `collage train` run: trainer defaults ← the arch's preset ← `--key=value` overrides.

Overrides are typed like the value they replace and nested keys are dotted (`--generator.ngf=32`), so a typo or
a wrong type fails before anything is built. The resolved config is all a run needs: it is saved with every
checkpoint, so `--resume` and export read it back instead of taking flags.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from collections.abc import Mapping
from typing import Any

from models.archs import get_arch

# Trainer defaults; an arch preset may override any of them and adds its own keys (nets, losses, optimisers).
BASE_CONFIG: dict[str, Any] = {
    "arch": "",  # architecture (a module in models/archs/)
    "preset": "",  # the arch's preset that filled in the rest
    "data": "procedural",  # procedural | folder:PATH | ade20k:PATH | cocostuff:PATH | cityscapes:PATH
    "label_set": "",  # set from the dataset: a name in models.labels.LABEL_SETS
    "data_length": 4096,  # procedural data: number of distinct samples
    "data_seed": 0,  # procedural data: dataset seed (sample i depends only on (data_seed, i))
    "data_cache": "",  # procedural data: render once into shards in this folder ("" = render on the fly)
    "data_painted": 0.0,  # procedural data: share of samples with a painted layout (models/data/painted_layouts.py)
    "data_free_styles": 0.0,  # procedural data: share of samples in a free style (models/data/style.py)
    "data_large": 0.0,  # procedural data: share of samples cropped from a render at 2× the size (models/data/samples.py)
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
    # fp32 | bf16: the step under bfloat16 autocast (weights, optimisers, EMA stay fp32) | auto: bf16 where the
    # device runs it natively, else fp32, resolved when the run starts and recorded as the one it chose
    "precision": "fp32",
    "channels_last": False,  # weights and images in channels-last memory format (faster convolutions on CPU)
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
    "channels_last",
    "lr_decay_start",
    "lr_decay_steps",
)


class ConfigError(ValueError):
    """A bad command line or config value; `collage train` (models/train.py) prints it without a traceback."""


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
    check_training_config(config)
    return config


def absolute_data(spec: str) -> str:
    """`kind:PATH` with PATH made absolute, so `--resume` finds the data from any working directory (the data
    cannot change on resume); `procedural` unchanged."""
    kind, colon, path = spec.partition(":")
    return f"{kind}:{os.path.abspath(path)}" if colon and path else spec


def check_training_config(config: Mapping[str, Any]) -> None:
    """Refuse values no run could use, then ask the arch about its own constraints (sizes its nets need)."""
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
    if config["precision"] not in ("fp32", "bf16", "auto"):
        raise ConfigError(f"precision must be fp32, bf16 or auto, got {config['precision']!r}")
    check = get_arch(config["arch"]).check
    if check is not None:
        try:
            check(config)
        except ValueError as e:
            raise ConfigError(f"arch {config['arch']!r}: {e}") from None
