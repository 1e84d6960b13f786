"""`collage train`: one training loop for every architecture.

    collage train --arch spade --preset spade-fast --data procedural [--key=value …] [--dry-run]
    collage train --resume runs/00001-spade-fast [--steps=20000]
    collage train --arch spade --preset spade-fast --size=256 --init_from runs/00001-spade-fast
    torchrun --nproc_per_node=2 -m models.train --arch spade …

Config flow (nanoGPT/EDM): trainer defaults (BASE_CONFIG) ← the arch's preset ← `--key=value` overrides (typed
like the value they replace; nested keys as `--generator.ngf=32`). The resolved config is printed once, saved as
`config.json` in a numbered run folder (`runs/00001-spade-fast/`) and carried by every checkpoint, so resume
and export need no flags. This module is the command line only (as EDM's train.py): the loop is
`models/training/loop.py`, and it knows nothing about any architecture: `models/archs/<name>.py` registers how
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

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from models.archs import available, get_arch
from models.checkpoints import (
    LATEST,
    CheckpointError,
    checkpoint_file,
    lineage_images_seen,
    load_checkpoint,
)
from models.ema import make_ema
from models.flops import count_params
from models.labels import LabelSet
from models.training.config import (
    BASE_CONFIG,
    RESUMABLE_KEYS,
    ConfigError,
    apply_overrides,
    check_training_config,
    parse_value,
    resolve_config,
)
from models.training.data import build_dataset, check_batches, dataset_len
from models.training.loop import resolve_precision, training_loop
from models.training.runs import create_run_dir, runs_root, truncate_log
from models.training.setup import DistEnv, build_recipe, init_distributed, load_init_weights

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


def usage() -> str:
    """--help: USAGE with the architectures and presets registered now."""
    archs = [get_arch(name) for name in available()]
    presets = "; ".join(
        f"{a.name}: " + ", ".join(sorted(a.presets, key=lambda p: p != a.default_preset)) for a in archs
    )
    return USAGE.format(archs=", ".join(available()), presets=presets, resumable=", ".join(RESUMABLE_KEYS))


def resume_config(
    flags: dict[str, str | None], overrides: list[tuple[str, str | None]]
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """(config, checkpoint, run folder) of the run --resume continues, with the overrides it allows."""
    resume = flags["resume"]
    if resume is None:
        raise ConfigError("--resume needs a run folder or checkpoint")
    if "arch" in flags or "preset" in flags:
        raise ConfigError("--resume continues the run's own config; drop --arch/--preset")
    if "runs_dir" in flags:
        raise ConfigError("--resume continues the run in its own folder; drop --runs-dir")
    checkpoint, run_dir = load_checkpoint(resume)
    # `collage slim` marks its files; a file without optimiser state was slimmed before the mark existed.
    if checkpoint.get("slim") or "optimizers" not in checkpoint:
        raise ConfigError(
            f"{resume} is a slim checkpoint (no optimiser state): start a new run from it with --init_from"
        )
    bad = [key for key, _ in overrides if key not in RESUMABLE_KEYS]
    if bad:
        raise ConfigError(f"--resume may change only {', '.join(RESUMABLE_KEYS)}; not {', '.join(bad)}")
    # Keys added to BASE_CONFIG after the checkpoint was written take their defaults, which keep the old
    # behaviour (e.g. precision fp32).
    config = apply_overrides({**BASE_CONFIG, **checkpoint["config"]}, overrides)
    check_training_config(config)
    if config["steps"] < checkpoint["step"]:
        raise ConfigError(
            f"--steps={config['steps']}: the run is at step {checkpoint['step']} already and cannot go back"
        )
    return config, checkpoint, run_dir


def init_source(path: str | None, config: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint --init_from takes weights from; recorded in the new run's config as `init_from`."""
    if not path:
        raise ConfigError("--init_from needs a run folder or checkpoint")
    init, _ = load_checkpoint(path)
    source = init["config"]
    if source["arch"] != config["arch"]:
        raise ConfigError(
            f"--init_from: the source run is arch {source['arch']!r}, this run {config['arch']!r}"
        )
    config["init_from"] = {
        "path": str(checkpoint_file(path)),
        "step": int(init["step"]),
        "size": source["size"],
        # What the weights have seen before this run, over the source's own --init_from chain too: a model's
        # training budget (the zoo's column) is the whole chain's, not its last run's.
        "images_seen": lineage_images_seen(init),
    }
    return init


def load_data(
    config: dict[str, Any], env: DistEnv, checkpoint: dict[str, Any] | None, init: dict[str, Any] | None
) -> tuple[Dataset, LabelSet]:
    """The run's dataset, refused before any run folder exists when it does not fit the resumed run, the
    `--init_from` source or the batch; sets config['label_set']."""
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
    check_batches(config["batch"], dataset_len(dataset), env.world)
    return dataset, label_set


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 2 refused (one line on stderr, no traceback), 130 stopped by SIGINT/SIGTERM."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except (ConfigError, CheckpointError) as e:
        print(f"collage train: {e}", file=sys.stderr)  # noqa: T201
        return 2


def _main(argv: list[str]) -> int:
    flags, overrides = parse_args(argv)
    if "help" in flags:
        print(usage())  # noqa: T201
        return 0
    dry_run = "dry_run" in flags and parse_value("dry-run", flags["dry_run"], False)
    checkpoint, run_dir = None, Path()
    if "resume" in flags:
        config, checkpoint, run_dir = resume_config(flags, overrides)
    else:
        arch = flags.get("arch")
        if not arch:
            raise ConfigError("--arch is required (or --resume RUN_DIR); see --help")
        config = resolve_config(arch, flags.get("preset"), overrides)
    init = None
    if "init_from" in flags:
        if checkpoint is not None:
            raise ConfigError("--init_from starts a new run and --resume continues one; give only one")
        init = init_source(flags["init_from"], config)

    # A dry run joins no process group (under torchrun only RANK 0 of it prints) but checks the batch split
    # that WORLD_SIZE asks for.
    if dry_run:
        env = DistEnv(rank=int(os.environ.get("RANK", "0")), world=int(os.environ.get("WORLD_SIZE", "1")))
    else:
        env = init_distributed(config["device"])
    try:
        config["precision"] = resolve_precision(env.device, config["precision"])
        dataset, label_set = load_data(config, env, checkpoint, init)
        if env.is_main:
            print(json.dumps(config, indent=2))  # noqa: T201
        if dry_run and env.is_main:
            nets = build_recipe(config, label_set, torch.device("cpu")).nets
            sizes = ", ".join(f"{k} {count_params(v):,}" for k, v in nets.items())
            where = run_dir if checkpoint is not None else runs_root(flags.get("runs_dir")) / "NNNNN-…"
            print(f"dry run: {dataset_len(dataset)} samples; parameters {sizes}; would write to {where}")  # noqa: T201
        if dry_run:
            return 0
        if checkpoint is None:
            run_dir = create_run_dir(config, runs_root(flags.get("runs_dir")), env)
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
