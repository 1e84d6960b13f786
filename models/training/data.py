"""The run's data: its dataset, and the order each process reads it in.

The order is a pure function of (seed, epoch, position), and each item's random augmentation of (seed, epoch,
index), so a run resumed mid-epoch, with its DataLoader workers started afresh, reads exactly the batches the
uninterrupted run would have.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sized
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

from models.archs import Batch
from models.labels import LabelSet
from models.training.config import ConfigError
from models.training.setup import DistEnv


def build_dataset(config: dict[str, Any]) -> tuple[Dataset, LabelSet]:
    """The run's dataset and label set. Pairs on disk are checked first (every header, a few decoded), so a
    bad file fails here, in --dry-run too, rather than in a DataLoader worker hours into the run."""
    from models.archs import get_arch
    from models.data.datasets import PairsDataset, data_kind, make_dataset
    from models.data.samples import Mix

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
        extra["mix"] = Mix(  # make_dataset refuses a share for other data; a config from before a key reads 0
            painted=config.get("data_painted", 0.0),
            free=config.get("data_free_styles", 0.0),
            large=config.get("data_large", 0.0),
        )
        dataset, label_set = make_dataset(config["data"], config["size"], **extra)
        if isinstance(dataset, PairsDataset):
            dataset.check()
        wrap = get_arch(config["arch"]).wrap_dataset
        return (wrap(dataset, label_set, config) if wrap else dataset), label_set
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(f"--data={config['data']}: {e}") from e


def dataset_len(dataset: Dataset) -> int:
    """len(dataset): the datasets here are all map-style with a length, which torch's `Dataset` type omits."""
    return len(cast(Sized, dataset))


def check_batches(batch: int, samples: int, world: int) -> None:
    """Refuse a batch the processes cannot share, or one the dataset cannot fill (each process draws
    ceil(samples / world) samples per epoch), before any run folder exists."""
    if batch % world:
        raise ConfigError(f"batch {batch} is not divisible by the {world} processes")
    if -(-samples // world) < batch // world:
        raise ConfigError(
            f"dataset has {samples} samples: fewer than the {batch // world} each process needs"
        )


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


class BatchStream:
    """This process's batches, in the run's order from any step on.

    `epoch` and `position` (batches read in that epoch) are what a checkpoint records; the DataLoader restarts
    only when an epoch begins or the run resumes."""

    def __init__(self, dataset: Dataset, config: dict[str, Any], env: DistEnv, step: int) -> None:
        self.world = env.world
        self.per_rank = config["batch"] // env.world  # check_batches: it divides, and the data fills it
        self.sampler = ResumableSampler(dataset, env.world, env.rank, config["seed"])
        self.per_epoch = self.sampler.num_samples // self.per_rank
        self.items = SeededItems(dataset, config["seed"])
        self.loader = DataLoader(
            self.items,
            batch_size=self.per_rank,
            sampler=self.sampler,
            drop_last=True,
            num_workers=config["num_workers"],
            persistent_workers=config["num_workers"] > 0,
            pin_memory=env.device.type == "cuda",
            # Worker seeds come from this generator, not from the global RNG (whose state the checkpoint carries).
            generator=torch.Generator().manual_seed(config["seed"]),
        )
        self.epoch, self.position = divmod(step, self.per_epoch)
        self._batches: Iterator[Batch] | None = None

    def next(self) -> Batch:
        """The next batch; a pair that fails to load raises before `position` moves past it."""
        if self._batches is None:
            self.sampler.set_position(self.epoch, self.position * self.per_rank)
            self._batches = iter(self.loader)
        batch = next(self._batches)
        self.position += 1
        if self.position == self.per_epoch:
            self.epoch, self.position, self._batches = self.epoch + 1, 0, None
        return batch

    def first(self, count: int) -> Batch:
        """The dataset's first `count` items as of epoch 0: the fixed rows of every sample grid."""
        from models.data.datasets import BadSampleError

        try:
            return default_collate([self.items[0, i] for i in range(min(count, len(self.items)))])
        except BadSampleError as e:
            raise ConfigError(str(e)) from None

    def state(self) -> dict[str, int]:
        """The checkpoint's `sampler` entry."""
        return {
            "epoch": self.epoch,
            "batch": self.position,
            "batches_per_epoch": self.per_epoch,
            "world_size": self.world,
        }
