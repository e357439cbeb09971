"""A training order and augmentation that depend only on (seed, epoch, sample), so that resuming is exact.

Loader workers keep their own random state, across epochs when they persist, and no checkpoint
can carry it: a resumed run used to crop and flip differently from the run it continues (42 of
50 weight tensors apart with ``num_workers=2``). Here the shuffle comes from (seed, epoch), as
``DistributedSampler`` draws it, and every sample's augmentation from (seed, epoch, index), drawn
in whichever worker loads it. A run stopped mid-epoch resumes by leaving out the batches it has
already trained on, without loading them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler

UINT64 = (1 << 64) - 1


def _splitmix64(value: int) -> int:
    """One step of SplitMix64: a well-mixed 64-bit number from any 64-bit one, the same everywhere."""
    value = (value + 0x9E3779B97F4A7C15) & UINT64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & UINT64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & UINT64
    return value ^ (value >> 31)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed of its own for every (seed, epoch, sample index); about a microsecond."""
    return _splitmix64(_splitmix64(_splitmix64(seed & UINT64) ^ epoch) ^ index) >> 1


class EpochSampler(DistributedSampler):
    """This rank's share of a (seed, epoch) permutation, as ``(epoch, index)`` pairs for :class:`SeededSamples`.

    A ``DistributedSampler``, so that Lightning neither replaces it under DDP nor forgets to call
    :meth:`set_epoch`. :meth:`skip_next` leaves out the first samples of the next pass only: those a
    checkpoint taken mid-epoch has already trained on.
    """

    def __init__(self, dataset: Dataset, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip = 0

    def skip_next(self, samples: int) -> None:
        self.skip = samples

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())[self.skip :]
        self.skip = 0
        return iter([(self.epoch, index) for index in indices])


class SeededSamples(Dataset):
    """``dataset[index]`` with torch's random state seeded from (seed, epoch, index) while it loads.

    The global random state is restored afterwards, so that loading in the main process
    (``num_workers=0``) leaves training's own random draws as they were.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        # A plain index comes from a sampler Lightning put in place (trainer.overfit_batches): epoch 0's draws.
        epoch, index = key if isinstance(key, tuple) else (0, key)
        state = torch.get_rng_state()
        # The CPU generator alone: torch.manual_seed also seeds every accelerator, far slower per sample.
        torch.default_generator.manual_seed(sample_seed(self.seed, epoch, index))
        try:
            return self.dataset[index]
        finally:
            torch.set_rng_state(state)
