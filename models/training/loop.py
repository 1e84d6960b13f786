"""The training loop of `collage train`, the same for every architecture (`models/archs/` supplies the step).

Each step: the next batch in the run's order, learning rates for the step, the arch's update of its networks
(under bfloat16 autocast for `precision=bf16`), their EMA copies. Then, when due: a `log.jsonl` line with the
mean losses over all processes, a sample grid, and a checkpoint (every `checkpoint_every` steps, every
`checkpoint_minutes`, at the end, and when SIGINT/SIGTERM asks the run to stop).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from models.archs import Batch, unwrap
from models.checkpoints import LATEST, training_checkpoint, write_checkpoint
from models.ema import ema_beta, update_ema
from models.flops import count_params
from models.labels import LabelSet
from models.training.config import ConfigError
from models.training.data import BatchStream
from models.training.setup import DistEnv, distribute, gather_rng_states, start_networks
from models.version import code_version

if TYPE_CHECKING:  # the datasets module is imported when a run starts: it is slow to import (scipy)
    from models.data.datasets import BadSampleError


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
    return Trainer(config, run_dir, dataset, label_set, env or DistEnv(), checkpoint, init).run()


class Trainer:
    """One process's share of a run. A class because the parts of a step (update, log, sample, save) share the
    run's state: the step, the data position, the window of losses since the last log line, the save clock."""

    def __init__(
        self,
        config: dict[str, Any],
        run_dir: Path,
        dataset: Dataset,
        label_set: LabelSet,
        env: DistEnv,
        checkpoint: Mapping[str, Any] | None,
        init: Mapping[str, Any] | None,
    ) -> None:
        self.config, self.run_dir, self.label_set, self.env = config, run_dir, label_set, env
        self.device = env.device
        threads = config["threads"] or max(1, (os.cpu_count() or 1) // env.local_world)
        torch.set_num_threads(threads)

        self.recipe, self.ema = start_networks(config, label_set, env, checkpoint, init)
        if config.get("channels_last", False):  # a run from before the setting reads False
            to_channels_last([*self.recipe.nets.values(), *self.ema.values()])
        self.step, self.wall_before = 0, 0.0
        if checkpoint is not None:
            self.step, self.wall_before = int(checkpoint["step"]), float(checkpoint["wall_time"])
            saved_world = len(checkpoint["rng"])
            if env.is_main and saved_world != env.world:
                say(f"resuming {saved_world}-process state with {env.world}: same weights, not bit-exact")
        self.nets = distribute(self.recipe, env)  # what the step runs: DDP-wrapped under torchrun
        self.data = BatchStream(dataset, config, env, self.step)

        self.fixed: Batch = {}  # the sample grid's rows, on rank 0 only
        if env.is_main:
            self.fixed = {k: v.to(self.device) for k, v in self.data.first(config["sample_count"]).items()}
            sizes = ", ".join(f"{k} {count_params(v) / 1e6:.3f} M" for k, v in self.recipe.nets.items())
            say(
                f"{run_dir}: {sizes} params; {env.world} process(es) × batch {self.data.per_rank} on "
                f"{self.device}, {threads} threads"
            )
            if checkpoint is not None:
                self.report_resume(checkpoint)

        self.version = code_version() if env.is_main else ""
        self.session_start = time.time()
        self.last_save = time.time()
        self.sums: dict[str, float] = {}  # loss sums over the steps since the last log line …
        self.window_start, self.window_steps = time.time(), 0  # … which started then and counts this many
        self.logged: dict[str, float] = {}
        self.stopped = False
        self.bar = tqdm(
            total=config["steps"], initial=self.step, unit="step", disable=not env.is_main, dynamic_ncols=True
        )

    def report_resume(self, checkpoint: Mapping[str, Any]) -> None:
        """Warn of a resumed run that has nothing left to do, or whose data no longer matches its checkpoint."""
        if self.step >= self.config["steps"]:
            say(f"the run is at step {self.step} already; raise --steps to continue it")
        saved, per_epoch = checkpoint["sampler"], self.data.per_epoch
        if saved["world_size"] == self.env.world and saved["batches_per_epoch"] != per_epoch:
            say(f"the dataset changed size ({saved['batches_per_epoch']} -> {per_epoch} batches per epoch)")

    def run(self) -> dict[str, Any]:
        """Step until config['steps'] or a stop signal; the summary `training_loop` returns."""
        from models.data.datasets import BadSampleError

        config, steps = self.config, self.config["steps"]
        with StopSignal() as stop:
            while self.step < steps and not self.stopped:
                try:
                    batch = {k: v.to(self.device, non_blocking=True) for k, v in self.data.next().items()}
                    if config.get("channels_last", False):
                        batch = images_channels_last(batch)
                except BadSampleError as e:
                    raise self.bad_sample(e) from None
                self.train_step(batch)
                if self.step % config["log_every"] == 0 or self.step == steps:
                    self.log()
                sample_due = bool(config["sample_every"]) and self.step % config["sample_every"] == 0
                if self.env.is_main and (self.step == steps or sample_due):
                    self.sample()
                self.save_if_due(stop.raised)
        self.bar.close()
        if self.stopped and self.env.is_main:
            say(f"stopped at step {self.step}; continue with: collage train --resume {self.run_dir}")
        return {
            "step": self.step,
            "wall_time": self.wall_time(),
            "losses": self.logged,
            "stopped": self.stopped,
        }

    def train_step(self, batch: Batch) -> None:
        """Every optimiser updates once, then the EMA copies follow; the losses join the log window."""
        config = self.config
        set_learning_rates(
            self.recipe.optimizers, self.step, config["lr_decay_start"], config["lr_decay_steps"]
        )
        with step_precision(self.device, config["precision"]):
            losses = self.recipe.step(self.nets, batch)
        self.step += 1
        self.window_steps += 1
        beta = ema_beta(self.step, config["ema_decay"])
        for name, net in self.ema.items():
            update_ema(net, self.recipe.nets[name], beta)
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.bar.update(1)

    def log(self) -> None:
        """The window's mean losses over all processes: a log.jsonl line and the progress bar's figures."""
        keys = sorted(self.sums)
        means = torch.tensor([self.sums[k] / self.window_steps for k in keys], dtype=torch.float64)
        if self.env.world > 1:
            means = means.to(self.device)
            dist.all_reduce(means)
            means = means.cpu() / self.env.world
        now = time.time()
        self.logged = {k: float(v) for k, v in zip(keys, means, strict=True)}
        batch = self.config["batch"]
        rate = self.window_steps * batch / max(now - self.window_start, 1e-9)
        if self.env.is_main:
            self.bar.set_postfix({**{k: f"{v:.3g}" for k, v in self.logged.items()}, "img/s": f"{rate:.1f}"})
            line = {
                "step": self.step,
                "images_seen": self.step * batch,
                "epoch": self.data.epoch,
                "wall_time": round(self.wall_before + now - self.session_start, 3),
                "images_per_s": round(rate, 3),
                "losses": self.logged,
            }
            with (self.run_dir / "log.jsonl").open("a") as f:
                f.write(json.dumps(line) + "\n")
        self.sums, self.window_start, self.window_steps = {}, now, 0

    def sample(self) -> None:
        """samples-NNNNNNNN.png: the fixed rows through the served networks (the EMA copy where there is one)."""
        shown = {name: self.ema.get(name, unwrap(net)) for name, net in self.nets.items()}
        modes = {name: net.training for name, net in shown.items()}
        for net in shown.values():
            net.eval()  # eval: no spectral-norm power iteration, so sampling never changes training state
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=cuda):
            columns = self.recipe.preview(shown, self.fixed)
        for name, net in shown.items():
            net.train(modes[name])
        path = self.run_dir / f"samples-{self.step:08d}.png"
        save_grid(path, self.label_set, self.fixed["label"], [*columns, self.fixed["image"]])

    def save_if_due(self, signalled: bool) -> None:
        """Save when the step count or the clock says so, or a signal asks the run to stop. Every process must
        agree, since saving gathers the RNG states of all of them (and a signal may reach only some)."""
        config, minutes = self.config, self.config["checkpoint_minutes"]
        flags = torch.tensor(
            [float(bool(minutes) and time.time() - self.last_save > 60 * minutes), float(signalled)],
            device=self.device,
        )
        if self.env.world > 1:
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        self.stopped, overdue = bool(flags[1]), bool(flags[0])
        snapshot = bool(config["snapshot_every"]) and self.step % config["snapshot_every"] == 0
        every = self.step % config["checkpoint_every"] == 0 or self.step == config["steps"]
        if self.stopped or snapshot or overdue or every:
            self.save(snapshot)
            self.last_save = time.time()

    def save(self, snapshot: bool) -> None:
        """checkpoint-latest.pt, and checkpoint-NNNNNNNN.pt too if `snapshot`. A collective: every process
        gives its RNG state, rank 0 writes."""
        rngs = gather_rng_states(self.env)
        if not self.env.is_main:
            return
        checkpoint = training_checkpoint(
            self.config,
            self.recipe,
            self.ema,
            step=self.step,
            wall_time=self.wall_time(),
            rngs=rngs,
            sampler=self.data.state(),
            label_set=self.label_set.name,
            code_version=self.version,
        )
        write_checkpoint(checkpoint, self.run_dir, snapshot)

    def bad_sample(self, error: BadSampleError) -> ConfigError:
        """The error's own line (a DataLoader worker's arrives behind the worker's traceback), after saving the
        steps done. One process only: under torchrun the other ranks wait in a collective, which saving would
        join too, so there the last periodic checkpoint stands and torchrun stops them."""
        line = str(error).strip().rpartition("\n")[2]
        line = line.partition(f"{type(error).__name__}: ")[2] or line
        saved = ""
        if self.env.world == 1:
            self.save(snapshot=False)
            saved = f"; step {self.step} saved in {self.run_dir / LATEST}"
        self.bar.close()
        resume = f"collage train --resume {self.run_dir}"
        return ConfigError(f"{line}{saved}; fix or remove that pair, then: {resume}")

    def wall_time(self) -> float:
        """Seconds of training over every session of the run."""
        return self.wall_before + time.time() - self.session_start


def say(message: str) -> None:
    """A status line on stderr that does not break the progress bar (stdout carries only the config)."""
    tqdm.write(message, file=sys.stderr)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` runs bfloat16 convolutions natively. On a CPU only where oneDNN has bf16 kernels
    (AVX512 or AMX); elsewhere torch falls back to its reference convolution, far slower than fp32 (a DP-GAN
    step at 128² took 18.4 s under bf16 autocast against 1.3 s in fp32 on an AMD EPYC without AVX512)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(device: torch.device, precision: str) -> str:
    """The precision a run on `device` trains in: `auto` → bf16 where it is native, else fp32. An explicit bf16
    where it is not still runs (the user asked for it), with a warning on stderr saying what it costs."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and not native_bf16(device):
        say(
            f"collage train: warning: {device} has no native bfloat16; --precision=bf16 will run many times "
            "slower than fp32 (use --precision=fp32 or auto)"
        )
    return precision


def step_precision(device: torch.device, precision: str) -> torch.autocast:
    """The context a training step runs in: bfloat16 autocast for `bf16`, a no-op for `fp32`.

    Backward and the optimiser steps run inside it too, which is fine: gradients come back in each forward op's
    dtype and land on fp32 parameters. The cast cache is off because it lives until the context exits: a recipe
    that ran a net again after that net's optimiser step would otherwise get the stale bf16 copy of its weights.
    Losses cast their inputs to fp32 themselves (models/losses.py).
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)


def to_channels_last(nets: Iterable[nn.Module]) -> None:
    """Every 4-D weight of `nets` in channels-last memory format, values unchanged: oneDNN's CPU convolutions
    prefer NHWC (a SPADE step under bf16 took 0.89× the time, benchmarks/train_step.py). Checkpoints keep the
    values, so a run may switch the setting on resume."""
    for net in nets:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (torch's stubs lack it)


def images_channels_last(batch: Batch) -> Batch:
    """The batch with its pictures ([B,C,H,W] floats) in channels-last memory format; label maps stay ids."""
    return {
        k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 and v.is_floating_point() else v
        for k, v in batch.items()
    }


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
