"""Real clips for training: an endless, resumable, rank-sharded stream
(docs/training.md#real-clip-sampling).

The sampler walks epoch after epoch through a permutation seeded by (seed, epoch), gives rank
r every world_size-th item, and yields `(epoch, index)` keys so each item's random clip start
and flip are a pure function of (seed, epoch, index), whichever worker loads it. Its position
(items consumed by this rank) is all that a resume needs to continue the same order.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class ResumableSampler(Sampler):
    def __init__(
        self, num_items: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0
    ):
        if num_items < world_size:
            raise ValueError(
                f"the dataset has {num_items} videos but {world_size} processes need at least one "
                "each; add videos or use fewer processes"
            )
        self.num_items, self.seed, self.rank, self.world_size = num_items, seed, rank, world_size
        self.per_rank = num_items // world_size  # like DistributedSampler(drop_last=True)
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start
        while True:
            epoch, offset = divmod(position, self.per_rank)
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.num_items, generator=g)[: self.per_rank * self.world_size]
            mine = order[self.rank :: self.world_size].tolist()
            for index in mine[offset:]:
                yield epoch, index
                position += 1


class ClipStream:
    """`next(stream)` -> a batch of real clips on `device`; `position` counts items consumed."""

    def __init__(
        self,
        dataset: Dataset,
        batch: int,
        seed: int,
        rank: int,
        world_size: int,
        device: torch.device,
        workers: int = 2,
        start: int = 0,
    ):
        self.batch, self.device, self.position = batch, device, start
        sampler = ResumableSampler(len(dataset), seed, rank, world_size, start)
        self.loader = DataLoader(
            dataset,
            batch_size=batch,
            sampler=sampler,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            prefetch_factor=2 if workers > 0 else None,
            persistent_workers=workers > 0,
        )
        self._iter = iter(self.loader)

    def __next__(self):
        batch = next(self._iter)
        self.position += self.batch
        if isinstance(batch, (list, tuple)):
            return tuple(b.to(self.device, non_blocking=True) for b in batch)
        return batch.to(self.device, non_blocking=True)

    def __iter__(self):
        return self
